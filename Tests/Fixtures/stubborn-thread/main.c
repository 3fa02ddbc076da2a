/* stubborn-thread: one thread blocks every signal with a raw rt_sigprocmask (past
 * any interposition) and spins, so it cannot be frozen. A checkpoint must fail
 * cleanly and leave the program working. On SIGTERM (to the main thread): PASS. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile sig_atomic_t terminate_requested;
static volatile long spins;
static void on_term(int signo) { (void)signo; terminate_requested = 1; }
static void *stubborn(void *arg) {
    (void)arg;
    unsigned long all = ~0ul;
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, NULL, 8);
    for (;;) spins++;
    return NULL;
}

int main(void) {
    signal(SIGTERM, on_term);
    pthread_t t;
    pthread_create(&t, NULL, stubborn, NULL);
    printf("READY\n");
    fflush(stdout);
    while (!terminate_requested) usleep(1000);
    /* the spinner must still run: give it up to 2 s to be scheduled on a loaded machine */
    long before = spins;
    for (int i = 0; i < 400 && spins == before; i++) usleep(5000);
    printf(spins != before ? "PASS\n" : "FAIL stubborn thread stopped\n");
    fflush(stdout);
    return 0;
}
