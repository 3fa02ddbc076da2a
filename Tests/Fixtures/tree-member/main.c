/* tree-member: a process for hand-made tree checkpoints (TreeRestartTests).
 *
 *   tree-member [FILL_MIB]
 *
 * Blocks SIGCHLD (so a SIGCHLD pending after a restart shows in /proc/PID/status), fills FILL_MIB MiB
 * with a pattern (large enough for a lazy restart's pager), prints READY, and idles until SIGTERM;
 * then checks the pattern and prints "PASS pid ppid pgid sid" (exit 0) or "FAIL ..." (exit 1). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static volatile sig_atomic_t terminate_requested;
static void on_term(int signo) { (void)signo; terminate_requested = 1; }

int main(int argc, char **argv) {
    sigset_t child;
    sigemptyset(&child);
    sigaddset(&child, SIGCHLD);
    sigprocmask(SIG_BLOCK, &child, NULL);
    signal(SIGTERM, on_term);
    size_t bytes = (size_t)(argc > 1 ? atoi(argv[1]) : 0) << 20;
    unsigned char *fill = bytes ? malloc(bytes) : NULL;
    for (size_t i = 0; i < bytes; i++) fill[i] = (unsigned char)(i * 7 + 3);
    printf("READY\n");
    fflush(stdout);
    while (!terminate_requested) usleep(10000);
    for (size_t i = 0; i < bytes; i++) {
        if (fill[i] != (unsigned char)(i * 7 + 3)) {
            printf("FAIL pattern at %zu\n", i);
            fflush(stdout);
            return 1;
        }
    }
    printf("PASS %d %d %d %d\n", (int)getpid(), (int)getppid(), (int)getpgrp(), (int)getsid(0));
    fflush(stdout);
    return 0;
}
