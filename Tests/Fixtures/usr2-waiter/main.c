/* usr2-waiter: the "signal thread" pattern with the checkpoint signal. Installs a SIGUSR2 handler
 * (which must never run), blocks SIGUSR2 in the main thread before creating three workers (they
 * inherit the mask) and a waiter thread that takes SIGUSR2 with sigwaitinfo. Prints
 * "waited N from PID" for each SIGUSR2 the waiter takes; on SIGTERM prints PASS, or FAIL if the
 * handler ever ran or a worker saw SIGUSR2 unblocked. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t handled, terminate_requested, worker_unblocked;
static void on_usr2(int signo) { (void)signo; handled++; }
static void on_term(int signo) { (void)signo; terminate_requested = 1; }

static void *worker(void *arg) {
    (void)arg;
    while (!terminate_requested) {
        sigset_t now;
        pthread_sigmask(SIG_BLOCK, NULL, &now);
        if (!sigismember(&now, SIGUSR2)) worker_unblocked = 1;
        usleep(2000);
    }
    return NULL;
}

static void *waiter(void *arg) {
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    int waited = 0;
    while (1) {
        siginfo_t info;
        if (sigwaitinfo(&set, &info) != SIGUSR2) continue; /* EINTR */
        printf("waited %d from %d\n", ++waited, (int)info.si_pid);
        fflush(stdout);
    }
    return NULL;
}

int main(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_usr2;
    sigaction(SIGUSR2, &action, NULL);
    signal(SIGTERM, on_term);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    pthread_t threads[4];
    for (int i = 0; i < 3; i++) pthread_create(&threads[i], NULL, worker, NULL);
    pthread_create(&threads[3], NULL, waiter, NULL);
    printf("READY\n");
    fflush(stdout);
    while (!terminate_requested) usleep(2000);
    if (handled) {
        printf("FAIL the handler ran %d times for a SIGUSR2 every thread blocks\n", (int)handled);
        return 1;
    }
    if (worker_unblocked) {
        printf("FAIL a worker did not inherit the blocked SIGUSR2\n");
        return 1;
    }
    printf("PASS\n");
    return 0;
}
