/* namespace_spawn.c: the init of a restore's PID namespace (stasis_namespace_spawn.h has the steps).
 * Everything after the clone runs raw system calls only: the launcher has other threads, and their
 * locks are copied held. */
#include "stasis_namespace_spawn.h"

#include <stddef.h>

#include "spawn_internal.h"
#include "stasis_syscall.h"

#define NS_CLONE_NEWNS 0x00020000ull
#define NS_CLONE_NEWUSER 0x10000000ull
#define NS_CLONE_NEWPID 0x20000000ull
#define NS_NR_mount 165
#define NS_MS_NOSUID 2
#define NS_MS_NODEV 4
#define NS_MS_NOEXEC 8
#define NS_MS_REC 16384
#define NS_MS_PRIVATE (1 << 18)
#define NS_O_WRONLY 1
#define NS_O_CLOEXEC 02000000
#define NS_WALL 0x40000000
#define NS_PR_SET_NAME 15
#define NS_SIG_SETMASK 2

static void report(int fd, int32_t kind, int32_t step, long error, int32_t value) {
    stasis_namespace_report_t r = {kind, step, error < 0 ? (int32_t)-error : 0, value};
    stasis_syscall3(STASIS_NR_write, fd, (long)&r, sizeof r); /* a pipe: whole, or the launcher is gone */
}

__attribute__((noreturn)) static void fail(int fd, int32_t step, long error) {
    report(fd, STASIS_NAMESPACE_FAILED, step, error, 0);
    stasis_syscall1(STASIS_NR_exit_group, 1);
    __builtin_unreachable();
}

/* Writes `text` (NUL-terminated) to `path`; 0 or -errno. */
static long write_file(const char *path, const char *text) {
    long fd = stasis_syscall3(STASIS_NR_open, (long)path, NS_O_WRONLY | NS_O_CLOEXEC, 0);
    if (fd < 0) return fd;
    size_t length = 0;
    while (text[length]) length++;
    long r = stasis_syscall3(STASIS_NR_write, fd, (long)text, (long)length);
    stasis_syscall1(STASIS_NR_close, fd);
    return r < 0 ? r : (size_t)r == length ? 0 : -5 /* EIO */;
}

/* "ID ID 1\n": one id mapped to itself. */
static void identity_map(char *out, uint32_t id) {
    char digits[16];
    int n = 0;
    do digits[n++] = (char)('0' + id % 10), id /= 10; while (id);
    int at = 0;
    for (int copy = 0; copy < 2; copy++) {
        for (int i = n - 1; i >= 0; i--) out[at++] = digits[i];
        out[at++] = ' ';
    }
    out[at++] = '1';
    out[at++] = '\n';
    out[at] = 0;
}

/* Steps 1 and 2: the maps, private mounts, a /proc of this PID namespace. */
static void set_up(const stasis_namespace_t *ns) {
    long r;
    if (ns->new_user) {
        char map[48];
        r = write_file("/proc/self/setgroups", "deny");
        if (r < 0) fail(ns->report_fd, STASIS_NAMESPACE_STEP_SETGROUPS, r);
        identity_map(map, ns->uid);
        r = write_file("/proc/self/uid_map", map);
        if (r < 0) fail(ns->report_fd, STASIS_NAMESPACE_STEP_UID_MAP, r);
        identity_map(map, ns->gid);
        r = write_file("/proc/self/gid_map", map);
        if (r < 0) fail(ns->report_fd, STASIS_NAMESPACE_STEP_GID_MAP, r);
    }
    /* Nothing mounted here may show on the host: the new /proc above all. */
    r = stasis_syscall5(NS_NR_mount, 0, (long)"/", 0, NS_MS_REC | NS_MS_PRIVATE, 0);
    if (r < 0) fail(ns->report_fd, STASIS_NAMESPACE_STEP_PRIVATE_MOUNTS, r);
    r = stasis_syscall5(NS_NR_mount, (long)"proc", (long)"/proc", (long)"proc", NS_MS_NOSUID | NS_MS_NODEV | NS_MS_NOEXEC, 0);
    if (r < 0) fail(ns->report_fd, STASIS_NAMESPACE_STEP_MOUNT_PROC, r);
    /* PIDs not chosen (a lazy restart's pager) come after every PID and TID the image needs. Not
     * fatal: at worst a thread gets a new TID, and the restorer says so. */
    if (ns->last_pid > 1) {
        char text[16];
        uint32_t value = (uint32_t)ns->last_pid;
        int n = 0;
        char digits[12];
        do digits[n++] = (char)('0' + value % 10), value /= 10; while (value);
        for (int i = 0; i < n; i++) text[i] = digits[n - 1 - i];
        text[n] = 0;
        write_file("/proc/sys/kernel/ns_last_pid", text);
    }
}

/* Step 4: every descriptor but the report pipe goes (the restorer's status pipe above all: restart
 * waits for its end of file), then every process of the namespace is reaped until `program` ends. */
__attribute__((noreturn)) static void reap_until(int report_fd, int32_t program) {
    stasis_syscall2(STASIS_NR_prctl, NS_PR_SET_NAME, (long)"stasis-init");
    uint64_t all = ~0ull; /* nothing to handle: wait4 needs no SIGCHLD */
    stasis_syscall4(STASIS_NR_rt_sigprocmask, NS_SIG_SETMASK, (long)&all, 0, 8);
    if (report_fd > 0) stasis_syscall3(STASIS_NR_close_range, 0, report_fd - 1, 0);
    stasis_syscall3(STASIS_NR_close_range, report_fd + 1, ~0u, 0);
    for (;;) {
        int32_t status = 0;
        long pid = stasis_syscall4(STASIS_NR_wait4, -1, (long)&status, NS_WALL, 0);
        if (pid == -4 /* EINTR */) continue;
        if (pid < 0) break; /* ECHILD: the program is gone without a status (cannot happen: it is our child) */
        if (pid == program) {
            report(report_fd, STASIS_NAMESPACE_ENDED, 0, 0, status);
            stasis_syscall1(STASIS_NR_exit_group, 0);
        }
    }
    stasis_syscall1(STASIS_NR_exit_group, 1);
    __builtin_unreachable();
}

static long clone_init(const stasis_namespace_t *ns) {
    struct clone_args_v2 args = {0};
    args.flags = NS_CLONE_NEWPID | NS_CLONE_NEWNS | (ns->new_user ? NS_CLONE_NEWUSER : 0);
    args.exit_signal = STASIS_SIGCHLD;
    return stasis_syscall2(STASIS_NR_clone3, (long)&args, sizeof args);
}

/* clone3 with set_tid = pid in this namespace only (fork semantics). */
static long clone_with_pid(int32_t pid) {
    struct clone_args_v2 args = {0};
    int32_t tid = pid;
    args.exit_signal = STASIS_SIGCHLD;
    args.set_tid = (uint64_t)&tid;
    args.set_tid_size = 1;
    return stasis_syscall2(STASIS_NR_clone3, (long)&args, sizeof args);
}

/* A child waits here until restart (or run) has found its PID on the host. */
static void wait_for_release(const stasis_namespace_t *ns) {
    if (ns->release_fd < 0) return;
    char byte = 0;
    long n;
    do n = stasis_syscall3(STASIS_NR_read, ns->release_fd, (long)&byte, 1); while (n == -4 /* EINTR */);
    if (n != 1) stasis_syscall1(STASIS_NR_exit_group, 1); /* the launcher gave up */
    stasis_syscall1(STASIS_NR_close, ns->release_fd);
}

int stasis_spawn_in_namespace(const stasis_spawn_plan_t *plan, const stasis_namespace_t *ns) {
    long init = clone_init(ns);
    if (init != 0) return (int)init;
    set_up(ns);
    if (plan->wanted_pid == 1) {
        report(ns->report_fd, STASIS_NAMESPACE_STARTED, 0, 0, 0);
        stasis_spawn_child(plan); /* the report pipe is not among the plan's descriptors: it goes at the exec */
    }
    long program = clone_with_pid(plan->wanted_pid);
    if (program == 0) {
        wait_for_release(ns);
        stasis_spawn_child(plan);
    }
    if (program < 0) fail(ns->report_fd, STASIS_NAMESPACE_STEP_CLONE, program);
    report(ns->report_fd, STASIS_NAMESPACE_STARTED, 0, 0, (int32_t)program);
    reap_until(ns->report_fd, (int32_t)program);
}

int stasis_tree_spawn_in_namespace(const stasis_tree_spawn_t *tree, const stasis_namespace_t *ns) {
    if (tree->count < 1 || tree->count > STASIS_TREE_SPAWN_MAX || tree->members[0].creator != -1) return -22;
    long init = clone_init(ns);
    if (init != 0) return (int)init;
    set_up(ns);
    if (tree->members[0].pid == 1) {
        report(ns->report_fd, STASIS_NAMESPACE_STARTED, 0, 0, 0);
        stasis_syscall1(STASIS_NR_close, ns->report_fd);
        stasis_tree_spawn_become(tree, 0);
    }
    long root = stasis_tree_spawn_start(tree);
    if (root < 0) fail(ns->report_fd, STASIS_NAMESPACE_STEP_CLONE, root);
    report(ns->report_fd, STASIS_NAMESPACE_STARTED, 0, 0, (int32_t)root);
    reap_until(ns->report_fd, (int32_t)root);
}

int stasis_run_in_namespace(const char *path, char *const *argv, char *const *envp, uint64_t unblock_mask,
                            const stasis_namespace_t *ns) {
    long init = clone_init(ns);
    if (init != 0) return (int)init;
    set_up(ns);
    struct clone_args_v2 args = {0};
    args.exit_signal = STASIS_SIGCHLD;
    long program = stasis_syscall2(STASIS_NR_clone3, (long)&args, sizeof args);
    if (program == 0) {
        wait_for_release(ns);
        stasis_syscall4(STASIS_NR_rt_sigprocmask, 1 /* SIG_UNBLOCK */, (long)&unblock_mask, 0, 8);
        stasis_syscall3(STASIS_NR_execve, (long)path, (long)argv, (long)envp);
        stasis_syscall1(STASIS_NR_exit_group, 127);
    }
    if (program < 0) fail(ns->report_fd, STASIS_NAMESPACE_STEP_CLONE, program);
    report(ns->report_fd, STASIS_NAMESPACE_STARTED, 0, 0, (int32_t)program);
    reap_until(ns->report_fd, (int32_t)program);
}
