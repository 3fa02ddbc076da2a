/* compress_pool.c: see stasis_compress_pool.h. */
#include "stasis_compress_pool.h"
#include "stasis_lz.h"

static long futex(volatile int32_t *word, long op, long value) {
    long r;
    register long r10 __asm__("r10") = 0;
    __asm__ volatile("syscall" : "=a"(r) : "a"(202L), "D"(word), "S"(op), "d"(value), "r"(r10) : "rcx", "r11", "memory");
    return r;
}
#define FUTEX_WAIT_PRIVATE 128L
#define FUTEX_WAKE_PRIVATE 129L

void stasis_compress_one(stasis_compress_job_t *job, void *hash, uint8_t *filtered) {
    size_t stored = stasis_lz_compress(job->source, job->raw, job->output, job->raw, hash);
    job->flags = 0;
    if (!stored && filtered && stasis_lz_looks_numeric(job->source, job->raw)) {
        stasis_lz_shuffle(job->source, filtered, job->raw);
        stored = stasis_lz_compress(filtered, job->raw, job->output, job->raw, hash);
        if (stored) job->flags = STASIS_BLOCK_SHUFFLED;
    }
    job->stored = (uint32_t)stored;
    const void *bytes = stored ? job->output : job->source;
    job->crc = stasis_crc32c_end(stasis_crc32c_update(stasis_crc32c_begin(), bytes, stored ? stored : job->raw));
}

static void run_jobs(stasis_compress_pool_t *pool, int slot) {
    for (;;) {
        int32_t i = __atomic_fetch_add(&pool->next, 1, __ATOMIC_ACQ_REL);
        if (i >= pool->count) return;
        stasis_compress_one(&pool->jobs[i], pool->hash[slot], pool->filtered[slot]);
        if (__atomic_add_fetch(&pool->done, 1, __ATOMIC_ACQ_REL) == pool->count) futex(&pool->done, FUTEX_WAKE_PRIVATE, 1);
    }
}

struct worker_start {
    stasis_compress_pool_t *pool;
    int index;
};

static void worker(stasis_compress_pool_t *pool, int index) {
    int32_t seen = 0;
    for (;;) {
        int32_t generation;
        while ((generation = __atomic_load_n(&pool->generation, __ATOMIC_ACQUIRE)) == seen && !__atomic_load_n(&pool->quit, __ATOMIC_ACQUIRE))
            futex(&pool->generation, FUTEX_WAIT_PRIVATE, seen);
        if (__atomic_load_n(&pool->quit, __ATOMIC_ACQUIRE)) return;
        seen = generation;
        run_jobs(pool, 1 + index);
    }
}

/* clone(CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM | CLONE_CHILD_CLEARTID)
 * on `stack_top`; the child calls worker(pool, index) and exits the thread (not the process). */
static long start_thread(stasis_compress_pool_t *pool, int index, void *stack_top) {
    unsigned long flags = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000 | 0x200000;
    uint64_t *sp = (uint64_t *)((uintptr_t)stack_top & ~(uintptr_t)15);
    *--sp = (uint64_t)index;
    *--sp = (uint64_t)(uintptr_t)pool;
    *--sp = (uint64_t)(uintptr_t)&worker;
    long ret;
    register long r10 __asm__("r10") = (long)&pool->exited[index]; /* child_tid: cleared (and woken) at exit */
    register long r8 __asm__("r8") = 0;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "xor %%ebp, %%ebp\n\t"
                     "pop %%rax\n\t"
                     "pop %%rdi\n\t"
                     "pop %%rsi\n\t"
                     "and $-16, %%rsp\n\t"
                     "call *%%rax\n\t"
                     "mov $60, %%eax\n\t" /* exit: this thread only */
                     "xor %%edi, %%edi\n\t"
                     "syscall\n\t"
                     "ud2\n"
                     "1:\n"
                     : "=a"(ret)
                     : "a"(56L), "D"(flags), "S"(sp), "d"(0L), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return ret;
}

int stasis_pool_open(stasis_compress_pool_t *pool, int workers, void *stacks) {
    if (workers > STASIS_POOL_MAX_WORKERS) workers = STASIS_POOL_MAX_WORKERS;
    pool->generation = 0;
    pool->next = 0;
    pool->done = 0;
    pool->count = 0;
    pool->quit = 0;
    pool->workers = 0;
    for (int i = 0; i < workers; i++) {
        pool->exited[i] = 1; /* the kernel clears it when the thread exits */
        long r = start_thread(pool, i, (uint8_t *)stacks + (uint64_t)(i + 1) * STASIS_POOL_STACK_BYTES);
        if (r <= 0) {
            pool->exited[i] = 0;
            break;
        }
        pool->workers++;
    }
    return pool->workers;
}

void stasis_pool_start(stasis_compress_pool_t *pool, int count) {
    pool->count = count;
    __atomic_store_n(&pool->done, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&pool->next, 0, __ATOMIC_RELEASE);
    __atomic_add_fetch(&pool->generation, 1, __ATOMIC_ACQ_REL);
    if (pool->workers) futex(&pool->generation, FUTEX_WAKE_PRIVATE, 0x7fffffffL);
}

void stasis_pool_help(stasis_compress_pool_t *pool) { run_jobs(pool, 0); }

void stasis_pool_wait(stasis_compress_pool_t *pool) {
    int32_t done;
    while ((done = __atomic_load_n(&pool->done, __ATOMIC_ACQUIRE)) < pool->count) futex(&pool->done, FUTEX_WAIT_PRIVATE, done);
}

void stasis_pool_close(stasis_compress_pool_t *pool) {
    __atomic_store_n(&pool->quit, 1, __ATOMIC_RELEASE);
    futex(&pool->generation, FUTEX_WAKE_PRIVATE, 0x7fffffffL);
    for (int i = 0; i < pool->workers; i++) {
        int32_t v;
        /* the kernel's wake at a thread's exit is not a private one */
        while ((v = __atomic_load_n(&pool->exited[i], __ATOMIC_ACQUIRE)) != 0) futex(&pool->exited[i], 0 /* FUTEX_WAIT */, v);
    }
    pool->workers = 0;
}
