/* stasis_descriptor_abi.h: the FILE_DESCRIPTOR record of a Stasis image and the per-kind state that
 * follows it (part of the image format: stasis_image_abi.h includes it; Docs/IMAGE-FORMAT.md 4.6). */
#ifndef STASIS_DESCRIPTOR_ABI_H
#define STASIS_DESCRIPTOR_ABI_H

#include <stdint.h>

/* FILE_DESCRIPTOR kinds */
enum {
    STASIS_FD_INHERIT = 0,   /* fd 0-2 on a terminal, pipe or socket: takes restart's own */
    STASIS_FD_REGULAR = 1,   /* regular file, reopened by path at its offset */
    STASIS_FD_DEVICE = 2,    /* a stateless character device such as /dev/null, reopened by path */
    STASIS_FD_DIRECTORY = 3, /* a directory, reopened by path at its offset */
    STASIS_FD_PIPE = 4,      /* a pipe end; object_id = pipe inode; the first record of a pipe carries its data */
    STASIS_FD_EVENTFD = 5,   /* object_id = counter, object_flags = STASIS_EVENTFD_SEMAPHORE */
    STASIS_FD_EPOLL = 6,     /* extra = stasis_epoll_entry_t per registered descriptor */
    STASIS_FD_TIMERFD = 7,   /* object_id = clock id; extra = stasis_timerfd_state_t */
    STASIS_FD_TERMINAL = 8,  /* a terminal: restart's own terminal takes its place, with these modes;
                                extra = the kernel's struct termios (TCGETS, 36 bytes) */
    STASIS_FD_UNSUPPORTED = 9, /* not saved (--skip-unsupported); path = what it was; restart puts /dev/null */
    STASIS_FD_SIGNALFD = 10,   /* object_id = the signal mask */
    STASIS_FD_DELETED = 11,    /* a regular file deleted while open (or O_TMPFILE): its contents are the
                                  record's page data (size = object_id bytes); recreated unlinked */
    STASIS_FD_MEMFD = 12,      /* memfd_create: contents as for DELETED; object_flags = F_GET_SEALS */
    STASIS_FD_SOCKET_LISTEN = 13, /* a listening socket: re-created, bound to its address, listening;
                                     extra = stasis_socket_state_t, then for TCP a u32 backlog */
    STASIS_FD_SOCKET_RESET = 14,  /* any other socket: extra = stasis_socket_state_t, then for a UNIX
                                     stream the bytes queued for reading (peeked), for a UNIX
                                     datagram socket its queued messages as (u32 length, bytes)...;
                                     object_id = its inode.
                                     Two records that are each other's peer come back as a socketpair
                                     with those bytes; otherwise the peer is gone (TCP: reset; UNIX: closed) */
    STASIS_FD_FIFO = 15,          /* a named FIFO: reopened by path; extra = its buffered bytes (first
                                     record of that FIFO only), object_id = inode */
    STASIS_FD_PTY_MASTER = 16,    /* a pseudo-terminal master the program opened: object_id = its pty
                                     number; extra = the slave's struct termios (36) + winsize (8). A new
                                     pair is made; TERMINAL records of /dev/pts/<that number> get its slave */
    STASIS_FD_INOTIFY = 17,       /* an inotify instance: extra = one stasis_inotify_watch_t per watch
                                     (version 2; version 1 held the fdinfo text); watches are re-added
                                     by file handle, queued events are lost */
};

/* A socket's identity and options (getsockopt, getsockname). */
typedef struct stasis_socket_state {
    int32_t domain, type, protocol; /* SO_DOMAIN, SO_TYPE, SO_PROTOCOL */
    uint32_t options;               /* STASIS_SOCKET_* */
    int32_t receive_buffer, send_buffer; /* SO_RCVBUF, SO_SNDBUF (as the kernel reports them) */
    uint32_t address_bytes;         /* of address */
    uint32_t peer_inode;            /* AF_UNIX: the peer socket's inode (sock_diag), 0 if none; a peer
                                       that is another record's object_id makes the two a socketpair */
    uint8_t address[128];           /* getsockname */
} stasis_socket_state_t;
_Static_assert(sizeof(stasis_socket_state_t) == 160, "image ABI: stasis_socket_state_t");
enum { STASIS_SOCKET_REUSEADDR = 1, STASIS_SOCKET_REUSEPORT = 2, STASIS_SOCKET_KEEPALIVE = 4 };
#define STASIS_TERMIOS_BYTES 36

/* A timerfd's remaining time, interval and unread expirations (from /proc/self/fdinfo). */
typedef struct stasis_timerfd_state {
    uint64_t ticks;
    int64_t value_sec, value_nsec;       /* remaining until the next expiration; 0 = disarmed */
    int64_t interval_sec, interval_nsec;
} stasis_timerfd_state_t;
_Static_assert(sizeof(stasis_timerfd_state_t) == 40, "image ABI: stasis_timerfd_state_t");
#define STASIS_EVENTFD_SEMAPHORE 1u

/* One registration of an epoll instance (from /proc/self/fdinfo). */
typedef struct stasis_epoll_entry {
    int32_t fd;
    uint32_t events;
    uint64_t data;
} stasis_epoll_entry_t;
_Static_assert(sizeof(stasis_epoll_entry_t) == 16, "image ABI: stasis_epoll_entry_t");

/* One watch of an inotify instance (from /proc/self/fdinfo's "inotify wd:… ino:… sdev:… mask:…
 * fhandle-bytes:… fhandle-type:… f_handle:…" line). */
#define STASIS_INOTIFY_HANDLE_MAX 128 /* MAX_HANDLE_SZ */
typedef struct stasis_inotify_watch {
    int32_t wd;             /* watch descriptor, > 0 */
    uint32_t mask;          /* IN_* events */
    uint64_t inode;         /* the watched inode (for inspect; restart finds the file by its handle) */
    uint64_t device;        /* its superblock's dev_t as the kernel keeps it: major << 20 | minor */
    int32_t handle_type;    /* file handle type (name_to_handle_at) */
    uint32_t handle_bytes;  /* used bytes of handle, at most STASIS_INOTIFY_HANDLE_MAX */
    uint8_t handle[STASIS_INOTIFY_HANDLE_MAX];
} stasis_inotify_watch_t;
_Static_assert(sizeof(stasis_inotify_watch_t) == 160, "image ABI: stasis_inotify_watch_t");

/* FILE_DESCRIPTOR: one open descriptor. Followed by the path (path_bytes), then extra_bytes of
 * kind-specific data (a pipe's buffered bytes, an epoll instance's entries). */
typedef struct stasis_file_descriptor_record {
    int32_t fd;
    uint32_t kind;           /* STASIS_FD_* */
    uint32_t status_flags;   /* fcntl F_GETFL (O_ACCMODE, O_APPEND, O_NONBLOCK, ...) */
    uint32_t fd_flags;       /* fcntl F_GETFD (FD_CLOEXEC) */
    int64_t offset;          /* lseek(fd, 0, SEEK_CUR), -1 if not seekable */
    uint64_t device, inode;
    uint64_t size;
    int64_t mtime_ns;
    uint32_t mode;           /* st_mode */
    uint32_t path_bytes;
    uint64_t object_id;      /* pipe: inode shared by its ends; eventfd: counter */
    uint32_t object_flags;   /* eventfd: STASIS_EVENTFD_SEMAPHORE; pipe: buffer size */
    uint32_t extra_bytes;
    int32_t shares_with;     /* an earlier fd with the same open file description (dup, fork), or -1 */
    uint32_t reserved;
} stasis_file_descriptor_record_t;
_Static_assert(sizeof(stasis_file_descriptor_record_t) == 88, "image ABI: stasis_file_descriptor_record_t");

#endif
