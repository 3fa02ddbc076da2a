/* thread-churn: threads are created and joined nonstop (short-lived workers) while two
 * long-lived threads count. Checkpoints land at any point of thread creation or exit.
 * On SIGTERM: PASS <joined threads> or FAIL. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static volatile sig_atomic_t terminate_requested;
static volatile int stop;
static volatile long long_counts[2];
static void on_term(int signo) { (void)signo; terminate_requested = 1; }
static void *short_lived(void *arg) { return (void *)((long)arg * 2); }
static void *long_lived(void *arg) {
    long i = (long)arg;
    while (!stop) long_counts[i]++;
    return NULL;
}

int main(void) {
    signal(SIGTERM, on_term);
    pthread_t a, b;
    pthread_create(&a, NULL, long_lived, (void *)0);
    pthread_create(&b, NULL, long_lived, (void *)1);
    printf("READY\n");
    fflush(stdout);
    long joined = 0, wrong = 0;
    while (!terminate_requested) {
        pthread_t t;
        if (pthread_create(&t, NULL, short_lived, (void *)joined) != 0) continue;
        void *result;
        pthread_join(t, &result);
        if ((long)result != joined * 2) wrong++;
        joined++;
    }
    stop = 1;
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    if (wrong || joined == 0 || !long_counts[0] || !long_counts[1]) printf("FAIL wrong %ld joined %ld\n", wrong, joined);
    else printf("PASS %ld\n", joined);
    fflush(stdout);
    return 0;
}
