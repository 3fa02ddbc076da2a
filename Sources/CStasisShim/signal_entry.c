/* signal_entry.c: the trigger signal's handler, and the restore tail.
 *
 * FREEZE WINDOW: everything here runs in a signal handler that may have
 * interrupted malloc or any lock holder. Raw system calls only; no libc
 * calls that take locks, no allocation.
 *
 * Algorithm:
 *   0. a trigger that is the program's own goes to its handler (signal_interpose.c)
 *   1. drop nested triggers (state.busy): a plain kill joins the checkpoint in progress,
 *      `stasis checkpoint` re-sends until its request is accepted
 *   2. copy what the kernel saved in the signal frame (general registers,
 *      signal mask, fpstate/xsave) and ask the kernel for what the frame does
 *      not hold: FS/GS base, TID, clear_child_tid, robust list, rseq area,
 *      sigaltstack, thread name
 *   3. switch to the agent's own stack and call stasis_agent_checkpoint
 *   4. return: the kernel's sigreturn resumes the program unchanged
 * A restore never comes back here: the restorer sigreturns straight into the
 * interrupted context recorded in step 2. */
#define _GNU_SOURCE
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <ucontext.h>

#include "stasis_shim.h"
#include "stasis_syscall.h"

extern stasis_agent_config_t stasis_config;
extern stasis_agent_state_t stasis_state;

/* glibc 2.35+: where it registered this thread's rseq area. Weak: older libcs lack them. */
extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));
#define STASIS_RSEQ_SIGNATURE 0x53053053u
#define STASIS_RSEQ_REGISTERED_LENGTH 32u /* glibc registers 32 bytes though __rseq_size says 20 */

#define STASIS_ARCH_GET_FS 0x1003
#define STASIS_ARCH_GET_GS 0x1004

/* Calls fn(arg) with the stack pointer at stack_top; returns its result. */
__attribute__((noinline)) static int32_t call_on_stack(int32_t (*fn)(stasis_capture_t *), stasis_capture_t *arg,
                                                       void *stack_top) {
    int32_t result;
    __asm__ volatile(
        "mov %%rsp, %%rbx\n\t"
        "mov %[top], %%rsp\n\t"
        "and $-16, %%rsp\n\t"
        "call *%[fn]\n\t"
        "mov %%rbx, %%rsp\n\t"
        : "=a"(result), "+D"(arg)
        : [fn] "r"(fn), [top] "r"(stack_top)
        : "rbx", "rcx", "rdx", "rsi", "r8", "r9", "r10", "r11", "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3",
          "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
    return result;
}

/* A sleep cut short by the checkpoint signal continues instead of returning EINTR.
 *
 * Running any handler turns an interrupted clock_nanosleep (which nanosleep, usleep and sleep call)
 * into EINTR, and rt_sigreturn clears the kernel's restart block, so the kernel cannot resume it. But
 * the remaining time is known: the kernel wrote it to the caller's rem (r10), and an absolute sleep's
 * deadline does not change (usleep passes no rem: it sleeps its whole request again). So when the frame shows glibc's `mov $230,%eax; syscall` returning EINTR,
 * the frame is wound back to re-issue the call (relative: with rem as the request). Both the running
 * program and a restored one then sleep to the original deadline. Code bytes are read with
 * process_vm_readv, which fails instead of faulting. */
static void resume_interrupted_sleep(ucontext_t *uc) {
    greg_t *g = uc->uc_mcontext.gregs;
    if (g[REG_RAX] != -4 /* EINTR */) return;
    static const unsigned char pattern[7] = {0xb8, 0xe6, 0x00, 0x00, 0x00, 0x0f, 0x05}; /* mov $230,%eax; syscall */
    unsigned char code[7];
    struct { void *base; size_t len; } local = {code, 7}, remote = {(void *)(g[REG_RIP] - 7), 7};
    long pid = stasis_syscall0(STASIS_NR_getpid);
    if (stasis_syscall6(310 /* process_vm_readv */, pid, (long)&local, 1, (long)&remote, 1, 0) != 7) return;
    if (memcmp(code, pattern, 7) != 0) return;
    int absolute = (g[REG_RSI] & 1 /* TIMER_ABSTIME */) != 0;
    /* Relative with rem: the request becomes what remains. Without rem (usleep) the remaining time
     * is unknown: the whole request again, which POSIX allows (a sleep lasts at least as asked). */
    if (!absolute && g[REG_R10]) g[REG_RDX] = g[REG_R10];
    g[REG_RAX] = 230;
    g[REG_RIP] -= 2;
}

static void capture_thread(stasis_thread_record_t *t, const ucontext_t *uc, stasis_capture_t *capture) {
    for (int i = 0; i < STASIS_REG_COUNT; i++) t->gregs[i] = (uint64_t)uc->uc_mcontext.gregs[i];
    t->uc_flags = uc->uc_flags;
    memcpy(&t->sigmask, &uc->uc_sigmask, sizeof t->sigmask); /* the kernel's 64-bit mask comes first */
    t->tid = (int32_t)stasis_syscall0(STASIS_NR_gettid);
    stasis_syscall2(STASIS_NR_arch_prctl, STASIS_ARCH_GET_FS, (long)&t->fs_base);
    stasis_syscall2(STASIS_NR_arch_prctl, STASIS_ARCH_GET_GS, (long)&t->gs_base);
    stasis_syscall2(STASIS_NR_prctl, PR_GET_TID_ADDRESS, (long)&t->clear_child_tid);
    size_t robust_len = 0;
    void *robust_head = NULL;
    if (stasis_syscall3(STASIS_NR_get_robust_list, 0, (long)&robust_head, (long)&robust_len) == 0) {
        t->robust_list = (uint64_t)robust_head;
        t->robust_list_len = robust_len;
    }
    if (&__rseq_offset && &__rseq_size && __rseq_size > 0 && t->fs_base) {
        uint64_t area = t->fs_base + (uint64_t)__rseq_offset;
        uint32_t cpu_id = *(volatile uint32_t *)(area + 4);
        if (cpu_id != (uint32_t)-1 && cpu_id != (uint32_t)-2) { /* RSEQ_CPU_ID_UNINITIALIZED / _REGISTRATION_FAILED */
            t->rseq_address = area;
            t->rseq_length = STASIS_RSEQ_REGISTERED_LENGTH;
            t->rseq_signature = STASIS_RSEQ_SIGNATURE;
        }
    }
    stack_t altstack;
    if (stasis_syscall2(STASIS_NR_sigaltstack, 0, (long)&altstack) == 0) {
        t->altstack_sp = (uint64_t)altstack.ss_sp;
        t->altstack_size = altstack.ss_size;
        t->altstack_flags = altstack.ss_flags;
    }
    stasis_syscall2(STASIS_NR_prctl, PR_GET_NAME, (long)t->name);
    /* Signals that arrived while checkpointing stay pending (the handler blocks them all). The freeze
     * then takes most of them out with their siginfo and narrows this (pending_signals.c). */
    stasis_syscall2(127 /* rt_sigpending */, (long)&t->pending_signals, 8);
    t->syscall_number = -1;

    /* fpstate: 512 bytes of fxsave, extended to the full xsave area when the
     * kernel marked it with FP_XSTATE_MAGIC1 in the software-reserved bytes. */
    const uint8_t *fp = (const uint8_t *)uc->uc_mcontext.fpregs;
    capture->xsave = fp;
    t->xsave_bytes = 0;
    if (fp) {
        uint32_t magic1, extended_size;
        memcpy(&magic1, fp + STASIS_FP_SW_BYTES_OFFSET, 4);
        memcpy(&extended_size, fp + STASIS_FP_SW_BYTES_OFFSET + 4, 4);
        t->xsave_bytes = (magic1 == STASIS_FP_XSTATE_MAGIC1 && extended_size <= STASIS_MAX_XSAVE) ? extended_size : 512;
    }
}

int stasis_trigger_is_checkpoint(int signo, const siginfo_t *info);
int stasis_program_handles(int signo);
void stasis_take_forwarded(int signo, void *ucontext);

void stasis_deliver_to_program(int signo, siginfo_t *info, void *ucontext);

/* The --checkpoint-on signal arrived while another checkpoint was in progress. */
static int pending_exit_signal;

/* A follower: the leader's freeze signal reached this thread. Capture, report, wait for the thaw.
 * A restore never comes back here either: the thread resumes at its interrupted context. */
static void follow_freeze(const ucontext_t *uc) {
    int32_t generation = stasis_atomic_load(&stasis_state.freeze_generation);
    if (!stasis_atomic_load(&stasis_state.freeze_active)) return; /* stale: that freeze is over */
    int32_t slot = stasis_atomic_add(&stasis_state.slot_count, 1);
    if (slot >= 0 && (uint32_t)slot < stasis_config.slot_capacity) {
        stasis_thread_slot_t *slots = (stasis_thread_slot_t *)stasis_config.slots_start;
        stasis_capture_t scratch;
        resume_interrupted_sleep((ucontext_t *)uc);
        memset(&slots[slot].record, 0, sizeof slots[slot].record);
        capture_thread(&slots[slot].record, uc, &scratch);
        stasis_pending_take_own(&slots[slot].record); /* its own queue, with siginfo (pending_signals.c) */
        slots[slot].xsave = scratch.xsave;
    }
    stasis_atomic_add(&stasis_state.captured, 1);
    stasis_futex_wake_all(&stasis_state.captured);
    while (stasis_atomic_load(&stasis_state.freeze_generation) == generation)
        stasis_futex_wait(&stasis_state.freeze_generation, generation, 0);
    stasis_pending_after_thaw(); /* the signals taken out are back before the program runs */
}

void stasis_signal_entry(int signo, siginfo_t *info, void *ucontext) {
    if (info && info->si_code == SI_QUEUE && info->si_value.sival_ptr == (void *)STASIS_FREEZE_MAGIC &&
        info->si_pid == (pid_t)stasis_syscall0(STASIS_NR_getpid)) {
        follow_freeze((const ucontext_t *)ucontext);
        return;
    }
    if (info && info->si_code == SI_QUEUE && info->si_value.sival_ptr == (void *)STASIS_WAKE_MAGIC &&
        info->si_pid == (pid_t)stasis_syscall0(STASIS_NR_getpid)) {
        resume_interrupted_sleep((ucontext_t *)ucontext); /* the question must not cut a sleep short */
        stasis_take_forwarded(signo, ucontext);
        return;
    }
    if (!stasis_trigger_is_checkpoint(signo, info)) {
        stasis_deliver_to_program(signo, info, ucontext);
        return;
    }
    if (!stasis_config.arena_start) return;
    if (__atomic_exchange_n(&stasis_state.busy, 1, __ATOMIC_ACQ_REL)) {
        /* Another thread is still finishing a checkpoint. A plain kill joins it; `stasis checkpoint`
         * re-sends its request until the agent marks it accepted (Docs/ARCHITECTURE.md 2.6), so
         * dropping it here loses nothing (nor does the kernel merging two pending triggers). The
         * --checkpoint-on signal must not be lost: it is raised again once this checkpoint is over. */
        if (signo == stasis_config.exit_signal) __atomic_store_n(&pending_exit_signal, 1, __ATOMIC_RELEASE);
        return;
    }

    stasis_capture_t capture;
    memset(&capture, 0, sizeof capture);
    capture.config = &stasis_config;
    capture.state = &stasis_state;
    capture.signal_code = info ? info->si_code : 0;
    capture.signal_number = signo;
    capture.sender_pid = info ? info->si_pid : 0;
    capture.request_id = (info && info->si_code == SI_QUEUE) ? (int64_t)info->si_value.sival_ptr : 0;
    extern void stasis_restore_tail(void);
    capture.restore_tail = (uint64_t)&stasis_restore_tail;
    extern void stasis_restore_thread_tail(void);
    capture.restore_thread_tail = (uint64_t)&stasis_restore_thread_tail;
    resume_interrupted_sleep((ucontext_t *)ucontext);
    capture_thread(&capture.thread, (const ucontext_t *)ucontext, &capture);

    void *stack_top = (void *)(stasis_config.stack_start + stasis_config.stack_bytes);
    int32_t result = call_on_stack(stasis_agent_checkpoint, &capture, stack_top);
    stasis_pending_after_thaw();

    __atomic_store_n(&stasis_state.busy, 0, __ATOMIC_RELEASE);
    if (signo != stasis_config.exit_signal && __atomic_exchange_n(&pending_exit_signal, 0, __ATOMIC_ACQ_REL))
        stasis_syscall2(STASIS_NR_kill, stasis_syscall0(STASIS_NR_getpid), stasis_config.exit_signal);
    if (result == 1) { /* a sigqueue'd trigger that is no request of ours: the program's own */
        if (stasis_program_handles(signo)) stasis_deliver_to_program(signo, info, ucontext);
        return;
    }
    if (signo == stasis_config.exit_signal) {
        /* --checkpoint-on: the image is safe, so exit with the configured status (a scheduler's
         * "checkpointed" code). If it failed, die of the signal as if Stasis were not there. */
        if (result == 0) stasis_syscall1(STASIS_NR_exit_group, stasis_config.exit_code);
        struct { void *handler; unsigned long flags; void *restorer; unsigned long mask; } dfl = {0, 0, 0, 0};
        stasis_syscall4(STASIS_NR_rt_sigaction, signo, (long)&dfl, 0, 8);
        unsigned long unblock = 1ul << (signo - 1);
        stasis_syscall4(STASIS_NR_rt_sigprocmask, 1 /* SIG_UNBLOCK */, (long)&unblock, 0, 8);
        stasis_syscall3(STASIS_NR_tgkill, stasis_syscall0(STASIS_NR_getpid), stasis_syscall0(STASIS_NR_gettid), signo);
    }
}

/* The restorer's last step, run from the program's own memory so that the
 * restorer can unmap itself: munmap(rdi, rsi), then rt_sigreturn with the
 * stack pointer at rdx (the rt_sigframe it built, past pretcode). */
__asm__(".text\n"
        ".globl stasis_restore_tail\n"
        ".type stasis_restore_tail,@function\n"
        "stasis_restore_tail:\n"
        "    mov %rdx, %r12\n"
        "    mov $11, %eax\n" /* munmap */
        "    syscall\n"
        "    mov %r12, %rsp\n"
        "    mov $15, %eax\n" /* rt_sigreturn */
        "    syscall\n"
        "    ud2\n"
        ".size stasis_restore_tail, .-stasis_restore_tail\n");

/* The same for every other thread: tell the restorer's main thread this one is off its
 * stack (*rdi = 1; after this store the thread touches no restorer memory), then
 * rt_sigreturn with the stack pointer at rdx. */
__asm__(".text\n"
        ".globl stasis_restore_thread_tail\n"
        ".type stasis_restore_thread_tail,@function\n"
        "stasis_restore_thread_tail:\n"
        "    movl $1, (%rdi)\n"
        "    mov %rdx, %rsp\n"
        "    mov $15, %eax\n" /* rt_sigreturn */
        "    syscall\n"
        "    ud2\n"
        ".size stasis_restore_thread_tail, .-stasis_restore_thread_tail\n");
