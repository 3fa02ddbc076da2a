/* counter: a self-verifying fixture for end-to-end checkpoint/restart tests.
 *
 *   counter FILL_MIB INPUT_FILE
 *
 * Holds known state: FILL_MIB MiB filled with a pattern, values in vector
 * registers (AVX-512 zmm when the CPU has it, else AVX2 ymm) re-checked every
 * iteration, a non-default MXCSR, a read offset in INPUT_FILE, a blocked pending SIGUSR1, a SIGTERM
 * handler, a MADV_DONTFORK area (as Node's V8 heap has: a copy-on-write writer cannot see it),
 * a counter printed to stdout. On SIGTERM it verifies everything and
 * prints PASS (exit 0) or FAIL <what> (exit 1). Prints "READY" once set up. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <immintrin.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile sig_atomic_t terminate_requested;
static void on_term(int signo) { (void)signo; terminate_requested = 1; }

static int fail(const char *what) {
    printf("FAIL %s\n", what);
    fflush(stdout);
    return 1;
}

__attribute__((target("avx512f"))) static int vector_loop_avx512(volatile long *count) {
    __m512i a = _mm512_set1_epi64(0x1122334455667788);
    __m512i b = _mm512_set1_epi64(0x0102030405060708);
    register __m512i z30 __asm__("zmm30") = _mm512_set1_epi32(0x5a5a5a5a);
    __asm__ volatile("" : "+v"(z30));
    while (!terminate_requested) {
        __asm__ volatile("" : "+v"(a), "+v"(b), "+v"(z30));
        if (_mm512_cmpneq_epi64_mask(a, _mm512_set1_epi64(0x1122334455667788)) ||
            _mm512_cmpneq_epi64_mask(b, _mm512_set1_epi64(0x0102030405060708)) ||
            _mm512_cmpneq_epi32_mask(z30, _mm512_set1_epi32(0x5a5a5a5a)))
            return 0;
        (*count)++;
    }
    return 1;
}

__attribute__((target("avx2"))) static int vector_loop_avx2(volatile long *count) {
    __m256i a = _mm256_set1_epi64x(0x1122334455667788);
    __m256i b = _mm256_set1_epi64x(0x0102030405060708);
    while (!terminate_requested) {
        __asm__ volatile("" : "+x"(a), "+x"(b));
        __m256i ea = _mm256_cmpeq_epi64(a, _mm256_set1_epi64x(0x1122334455667788));
        __m256i eb = _mm256_cmpeq_epi64(b, _mm256_set1_epi64x(0x0102030405060708));
        if (_mm256_movemask_epi8(_mm256_and_si256(ea, eb)) != -1) return 0;
        (*count)++;
    }
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) return fail("usage: counter FILL_MIB INPUT_FILE");
    size_t bytes = (size_t)atol(argv[1]) << 20;
    uint64_t *fill = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (fill == MAP_FAILED) return fail("mmap");
    for (size_t i = 0; i < bytes / 8; i++) fill[i] = i * 0x9e3779b97f4a7c15ull;
    /* a read-only page and a PROT_NONE page with content */
    char *guarded = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(guarded, 'r', 4096);
    memset(guarded + 4096, 'n', 4096);
    mprotect(guarded, 4096, PROT_READ);
    mprotect(guarded + 4096, 4096, PROT_NONE);

    /* an area a forked child does not get */
    char *unforked = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (unforked == MAP_FAILED) return fail("mmap dontfork");
    for (int i = 0; i < 65536; i++) unforked[i] = (char)(i * 7 + 3);
    if (madvise(unforked, 65536, MADV_DONTFORK) != 0) return fail("madvise dontfork");

    int input = open(argv[2], O_RDONLY);
    if (input < 0) return fail("open input");
    char first[5] = {0};
    if (read(input, first, 4) != 4) return fail("read input");

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_term;
    sigaction(SIGTERM, &action, NULL);
    /* a blocked, pending signal */
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    raise(SIGUSR1);
    unsigned mxcsr = 0x1f80 | 0x6000; /* round toward zero */
    __asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));

    printf("READY pid %d\n", getpid());
    fflush(stdout);
    volatile long count = 0;
    int vectors_ok = __builtin_cpu_supports("avx512f") ? vector_loop_avx512(&count) : vector_loop_avx2(&count);

    if (!vectors_ok) return fail("vector registers changed");
    unsigned now;
    __asm__ volatile("stmxcsr %0" : "=m"(now));
    if (now != mxcsr) return fail("mxcsr");
    for (size_t i = 0; i < bytes / 8; i++)
        if (fill[i] != i * 0x9e3779b97f4a7c15ull) return fail("memory pattern");
    if (guarded[0] != 'r') return fail("read-only page");
    for (int i = 0; i < 65536; i++)
        if (unforked[i] != (char)(i * 7 + 3)) return fail("MADV_DONTFORK area");
    mprotect(guarded + 4096, 4096, PROT_READ);
    if (guarded[4096] != 'n') return fail("PROT_NONE page");
    char next[5] = {0};
    if (read(input, next, 4) != 4 || memcmp(next, "5678", 4) != 0) return fail("file offset");
    struct sigaction now_action;
    sigaction(SIGTERM, NULL, &now_action);
    if (now_action.sa_handler != on_term) return fail("signal handler");
    if (count <= 0) return fail("counter");
    sigset_t pending;
    sigpending(&pending);
    if (!sigismember(&pending, SIGUSR1)) return fail("pending signal");
    printf("PASS count %ld pid %d\n", (long)count, getpid());
    fflush(stdout);
    return 0;
}
