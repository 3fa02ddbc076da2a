/* job-steps STEPS [MICROSECONDS] [pidfd]: a self-verifying batch job for `stasis job` (JobTests, SlurmTests).
 * It takes STEPS steps; each adds the step number to a sum and folds it into a running hash, both in
 * memory, and prints "step N". At the end it checks both against what STEPS steps, each taken exactly
 * once and in order, must give: "VERIFIED STEPS" and exit 0, or "WRONG ..." and exit 1. A step taken
 * twice (a resume from a stale image replays steps: fine, memory went back too) cannot be told from one
 * taken once, but a step lost or memory torn can. "pidfd" holds a pidfd (which Stasis cannot checkpoint:
 * every checkpoint fails and the job must keep running). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long steps = argc > 1 ? atol(argv[1]) : 50;
    long pause_us = argc > 2 ? atol(argv[2]) : 100000;
    if (argc > 3 && strcmp(argv[3], "pidfd") == 0 && syscall(SYS_pidfd_open, getpid(), 0) < 0) {
        perror("pidfd_open");
        return 2;
    }
    uint64_t sum = 0, hash = 1469598103934665603ull;
    printf("READY %d\n", getpid());
    fflush(stdout);
    for (long i = 1; i <= steps; i++) {
        sum += (uint64_t)i;
        hash = (hash ^ (uint64_t)i) * 1099511628211ull;
        printf("step %ld\n", i);
        fflush(stdout);
        usleep((useconds_t)pause_us);
    }
    uint64_t want_hash = 1469598103934665603ull;
    for (long i = 1; i <= steps; i++) want_hash = (want_hash ^ (uint64_t)i) * 1099511628211ull;
    if (sum == (uint64_t)steps * (uint64_t)(steps + 1) / 2 && hash == want_hash) {
        printf("VERIFIED %ld\n", steps);
        return 0;
    }
    printf("WRONG sum %llu hash %llx\n", (unsigned long long)sum, (unsigned long long)hash);
    return 1;
}
