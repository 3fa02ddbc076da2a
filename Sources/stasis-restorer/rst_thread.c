/* rst_thread.c: gives the thread back its kernel-side state, then loads every
 * register and the xsave area at once through rt_sigreturn, from a frame built
 * on the program's own stack below the red zone (where the kernel put the
 * checkpoint signal's frame). */
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

void rst_restore_thread(struct rst_args *args) {
    stasis_thread_record_t *t = &args->thread;

    long new_tid = stasis_syscall1(STASIS_NR_set_tid_address, (long)t->clear_child_tid);
    if (t->robust_list)
        stasis_syscall2(STASIS_NR_set_robust_list, (long)t->robust_list, (long)t->robust_list_len);
    stasis_syscall2(STASIS_NR_arch_prctl, RST_ARCH_SET_FS, (long)t->fs_base);
    if (t->gs_base) stasis_syscall2(STASIS_NR_arch_prctl, RST_ARCH_SET_GS, (long)t->gs_base);
    if (t->rseq_address) {
        long r = stasis_syscall4(STASIS_NR_rseq, (long)t->rseq_address, t->rseq_length, 0, t->rseq_signature);
        if (r < 0) rst_warn(args, "rseq registration failed", (uint64_t)-r);
    }
    /* A new TID: glibc caches the TID in struct pthread, exactly where clear_child_tid points. */
    if (new_tid > 0 && new_tid != t->tid && t->clear_child_tid) {
        volatile int32_t *cached = (volatile int32_t *)t->clear_child_tid;
        if (*cached == t->tid) *cached = (int32_t)new_tid;
    }
    if (args->agent.state_address) {
        stasis_agent_state_t *state = (stasis_agent_state_t *)args->agent.state_address;
        if (state->magic == STASIS_AGENT_STATE_MAGIC) {
            state->busy = 0; /* the image was taken mid-checkpoint */
            state->restored_count++;
        }
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
        if (rst_pread_all(args->image_fd, (void *)fpstate, t->xsave_bytes, args->thread_xsave_offset) < 0)
            rst_fail(args, "cannot read the xsave area", args->thread_xsave_offset);
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

    for (int sig = 1; sig <= STASIS_SIGNAL_COUNT; sig++) {
        if (sig == 9 || sig == 19 || !args->have_signals) continue;
        stasis_syscall4(STASIS_NR_rt_sigaction, sig, (long)&args->signals.actions[sig - 1], 0, 8);
    }

    stasis_syscall1(STASIS_NR_close, args->image_fd);
    rst_write_text(args->status_fd, "ok\n");
    stasis_syscall1(STASIS_NR_close, args->status_fd);

    /* Into the program's own code: unmap the work region, then rt_sigreturn. */
    void (*tail)(uint64_t, uint64_t, uint64_t) = (void (*)(uint64_t, uint64_t, uint64_t))args->agent.restore_tail;
    tail(args->work_start, args->work_bytes, (uint64_t)uc);
    __builtin_unreachable();
}
