/* tree_spawn.c: the processes of a tree, each created by its parent (stasis_tree_spawn.h has the
 * steps). Everything after a clone runs raw system calls only: the launcher may have other threads,
 * and their locks are copied held. */
#include "stasis_tree_spawn.h"

#include <stddef.h>

#include "spawn_internal.h"
#include "stasis_syscall.h"

#define TREE_NR_setpgid 109
#define TREE_NR_getpgid 121
#define TREE_NR_rt_sigtimedwait 128
#define TREE_NR_futex 202
#define TREE_FUTEX_WAIT 0
#define TREE_FUTEX_WAKE 1
#define TREE_P_PID 1
#define TREE_WEXITED 4
#define TREE_WNOWAIT 0x01000000
#define TREE_WALL 0x40000000
#define TREE_PR_SET_PDEATHSIG 1
#define TREE_PR_SET_NAME 15
#define TREE_RLIMIT_CORE 4
#define TREE_SIG_UNBLOCK 1
#define TREE_SIG_SETMASK 2
#define TREE_CLOCK_MONOTONIC 1
#define TREE_PROT_RW 3
#define TREE_MAP_SHARED_ANONYMOUS 0x21

/* The kernel's struct sigaction (handler 0 = SIG_DFL). */
struct tree_sigaction {
    uint64_t handler, flags, restorer, mask;
};

stasis_tree_spawn_control_t *stasis_tree_spawn_control_map(void) {
    long p = stasis_syscall6(STASIS_NR_mmap, 0, sizeof(stasis_tree_spawn_control_t), TREE_PROT_RW,
                             TREE_MAP_SHARED_ANONYMOUS, -1, 0);
    return p < 0 && p > -4096 ? NULL : (stasis_tree_spawn_control_t *)p;
}

void stasis_tree_spawn_control_unmap(stasis_tree_spawn_control_t *control) {
    stasis_syscall2(STASIS_NR_munmap, (long)control, sizeof *control);
}

void stasis_tree_spawn_abort(stasis_tree_spawn_control_t *control) {
    __atomic_store_n(&control->abort, 1, __ATOMIC_SEQ_CST);
    stasis_syscall6(TREE_NR_futex, (long)&control->ready, TREE_FUTEX_WAKE, 0x7fffffff, 0, 0, 0);
    stasis_syscall6(TREE_NR_futex, (long)&control->joined, TREE_FUTEX_WAKE, 0x7fffffff, 0, 0, 0);
    stasis_syscall6(TREE_NR_futex, (long)&control->settled, TREE_FUTEX_WAKE, 0x7fffffff, 0, 0, 0);
}

/* Records member `index`'s failure (the first one wins `failed`; every one keeps its step). */
static void record(stasis_tree_spawn_control_t *c, int index, int step, long result) {
    c->step[index] = step;
    c->error[index] = result < 0 ? (int32_t)-result : 0;
    int32_t none = 0;
    __atomic_compare_exchange_n(&c->failed, &none, index + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

__attribute__((noreturn)) static void give_up(stasis_tree_spawn_control_t *c, int index, int step, long result) {
    record(c, index, step, result);
    stasis_syscall1(STASIS_NR_exit_group, 1);
    __builtin_unreachable();
}

static int64_t now_ms(void) {
    int64_t t[2] = {0, 0};
    stasis_syscall2(STASIS_NR_clock_gettime, TREE_CLOCK_MONOTONIC, (long)t);
    return t[0] * 1000 + t[1] / 1000000;
}

/* Adds one to a barrier word and wakes its waiters. */
static void arrive(volatile uint32_t *word) {
    __atomic_add_fetch(word, 1, __ATOMIC_SEQ_CST);
    stasis_syscall6(TREE_NR_futex, (long)word, TREE_FUTEX_WAKE, 0x7fffffff, 0, 0, 0);
}

/* Waits until *word reaches `want`. Exits quietly on abort, records a timeout. */
static void wait_for(const stasis_tree_spawn_t *tree, int index, volatile uint32_t *word, int32_t want) {
    stasis_tree_spawn_control_t *c = tree->control;
    int64_t deadline = now_ms() + STASIS_TREE_SPAWN_TIMEOUT_MS;
    for (;;) {
        uint32_t seen = __atomic_load_n(word, __ATOMIC_SEQ_CST);
        if (seen >= (uint32_t)want) return;
        if (__atomic_load_n(&c->abort, __ATOMIC_SEQ_CST)) stasis_syscall1(STASIS_NR_exit_group, 1);
        if (now_ms() > deadline) give_up(c, index, STASIS_TREE_STEP_TIMEOUT, 0);
        int64_t tick[2] = {0, 100 * 1000000};
        stasis_syscall6(TREE_NR_futex, (long)word, TREE_FUTEX_WAIT, seen, (long)tick, 0, 0);
    }
}

/* A zombie ends as it had: its exit code, or its signal with the default action (no core file). */
__attribute__((noreturn)) static void end_as_zombie(int32_t status) {
    if ((status & 0x7f) == 0) stasis_syscall1(STASIS_NR_exit_group, (status >> 8) & 0xff);
    int sig = status & 0x7f;
    uint64_t no_core[2] = {0, 0};
    stasis_syscall4(STASIS_NR_prlimit64, 0, TREE_RLIMIT_CORE, (long)no_core, 0);
    struct tree_sigaction default_action = {0, 0, 0, 0};
    stasis_syscall4(STASIS_NR_rt_sigaction, sig, (long)&default_action, 0, 8);
    uint64_t bit = 1ull << (sig - 1);
    stasis_syscall4(STASIS_NR_rt_sigprocmask, TREE_SIG_UNBLOCK, (long)&bit, 0, 8);
    stasis_syscall2(STASIS_NR_kill, stasis_syscall0(STASIS_NR_getpid), sig);
    stasis_syscall1(STASIS_NR_exit_group, 128 + sig); /* a signal whose default action does not kill */
    __builtin_unreachable();
}

/* A zombie in a user namespace of ours (plan.keep_restore_capability) holds no capability, like every
 * restored process there (its restorer drops them): /proc/PID/stat shows a zombie's exit status only to a
 * reader whose capabilities include the zombie's, and the tree's next checkpoint reads it so. */
static void drop_capabilities(void) {
    struct { uint32_t version; int32_t pid; } header = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
    uint32_t none[6] = {0, 0, 0, 0, 0, 0};
    stasis_syscall2(126 /* capset */, (long)&header, (long)none); /* lowering one's own cannot fail */
}

static long clone_member(const stasis_tree_spawn_t *tree, int index);

/* Steps 1-7 of stasis_tree_spawn.h for member `index`, in the new process. */
__attribute__((noreturn)) static void member(const stasis_tree_spawn_t *tree, int index) {
    stasis_tree_spawn_control_t *c = tree->control;
    const stasis_tree_spawn_member_t *m = &tree->members[index];
    c->started[index] = 1;
    uint64_t all = ~0ull;
    stasis_syscall4(STASIS_NR_rt_sigprocmask, TREE_SIG_SETMASK, (long)&all, 0, 8);
    struct tree_sigaction default_action = {0, 0, 0, 0};
    stasis_syscall4(STASIS_NR_rt_sigaction, STASIS_SIGCHLD, (long)&default_action, 0, 8);

    long r;
    if (m->new_session) {
        r = stasis_syscall0(STASIS_NR_setsid);
        if (r < 0) give_up(c, index, STASIS_TREE_STEP_SETSID, r);
    } else if (m->pgid == m->pid) {
        r = stasis_syscall2(TREE_NR_setpgid, 0, 0);
        if (r < 0) give_up(c, index, STASIS_TREE_STEP_OWN_GROUP, r);
    }
    arrive(&c->ready);

    for (int i = 0; i < tree->count; i++) {
        if (tree->members[i].creator != index) continue;
        r = clone_member(tree, i);
        if (r < 0) give_up(c, i, STASIS_TREE_STEP_CLONE, r);
    }

    wait_for(tree, index, &c->ready, tree->count);
    /* pgid 0: stay in the group inherited from restart (a namespace's init: restart's group is not
     * visible inside, so it cannot be named) */
    if (!m->new_session && m->pgid != 0 && stasis_syscall1(TREE_NR_getpgid, 0) != m->pgid) {
        r = stasis_syscall2(TREE_NR_setpgid, 0, m->pgid);
        if (r < 0) give_up(c, index, STASIS_TREE_STEP_JOIN_GROUP, r);
    }
    arrive(&c->joined);
    wait_for(tree, index, &c->joined, tree->count);

    if (m->kind != STASIS_TREE_SPAWN_RESTORE) {
        stasis_syscall2(STASIS_NR_prctl, TREE_PR_SET_NAME, (long)m->name);
        if (m->kind == STASIS_TREE_SPAWN_ZOMBIE) {
            if (m->plan.keep_restore_capability) drop_capabilities();
            end_as_zombie(m->exit_status);
        }
        stasis_syscall1(STASIS_NR_exit_group, 0);
    }

    /* Stand-in children are reaped, zombie children left as they are; then the signals their ends sent. */
    uint64_t sent = 0;
    for (int i = 0; i < tree->count; i++) {
        const stasis_tree_spawn_member_t *child = &tree->members[i];
        if (child->creator != index || child->kind == STASIS_TREE_SPAWN_RESTORE) continue;
        uint8_t info[128];
        int options = TREE_WEXITED | TREE_WALL | (child->kind == STASIS_TREE_SPAWN_ZOMBIE ? TREE_WNOWAIT : 0);
        do r = stasis_syscall5(STASIS_NR_waitid, TREE_P_PID, child->pid, (long)info, options, 0);
        while (r == -4);
        if (r < 0) give_up(c, index, STASIS_TREE_STEP_WAIT_CHILD, r);
        if (child->exit_signal > 0 && child->exit_signal <= 64) sent |= 1ull << (child->exit_signal - 1);
    }
    if (sent) {
        int64_t no_wait[2] = {0, 0};
        uint8_t info[128];
        while (stasis_syscall4(TREE_NR_rt_sigtimedwait, (long)&sent, (long)info, (long)no_wait, 8) > 0) {
        }
    }
    arrive(&c->settled);
    wait_for(tree, index, &c->settled, tree->live);

    if (m->death_signal > 0) {
        r = stasis_syscall2(STASIS_NR_prctl, TREE_PR_SET_PDEATHSIG, m->death_signal);
        if (r < 0) give_up(c, index, STASIS_TREE_STEP_DEATH_SIGNAL, r);
    }
    int32_t error = 0;
    int failed = stasis_spawn_install(&m->plan, &error);
    if (failed) {
        int step = failed == STASIS_SPAWN_FAILED_EPOLL ? STASIS_TREE_STEP_EPOLL
                 : failed == STASIS_SPAWN_FAILED_CHDIR ? STASIS_TREE_STEP_CHDIR : STASIS_TREE_STEP_DESCRIPTORS;
        give_up(c, index, step, -(long)error);
    }
    r = stasis_spawn_exec(&m->plan);
    give_up(c, index, STASIS_TREE_STEP_EXEC, r);
}

/* clone3 with set_tid = the member's PID (fork semantics: the child goes on on a copy of this stack). */
static long clone_member(const stasis_tree_spawn_t *tree, int index) {
    const stasis_tree_spawn_member_t *m = &tree->members[index];
    struct clone_args_v2 args = {0};
    int32_t tid = m->pid;
    args.exit_signal = (uint64_t)(m->exit_signal > 0 ? m->exit_signal : 0);
    args.set_tid = (uint64_t)&tid;
    args.set_tid_size = 1;
    long pid = stasis_syscall2(STASIS_NR_clone3, (long)&args, sizeof args);
    if (pid == 0) member(tree, index);
    if (pid > 0) tree->control->started[index] = 1;
    return pid;
}

void stasis_tree_spawn_become(const stasis_tree_spawn_t *tree, int index) { member(tree, index); }

int stasis_tree_spawn_start(const stasis_tree_spawn_t *tree) {
    if (tree->count < 1 || tree->count > STASIS_TREE_SPAWN_MAX || tree->members[0].creator != -1) return -22;
    return (int)clone_member(tree, 0);
}
