/* simulate: a self-verifying "simulation" for the scheduler (Slurm) tests.
 *
 *   simulate INPUT
 *
 * INPUT's first line is "simulate steps=N step_ms=M total=T exit=E", then N lines of one number each.
 * Step i reads the next number through the same open FILE (so the file offset and the stdio buffer
 * are part of the state), adds it to a sum, folds it into a hash chain, counts the step in a heap
 * array, sleeps M ms and prints "simulate: step i/N". At the end it checks that the input ended
 * exactly after N numbers, that the sum is T, that every step ran exactly once (no step lost or
 * repeated) and that the hash chain equals the one computed afresh from INPUT; then prints
 * "simulate: VERIFIED steps=N sum=T hash=H" and exits E (0 normally), or "simulate: MISMATCH what"
 * and exits 1. A checkpoint and restart anywhere in between must not change any of it. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static uint64_t fold(uint64_t hash, uint64_t step, uint64_t value) {
    hash ^= value + 0x9e3779b97f4a7c15ull + (step << 6) + (hash >> 2);
    hash *= 0xbf58476d1ce4e5b9ull;
    return hash ^ (hash >> 31);
}

static int mismatch(const char *what) {
    printf("simulate: MISMATCH %s\n", what);
    fflush(stdout);
    return 1;
}

static int read_header(FILE *f, long *steps, long *step_ms, int64_t *total, int *exit_status) {
    return fscanf(f, "simulate steps=%ld step_ms=%ld total=%" SCNd64 " exit=%d", steps, step_ms, total, exit_status) == 4 &&
           *steps > 0 && *step_ms >= 0;
}

int main(int argc, char **argv) {
    if (argc != 2) return mismatch("usage: simulate INPUT");
    FILE *input = fopen(argv[1], "r");
    if (!input) return mismatch("cannot open input");
    long steps, step_ms;
    int64_t total;
    int exit_status;
    if (!read_header(input, &steps, &step_ms, &total, &exit_status)) return mismatch("bad header");
    unsigned char *seen = calloc((size_t)steps, 1);
    if (!seen) return mismatch("calloc");
    printf("simulate: started pid=%d steps=%ld\n", (int)getpid(), steps);
    fflush(stdout);

    int64_t sum = 0;
    uint64_t hash = 1;
    for (long i = 0; i < steps; i++) {
        int64_t value;
        if (fscanf(input, "%" SCNd64, &value) != 1) return mismatch("input ended early");
        sum += value;
        hash = fold(hash, (uint64_t)i, (uint64_t)value);
        seen[i]++;
        struct timespec pause = {step_ms / 1000, (step_ms % 1000) * 1000000L};
        while (nanosleep(&pause, &pause) != 0) {}
        printf("simulate: step %ld/%ld\n", i + 1, steps);
        fflush(stdout);
    }

    int64_t extra;
    if (fscanf(input, "%" SCNd64, &extra) == 1) return mismatch("input longer than steps");
    if (sum != total) return mismatch("sum");
    for (long i = 0; i < steps; i++) {
        if (seen[i] != 1) {
            printf("simulate: MISMATCH step %ld ran %d times\n", i, seen[i]);
            fflush(stdout);
            return 1;
        }
    }
    /* The chain once more from a fresh read of the file. */
    FILE *again = fopen(argv[1], "r");
    long steps2, step_ms2;
    int64_t total2;
    int exit2;
    if (!again || !read_header(again, &steps2, &step_ms2, &total2, &exit2)) return mismatch("cannot reread input");
    uint64_t expected = 1;
    for (long i = 0; i < steps; i++) {
        int64_t value;
        if (fscanf(again, "%" SCNd64, &value) != 1) return mismatch("reread ended early");
        expected = fold(expected, (uint64_t)i, (uint64_t)value);
    }
    fclose(again);
    if (hash != expected) return mismatch("hash chain");
    printf("simulate: VERIFIED steps=%ld sum=%" PRId64 " hash=%016" PRIx64 "\n", steps, sum, hash);
    fflush(stdout);
    return exit_status;
}
