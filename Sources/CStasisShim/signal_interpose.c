/* signal_interpose.c: the trigger signal belongs to the program too.
 *
 * The agent keeps its handler installed in the kernel for the trigger signal
 * while the program believes its own disposition is in force: sigaction()
 * and signal() for the trigger only record the program's action; the mask
 * calls never block the trigger. When a trigger arrives, stasis_signal_entry
 * asks stasis_trigger_is_checkpoint(): with a program handler installed, only
 * a sigqueue'd request (`stasis checkpoint`) is a checkpoint and everything
 * else is delivered to the program's handler; with SIG_DFL or SIG_IGN every
 * trigger is a checkpoint (kill -USR2 is how users ask for one).
 *
 * The program's mask is virtual for those signals (the kernel never blocks them,
 * so a checkpoint always gets in), and so is their pending state: a program
 * trigger that arrives while the program has it blocked is kept here, per thread
 * (thread-directed) or per process (process-directed, when no thread that leaves
 * it unblocked can take it), shown by sigpending(), taken by the sigwait family,
 * and raised again when the program unblocks it. It lives in the program's own
 * memory, so a checkpoint keeps it pending, and a restart too.
 *
 * Everything here is async-signal-safe (raw system calls): programs call the
 * mask functions from their own handlers. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stasis_shim.h"
#include "stasis_syscall.h"

extern stasis_agent_config_t stasis_config;

/* The program's view of the dispositions of the signals the agent owns: the trigger, and the
 * --checkpoint-on signal. Zero: SIG_DFL. */
static struct sigaction program_actions[65];

extern int __sigaction(int, const struct sigaction *, struct sigaction *);

static int is_agents(int signo) {
    return stasis_config.arena_start && signo > 0 && signo < 65 &&
           (signo == stasis_config.trigger_signal || signo == stasis_config.exit_signal);
}

int sigaction(int signo, const struct sigaction *act, struct sigaction *old) {
    if (!is_agents(signo)) return __sigaction(signo, act, old);
    struct sigaction previous = program_actions[signo];
    if (act) program_actions[signo] = *act;
    if (old) *old = previous;
    return 0;
}

sighandler_t signal(int signo, sighandler_t handler) {
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART; /* glibc's BSD semantics */
    sigaddset(&act.sa_mask, signo);
    if (sigaction(signo, &act, &old) != 0) return SIG_ERR;
    return old.sa_handler;
}

void stasis_deliver_to_program(int signo, siginfo_t *info, void *ucontext);

/* Static TLS (the agent is loaded at startup): safe to touch from a signal handler. */
#define STASIS_THREAD_LOCAL __thread __attribute__((tls_model("initial-exec")))

/* This thread's program mask for the agent's signals (bit signo - 1). */
static STASIS_THREAD_LOCAL uint64_t program_blocked;
/* A thread-directed program trigger that arrived while blocked here (si_signo 0: none). */
static STASIS_THREAD_LOCAL siginfo_t thread_deferred;
/* A process-directed one that no thread could take: state 0 empty, 1 busy, 2 full. */
static siginfo_t process_deferred;
static int process_deferred_state;
/* This thread waits for the trigger in the sigwait family (the kernel counts a waiting thread
 * as one that takes the signal). */
static STASIS_THREAD_LOCAL int waiting_for_trigger;

static uint64_t bit_of(int signo) { return 1ull << (signo - 1); }

static long raise_here(const siginfo_t *info) {
    siginfo_t copy = *info;
    return stasis_syscall4(STASIS_NR_rt_tgsigqueueinfo, stasis_syscall0(STASIS_NR_getpid),
                           stasis_syscall0(STASIS_NR_gettid), copy.si_signo, (long)&copy);
}

static int take_process_deferred(siginfo_t *info) {
    int full = 2;
    if (!__atomic_compare_exchange_n(&process_deferred_state, &full, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return 0;
    *info = process_deferred;
    __atomic_store_n(&process_deferred_state, 0, __ATOMIC_RELEASE);
    return 1;
}

/* Takes a kept trigger: this thread's first, then the process's. 1 if one was taken into *info. */
static int take_deferred(siginfo_t *info) {
    if (thread_deferred.si_signo) {
        *info = thread_deferred;
        thread_deferred.si_signo = 0;
        return 1;
    }
    return take_process_deferred(info);
}

static int has_deferred(void) {
    return thread_deferred.si_signo != 0 || __atomic_load_n(&process_deferred_state, __ATOMIC_ACQUIRE) == 2;
}

/* The program unblocked the trigger: what was kept for it is raised now, in this thread, and
 * delivered before the mask call returns (as the kernel does for a pending signal). */
static void release_deferred(void) {
    siginfo_t info;
    while (take_deferred(&info)) raise_here(&info);
}

/* A process-directed trigger was kept for the process: every other thread is asked (a
 * sigqueue'd trigger carrying STASIS_WAKE_MAGIC; /proc/self/task, raw getdents64) and the first
 * that leaves it unblocked, or waits for it, takes it (stasis_take_forwarded). The kernel lets no
 * thread forward a kill()'s siginfo to another, so the siginfo stays here and only the question
 * travels. Thread ids are not remembered: they change when a restart cannot have the old ones. */
static void ask_other_threads(void) {
    long dir = stasis_syscall3(STASIS_NR_open, (long)"/proc/self/task", 0200000 /* O_DIRECTORY */ | 02000000, 0);
    if (dir < 0) return;
    int32_t self = (int32_t)stasis_syscall0(STASIS_NR_gettid);
    long pid = stasis_syscall0(STASIS_NR_getpid);
    char buffer[2048] __attribute__((aligned(8)));
    long n;
    while ((n = stasis_syscall3(STASIS_NR_getdents64, dir, (long)buffer, sizeof buffer)) > 0) {
        for (long at = 0; at < n;) {
            unsigned short length;
            memcpy(&length, buffer + at + 16, 2);
            int32_t tid = 0;
            for (const char *c = buffer + at + 19; *c >= '0' && *c <= '9'; c++) tid = tid * 10 + (*c - '0');
            at += length;
            if (tid <= 0 || tid == self) continue;
            siginfo_t wake;
            memset(&wake, 0, sizeof wake);
            wake.si_signo = stasis_config.trigger_signal;
            wake.si_code = SI_QUEUE;
            wake.si_pid = (pid_t)pid;
            wake.si_uid = (uid_t)stasis_syscall0(STASIS_NR_getuid);
            wake.si_value.sival_ptr = (void *)STASIS_WAKE_MAGIC;
            stasis_syscall4(STASIS_NR_rt_tgsigqueueinfo, pid, tid, wake.si_signo, (long)&wake);
        }
    }
    stasis_syscall1(STASIS_NR_close, dir);
}

/* The signal entry got a STASIS_WAKE_MAGIC question: take the process's kept trigger if this
 * thread may (for its sigwait, or for its handler). */
void stasis_take_forwarded(int signo, void *ucontext) {
    siginfo_t info;
    if (waiting_for_trigger) {
        if (!thread_deferred.si_signo && take_process_deferred(&info)) thread_deferred = info;
        return;
    }
    if (program_blocked & bit_of(signo)) return;
    if (take_process_deferred(&info)) stasis_deliver_to_program(signo, &info, ucontext);
}

/* A program trigger arrived while this thread has it blocked: keep it (standard signals do not
 * queue: one kept instance at a time, as the kernel keeps one pending). */
static void defer(const siginfo_t *info) {
    if (info->si_code == SI_TKILL || waiting_for_trigger) {
        if (!thread_deferred.si_signo) thread_deferred = *info;
        return;
    }
    int empty = 0;
    if (__atomic_compare_exchange_n(&process_deferred_state, &empty, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        process_deferred = *info;
        __atomic_store_n(&process_deferred_state, 2, __ATOMIC_RELEASE);
        ask_other_threads();
    }
}

/* Sets this thread's program view of the agent's signals; releases what was kept when the
 * trigger becomes unblocked. */
static void set_program_blocked(uint64_t blocked) {
    uint64_t trigger = bit_of(stasis_config.trigger_signal);
    uint64_t before = program_blocked;
    program_blocked = blocked;
    if ((before & trigger) && !(blocked & trigger)) release_deferred();
}

static uint64_t agents_bits(const sigset_t *set) {
    uint64_t bits = 0;
    if (sigismember(set, stasis_config.trigger_signal) == 1) bits |= bit_of(stasis_config.trigger_signal);
    if (stasis_config.exit_signal && sigismember(set, stasis_config.exit_signal) == 1) bits |= bit_of(stasis_config.exit_signal);
    return bits;
}

static void add_agents_bits(sigset_t *set, uint64_t bits) {
    if (bits & bit_of(stasis_config.trigger_signal)) sigaddset(set, stasis_config.trigger_signal);
    if (stasis_config.exit_signal && (bits & bit_of(stasis_config.exit_signal))) sigaddset(set, stasis_config.exit_signal);
}

static sigset_t without_agents(const sigset_t *set) {
    sigset_t copy = *set;
    sigdelset(&copy, stasis_config.trigger_signal);
    if (stasis_config.exit_signal) sigdelset(&copy, stasis_config.exit_signal);
    return copy;
}

static int set_mask(int how, const sigset_t *set, sigset_t *old) {
    if (!stasis_config.arena_start) return (int)stasis_syscall4(STASIS_NR_rt_sigprocmask, how, (long)set, (long)old, 8);
    uint64_t before = program_blocked, after = before;
    sigset_t copy;
    if (set) {
        uint64_t bits = agents_bits(set);
        if (how == SIG_BLOCK) after |= bits;
        else if (how == SIG_UNBLOCK) after &= ~bits;
        else if (how == SIG_SETMASK) after = bits;
        copy = without_agents(set);
        set = &copy;
    }
    int r = (int)stasis_syscall4(STASIS_NR_rt_sigprocmask, how, (long)set, (long)old, 8);
    if (r < 0) return r;
    if (old) add_agents_bits(old, before);
    if (after != before) set_program_blocked(after);
    return 0;
}

int pthread_sigmask(int how, const sigset_t *set, sigset_t *old) {
    int r = set_mask(how, set, old);
    return r < 0 ? -r : 0;
}

int sigprocmask(int how, const sigset_t *set, sigset_t *old) {
    int r = set_mask(how, set, old);
    if (r < 0) {
        errno = -r;
        return -1;
    }
    return 0;
}

int sigpending(sigset_t *set) {
    sigemptyset(set);
    long r = stasis_syscall2(127 /* rt_sigpending */, (long)set, 8);
    if (r < 0) {
        errno = (int)-r;
        return -1;
    }
    if (stasis_config.arena_start && has_deferred()) sigaddset(set, stasis_config.trigger_signal);
    return 0;
}

/* The sigwait family takes a kept trigger first; one that arrives while it waits interrupts
 * the wait (the agent's handler ran and kept it) and is taken then. */
int sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *timeout) {
    int wants = stasis_config.arena_start && sigismember(set, stasis_config.trigger_signal) == 1;
    if (wants) waiting_for_trigger = 1;
    long r;
    while (1) {
        siginfo_t kept;
        if (wants && take_deferred(&kept)) {
            if (info) *info = kept;
            r = kept.si_signo;
            break;
        }
        /* Never the agent's signals in the kernel's set: the wait would take the agent's own freeze
         * and request signals. The trigger comes through the handler, which keeps it for this
         * thread and interrupts the wait. */
        siginfo_t local;
        sigset_t kernel = stasis_config.arena_start ? without_agents(set) : *set;
        r = stasis_syscall4(128 /* rt_sigtimedwait */, (long)&kernel, (long)(info ? info : &local), (long)timeout, 8);
        if (r == -EINTR && wants && has_deferred()) continue;
        break;
    }
    if (wants) waiting_for_trigger = 0;
    if (r >= 0) return (int)r;
    errno = (int)-r;
    return -1;
}

int sigwaitinfo(const sigset_t *set, siginfo_t *info) { return sigtimedwait(set, info, NULL); }

int sigwait(const sigset_t *set, int *signo) {
    int r;
    do r = sigtimedwait(set, NULL, NULL);
    while (r < 0 && errno == EINTR);
    if (r < 0) return errno;
    *signo = r;
    return 0;
}

/* While suspended, the program's mask is `mask`: a kept trigger it unblocks is delivered now. */
int sigsuspend(const sigset_t *mask) {
    if (!stasis_config.arena_start) {
        long r = stasis_syscall2(130 /* rt_sigsuspend */, (long)mask, 8);
        errno = (int)-r;
        return -1;
    }
    uint64_t saved = program_blocked;
    set_program_blocked(agents_bits(mask));
    sigset_t kernel = without_agents(mask);
    long r = stasis_syscall2(130 /* rt_sigsuspend */, (long)&kernel, 8);
    set_program_blocked(saved);
    errno = (int)-r;
    return -1;
}

/* A new thread starts with its creator's mask: the program's view of it too. */
struct stasis_thread_start {
    void *(*start)(void *);
    void *argument;
    uint64_t blocked;
};

static void *start_with_program_mask(void *p) {
    struct stasis_thread_start start = *(struct stasis_thread_start *)p;
    free(p);
    set_program_blocked(start.blocked);
    return start.start(start.argument);
}

int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start)(void *), void *argument) {
    static int (*next)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    if (!next) next = (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *))dlsym(RTLD_NEXT, "pthread_create");
    if (!next) return EAGAIN;
    struct stasis_thread_start *wrapped = program_blocked ? malloc(sizeof *wrapped) : NULL;
    if (!wrapped) return next(thread, attr, start, argument);  /* nothing to inherit (or no memory: as before) */
    *wrapped = (struct stasis_thread_start){start, argument, program_blocked};
    int r = next(thread, attr, start_with_program_mask, wrapped);
    if (r != 0) free(wrapped);
    return r;
}

/* Called by the signal entry: 1 when this delivery is a checkpoint request. The --checkpoint-on
 * signal always is (the user asked for checkpoint-and-exit instead of the program's reaction). */
/* 1 when the program installed a handler of its own for signo (not SIG_DFL or SIG_IGN). */
int stasis_program_handles(int signo) {
    void (*handler)(int) = program_actions[signo].sa_handler;
    return handler != SIG_DFL && handler != SIG_IGN;
}

int stasis_trigger_is_checkpoint(int signo, const siginfo_t *info) {
    if (signo == stasis_config.exit_signal || !stasis_program_handles(signo)) return 1;
    return info && info->si_code == SI_QUEUE && info->si_value.sival_ptr != NULL;
}

/* Calls handler(signo, info, ucontext) with the stack pointer at top (a one-argument sa_handler
 * ignores the other two: the x86-64 calling convention allows it). */
__attribute__((noinline)) static void call_handler_on_stack(void (*handler)(int, siginfo_t *, void *), long signo,
                                                            siginfo_t *info, void *ucontext, void *top) {
    __asm__ volatile(
        "mov %%rsp, %%rbx\n\t"
        "mov %[top], %%rsp\n\t"
        "and $-16, %%rsp\n\t"
        "call *%[handler]\n\t"
        "mov %%rbx, %%rsp\n\t"
        : "+D"(signo), "+S"(info), "+d"(ucontext)
        : [handler] "r"(handler), [top] "r"(top)
        : "rax", "rbx", "rcx", "r8", "r9", "r10", "r11", "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4",
          "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

/* Runs the program's own handler for a trigger that was not a checkpoint, with the
 * mask it asked for (its sa_mask, plus the signal unless SA_NODEFER), on its alternate
 * stack if it asked for SA_ONSTACK (the kernel ran the agent's handler where it was). */
void stasis_deliver_to_program(int signo, siginfo_t *info, void *ucontext) {
    if (signo == stasis_config.trigger_signal && (program_blocked & bit_of(signo)) && info) {
        defer(info);
        return;
    }
    struct sigaction action = program_actions[signo];
    if (action.sa_flags & SA_RESETHAND) memset(&program_actions[signo], 0, sizeof program_actions[signo]);
    const ucontext_t *uc = ucontext;
    sigset_t mask;
    memcpy(&mask, &uc->uc_sigmask, sizeof mask);
    for (int s = 1; s < 65; s++)
        if (sigismember(&action.sa_mask, s)) sigaddset(&mask, s);
    if (!(action.sa_flags & SA_NODEFER)) sigaddset(&mask, signo);
    stasis_syscall4(STASIS_NR_rt_sigprocmask, SIG_SETMASK, (long)&mask, 0, 8);
    stack_t alternate;
    if ((action.sa_flags & SA_ONSTACK) && stasis_syscall2(STASIS_NR_sigaltstack, 0, (long)&alternate) == 0 &&
        !(alternate.ss_flags & (SS_DISABLE | SS_ONSTACK)) && alternate.ss_size > 0) {
        void (*handler)(int, siginfo_t *, void *) =
            (action.sa_flags & SA_SIGINFO) ? action.sa_sigaction : (void (*)(int, siginfo_t *, void *))action.sa_handler;
        call_handler_on_stack(handler, signo, info, ucontext, (char *)alternate.ss_sp + alternate.ss_size);
        return;
    }
    if (action.sa_flags & SA_SIGINFO) {
        action.sa_sigaction(signo, info, ucontext);
    } else {
        action.sa_handler(signo);
    }
}
