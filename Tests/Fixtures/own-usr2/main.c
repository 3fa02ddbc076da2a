/* own-usr2: a program that owns SIGUSR2 (as HotSpot does) and blocks it.
 * Installs a SIGUSR2 handler, raises it once, blocks SIGUSR2 with
 * pthread_sigmask, and prints "usr2 N" whenever its handler has run N times.
 * On SIGTERM it checks that sigaction still reports its own handler and
 * prints PASS. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t usr2_count, terminate_requested;
static void on_usr2(int signo) { (void)signo; usr2_count++; }
static void on_term(int signo) { (void)signo; terminate_requested = 1; }

int main(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_usr2;
    sigaction(SIGUSR2, &action, NULL);
    signal(SIGTERM, on_term);
    raise(SIGUSR2);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    printf("READY\n");
    fflush(stdout);
    int seen = 0;
    while (!terminate_requested) {
        if (usr2_count != seen) {
            seen = usr2_count;
            printf("usr2 %d\n", seen);
            fflush(stdout);
        }
        usleep(1000);
    }
    struct sigaction now;
    sigaction(SIGUSR2, NULL, &now);
    if (now.sa_handler != on_usr2) {
        printf("FAIL sigaction does not report the program's handler\n");
        return 1;
    }
    printf("PASS usr2 %d\n", (int)usr2_count);
    return 0;
}
