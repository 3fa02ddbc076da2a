/* own-usr2: a program that owns SIGUSR2 (as HotSpot does) and blocks it.
 * Installs a SIGUSR2 handler (SA_ONSTACK, on its own sigaltstack), raises it once, blocks SIGUSR2 with
 * pthread_sigmask, and prints "usr2 N" whenever its handler has run N times.
 * On SIGTERM it checks that sigaction still reports its own handler, and that
 * the handler always ran on the alternate stack, and prints PASS. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t usr2_count, terminate_requested;
static volatile sig_atomic_t off_alternate_stack;
static char alternate_stack[1 << 16];
static void on_usr2(int signo) {
    char here;
    (void)signo;
    if (&here < alternate_stack || &here >= alternate_stack + sizeof alternate_stack) off_alternate_stack = 1;
    usr2_count++;
}
static void on_term(int signo) { (void)signo; terminate_requested = 1; }

int main(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_usr2;
    action.sa_flags = SA_ONSTACK;
    stack_t stack = {.ss_sp = alternate_stack, .ss_size = sizeof alternate_stack};
    sigaltstack(&stack, NULL);
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
    if (off_alternate_stack) {
        printf("FAIL the SA_ONSTACK handler ran off its alternate stack\n");
        return 1;
    }
    printf("PASS usr2 %d\n", (int)usr2_count);
    return 0;
}
