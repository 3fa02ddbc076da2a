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
    /* The private file mapping: the file holds version-1 pages of tag 1000000+i; writes copy on write. */
    char path[4096];
    snprintf(path, sizeof path, "%s/dirty-file-XXXXXX", argc > 2 ? argv[2] : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0 || buffer == MAP_FAILED || !versions) return fail("setup", 0);
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
    while (!terminate_requested) {
        step++;
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
            for (long j = 0; j < pages; j++) bad += !check(buffer + j * PAGE, (uint64_t)j, versions[j]);
            printf("FAIL buffer page %ld: expected version %u, holds version %llu (word 0x%llx); %ld pages wrong\n", i,
                   versions[i], (unsigned long long)((w ^ ((uint64_t)i * 0x100000001b3ull)) >> 32), (unsigned long long)w, bad);
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
