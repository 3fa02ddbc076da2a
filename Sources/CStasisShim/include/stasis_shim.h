/* stasis_shim.h: the C half of libStasisAgent.so, as seen from Swift.
 *
 * The constructor maps the agent's scratch memory and installs the trigger
 * handler. On the trigger signal the handler fills a stasis_capture_t with
 * what the signal frame and a few system calls say about the thread, switches
 * to the agent's own stack and calls stasis_agent_checkpoint (Swift). */
#ifndef STASIS_SHIM_H
#define STASIS_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include "stasis_image_abi.h"
#include "stasis_protocol.h" /* STASIS_FREEZE_MAGIC, STASIS_WAKE_MAGIC, STASIS_ENV_* */
#include "stasis_compress_pool.h"

#define STASIS_ARENA_BYTES (256ul << 20)  /* reserved, MAP_NORESERVE: pages cost only when touched */
#define STASIS_STACK_BYTES (512ul << 10)

typedef struct stasis_agent_config {
    char image_dir[STASIS_MAX_PATH]; /* STASIS_DIR, else cwd at load */
    int32_t trigger_signal;          /* STASIS_SIGNAL, else SIGUSR2 */
    uint32_t keep;                   /* STASIS_KEEP: newest images kept per process, 0 = all */
    uint64_t arena_start, arena_bytes; /* scratch memory: mapped in images, contents not stored */
    uint64_t stack_start, stack_bytes; /* the handler's own stack: likewise */
    uint64_t slots_start;              /* capture slots for followers, at the start of the arena */
    uint32_t slot_capacity;
    uint32_t skip_unsupported;       /* STASIS_SKIP_UNSUPPORTED=1: see --skip-unsupported */
    uint64_t key_slot;                 /* stasis_key_slot_t: the last page of the arena (scratch) */
    int32_t exit_signal;               /* STASIS_EXIT_SIGNAL (--checkpoint-on): checkpoint, then exit; 0 = none */
    int32_t exit_code;                 /* STASIS_EXIT_CODE: the exit status after that checkpoint */
    int32_t fork_writer;               /* a copy-on-write child writes memory (default; STASIS_FORK=0: in place) */
    int32_t incremental;               /* STASIS_INCREMENTAL=1 (--incremental): every checkpoint may be incremental */
    uint32_t max_chain;                /* STASIS_MAX_CHAIN: images per chain before a full one (default 8) */
    uint32_t compress;                 /* STASIS_COMPRESS=1 (--compress): page data in compressed blocks */
    uint64_t tracking_slot;            /* stasis_tracking_t: in the arena, before the key slot (scratch) */
} stasis_agent_config_t;

/* Dirty-page tracking for incremental images. In scratch memory, so a restored process (or a
 * forked child, checked by pid) starts without it and its next image is a full one. */
typedef struct stasis_tracking {
    int32_t uffd;                    /* userfaultfd in WP_ASYNC mode; -1 or 0 = none */
    int32_t pid;                     /* the process that armed it */
    uint64_t base_sequence;          /* the image whose state the write protection started from */
    uint64_t base_time_ns;           /* its header.time_ns */
    uint32_t chain_length;           /* images in its chain (1: it is a full image) */
    uint32_t base_path_bytes;
    char base_path[STASIS_MAX_PATH]; /* its final path */
} stasis_tracking_t;
#define STASIS_TRACKING_BYTES 8192ul   /* the slot: two pages before the key slot */
#define STASIS_TRACKING_PATH_OFFSET 32
_Static_assert(offsetof(stasis_tracking_t, base_path) == STASIS_TRACKING_PATH_OFFSET, "stasis_tracking_t layout");

/* One follower thread's capture, filled by the thread itself in its handler. */
typedef struct stasis_thread_slot {
    stasis_thread_record_t record;
    const void *_Nullable xsave;     /* its frame's fpstate: valid while it waits frozen */
} stasis_thread_slot_t;

#define STASIS_MAX_THREADS 4096

/* Atomics and futexes for the freeze protocol: single instructions or one syscall each. */
static inline int32_t stasis_atomic_load(volatile int32_t *_Nonnull p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void stasis_atomic_store(volatile int32_t *_Nonnull p, int32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline int32_t stasis_atomic_add(volatile int32_t *_Nonnull p, int32_t v) {
    return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL);
}
/* Raises *p to v unless it is already at least v; returns the value before. */
static inline int32_t stasis_atomic_raise(volatile int32_t *_Nonnull p, int32_t v) {
    int32_t old = __atomic_load_n(p, __ATOMIC_ACQUIRE);
    while (old < v && !__atomic_compare_exchange_n(p, &old, v, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {}
    return old;
}
/* FUTEX_WAIT_PRIVATE with a relative timeout in nanoseconds (0: none). */
static inline long stasis_futex_wait(volatile int32_t *_Nonnull p, int32_t expected, long timeout_ns) {
    struct { long sec, nsec; } timeout = {timeout_ns / 1000000000L, timeout_ns % 1000000000L};
    long r;
    register long r10 __asm__("r10") = timeout_ns ? (long)&timeout : 0;
    __asm__ volatile("syscall" : "=a"(r) : "a"(202L), "D"(p), "S"(128L /* WAIT|PRIVATE */), "d"((long)expected), "r"(r10)
                     : "rcx", "r11", "memory");
    return r;
}
static inline long stasis_futex_wake_all(volatile int32_t *_Nonnull p) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(202L), "D"(p), "S"(129L /* WAKE|PRIVATE */), "d"(0x7fffffffL)
                     : "rcx", "r11", "memory");
    return r;
}

/* The same on memory shared between processes (a tree checkpoint's control block): not PRIVATE. */
static inline long stasis_shared_futex_wait(volatile int32_t *_Nonnull p, int32_t expected, long timeout_ns) {
    struct { long sec, nsec; } timeout = {timeout_ns / 1000000000L, timeout_ns % 1000000000L};
    long r;
    register long r10 __asm__("r10") = timeout_ns ? (long)&timeout : 0;
    __asm__ volatile("syscall" : "=a"(r) : "a"(202L), "D"(p), "S"(0L /* WAIT */), "d"((long)expected), "r"(r10)
                     : "rcx", "r11", "memory");
    return r;
}
static inline long stasis_shared_futex_wake_all(volatile int32_t *_Nonnull p) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(202L), "D"(p), "S"(1L /* WAKE */), "d"(0x7fffffffL)
                     : "rcx", "r11", "memory");
    return r;
}

/* What the handler captured for the Swift side. */
typedef struct stasis_capture {
    stasis_thread_record_t thread;   /* filled by the shim */
    const void *_Nullable xsave;     /* the frame's fpstate, thread.xsave_bytes long */
    int32_t signal_code;             /* si_code: SI_QUEUE for `stasis checkpoint` */
    int32_t signal_number;           /* the trigger or the --checkpoint-on signal */
    int32_t sender_pid;
    int64_t request_id;              /* si_value for SI_QUEUE, else 0 */
    stasis_agent_config_t *_Nonnull config;
    stasis_agent_state_t *_Nonnull state;
    uint64_t restore_tail;           /* address of stasis_restore_tail */
    uint64_t restore_thread_tail;    /* address of stasis_restore_thread_tail */
} stasis_capture_t;

/* Implemented in Swift (StasisAgent): writes the image. Returns 0 or -errno. */
int32_t stasis_agent_checkpoint(stasis_capture_t *_Nonnull capture);

/* Pending signals with their siginfo (pending_signals.c). Freeze window: raw syscalls only. */
void stasis_pending_begin(stasis_thread_record_t *_Nonnull leader);        /* before the followers are signaled */
void stasis_pending_take_own(stasis_thread_record_t *_Nonnull record);     /* each follower, in its handler */
void stasis_pending_take_process(stasis_thread_record_t *_Nonnull leader); /* once every thread is frozen */
int32_t stasis_pending_count(void);
static inline stasis_thread_record_t *_Nonnull stasis_capture_thread(stasis_capture_t *_Nonnull capture) {
    return &capture->thread;
}
const stasis_pending_signal_record_t *_Nonnull stasis_pending_entry(int32_t index);
void stasis_pending_release(void);     /* the leader, before the thaw: the main thread puts them back */
void stasis_pending_after_thaw(void);  /* every thread, before it returns to the program */

#endif
