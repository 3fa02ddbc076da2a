/* pending_signals.c: signals pending at a checkpoint, with their siginfo.
 *
 * FREEZE WINDOW: runs in the signal handlers of frozen threads. Raw system calls only, no
 * allocation, no locks, small stack buffers (a follower may run on a small sigaltstack).
 *
 * rt_sigpending gives a mask: a real-time signal queued three times, each with its own value, and
 * the sender of a standard one, are not in it. The only way to read a queued siginfo is to dequeue
 * it, and a thread can dequeue only its own queue and the process's. So:
 *   1. the leader picks the signals to take (all but SIGKILL, SIGSTOP, the trigger, the exit signal
 *      and POSIX timers' signals: dequeuing one of those re-arms its timer) and takes its own;
 *   2. each follower, in its handler, takes what its own queue holds (SigPnd of
 *      /proc/thread-self/status; rt_sigtimedwait takes a thread's own signals before the process's);
 *   3. with every thread frozen the leader takes the process's queue (ShdPnd);
 *   4. the table goes into the image as PENDING_SIGNAL records, in the order taken;
 *   5. at the thaw each thread queues its own back (rt_tgsigqueueinfo to itself) and the main thread
 *      the process's (rt_sigqueueinfo), in the same order: the kernel refuses a siginfo whose si_code
 *      says kill(), tgkill() (SI_USER, SI_TKILL) or the kernel from anyone else. The other threads
 *      wait for the main thread before they return to the program. The restorer does the same.
 * The thread records' pending_signals masks still say what rt_sigpending said; signals left in place
 * (the trigger, timers' signals, past the table's size) are raised once at restart, from them. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>

#include "stasis_shim.h"
#include "stasis_syscall.h"

extern stasis_agent_config_t stasis_config;
extern stasis_agent_state_t stasis_state;

static stasis_pending_signal_record_t pending_table[STASIS_MAX_PENDING_SIGNALS];
static volatile int32_t pending_reserved;  /* entries handed out (may pass the capacity) */
static volatile uint64_t take_mask;        /* set by the leader before it signals the followers */
static volatile int32_t requeue_pending;   /* futex word: the main thread has not put them back yet */

static uint64_t signal_bit(int signo) { return (signo >= 1 && signo <= 64) ? 1ull << (signo - 1) : 0; }

static int digit_value(char c, int base) {
    if (c >= '0' && c <= '9') return c - '0';
    if (base == 16 && c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (base == 16 && c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Streams a /proc file through a 256-byte buffer. For a line that starts with `key`: returns the
 * number after it (many == 0, the first such line), or ORs in the bit of signal number N for every
 * such line (many != 0). 0 when the file or the line is missing. */
static uint64_t scan_proc(const char *path, const char *key, int base, int many) {
    long fd = stasis_syscall3(STASIS_NR_open, (long)path, 0 /* O_RDONLY */ | 02000000 /* O_CLOEXEC */, 0);
    if (fd < 0) return 0;
    char buffer[256];
    uint64_t result = 0, value = 0;
    int matched = 0, parsing = 0, digits = 0, done = 0;
    while (!done) {
        long n = stasis_syscall3(STASIS_NR_read, fd, (long)buffer, sizeof buffer);
        if (n == -4 /* EINTR */) continue;
        if (n <= 0) break;
        for (long i = 0; i < n && !done; i++) {
            char c = buffer[i];
            if (parsing) {
                int d = digit_value(c, base);
                if (d >= 0) {
                    value = value * (uint64_t)base + (uint64_t)d;
                    digits++;
                    continue;
                }
                if (!digits && (c == ' ' || c == '\t')) continue;
                parsing = 0;
                matched = -1;
                if (!many) {
                    result = value;
                    done = 1;
                    break;
                }
                if (digits && value <= 64) result |= signal_bit((int)value);
            }
            if (c == '\n') {
                matched = 0;
                continue;
            }
            if (matched < 0) continue;
            if (c == key[matched]) {
                if (key[++matched] == 0) {
                    parsing = 1;
                    value = 0;
                    digits = 0;
                }
            } else {
                matched = -1;
            }
        }
    }
    if (parsing && digits && !done) result = many ? (result | signal_bit((int)value)) : value;
    stasis_syscall1(STASIS_NR_close, fd);
    return result;
}

static uint64_t own_pending(void) { return scan_proc("/proc/thread-self/status", "SigPnd:", 16, 0); }
static uint64_t process_pending(void) { return scan_proc("/proc/self/status", "ShdPnd:", 16, 0); }

/* Takes one pending instance of a signal in `mask` into the next table entry; 0 when none was taken. */
static int take_one(uint64_t mask, int32_t tid, uint32_t flags) {
    int32_t index = __atomic_fetch_add(&pending_reserved, 1, __ATOMIC_ACQ_REL);
    if (index >= STASIS_MAX_PENDING_SIGNALS) return 0; /* the rest stay pending */
    stasis_pending_signal_record_t *entry = &pending_table[index];
    struct { long sec, nsec; } zero = {0, 0};
    for (int i = 0; i < 128; i++) entry->siginfo[i] = 0;
    long signo = stasis_syscall4(128 /* rt_sigtimedwait */, (long)&mask, (long)entry->siginfo, (long)&zero, 8);
    entry->tid = tid;
    entry->flags = flags;
    entry->reserved = 0;
    __atomic_store_n(&entry->signal, signo > 0 ? (int32_t)signo : 0, __ATOMIC_RELEASE);
    return signo > 0;
}

/* Step 2 (and the leader's step 1): this thread's own queue. record->pending_signals keeps what
 * rt_sigpending said before (the format's meaning since version 1: a restorer that knows
 * PENDING_SIGNAL records raises only the signals that have none). */
/* Takes every instance in `mask` from one queue (own_pending or process_pending says what is there). */
static void drain(uint64_t (*pending)(void), uint64_t mask, int32_t tid, uint32_t flags) {
    while (mask) {
        uint64_t there = pending() & mask;
        if (!there || !take_one(there, tid, flags)) break;
    }
}

void stasis_pending_take_own(stasis_thread_record_t *record) {
    (void)record;
    drain(own_pending, __atomic_load_n(&take_mask, __ATOMIC_ACQUIRE), (int32_t)stasis_syscall0(STASIS_NR_gettid), 0);
}

void stasis_pending_begin(stasis_thread_record_t *leader) {
    uint64_t mask = ~(signal_bit(9) | signal_bit(19) | signal_bit(stasis_config.trigger_signal) |
                      signal_bit(stasis_config.exit_signal));
    mask &= ~scan_proc("/proc/self/timers", "signal: ", 10, 1);
    __atomic_store_n(&pending_reserved, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&requeue_pending, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&take_mask, mask, __ATOMIC_RELEASE);
    stasis_pending_take_own(leader);
}

void stasis_pending_take_process(stasis_thread_record_t *leader) {
    uint64_t mask = __atomic_load_n(&take_mask, __ATOMIC_ACQUIRE);
    int32_t tid = (int32_t)stasis_syscall0(STASIS_NR_gettid);
    /* What reached the leader's own queue since step 1 comes out first, as its own. */
    drain(own_pending, mask, tid, 0);
    drain(process_pending, mask, tid, STASIS_PENDING_PROCESS);
    (void)leader;
}

int32_t stasis_pending_count(void) {
    int32_t n = __atomic_load_n(&pending_reserved, __ATOMIC_ACQUIRE);
    return n < STASIS_MAX_PENDING_SIGNALS ? n : STASIS_MAX_PENDING_SIGNALS;
}

const stasis_pending_signal_record_t *stasis_pending_entry(int32_t index) { return &pending_table[index]; }

/* Step 5: entries back into their queues, in order. The kernel lets only the receiving thread
 * queue a siginfo that says tgkill(), kill() or the kernel (si_code >= 0 or SI_TKILL) to itself, and
 * only the main thread to the process: so each thread puts back its own, and the main thread the
 * process's. An entry put back is cleared (the image has it already). */
static void requeue(int process) {
    long pid = stasis_syscall0(STASIS_NR_getpid), tid = stasis_syscall0(STASIS_NR_gettid);
    int32_t count = stasis_pending_count();
    for (int32_t i = 0; i < count; i++) {
        stasis_pending_signal_record_t *entry = &pending_table[i];
        int32_t signo = __atomic_load_n(&entry->signal, __ATOMIC_ACQUIRE);
        if (signo <= 0 || process != ((entry->flags & STASIS_PENDING_PROCESS) != 0)) continue;
        if (!process && entry->tid != tid) continue;
        long r = process ? stasis_syscall3(129 /* rt_sigqueueinfo */, pid, signo, (long)entry->siginfo)
                         : stasis_syscall4(STASIS_NR_rt_tgsigqueueinfo, pid, tid, signo, (long)entry->siginfo);
        /* The process's, with the main thread gone: the signal at least, without its siginfo. */
        if (r == -1 /* EPERM */) stasis_syscall2(STASIS_NR_kill, pid, signo);
        __atomic_store_n(&entry->signal, 0, __ATOMIC_RELEASE);
    }
}

/* The leader, before it thaws the followers (also after a failed checkpoint): its own back, and the
 * process's when it is the main thread or the main thread is not frozen (it has exited). */
void stasis_pending_release(void) {
    if (stasis_pending_count() == 0) return;
    requeue(0);
    long pid = stasis_syscall0(STASIS_NR_getpid);
    if (stasis_syscall0(STASIS_NR_gettid) != pid) {
        stasis_thread_slot_t *slots = (stasis_thread_slot_t *)stasis_config.slots_start;
        int32_t filled = __atomic_load_n(&stasis_state.slot_count, __ATOMIC_ACQUIRE);
        for (int32_t i = 0; slots && i < filled && (uint32_t)i < stasis_config.slot_capacity; i++) {
            if (slots[i].record.tid == pid) { /* the main thread is frozen: it puts them back */
                __atomic_store_n(&requeue_pending, 1, __ATOMIC_RELEASE);
                return;
            }
        }
    }
    requeue(1);
}

/* Every thread after the thaw, before it returns to the program: its own back; the main thread puts
 * the process's back while the others wait for it. */
void stasis_pending_after_thaw(void) {
    if (stasis_pending_count() == 0) return;
    requeue(0);
    if (!__atomic_load_n(&requeue_pending, __ATOMIC_ACQUIRE)) return;
    if (stasis_syscall0(STASIS_NR_gettid) == stasis_syscall0(STASIS_NR_getpid)) {
        requeue(1);
        __atomic_store_n(&requeue_pending, 0, __ATOMIC_RELEASE);
        stasis_futex_wake_all(&requeue_pending);
        return;
    }
    while (__atomic_load_n(&requeue_pending, __ATOMIC_ACQUIRE)) stasis_futex_wait(&requeue_pending, 1, 0);
}
