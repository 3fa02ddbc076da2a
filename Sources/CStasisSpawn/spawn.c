#define _GNU_SOURCE
/* spawn.c: see stasis_spawn.h. */
#include "stasis_spawn.h"

#include <stddef.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/inotify.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>
#include "stasis_syscall.h"
#include "spawn_internal.h"

/* The plan's moves as one parallel assignment: a source may be another move's target (the launcher
 * leaves each new descriptor where the kernel put it, the lowest free number, so the program's fds
 * need about N numbers and not 2N). Several moves may read one source (dup'ed fds).
 *
 * Algorithm (register allocators' parallel move): a "value" is what fd v held at the start; where[v]
 * is the fd that holds it now, pending[v] the moves still to read it.
 *   1. a move onto its own source only clears close-on-exec
 *   2. a move is ready when its target holds no value still pending: dup3 it, and when the last
 *      reader of a value is done, the move onto that value's fd (if any) becomes ready
 *   3. nothing ready and moves left: they form cycles, and every target left is an open fd. Copy one
 *      such target's value to the lowest free fd (so not a target), which makes its move ready
 * Each move is queued once: O(moves + highest fd). Scratch comes from mmap (no malloc in the child).
 * 0, or -errno. */
static long install_moves(const stasis_spawn_plan_t *plan, int *max_target) {
    int n = plan->move_count, top = 3;
    *max_target = 2;
    for (int i = 0; i < n; i++) {
        const stasis_fd_move_t *m = &plan->moves[i];
        if (m->source < 0 || m->target < 0) return -9; /* EBADF */
        if (m->source >= top) top = m->source + 1;
        if (m->target >= top) top = m->target + 1;
        if (m->target > *max_target) *max_target = m->target;
    }
    unsigned long bytes = ((unsigned long)top * 3 + (unsigned long)n + 1) * sizeof(int32_t);
    long memory = stasis_syscall6(STASIS_NR_mmap, 0, (long)bytes, 3 /* PROT_READ | PROT_WRITE */,
                                  0x22 /* MAP_PRIVATE | MAP_ANONYMOUS */, -1, 0);
    if (memory < 0 && memory > -4096) return memory;
    int32_t *pending = (int32_t *)memory, *where = pending + top, *by_target = where + top, *queue = by_target + top;
    for (int fd = 0; fd < top; fd++) {
        where[fd] = fd;
        by_target[fd] = -1;
    }
    int head = 0, tail = 0;
    for (int i = 0; i < n; i++) {
        const stasis_fd_move_t *m = &plan->moves[i];
        if (m->source == m->target) {
            /* close-on-exec is set by the restorer: exec'ing it would close those fds here */
            long r = stasis_syscall3(STASIS_NR_fcntl, m->target, 2 /* F_SETFD */, 0);
            if (r < 0) return r;
            continue;
        }
        by_target[m->target] = i;
        pending[m->source]++;
    }
    for (int i = 0; i < n; i++) {
        const stasis_fd_move_t *m = &plan->moves[i];
        if (by_target[m->target] == i && pending[m->target] == 0) {
            by_target[m->target] = -1;
            queue[tail++] = i;
        }
    }
    int scan = 0;
    for (;;) {
        while (head < tail) {
            const stasis_fd_move_t *m = &plan->moves[queue[head++]];
            long r = stasis_syscall3(STASIS_NR_dup3, where[m->source], m->target, 0);
            if (r < 0) return r;
            int v = m->source;
            if (--pending[v] > 0) continue;
            if (where[v] != v) stasis_syscall1(STASIS_NR_close, where[v]); /* a copy made in step 3 */
            if (by_target[v] >= 0) {
                queue[tail++] = by_target[v];
                by_target[v] = -1;
            }
        }
        while (scan < n && by_target[plan->moves[scan].target] != scan) scan++;
        if (scan == n) break;
        int t = plan->moves[scan].target;
        long copy = stasis_syscall3(STASIS_NR_fcntl, t, 1030 /* F_DUPFD_CLOEXEC */, 0);
        if (copy < 0) return copy;
        where[t] = (int32_t)copy;
        by_target[t] = -1;
        queue[tail++] = scan;
    }
    /* Keep the targets (by_target is all -1 again: every move was queued). */
    for (int i = 0; i < n; i++) by_target[plan->moves[i].target] = 1;
    for (int fd = 0; fd <= *max_target; fd++) {
        int keep = (fd <= 2 && (plan->keep_stdio >> fd & 1)) || by_target[fd] == 1;
        if (!keep) stasis_syscall1(STASIS_NR_close, fd);
    }
    stasis_syscall2(STASIS_NR_munmap, memory, (long)bytes);
    return 0;
}

/* In the child: the plan's descriptors at their numbers, every other fd closed, epoll registrations,
 * cwd, umask. Returns 0, or the step that failed (exit status 125 dup3, 124 epoll_ctl, 123 chdir). */
int stasis_spawn_install(const stasis_spawn_plan_t *plan, int32_t *error) {
    int max_target = 2;
    long moved = install_moves(plan, &max_target);
    if (moved < 0) {
        *error = (int32_t)-moved;
        return STASIS_SPAWN_FAILED_DESCRIPTORS;
    }
    /* Close what the program did not have above its numbers (the sources, the launcher's own). */
    stasis_syscall3(STASIS_NR_close_range, max_target + 1, ~0u, 0);
    for (int i = 0; i < plan->epoll_add_count; i++) {
        const stasis_epoll_add_t *a = &plan->epoll_adds[i];
        struct __attribute__((packed)) { uint32_t events; uint64_t data; } event = {a->events, a->data};
        long r = stasis_syscall4(STASIS_NR_epoll_ctl, a->epoll_fd, 1 /* EPOLL_CTL_ADD */, a->fd, (long)&event);
        if (r < 0) {
            *error = (int32_t)-r;
            return STASIS_SPAWN_FAILED_EPOLL;
        }
    }
    if (plan->cwd) {
        long r = stasis_syscall1(STASIS_NR_chdir, (long)plan->cwd);
        if (r < 0) {
            *error = (int32_t)-r;
            return STASIS_SPAWN_FAILED_CHDIR;
        }
    }
    stasis_syscall1(STASIS_NR_umask, plan->umask);
    return 0;
}

#define SPAWN_CAP_CHECKPOINT_RESTORE 40
#define SPAWN_PR_CAP_AMBIENT 47
#define SPAWN_PR_CAP_AMBIENT_RAISE 2

/* CAP_CHECKPOINT_RESTORE alone, effective, permitted, inheritable and ambient (it survives the exec
 * of a program as a non-root user only as an ambient capability). 0 or -errno. */
static long keep_restore_capability(void) {
    struct { uint32_t version; int32_t pid; } header = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
    struct { uint32_t effective, permitted, inheritable; } data[2] = {{0, 0, 0}, {0, 0, 0}};
    uint32_t bit = 1u << (SPAWN_CAP_CHECKPOINT_RESTORE - 32);
    data[1].effective = data[1].permitted = data[1].inheritable = bit;
    long r = stasis_syscall2(126 /* capset */, (long)&header, (long)data);
    if (r < 0) return r;
    return stasis_syscall5(STASIS_NR_prctl, SPAWN_PR_CAP_AMBIENT, SPAWN_PR_CAP_AMBIENT_RAISE,
                           SPAWN_CAP_CHECKPOINT_RESTORE, 0, 0);
}

/* execve of the restorer with an empty environment; returns -errno. */
long stasis_spawn_exec(const stasis_spawn_plan_t *plan) {
    static char *const empty_env[] = {NULL};
    if (plan->keep_restore_capability) {
        long r = keep_restore_capability();
        if (r < 0) return r;
    }
    return stasis_syscall3(STASIS_NR_execve, (long)plan->path, (long)plan->argv, (long)empty_env);
}

void stasis_spawn_child(const stasis_spawn_plan_t *plan) {
    int32_t error = 0;
    int failed = stasis_spawn_install(plan, &error);
    if (failed) stasis_syscall1(STASIS_NR_exit_group, failed);
    stasis_spawn_exec(plan);
    stasis_syscall1(STASIS_NR_exit_group, STASIS_SPAWN_FAILED_EXEC);
    __builtin_unreachable();
}

static long clone3_fork(int32_t wanted) {
    struct clone_args_v2 args = {0};
    int32_t tid = wanted;
    args.exit_signal = STASIS_SIGCHLD;
    if (wanted > 0) {
        args.set_tid = (uint64_t)&tid;
        args.set_tid_size = 1;
    }
    return stasis_syscall2(STASIS_NR_clone3, (long)&args, sizeof args);
}

int stasis_spawn(const stasis_spawn_plan_t *plan, int32_t *used_set_tid, int32_t *set_tid_error) {
    *used_set_tid = 0;
    *set_tid_error = 0;
    long pid = -1;
    if (plan->wanted_pid > 0) {
        pid = clone3_fork(plan->wanted_pid);
        if (pid == 0) stasis_spawn_child(plan);
        if (pid > 0) {
            *used_set_tid = 1;
            return (int)pid;
        }
        *set_tid_error = (int32_t)-pid;
        if (plan->wanted_pid_only) return (int)pid;
    }
    pid = clone3_fork(0);
    if (pid == 0) stasis_spawn_child(plan);
    return (int)pid;
}

int stasis_set_child_subreaper(int32_t on) {
    return (int)stasis_syscall5(STASIS_NR_prctl, 36 /* PR_SET_CHILD_SUBREAPER */, on ? 1 : 0, 0, 0, 0);
}

uint64_t stasis_cpu_xcr0(void) { return stasis_xgetbv0(); }
uint32_t stasis_cpu_xsave_size(void) { return stasis_xsave_size(); }

int stasis_make_eventfd(uint64_t count, int32_t semaphore, int32_t nonblocking) {
    /* eventfd2 takes an unsigned int initial value; larger counters are written in afterwards. */
    int flags = 02000000 /* EFD_CLOEXEC */ | (semaphore ? 1 : 0) | (nonblocking ? 04000 : 0);
    long fd = stasis_syscall2(STASIS_NR_eventfd2, count <= 0xffffffffu ? (long)count : 0, flags);
    if (fd >= 0 && count > 0xffffffffu) {
        if (stasis_syscall3(STASIS_NR_write, fd, (long)&count, 8) != 8) {
            stasis_syscall1(STASIS_NR_close, fd);
            return -22;
        }
    }
    return (int)fd;
}

int stasis_make_epoll(void) { return (int)stasis_syscall1(STASIS_NR_epoll_create1, 02000000 /* EPOLL_CLOEXEC */); }

/* timerfd_create + timerfd_settime (relative: fdinfo gives the remaining time) + the unread
 * expirations through TFD_IOC_SET_TICKS, which CRIU leaves out. */
int stasis_make_timerfd(int32_t clock_id, int32_t nonblocking, uint64_t ticks, int64_t value_sec, int64_t value_nsec,
                        int64_t interval_sec, int64_t interval_nsec) {
    long fd = stasis_syscall2(283 /* timerfd_create */, clock_id, 02000000 | (nonblocking ? 04000 : 0));
    if (fd < 0) return (int)fd;
    /* Images from before timerfd_gettime was called at the checkpoint may show a periodic timer that
     * had expired unread as value 0: its next expiry is at most one interval away. */
    if (!value_sec && !value_nsec && (interval_sec || interval_nsec)) {
        value_sec = interval_sec;
        value_nsec = interval_nsec;
    }
    if (value_sec || value_nsec) {
        struct { int64_t is, in, vs, vn; } spec = {interval_sec, interval_nsec, value_sec, value_nsec};
        long r = stasis_syscall4(286 /* timerfd_settime */, fd, 0, (long)&spec, 0);
        if (r < 0) {
            stasis_syscall1(STASIS_NR_close, fd);
            return (int)r;
        }
    }
    if (ticks) stasis_syscall3(STASIS_NR_ioctl, fd, 0x40085400 /* TFD_IOC_SET_TICKS */, (long)&ticks);
    return (int)fd;
}

int stasis_make_signalfd(uint64_t mask, int32_t nonblocking) {
    return (int)stasis_syscall4(289 /* signalfd4 */, -1, (long)&mask, 8, 02000000 | (nonblocking ? 04000 : 0));
}

int stasis_make_memfd(const char *name) {
    return (int)stasis_syscall2(319 /* memfd_create */, (long)name, 1 /* MFD_CLOEXEC */ | 2 /* MFD_ALLOW_SEALING */);
}

int stasis_make_listener(int32_t domain, int32_t type, int32_t protocol, uint32_t options, const void *address,
                         uint32_t address_bytes, int32_t receive_buffer, int32_t send_buffer, int32_t backlog) {
    int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
    if (fd < 0) return -errno;
    int one = 1;
    /* Always reuse the address: the checkpointed process died a moment ago and its connections may
     * sit in TIME_WAIT. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (options & 2) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (options & 4) setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    if (receive_buffer > 0) { int v = receive_buffer / 2; setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v); }
    if (send_buffer > 0) { int v = send_buffer / 2; setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v); }
    if (domain == AF_UNIX && address_bytes > sizeof(sa_family_t)) {
        const struct sockaddr_un *un = address;
        struct stat st;
        if (un->sun_path[0] && stat(un->sun_path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(un->sun_path);
    }
    if (bind(fd, address, address_bytes) != 0 || listen(fd, backlog > 0 ? backlog : SOMAXCONN) != 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    return fd;
}

int stasis_make_reset_socket(int32_t domain, int32_t type, int32_t protocol) {
    if ((domain == AF_INET || domain == AF_INET6) && type == SOCK_STREAM) {
        /* Connect to a throwaway loopback listener, accept, and close the accepted end with a zero
         * linger: the kernel answers with RST, so the program's next read or write gets ECONNRESET. */
        int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t length = sizeof any;
        if (listener < 0 || bind(listener, (struct sockaddr *)&any, sizeof any) != 0 || listen(listener, 1) != 0 ||
            getsockname(listener, (struct sockaddr *)&any, &length) != 0) {
            if (listener >= 0) close(listener);
            return -errno;
        }
        int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (client < 0 || connect(client, (struct sockaddr *)&any, sizeof any) != 0) {
            int error = errno;
            close(listener);
            if (client >= 0) close(client);
            return -error;
        }
        int accepted = accept(listener, NULL, NULL);
        struct linger abort_on_close = {1, 0};
        if (accepted >= 0) {
            setsockopt(accepted, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
            close(accepted);
        }
        close(listener);
        return client;
    }
    if (domain == AF_UNIX && (type == SOCK_STREAM || type == SOCK_SEQPACKET)) {
        int pair[2];
        if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, pair) != 0) return -errno;
        close(pair[1]);
        return pair[0];
    }
    int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
    return fd < 0 ? -errno : fd;
}

int stasis_make_socketpair(int32_t type, int32_t *pair) {
    int fds[2];
    if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds) != 0) return -errno;
    pair[0] = fds[0];
    pair[1] = fds[1];
    return 0;
}

int stasis_path_of_handle(uint64_t kernel_dev, int32_t handle_type, const uint8_t *handle, uint32_t handle_bytes,
                          char *path, uint32_t path_capacity) {
    unsigned major = (unsigned)(kernel_dev >> 20), minor = (unsigned)(kernel_dev & 0xfffff);
    FILE *mounts = fopen("/proc/self/mountinfo", "re");
    if (!mounts) return -errno;
    char line[4096], mount_point[4096] = {0};
    while (fgets(line, sizeof line, mounts)) {
        unsigned m1, m2;
        char point[4096];
        if (sscanf(line, "%*d %*d %u:%u %*s %4095s", &m1, &m2, point) == 3 && m1 == major && m2 == minor) {
            strcpy(mount_point, point);
            break;
        }
    }
    fclose(mounts);
    if (!mount_point[0]) return -ENOENT;
    int mount_fd = open(mount_point, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mount_fd < 0) return -errno;
    struct { unsigned int bytes; int type; unsigned char data[128]; } fh;
    if (handle_bytes > sizeof fh.data) { close(mount_fd); return -EINVAL; }
    fh.bytes = handle_bytes;
    fh.type = handle_type;
    memcpy(fh.data, handle, handle_bytes);
    int fd = open_by_handle_at(mount_fd, (struct file_handle *)&fh, O_PATH | O_CLOEXEC);
    int error = errno;
    close(mount_fd);
    if (fd < 0) return -error;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, path_capacity - 1);
    error = errno;
    close(fd);
    if (n < 0) return -error;
    path[n] = 0;
    return 0;
}

int stasis_make_inotify(int32_t nonblocking) {
    int fd = inotify_init1(IN_CLOEXEC | (nonblocking ? IN_NONBLOCK : 0));
    return fd < 0 ? -errno : fd;
}

int stasis_inotify_watch(int32_t fd, const char *path, uint32_t mask, int32_t wanted) {
    for (int tries = 0; tries < 100000; tries++) {
        int wd = inotify_add_watch(fd, path, mask);
        if (wd < 0) return -errno;
        if (wd >= wanted) return wd;
        inotify_rm_watch(fd, wd); /* the next add gets the next number */
    }
    return -EAGAIN;
}
