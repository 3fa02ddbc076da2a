/* stasis_compress_pool.h: threads that compress page blocks for the copy-on-write writer
 * (StasisAgent/Dump/PageBlocks.swift). The writer is a process of its own, outside the program: its
 * threads are nobody's business but its own, and they die with it (exit_group).
 *
 * A batch is up to STASIS_POOL_JOBS blocks. The writer fills the jobs, publishes the batch
 * (stasis_pool_start), helps until no job is left (stasis_pool_help) and waits for the ones still
 * running (stasis_pool_wait). Meanwhile it may write the previous batch: jobs only read the program's
 * pages and write their own output. Workers use no TLS, no libc and no locks: raw syscalls, the
 * inline codec and CRC, and futexes on the pool's words. */
#ifndef STASIS_COMPRESS_POOL_H
#define STASIS_COMPRESS_POOL_H

#include <stdint.h>
#include "stasis_image_abi.h"

#define STASIS_POOL_JOBS 16
#define STASIS_POOL_MAX_WORKERS 7
#define STASIS_POOL_STACK_BYTES (64u << 10)

typedef struct stasis_compress_job {
    const void *_Nullable source; /* the block's pages */
    void *_Nullable output;       /* room for `raw` bytes */
    uint32_t raw;                 /* bytes of pages */
    uint32_t stored;              /* result: compressed bytes, or 0: store raw */
    uint32_t crc;                 /* result: CRC32C of the stored bytes (the pages when raw) */
    uint32_t flags;               /* result: STASIS_BLOCK_SHUFFLED when the numeric filter made it shrink */
} stasis_compress_job_t;

typedef struct stasis_compress_pool {
    volatile int32_t generation;  /* bumped per batch: workers wait on it */
    volatile int32_t next;        /* the next job to take */
    volatile int32_t done;        /* jobs finished in this batch */
    int32_t count;                /* jobs in this batch */
    volatile int32_t quit;
    int32_t workers;              /* threads started */
    volatile int32_t exited[STASIS_POOL_MAX_WORKERS]; /* cleared by the kernel when a worker exits (CLONE_CHILD_CLEARTID) */
    int32_t reserved;
    stasis_compress_job_t jobs[STASIS_POOL_JOBS];
    uint8_t hash[STASIS_POOL_MAX_WORKERS + 1][16384]; /* the codec's scratch: [0] the writer's, [1 + i] worker i's */
    uint8_t *_Nullable filtered[STASIS_POOL_MAX_WORKERS + 1]; /* a block's room each for the numeric filter */
} stasis_compress_pool_t;

/* Starts up to `workers` threads (stacks: STASIS_POOL_STACK_BYTES each from `stacks`). Returns how
 * many started. */
int stasis_pool_open(stasis_compress_pool_t *_Nonnull pool, int workers, void *_Nonnull stacks)
    __attribute__((swift_attr("@_noLocks")));
/* Publishes jobs[0 ..< count]. */
void stasis_pool_start(stasis_compress_pool_t *_Nonnull pool, int count) __attribute__((swift_attr("@_noLocks")));
/* Runs jobs of the current batch on the calling thread until none is left to take. */
void stasis_pool_help(stasis_compress_pool_t *_Nonnull pool) __attribute__((swift_attr("@_noLocks")));
/* Waits until every job of the current batch is finished. */
void stasis_pool_wait(stasis_compress_pool_t *_Nonnull pool) __attribute__((swift_attr("@_noLocks")));
/* Stops the workers and waits until they have exited (their stacks may then be reused). */
void stasis_pool_close(stasis_compress_pool_t *_Nonnull pool) __attribute__((swift_attr("@_noLocks")));
/* One job on this thread with `hash` and `filtered` (a block's room) as scratch. A block the codec
 * cannot shrink that looks numeric is tried again through the numeric filter (stasis_lz.h). */
void stasis_compress_one(stasis_compress_job_t *_Nonnull job, void *_Nonnull hash, uint8_t *_Nullable filtered)
    __attribute__((swift_attr("@_noLocks")));

#endif
