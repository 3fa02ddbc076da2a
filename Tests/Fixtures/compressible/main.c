/* compressible: a fixture for --compress (compressed page blocks). It holds memory of the kinds
 * programs have, hashes it once filled, and checks it again on SIGTERM.
 *
 *   compressible MODE [HEAP_MIB]     MODE: text (compressible) or random (incompressible)
 *
 * Areas (all filled by MODE: text gives each its own compressible kind, random fills them all with
 * xorshift output, which no block compresses):
 *   heap      HEAP_MIB (default 64) MiB from malloc, in quarters: JSON-like text records, small
 *             integers in 64-bit words, a smooth double field, pointer-like words
 *   hidden    100 pages made PROT_NONE after filling: unreadable when the checkpoint is taken;
 *             restart must give it back PROT_NONE (checked in /proc/self/maps) with its pages
 *   readonly  77 pages made PROT_READ after filling
 *   holes     1000 pages of which only some runs were ever touched (100, 37, 129, 1, 67, 200 pages:
 *             none a multiple of 64), so blocks split at run boundaries; the rest must read as zero
 * Prints "READY <heap bytes>" once set up. On SIGTERM it checks /proc/self/maps, hashes every area
 * again and prints "PASS compressible MODE" (exit 0) or "FAIL <what>" (exit 1). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define HIDDEN_PAGES 100
#define READONLY_PAGES 77
#define HOLES_PAGES 1000

static volatile sig_atomic_t terminate_requested;
static void on_term(int signo) { (void)signo; terminate_requested = 1; }

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next_random(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t hash(const unsigned char *p, size_t n) { /* FNV-1a 64, word at a time */
    uint64_t h = 0xcbf29ce484222325ull;
    const uint64_t *w = (const uint64_t *)p;
    for (size_t i = 0; i < n / 8; i++) h = (h ^ w[i]) * 0x100000001b3ull;
    return h;
}

static void fill_random(unsigned char *p, size_t n) {
    uint64_t *w = (uint64_t *)p;
    for (size_t i = 0; i < n / 8; i++) w[i] = next_random();
}

/* JSON-like records: {"id": 123, "name": "user-123", "active": true, "score": 45.5, "tags": [...]} */
static void fill_text(unsigned char *p, size_t n) {
    static const char *const tags[] = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta"};
    size_t at = 0;
    unsigned long id = 0;
    while (at < n) {
        char record[256];
        int len = snprintf(record, sizeof record,
                           "{\"id\": %lu, \"name\": \"user-%lu\", \"active\": %s, \"score\": %lu.%lu, \"tags\": [\"%s\", \"%s\"]}\n",
                           id, id * 7 % 100000, id % 3 ? "true" : "false", next_random() % 1000, next_random() % 10,
                           tags[id % 6], tags[(id / 6) % 6]);
        size_t take = (size_t)len < n - at ? (size_t)len : n - at;
        memcpy(p + at, record, take);
        at += take;
        id++;
    }
}

static void fill_small_integers(unsigned char *p, size_t n) {
    uint64_t *w = (uint64_t *)p;
    for (size_t i = 0; i < n / 8; i++) w[i] = next_random() % 1000;
}

/* A slowly turning sine wave (a rotation per step: no libm), as a simulation's field would be. */
static void fill_doubles(unsigned char *p, size_t n) {
    double *d = (double *)p;
    double c = 1.0, s = 0.0, cos_step = 0.99999999995, sin_step = 1e-5;
    for (size_t i = 0; i < n / 8; i++) {
        d[i] = 1000.0 * s + 0.5 * c;
        double next_c = c * cos_step - s * sin_step;
        s = s * cos_step + c * sin_step;
        c = next_c;
    }
}

static void fill_pointers(unsigned char *p, size_t n) {
    uint64_t *w = (uint64_t *)p;
    uint64_t base = 0x00007f3c2a000000ull;
    for (size_t i = 0; i < n / 8; i++) w[i] = base + (next_random() % (1u << 20)) * 16;
}

static int is_random;
static void fill(unsigned char *p, size_t n, void (*kind)(unsigned char *, size_t)) {
    if (is_random) fill_random(p, n);
    else kind(p, n);
}

static int fail(const char *what) {
    printf("FAIL %s\n", what);
    fflush(stdout);
    return 1;
}

/* The permissions /proc/self/maps shows for the mapping that starts at `start` ("" when none does). */
static void permissions_of(void *start, char out[5]) {
    out[0] = 0;
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps) return;
    char line[512];
    while (fgets(line, sizeof line, maps)) {
        unsigned long from, to;
        char perms[5];
        if (sscanf(line, "%lx-%lx %4s", &from, &to, perms) == 3 && from == (unsigned long)start) {
            memcpy(out, perms, 5);
            break;
        }
    }
    fclose(maps);
}

static const struct { long first, pages; } runs[] = {{0, 100}, {107, 37}, {150, 129}, {300, 1}, {333, 67}, {700, 200}};

int main(int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "text") && strcmp(argv[1], "random"))) return fail("usage: compressible text|random [HEAP_MIB]");
    is_random = !strcmp(argv[1], "random");
    size_t heap_bytes = (size_t)(argc > 2 ? atol(argv[2]) : 64) << 20;
    signal(SIGTERM, on_term);

    unsigned char *heap = malloc(heap_bytes);
    unsigned char *hidden = mmap(NULL, HIDDEN_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *readonly = mmap(NULL, READONLY_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *holes = mmap(NULL, HOLES_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!heap || hidden == MAP_FAILED || readonly == MAP_FAILED || holes == MAP_FAILED) return fail("setup");
    size_t quarter = heap_bytes / 4;
    fill(heap, quarter, fill_text);
    fill(heap + quarter, quarter, fill_small_integers);
    fill(heap + 2 * quarter, quarter, fill_doubles);
    fill(heap + 3 * quarter, heap_bytes - 3 * quarter, fill_pointers);
    fill(hidden, HIDDEN_PAGES * PAGE, fill_text);
    fill(readonly, READONLY_PAGES * PAGE, fill_small_integers);
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++)
        fill(holes + runs[i].first * PAGE, runs[i].pages * PAGE, i % 2 ? fill_pointers : fill_text);
    uint64_t heap_hash = hash(heap, heap_bytes);
    uint64_t hidden_hash = hash(hidden, HIDDEN_PAGES * PAGE);
    uint64_t readonly_hash = hash(readonly, READONLY_PAGES * PAGE);
    uint64_t holes_hash = hash(holes, HOLES_PAGES * PAGE);
    if (mprotect(hidden, HIDDEN_PAGES * PAGE, PROT_NONE) || mprotect(readonly, READONLY_PAGES * PAGE, PROT_READ)) return fail("mprotect");

    printf("READY %zu\n", heap_bytes);
    fflush(stdout);
    while (!terminate_requested) {
        struct timespec pause = {0, 10000000};
        nanosleep(&pause, NULL);
    }

    char perms[5];
    permissions_of(hidden, perms);
    if (strcmp(perms, "---p")) return fail("hidden area not PROT_NONE after restart");
    permissions_of(readonly, perms);
    if (strcmp(perms, "r--p")) return fail("readonly area not read-only after restart");
    if (hash(heap, heap_bytes) != heap_hash) return fail("heap");
    if (hash(readonly, READONLY_PAGES * PAGE) != readonly_hash) return fail("readonly");
    if (hash(holes, HOLES_PAGES * PAGE) != holes_hash) return fail("holes");
    for (long page = 0; page < HOLES_PAGES; page++) { /* a page outside every run reads as zero */
        int touched = 0;
        for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++)
            touched |= page >= runs[i].first && page < runs[i].first + runs[i].pages;
        if (touched) continue;
        for (int k = 0; k < PAGE; k++)
            if (holes[page * PAGE + k]) return fail("holes: an untouched page is not zero");
    }
    if (mprotect(hidden, HIDDEN_PAGES * PAGE, PROT_READ)) return fail("mprotect hidden");
    if (hash(hidden, HIDDEN_PAGES * PAGE) != hidden_hash) return fail("hidden");
    printf("PASS compressible %s\n", argv[1]);
    fflush(stdout);
    return 0;
}
