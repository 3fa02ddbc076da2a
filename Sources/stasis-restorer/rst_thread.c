/* rst_thread.c: every thread gets back its kernel-side state, then loads every
 * register and its xsave area at once through rt_sigreturn, from a frame built
 * on the program's own stack below the red zone (where the kernel put the
 * checkpoint signal's frame).
 *
 * Algorithm:
 *   main thread (the restorer's own; becomes the image's thread-group leader):
 *     signal actions (process-wide)
 *     for each other thread: clone3(CLONE_THREAD..., set_tid = its TID when the
 *       process got its PID back) on a stack in the work region
 *     wait until every such thread has set its done flag
 *     own state, "ok" to the launcher, stasis_restore_tail: munmap + sigreturn
 *   each other thread:
 *     own state and frame, then stasis_restore_thread_tail: done = 1 + sigreturn
 *
 * A member of a process tree (go_fd >= 0; Docs/ARCHITECTURE.md 3.6) runs no program code before
 * every process of the tree is restored:
 *   main thread                                   each other thread
 *   signal actions; clone the others ------------> own state and frame; prepared = 1;
 *   wait until every one is prepared                wait (futex) for `released`
 *   own state and frame; timers
 *   "ok" to the launcher                            (a stopped process: the launcher stops it here)
 *   read one byte from the go pipe (EOF: exit)
 *   drain SIGCHLD (from stopped children); [subreaper]
 *   queue the process's pending signals, its own;
 *   released = 1 ---------------------------------> queue its own pending signals;
 *   wait until every one is done                    stasis_restore_thread_tail
 *   stasis_restore_tail
 * Pending signals are queued only after the go, so that a SIGCHLD the restore itself caused (a
 * child that stopped) can be told from the image's own. */
#include "rst.h"

#define RST_ARCH_SET_GS 0x1001
#define RST_ARCH_SET_FS 0x1002
#define RST_NR_restart_syscall 219
#define RST_EINTR 4

/* The kernel's struct ucontext for x86-64 (uapi asm/ucontext.h), not glibc's ucontext_t. */
struct rst_kernel_ucontext {
    uint64_t uc_flags;
    uint64_t uc_link;
    uint64_t ss_sp;
    int32_t ss_flags;
    int32_t ss_pad;
    uint64_t ss_size;
    uint64_t gregs[STASIS_REG_COUNT]; /* struct sigcontext up to fpstate */
    uint64_t fpstate;
    uint64_t reserved1[8];
    uint64_t sigmask;
};
_Static_assert(sizeof(struct rst_kernel_ucontext) == 304, "kernel ABI: struct ucontext");

#define RST_CLONE_THREAD_FLAGS (0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000) /* VM FS FILES SIGHAND THREAD SYSVSEM */

struct rst_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

/* clone3 for a thread: the child calls fn(arg) on the new stack and never returns. */
__asm__(".text\n"
        ".globl rst_clone3_thread\n"
        ".hidden rst_clone3_thread\n"
        "rst_clone3_thread:\n"
        "    push %r12\n"
        "    push %r13\n"
        "    mov %rdx, %r12\n"
        "    mov %rcx, %r13\n"
        "    mov $435, %eax\n"
        "    syscall\n"
        "    test %rax, %rax\n"
        "    jnz 1f\n"
        "    xor %ebp, %ebp\n"
        "    and $-16, %rsp\n"
        "    mov %r13, %rdi\n"
        "    call *%r12\n"
        "    ud2\n"
        "1:  pop %r13\n"
        "    pop %r12\n"
        "    ret\n");

/* Signals pending at the checkpoint with their siginfo (PENDING_SIGNAL records), queued again in
 * their order. The kernel lets only the receiving thread queue a siginfo that says tgkill() or
 * kill() or the kernel (si_code >= 0 or SI_TKILL) to itself, and only the main thread to the
 * process: so each thread queues its own (from prepare_thread, before its rt_sigreturn) and the main
 * thread the process's (before any thread exists). Every signal is blocked meanwhile. */
static void queue_pending_signals(struct rst_args *args, int32_t old_tid, int process) {
    long pid = stasis_syscall0(STASIS_NR_getpid), tid = stasis_syscall0(STASIS_NR_gettid);
    for (int i = 0; i < args->pending_count; i++) {
        stasis_pending_signal_record_t *p = &args->pending[i];
        if (process != ((p->flags & STASIS_PENDING_PROCESS) != 0) || (!process && p->tid != old_tid)) continue;
        long r = process ? stasis_syscall3(129 /* rt_sigqueueinfo */, pid, p->signal, (long)p->siginfo)
                         : stasis_syscall4(STASIS_NR_rt_tgsigqueueinfo, pid, tid, p->signal, (long)p->siginfo);
        if (r < 0) rst_warn(args, "a pending signal could not be queued again; signal", (uint64_t)p->signal);
    }
}

/* Kernel-side state of the calling thread, then its rt_sigframe; returns the frame (past pretcode). */
static uint64_t prepare_thread(struct rst_args *args, struct rst_thread *thread) {
    stasis_thread_record_t *t = &thread->record;

    long new_tid = stasis_syscall1(STASIS_NR_set_tid_address, (long)t->clear_child_tid);
    thread->new_tid = (int32_t)new_tid;
    if (t->robust_list)
        stasis_syscall2(STASIS_NR_set_robust_list, (long)t->robust_list, (long)t->robust_list_len);
    stasis_syscall2(STASIS_NR_arch_prctl, RST_ARCH_SET_FS, (long)t->fs_base);
    if (t->gs_base) stasis_syscall2(STASIS_NR_arch_prctl, RST_ARCH_SET_GS, (long)t->gs_base);
    if (t->rseq_address) {
        long r = stasis_syscall4(STASIS_NR_rseq, (long)t->rseq_address, t->rseq_length, 0, t->rseq_signature);
        if (r < 0) rst_warn(args, "rseq registration failed", (uint64_t)-r);
    }
    if (t->name[0]) stasis_syscall2(STASIS_NR_prctl, 15 /* PR_SET_NAME */, (long)t->name);
    /* A new TID: glibc caches the TID in struct pthread, exactly where clear_child_tid points. */
    if (new_tid > 0 && new_tid != t->tid && t->clear_child_tid) {
        volatile int32_t *cached = (volatile int32_t *)t->clear_child_tid;
        if (*cached == t->tid) *cached = (int32_t)new_tid;
    }

    uint64_t *g = t->gregs;
    /* restart_syscall needs the old process's restart block: the call returns EINTR instead. */
    if (g[STASIS_REG_RAX] == RST_NR_restart_syscall && g[STASIS_REG_RIP] >= 2) {
        const uint8_t *insn = (const uint8_t *)(g[STASIS_REG_RIP]);
        if (insn[0] == 0x0f && insn[1] == 0x05) {
            g[STASIS_REG_RAX] = (uint64_t)-RST_EINTR;
            g[STASIS_REG_RIP] += 2;
        }
    }

    /* Frame: [ucontext][...][xsave, 64-aligned], all below rsp - 128. */
    uint64_t sp = g[STASIS_REG_RSP] - 128;
    uint64_t fpstate = 0;
    if (t->xsave_bytes) {
        sp = (sp - t->xsave_bytes) & ~63ul;
        fpstate = sp;
        if (rst_pread_all(args->image_fd, (void *)fpstate, t->xsave_bytes, thread->xsave_offset) < 0)
            rst_fail(args, "cannot read the xsave area", thread->xsave_offset);
    }
    sp = (sp - sizeof(struct rst_kernel_ucontext) - 64) & ~15ul;
    struct rst_kernel_ucontext *uc = (struct rst_kernel_ucontext *)sp;
    memset(uc, 0, sizeof *uc);
    uc->uc_flags = t->uc_flags;
    uc->ss_sp = t->altstack_sp;
    uc->ss_flags = t->altstack_flags & ~1 /* SS_ONSTACK is state, not a setting */;
    uc->ss_size = t->altstack_size;
    for (int i = 0; i < STASIS_REG_COUNT; i++) uc->gregs[i] = g[i];
    uc->fpstate = fpstate;
    uc->sigmask = t->sigmask;
    /* sigaltstack from uc_stack is applied by rt_sigreturn too; set it now so errors show. */
    struct { uint64_t sp; int32_t flags; int32_t pad; uint64_t size; } altstack = {
        t->altstack_sp, t->altstack_flags & ~1, 0, t->altstack_size};
    if (t->altstack_sp || t->altstack_size) stasis_syscall2(STASIS_NR_sigaltstack, (long)&altstack, 0);
    return (uint64_t)uc;
}

/* The calling thread's own pending signals, last before its rt_sigreturn. */
static void queue_thread_signals(struct rst_args *args, struct rst_thread *thread) {
    const stasis_thread_record_t *t = &thread->record;
    queue_pending_signals(args, t->tid, 0); /* this thread's own, with their siginfo */
    /* Signals pending at the checkpoint that have no PENDING_SIGNAL record (the trigger, POSIX timers'
     * signals, images from before those records) are raised again: every signal is blocked in the
     * restorer, so they wait until rt_sigreturn installs the thread's own mask (siginfo not kept). */
    long pid = stasis_syscall0(STASIS_NR_getpid), tid = stasis_syscall0(STASIS_NR_gettid);
    uint64_t recorded = 0; /* signals whose instances came back with their siginfo */
    for (int i = 0; i < args->pending_count; i++) recorded |= 1ull << (args->pending[i].signal - 1);
    for (int sig = 1; sig <= 64; sig++) {
        uint64_t bit = 1ull << (sig - 1);
        if (!(t->pending_signals & bit) || (recorded & bit) || sig == args->agent.trigger_signal || sig == 9 || sig == 19)
            continue;
        if (__atomic_fetch_or(&args->raised_signals, bit, __ATOMIC_ACQ_REL) & bit) continue;
        stasis_syscall3(STASIS_NR_tgkill, pid, tid, sig);
    }
}

#define RST_NR_futex 202
#define RST_FUTEX_WAIT_PRIVATE 128
#define RST_FUTEX_WAKE_PRIVATE 129

__attribute__((noreturn)) static void thread_child(struct rst_thread *thread) {
    struct rst_args *args = thread->args;
    uint64_t frame = prepare_thread(args, thread);
    if (args->go_fd >= 0) {
        __atomic_store_n(&thread->prepared, 1, __ATOMIC_RELEASE);
        while (!__atomic_load_n(&args->released, __ATOMIC_ACQUIRE))
            stasis_syscall4(RST_NR_futex, (long)&args->released, RST_FUTEX_WAIT_PRIVATE, 0, 0);
    }
    queue_thread_signals(args, thread);
    rst_drop_capabilities(args);
    void (*tail)(volatile int32_t *, uint64_t, uint64_t) =
        (void (*)(volatile int32_t *, uint64_t, uint64_t))args->agent.restore_thread_tail;
    tail(&thread->done, 0, frame);
    __builtin_unreachable();
}

/* POSIX timers with their old ids (PR_TIMER_CREATE_RESTORE_IDS makes timer_create take the id from
 * *timerid), their notification (a thread's new id when ids changed) and their remaining time. */
static void restore_posix_timers(struct rst_args *args) {
    if (!args->timer_count) return;
    if (stasis_syscall5(STASIS_NR_prctl, 77 /* PR_TIMER_CREATE_RESTORE_IDS */, 1, 0, 0, 0) < 0) {
        rst_warn(args, "this kernel cannot restore POSIX timer ids; timers not restored", (uint64_t)args->timer_count);
        return;
    }
    for (int i = 0; i < args->timer_count; i++) {
        const stasis_posix_timer_record_t *t = &args->timers[i];
        struct { uint64_t value; int32_t signo, notify, tid; int32_t pad[11]; } event;
        memset(&event, 0, sizeof event);
        event.value = t->value;
        event.signo = t->signal;
        event.notify = t->notify;
        event.tid = t->tid;
        for (int j = 0; j < args->thread_count; j++)
            if (args->threads[j].record.tid == t->tid) event.tid = args->threads[j].new_tid;
        int32_t id = t->id;
        long r = stasis_syscall3(222 /* timer_create */, t->clock_id, (long)&event, (long)&id);
        if (r < 0 || id != t->id) {
            rst_warn(args, "a POSIX timer could not be re-created with its id", (uint64_t)t->id);
            continue;
        }
        if (t->value_sec || t->value_nsec) {
            int64_t spec[4] = {t->interval_sec, t->interval_nsec, t->value_sec, t->value_nsec};
            stasis_syscall4(223 /* timer_settime */, id, 0, (long)spec, 0);
        }
    }
    stasis_syscall5(STASIS_NR_prctl, 77, 0, 0, 0, 0);
}

/* Waits until every thread but the main one has set its done flag (or, with `prepared`, its prepared flag). */
static void wait_for_threads(struct rst_args *args, int main_index, int prepared) {
    for (int i = 0; i < args->thread_count; i++) {
        if (i == main_index) continue;
        volatile int32_t *flag = prepared ? &args->threads[i].prepared : &args->threads[i].done;
        while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE)) stasis_syscall0(STASIS_NR_sched_yield);
    }
}

#define RST_NR_rt_sigtimedwait 128
#define RST_SIGCHLD 17
#define RST_PR_SET_CHILD_SUBREAPER 36

/* A tree member, from its threads' creation to the go (the diagram at the top); returns the main
 * thread's frame. After "ok" nothing may fail: the other processes run their programs already. */
static uint64_t tree_go(struct rst_args *args, int main_index) {
    wait_for_threads(args, main_index, 1);
    uint64_t frame = prepare_thread(args, &args->threads[main_index]);
    /* Timers now: they run while the tree waits, as they would have in a stopped process. */
    restore_posix_timers(args);
    rst_restore_timers(args);
    stasis_syscall1(STASIS_NR_close, args->image_fd);
    rst_write_text(args->status_fd, STASIS_STATUS_OK "\n");
    stasis_syscall1(STASIS_NR_close, args->status_fd);
    args->status_fd = -1;
    /* A process that was stopped is stopped here by the launcher, every thread with it, once every
     * process said "ok" (its parent's SIGCHLD action is then in place: installing an action flushes a
     * pending SIGCHLD); it reads the go when it is continued. */
    char byte = 0;
    long n;
    do n = stasis_syscall3(STASIS_NR_read, args->go_fd, (long)&byte, 1); while (n == -4);
    if (n != 1) stasis_syscall1(STASIS_NR_exit_group, RST_EXIT_FAILED); /* the launcher gave up and says why */
    stasis_syscall1(STASIS_NR_close, args->go_fd);
        /* Every SIGCHLD pending now came from the restore (a child the launcher stopped; it waited for
     * that SIGCHLD before the go): none of the image's own signals is queued yet. */
    uint64_t child_signal = 1ull << (RST_SIGCHLD - 1);
    int64_t no_wait[2] = {0, 0};
    uint8_t info[128];
    while (stasis_syscall4(RST_NR_rt_sigtimedwait, (long)&child_signal, (long)info, (long)no_wait, 8) > 0) {
    }
    if (args->tree_flags & STASIS_RESTORER_TREE_SUBREAPER)
        stasis_syscall5(STASIS_NR_prctl, RST_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    queue_pending_signals(args, 0, 1);
    queue_thread_signals(args, &args->threads[main_index]);
    __atomic_store_n(&args->released, 1, __ATOMIC_RELEASE);
    stasis_syscall4(RST_NR_futex, (long)&args->released, RST_FUTEX_WAKE_PRIVATE, 0x7fffffff, 0);
    wait_for_threads(args, main_index, 0);
    return frame;
}

void rst_restore_threads(struct rst_args *args) {
    if (args->have_signals) {
        for (int sig = 1; sig <= STASIS_SIGNAL_COUNT; sig++) {
            if (sig == 9 || sig == 19) continue;
            stasis_syscall4(STASIS_NR_rt_sigaction, sig, (long)&args->signals.actions[sig - 1], 0, 8);
        }
    }
    if (args->agent.state_address) {
        stasis_agent_state_t *state = (stasis_agent_state_t *)args->agent.state_address;
        if (state->magic == STASIS_AGENT_STATE_MAGIC) {
            state->busy = 0; /* the image was taken mid-checkpoint */
            state->freeze_active = 0;
            state->restored_count++;
            state->pager_pid = args->pager_pid; /* a checkpoint waits until the pager is done */
        }
    }
    /* The process's pending signals, once the dispositions are in place (an ignored one would go); a
     * tree member's after the go (tree_go). */
    if (args->go_fd < 0) queue_pending_signals(args, 0, 1);
    /* The thread-group leader (tid == pid) is this thread; else the first record. */
    int main_index = 0;
    for (int i = 0; i < args->thread_count; i++)
        if (args->threads[i].record.tid == args->header.pid) main_index = i;
    int same_pid = stasis_syscall0(STASIS_NR_getpid) == args->header.pid;
    int warned = 0;
    for (int i = 0; i < args->thread_count; i++) {
        if (i == main_index) continue;
        struct rst_thread *thread = &args->threads[i];
        struct rst_clone_args clone = {0};
        int32_t tid = thread->record.tid;
        clone.flags = RST_CLONE_THREAD_FLAGS;
        clone.stack = args->thread_stacks + (uint64_t)i * RST_THREAD_STACK_BYTES;
        clone.stack_size = RST_THREAD_STACK_BYTES;
        long r = -1;
        if (same_pid) {
            clone.set_tid = (uint64_t)&tid;
            clone.set_tid_size = 1;
            r = rst_clone3_thread(&clone, sizeof clone, thread_child, thread);
        }
        if (r < 0) {
            if (same_pid && !warned) {
                rst_warn(args, "could not restore thread ids; threads got new ids (mutexes held across the checkpoint may misbehave)", (uint64_t)-r);
                warned = 1;
            }
            clone.set_tid = 0;
            clone.set_tid_size = 0;
            r = rst_clone3_thread(&clone, sizeof clone, thread_child, thread);
        }
        if (r < 0) rst_fail(args, "cannot create a thread", (uint64_t)-r);
    }
    uint64_t frame;
    if (args->go_fd >= 0) {
        frame = tree_go(args, main_index);
    } else {
        wait_for_threads(args, main_index, 0);
        frame = prepare_thread(args, &args->threads[main_index]);
        queue_thread_signals(args, &args->threads[main_index]);
        restore_posix_timers(args);
        rst_restore_timers(args);
        stasis_syscall1(STASIS_NR_close, args->image_fd);
        rst_write_text(args->status_fd, STASIS_STATUS_OK "\n");
        stasis_syscall1(STASIS_NR_close, args->status_fd);
    }

    rst_drop_capabilities(args); /* after the threads (set_tid) and POSIX timers were made */
    /* Into the program's own code: unmap the work region, then rt_sigreturn. */
    void (*tail)(uint64_t, uint64_t, uint64_t) = (void (*)(uint64_t, uint64_t, uint64_t))args->agent.restore_tail;
    tail(args->work_start, args->work_bytes, frame);
    __builtin_unreachable();
}
