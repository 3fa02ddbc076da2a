/* stasis_spawn.h: starting the restorer from the launcher.
 *
 * clone3 (with set_tid when a PID is wanted), then in the child only raw
 * system calls: install the descriptor plan, chdir, umask, execve. C because
 * the child of a clone must not run Swift (locks held by other threads). */
#ifndef STASIS_SPAWN_H
#define STASIS_SPAWN_H

#include <stdint.h>

typedef struct stasis_fd_move {
    int32_t source; /* open in the launcher, close-on-exec */
    int32_t target; /* the number the program expects */
    int32_t close_on_exec; /* informational: the restorer sets FD_CLOEXEC after its own exec */
    int32_t reserved;
} stasis_fd_move_t;

/* epoll_ctl(ADD) in the child, once every descriptor has its number: epoll keys on fd numbers. */
typedef struct stasis_epoll_add {
    int32_t epoll_fd;
    int32_t fd;
    uint32_t events;
    uint32_t reserved;
    uint64_t data;
} stasis_epoll_add_t;

typedef struct stasis_spawn_plan {
    const char *_Nonnull path;                 /* the restorer */
    char *_Nullable const *_Nonnull argv;
    const stasis_fd_move_t *_Nullable moves;
    int32_t move_count;
    int32_t keep_stdio;     /* bit i set: keep the launcher's fd i (0-2) as it is */
    const char *_Nullable cwd;
    uint32_t umask;
    int32_t wanted_pid;     /* 0: any */
    const stasis_epoll_add_t *_Nullable epoll_adds;
    int32_t epoll_add_count;
    /* 1: inside a user namespace of ours, keep CAP_CHECKPOINT_RESTORE (only it) as an ambient
     * capability across the exec of the restorer, which drops it before the program runs
     * (stasis_namespace_spawn.h) */
    int32_t keep_restore_capability;
    /* 1: stasis_spawn fails with the errno of a refused set_tid instead of taking any PID (restart then
     * tries a PID namespace) */
    int32_t wanted_pid_only;
} stasis_spawn_plan_t;

/* Kernel objects the launcher recreates. Return an fd (close-on-exec) or -errno. */
int stasis_make_eventfd(uint64_t count, int32_t semaphore, int32_t nonblocking);
int stasis_make_epoll(void);
int stasis_make_signalfd(uint64_t mask, int32_t nonblocking);
int stasis_make_memfd(const char *_Nonnull name);
/* A listening socket bound to `address` (a stale UNIX socket file there is removed first). */
int stasis_make_listener(int32_t domain, int32_t type, int32_t protocol, uint32_t options,
                         const void *_Nonnull address, uint32_t address_bytes, int32_t receive_buffer, int32_t send_buffer,
                         int32_t backlog /* <= 0: SOMAXCONN */);
/* A socket whose peer is gone: TCP gets a reset (ECONNRESET on the next use), UNIX stream a closed
 * peer (end of file, EPIPE); other types an unconnected socket. */
int stasis_make_reset_socket(int32_t domain, int32_t type, int32_t protocol);
/* The path of a file handle on the file system with kernel device `kernel_dev` (major << 20 | minor),
 * via /proc/self/mountinfo and open_by_handle_at (needs CAP_DAC_READ_SEARCH). 0 or -errno. */
int stasis_path_of_handle(uint64_t kernel_dev, int32_t handle_type, const uint8_t *_Nonnull handle, uint32_t handle_bytes,
                          char *_Nonnull path, uint32_t path_capacity);
int stasis_make_inotify(int32_t nonblocking);
/* inotify_add_watch, removing and re-adding until the kernel hands out `wanted` as the watch
 * descriptor (it counts up); returns the descriptor it got, or -errno. */
int stasis_inotify_watch(int32_t fd, const char *_Nonnull path, uint32_t mask, int32_t wanted);
/* socketpair(AF_UNIX, type | SOCK_CLOEXEC): ends in pair[0], pair[1]; 0 or -errno. */
int stasis_make_socketpair(int32_t type, int32_t *_Nonnull pair);
int stasis_make_timerfd(int32_t clock_id, int32_t nonblocking, uint64_t ticks, int64_t value_sec, int64_t value_nsec,
                        int64_t interval_sec, int64_t interval_nsec);

/* Starts the child. Returns its pid, or -errno. *used_set_tid is 1 when the
 * wanted pid was obtained; *set_tid_error is the errno of a refused set_tid. */
int stasis_spawn(const stasis_spawn_plan_t *_Nonnull plan, int32_t *_Nonnull used_set_tid,
                 int32_t *_Nonnull set_tid_error);

/* prctl(PR_SET_CHILD_SUBREAPER, on): 0 or -errno (prctl is variadic, so Swift cannot call it). */
int stasis_set_child_subreaper(int32_t on);

/* XCR0 and the xsave size of this CPU. */
uint64_t stasis_cpu_xcr0(void);
uint32_t stasis_cpu_xsave_size(void);

#endif
