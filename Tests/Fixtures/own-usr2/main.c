/* own-usr2: a program that owns SIGUSR2 (as HotSpot does) and blocks it.
 * Installs a SIGUSR2 handler (SA_ONSTACK, on its own sigaltstack), raises it once (handled: "usr2 1"),
 * blocks SIGUSR2 with pthread_sigmask and raises it again: that one must stay pending (sigpending
 * shows it, the handler does not run) through checkpoints and restarts, until SIGHUP makes the program
 * unblock SIGUSR2: then every pending instance is handled. Prints "usr2 N" whenever its handler has
 * run N times and "pending 0|1" whenever sigpending's view of SIGUSR2 changes.
 * On SIGTERM it checks that sigaction still reports its own handler, that the mask calls reported
 * SIGUSR2 as blocked while it was, and that the handler always ran on the alternate stack: PASS. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t usr2_count, terminate_requested, unblock_requested;
static volatile sig_atomic_t off_alternate_stack;
static char alternate_stack[1 << 16];
static void on_usr2(int signo) {
    char here;
    (void)signo;
    if (&here < alternate_stack || &here >= alternate_stack + sizeof alternate_stack) off_alternate_stack = 1;
    usr2_count++;
}
static void on_term(int signo) { (void)signo; terminate_requested = 1; }
static void on_hup(int signo) { (void)signo; unblock_requested = 1; }

int main(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_usr2;
    action.sa_flags = SA_ONSTACK;
    stack_t stack = {.ss_sp = alternate_stack, .ss_size = sizeof alternate_stack};
    sigaltstack(&stack, NULL);
    sigaction(SIGUSR2, &action, NULL);
    signal(SIGTERM, on_term);
    signal(SIGHUP, on_hup);
    raise(SIGUSR2);
    sigset_t block, old, now;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    int mask_wrong = sigismember(&old, SIGUSR2) || !sigismember(&now, SIGUSR2);
    raise(SIGUSR2); /* blocked: stays pending */
    printf("READY\n");
    fflush(stdout);
    int seen = 0, seen_pending = -1, unblocked = 0;
    while (!terminate_requested) {
        if (unblock_requested && !unblocked) {
            unblocked = 1;
            pthread_sigmask(SIG_UNBLOCK, &block, NULL);
        }
        sigset_t pending;
        sigpending(&pending);
        int is_pending = sigismember(&pending, SIGUSR2);
        if (is_pending != seen_pending) {
            seen_pending = is_pending;
            printf("pending %d\n", is_pending);
            fflush(stdout);
        }
        if (usr2_count != seen) {
            seen = usr2_count;
            printf("usr2 %d\n", seen);
            fflush(stdout);
        }
        usleep(1000);
    }
    struct sigaction current;
    sigaction(SIGUSR2, NULL, &current);
    if (current.sa_handler != on_usr2) {
        printf("FAIL sigaction does not report the program's handler\n");
        return 1;
    }
    if (mask_wrong) {
        printf("FAIL pthread_sigmask did not report SIGUSR2 as blocked\n");
        return 1;
    }
    if (off_alternate_stack) {
        printf("FAIL the SA_ONSTACK handler ran off its alternate stack\n");
        return 1;
    }
    printf("PASS usr2 %d\n", (int)usr2_count);
    return 0;
}
