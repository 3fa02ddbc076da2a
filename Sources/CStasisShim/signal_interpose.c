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
 * Everything here is async-signal-safe (raw system calls): programs call the
 * mask functions from their own handlers. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>

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

static int set_mask(int how, const sigset_t *set, sigset_t *old) {
    sigset_t copy;
    if (set && stasis_config.arena_start) {
        copy = *set;
        sigdelset(&copy, stasis_config.trigger_signal);
        if (stasis_config.exit_signal) sigdelset(&copy, stasis_config.exit_signal);
        set = &copy;
    }
    return (int)stasis_syscall4(STASIS_NR_rt_sigprocmask, how, (long)set, (long)old, 8);
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

/* Called by the signal entry: 1 when this delivery is a checkpoint request. The --checkpoint-on
 * signal always is (the user asked for checkpoint-and-exit instead of the program's reaction). */
int stasis_trigger_is_checkpoint(int signo, const siginfo_t *info) {
    if (signo == stasis_config.exit_signal) return 1;
    void (*handler)(int) = program_actions[signo].sa_handler;
    if (handler == SIG_DFL || handler == SIG_IGN) return 1;
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
