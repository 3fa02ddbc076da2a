/* Benchmarks/codec.c: stasis_lz.h on a synthetic heap (issue 16's shape) and on random bytes.
 *   codec HEAP_MIB BLOCK_KIB OUT_FILE_PREFIX
 * Writes OUT_FILE_PREFIX.heap and OUT_FILE_PREFIX.random (for `lz4 -b1` on the same bytes), then
 * prints one line per data set: size, compressed size, ratio, compress and decompress MB/s (one
 * thread, best of 3), and how many blocks were stored raw. Every block is checked to round-trip. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stasis_lz.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) { /* splitmix64 */
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* A quarter each: JSON-like text records, small integers in 64-bit words, a smooth double field,
 * pointer-like words (a heap's addresses: one region, 16-byte aligned, with some locality). */
static void make_heap(uint8_t *p, size_t n) {
    size_t q = n / 4;
    static const char *names[] = {"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"};
    static const char *cities[] = {"Berlin", "Lisbon", "Oslo", "Quito", "Osaka", "Lagos", "Perth", "Austin"};
    size_t i = 0;
    while (i < q) {
        char rec[256];
        uint64_t r = next();
        int len = snprintf(rec, sizeof rec,
                           "{\"id\":%llu,\"name\":\"%s_%u\",\"city\":\"%s\",\"age\":%u,\"active\":%s,"
                           "\"score\":%u.%u,\"tags\":[\"t%u\",\"t%u\"]}\n",
                           (unsigned long long)(1000000 + i / 97), names[r & 7], (unsigned)(r >> 8) % 1000,
                           cities[(r >> 20) & 7], 18 + (unsigned)(r >> 24) % 60, (r >> 32) & 1 ? "true" : "false",
                           (unsigned)(r >> 33) % 100, (unsigned)(r >> 40) % 10, (unsigned)(r >> 44) % 16,
                           (unsigned)(r >> 48) % 16);
        size_t take = (size_t)len < q - i ? (size_t)len : q - i;
        memcpy(p + i, rec, take);
        i += take;
    }
    uint64_t *w = (uint64_t *)(p + q);
    for (size_t k = 0; k < q / 8; k++) w[k] = next() % ((k & 3) == 0 ? 100000 : 256);
    double *d = (double *)(p + 2 * q);
    for (size_t k = 0; k < q / 8; k++) d[k] = 20.0 + 5.0 * sin(k * 1e-4) + 0.5 * cos(k * 3e-3);
    w = (uint64_t *)(p + 3 * q);
    uint64_t cursor = 0x00007f3c2a000000ull;
    for (size_t k = 0; k < q / 8; k++) {
        uint64_t r = next();
        if ((r & 7) == 0) w[k] = 0;                                    /* NULL */
        else if ((r & 7) < 5) w[k] = cursor + ((r >> 8) % 4096) * 16;  /* near: same object cluster */
        else w[k] = 0x00007f3c2a000000ull + ((r >> 8) % (64u << 20)) / 16 * 16;
        if ((k & 255) == 0) cursor = 0x00007f3c2a000000ull + (next() % (64u << 20)) / 16 * 16;
    }
}

static void run(const char *label, const uint8_t *data, size_t n, size_t block) {
    size_t blocks = (n + block - 1) / block;
    uint8_t *comp = malloc(n + blocks * 16), *back = malloc(n);
    size_t *clen = calloc(blocks, sizeof *clen);
    uint32_t scratch[STASIS_LZ_SCRATCH_BYTES / 4];
    double best_c = 1e9, best_d = 1e9;
    size_t total = 0, raw = 0;
    for (int round = 0; round < 3; round++) {
        double t0 = now();
        total = 0;
        raw = 0;
        for (size_t b = 0; b < blocks; b++) {
            size_t len = b + 1 < blocks ? block : n - b * block;
            clen[b] = stasis_lz_compress(data + b * block, len, comp + b * block, len, scratch);
            if (!clen[b]) raw++;
            total += clen[b] ? clen[b] : len;
        }
        double t1 = now();
        for (size_t b = 0; b < blocks; b++) {
            size_t len = b + 1 < blocks ? block : n - b * block;
            if (!clen[b]) memcpy(back + b * block, data + b * block, len); /* stored raw: a copy */
            else if (stasis_lz_decompress(comp + b * block, clen[b], back + b * block, len) != 0) {
                fprintf(stderr, "%s: block %zu does not decompress\n", label, b);
                exit(1);
            }
        }
        double t2 = now();
        if (memcmp(back, data, n) != 0) {
            fprintf(stderr, "%s: round trip differs\n", label);
            exit(1);
        }
        if (t1 - t0 < best_c) best_c = t1 - t0;
        if (t2 - t1 < best_d) best_d = t2 - t1;
    }
    printf("%-12s %-12s %10zu %10zu %7.3f %6.1f%% %9.0f %9.0f %6zu/%zu\n", "stasis_lz", label, n, total,
           (double)n / total, 100.0 * total / n, n / best_c / 1e6, n / best_d / 1e6, raw, blocks);
    free(comp);
    free(back);
    free(clen);
}

int main(int argc, char **argv) {
    size_t n = (size_t)atoi(argc > 1 ? argv[1] : "256") << 20, block = (size_t)atoi(argc > 2 ? argv[2] : "256") << 10;
    const char *prefix = argc > 3 ? argv[3] : NULL;
    uint8_t *heap = malloc(n), *random = malloc(n);
    make_heap(heap, n);
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = next();
        memcpy(random + i, &r, 8);
    }
    if (prefix) {
        char path[4096];
        snprintf(path, sizeof path, "%s.heap", prefix);
        FILE *f = fopen(path, "wb");
        fwrite(heap, 1, n, f);
        fclose(f);
        snprintf(path, sizeof path, "%s.random", prefix);
        f = fopen(path, "wb");
        fwrite(random, 1, n, f);
        fclose(f);
    }
    printf("%-12s %-12s %10s %10s %7s %7s %9s %9s %s\n", "codec", "data", "bytes", "stored", "ratio", "size",
           "comp_MB/s", "dec_MB/s", "raw_blocks");
    run("heap", heap, n, block);
    size_t q = n / 4;
    const char *parts[] = {"heap:json", "heap:ints", "heap:doubles", "heap:pointers"};
    for (int i = 0; i < 4; i++) run(parts[i], heap + i * q, q, block);
    run("random", random, n, block);
    return 0;
}
