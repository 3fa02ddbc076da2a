/* heap-holder MIB [reset]: fills MIB MiB of heap with a pattern, prints READY, and waits; on SIGTERM
 * checks the pattern and prints PASS or FAIL. With "reset", it first puts the checkpoint signal
 * (SIGUSR2) back to its default action with a raw system call, behind the agent's back: a trigger
 * sent to it then would kill it, so `stasis checkpoint` must refuse instead. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int signo) { (void)signo; stop = 1; }

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], 0, 10) : 16;
    if (argc > 2 && strcmp(argv[2], "reset") == 0) {
        struct { void *handler; unsigned long flags; void *restorer; unsigned long mask; } dfl = {SIG_DFL, 0, 0, 0};
        syscall(SYS_rt_sigaction, SIGUSR2, &dfl, NULL, 8);
    }
    signal(SIGTERM, on_term);
    size_t words = mib << 17;
    uint64_t *heap = malloc(words * 8);
    if (!heap) return 2;
    for (size_t i = 0; i < words; i++) heap[i] = i * 0x9e3779b97f4a7c15ull;
    printf("READY %d\n", getpid());
    fflush(stdout);
    while (!stop) pause();
    for (size_t i = 0; i < words; i++) {
        if (heap[i] != i * 0x9e3779b97f4a7c15ull) {
            printf("FAIL word %zu\n", i);
            return 1;
        }
    }
    printf("PASS\n");
    return 0;
}
