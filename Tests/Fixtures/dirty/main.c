/* dirty: a fixture for incremental images. It keeps rewriting random pages of its memory and
 * remembers what each one must hold, so that any mix of full and incremental images restores
 * to a state it can check.
 *
 *   dirty PAGES DIR   (DIR holds its scratch file)
 *
 * Areas: an anonymous buffer of PAGES pages (random pages rewritten, some zapped with
 * MADV_DONTNEED so they must read as zero again, some read-faulted), a private file mapping of
 * its own scratch file (some pages copied-on-write), a small area it unmaps and maps again
 * elsewhere, and one it moves with mremap. Each step changes a few pages, then sleeps a little.
 * Prints "READY" once set up and a step count now and then; on SIGTERM it checks every page and
 * prints PASS (exit 0) or FAIL <what> (exit 1). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define FILE_PAGES 64
#define SMALL_PAGES 16

static volatile sig_atomic_t terminate_requested;
static void on_term(int signo) { (void)signo; terminate_requested = 1; }

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_random(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* version 0: the page must read as zero (never written, or zapped) */
static void fill(unsigned char *page, uint64_t tag, uint32_t version) {
    uint64_t *words = (uint64_t *)page;
    for (int i = 0; i < PAGE / 8; i++) words[i] = version ? (tag * 0x100000001b3ull) ^ ((uint64_t)version << 32) ^ (uint64_t)i : 0;
}

static int check(const unsigned char *page, uint64_t tag, uint32_t version) {
    const uint64_t *words = (const uint64_t *)page;
    for (int i = 0; i < PAGE / 8; i++)
        if (words[i] != (version ? (tag * 0x100000001b3ull) ^ ((uint64_t)version << 32) ^ (uint64_t)i : 0)) return 0;
    return 1;
}

/* Diagnostics for a failure: the step of each buffer page's last write, and the steps at which the
 * loop stalled for 15 ms or more (a checkpoint's pause shows up as one). */
static uint32_t *last_step;
#define MAX_STALLS 64
static long stall_step[MAX_STALLS];
static long stall_us[MAX_STALLS];
static int stall_count;

static uint64_t now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

static int fail(const char *what, long index) {
    printf("FAIL %s %ld\n", what, index);
    fflush(stdout);
    return 1;
}

int main(int argc, char **argv) {
    long pages = argc > 1 ? atol(argv[1]) : 4096;
    if (pages < 64) pages = 64;
    signal(SIGTERM, on_term);
    unsigned char *buffer = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint32_t *versions = calloc(pages, sizeof *versions);
    last_step = calloc(pages, sizeof *last_step);
    /* The private file mapping: the file holds version-1 pages of tag 1000000+i; writes copy on write. */
    char path[4096];
    snprintf(path, sizeof path, "%s/dirty-file-XXXXXX", argc > 2 ? argv[2] : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0 || buffer == MAP_FAILED || !versions || !last_step) return fail("setup", 0);
    unsigned char page[PAGE];
    for (int i = 0; i < FILE_PAGES; i++) {
        fill(page, 1000000 + i, 1);
        if (write(fd, page, PAGE) != PAGE) return fail("setup write", i);
    }
    unsigned char *mapped = mmap(NULL, FILE_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    close(fd);
    if (mapped == MAP_FAILED) return fail("setup map", 0);
    uint32_t file_versions[FILE_PAGES];
    for (int i = 0; i < FILE_PAGES; i++) file_versions[i] = 1;
    unsigned char *small = mmap(NULL, SMALL_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint32_t small_version = 1;
    for (int i = 0; i < SMALL_PAGES; i++) fill(small + i * PAGE, 2000000 + i, small_version);
    unsigned char *moving = mmap(NULL, SMALL_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < SMALL_PAGES; i++) fill(moving + i * PAGE, 3000000 + i, 1);
    /* half the buffer written once up front */
    for (long i = 0; i < pages; i += 2) {
        versions[i] = 1;
        fill(buffer + i * PAGE, (uint64_t)i, 1);
    }
    printf("READY\n");
    fflush(stdout);
    volatile unsigned char sink = 0;
    long step = 0;
    uint64_t previous = now_us();
    while (!terminate_requested) {
        step++;
        uint64_t now = now_us();
        if (now - previous >= 15000 && stall_count < MAX_STALLS) {
            stall_step[stall_count] = step;
            stall_us[stall_count++] = (long)(now - previous);
        }
        previous = now;
        for (int k = 0; k < 8; k++) {
            long i = (long)(next_random() % (uint64_t)pages);
            uint64_t action = next_random() % 16;
            if (action == 0) {
                madvise(buffer + i * PAGE, PAGE, MADV_DONTNEED);
                versions[i] = 0;
            } else if (action == 1) {
                sink ^= buffer[i * PAGE + 100]; /* a read fault: the zero page if never written */
            } else {
                versions[i]++;
                last_step[i] = (uint32_t)step;
                fill(buffer + i * PAGE, (uint64_t)i, versions[i]);
            }
        }
        if (step % 16 == 0) {
            int f = (int)(next_random() % FILE_PAGES);
            file_versions[f]++;
            fill(mapped + f * PAGE, 1000000 + f, file_versions[f]);
        }
        if (step % 64 == 0) { /* unmap and map again (wherever the kernel likes) */
            munmap(small, SMALL_PAGES * PAGE);
            small = mmap(NULL, SMALL_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            small_version++;
            for (int j = 0; j < SMALL_PAGES; j += 2) fill(small + j * PAGE, 2000000 + j, small_version);
        }
        if (step % 96 == 0) { /* move to a fresh address: the old one is free afterwards */
            unsigned char *to = mmap(NULL, SMALL_PAGES * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            unsigned char *moved = mremap(moving, SMALL_PAGES * PAGE, SMALL_PAGES * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to);
            if (moved == MAP_FAILED) return fail("mremap", step);
            moving = moved;
        }
        if (step % 1000 == 0) {
            printf("step %ld\n", step);
            fflush(stdout);
        }
        struct timespec pause = {0, 1000000}; /* 1 ms: at most 8000 pages a second */
        nanosleep(&pause, NULL);
    }
    for (long i = 0; i < pages; i++)
        if (!check(buffer + i * PAGE, (uint64_t)i, versions[i])) {
            /* what the page holds instead: zero, another version of itself, or another page */
            uint64_t w = *(uint64_t *)(buffer + i * PAGE);
            long bad = 0;
            long first_bad = -1, last_bad = -1, min_step = -1, max_step = -1;
            for (long j = 0; j < pages; j++)
                if (!check(buffer + j * PAGE, (uint64_t)j, versions[j])) {
                    bad++;
                    if (first_bad < 0) first_bad = j;
                    last_bad = j;
                    if (min_step < 0 || last_step[j] < min_step) min_step = last_step[j];
                    if (last_step[j] > max_step) max_step = last_step[j];
                }
            printf("FAIL buffer page %ld: expected version %u, holds version %llu (word 0x%llx); %ld pages wrong\n", i,
                   versions[i], (unsigned long long)((w ^ ((uint64_t)i * 0x100000001b3ull)) >> 32), (unsigned long long)w, bad);
            /* per stretch between stalls (checkpoints, restarts): pages last written in it, and how many are wrong */
            printf("wrong pages %ld..%ld, last written in steps %ld..%ld, now step %ld; wrong/written by stretch between stalls:",
                   first_bad, last_bad, min_step, max_step, step);
            for (int k = -1; k < stall_count; k++) {
                long from = k < 0 ? 0 : stall_step[k], to = k + 1 < stall_count ? stall_step[k + 1] : step + 1;
                long written = 0, wrong = 0;
                for (long j = 0; j < pages; j++)
                    if (versions[j] != 0 && last_step[j] >= from && last_step[j] < to) {
                        written++;
                        wrong += !check(buffer + j * PAGE, (uint64_t)j, versions[j]);
                    }
                if (k >= 0) printf(" |%ldms|", stall_us[k] / 1000);
                printf(" [%ld,%ld) %ld/%ld", from, to, wrong, written);
            }
            printf("\n");
            fflush(stdout);
            return 1;
        }
    for (int i = 0; i < FILE_PAGES; i++)
        if (!check(mapped + i * PAGE, 1000000 + i, file_versions[i])) return fail("file page", i);
    for (int i = 0; i < SMALL_PAGES; i++)
        if (!check(small + i * PAGE, 2000000 + i, i % 2 == 0 || small_version == 1 ? small_version : 0)) return fail("small page", i);
    for (int i = 0; i < SMALL_PAGES; i++)
        if (!check(moving + i * PAGE, 3000000 + i, 1)) return fail("moved page", i);
    unlink(path);
    printf("PASS %ld steps\n", step);
    fflush(stdout);
    return 0;
}
