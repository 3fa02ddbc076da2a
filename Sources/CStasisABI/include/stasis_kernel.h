/* stasis_kernel.h: kernel ABI structs that Debian 12's headers lack or that
 * glibc's headers would drag in with locks (defined here once). */
#ifndef STASIS_KERNEL_H
#define STASIS_KERNEL_H

#include <stdint.h>

/* struct stat as the x86-64 newfstatat/fstat system calls write it. */
typedef struct stasis_kstat {
    uint64_t st_dev, st_ino, st_nlink;
    uint32_t st_mode, st_uid, st_gid, pad0;
    uint64_t st_rdev;
    int64_t st_size, st_blksize, st_blocks;
    int64_t st_atime_sec, st_atime_nsec;
    int64_t st_mtime_sec, st_mtime_nsec;
    int64_t st_ctime_sec, st_ctime_nsec;
    int64_t reserved[3];
} stasis_kstat_t;
_Static_assert(sizeof(stasis_kstat_t) == 144, "kernel ABI: struct stat");

/* PAGEMAP_SCAN (Linux 6.7): ioctl on /proc/self/pagemap listing pages by category. */
#define STASIS_PAGEMAP_SCAN 0xC0606610ul /* _IOWR('f', 16, struct pm_scan_arg) */
#define STASIS_PAGE_IS_WPALLOWED (1ull << 0)
#define STASIS_PAGE_IS_WRITTEN (1ull << 1)
#define STASIS_PAGE_IS_FILE (1ull << 2)
#define STASIS_PAGE_IS_PRESENT (1ull << 3)
#define STASIS_PAGE_IS_SWAPPED (1ull << 4)
#define STASIS_PAGE_IS_PFNZERO (1ull << 5)
#define STASIS_PM_SCAN_WP_MATCHING (1ull << 0) /* write-protect the pages that match */

/* userfaultfd (design-notes.md): asynchronous write protection for --incremental. The kernel
 * resolves the write faults itself and clears the page's uffd-wp bit, which PAGEMAP_SCAN reports
 * as PAGE_IS_WRITTEN. Debian 12's headers predate WP_ASYNC. */
#define STASIS_NR_userfaultfd 323
#define STASIS_UFFD_USER_MODE_ONLY 1
#define STASIS_UFFD_API 0xAAull
#define STASIS_UFFD_FEATURE_WP_ASYNC (1ull << 15)
#define STASIS_UFFDIO_API 0xC018AA3Ful        /* struct uffdio_api { api, features, ioctls } */
#define STASIS_UFFDIO_REGISTER 0xC020AA00ul   /* struct uffdio_register { start, len, mode, ioctls } */
#define STASIS_UFFDIO_REGISTER_MODE_WP 2ull
#define STASIS_UFFDIO_WRITEPROTECT 0xC018AA06ul /* struct uffdio_writeprotect { start, len, mode }: mode 0 clears */
#define STASIS_UFFDIO_WAKE 0x8010AA02ul       /* struct uffdio_range { start, len } */
#define STASIS_UFFDIO_COPY 0xC028AA03ul       /* struct uffdio_copy { dst, src, len, mode, copy } */
#define STASIS_UFFDIO_ZEROPAGE 0xC020AA04ul   /* struct uffdio_zeropage { range, mode, zeropage } */
#define STASIS_UFFD_FEATURE_EVENT_FORK (1ull << 1)
#define STASIS_UFFD_FEATURE_EVENT_REMAP (1ull << 2)
#define STASIS_UFFD_FEATURE_EVENT_REMOVE (1ull << 3)
#define STASIS_UFFD_FEATURE_EVENT_UNMAP (1ull << 6)
#define STASIS_UFFD_EVENT_PAGEFAULT 0x12      /* struct uffd_msg.event */
#define STASIS_UFFD_EVENT_FORK 0x13
#define STASIS_UFFD_EVENT_REMAP 0x14
#define STASIS_UFFD_EVENT_REMOVE 0x15
#define STASIS_UFFD_EVENT_UNMAP 0x16

/* errno values (the kernel returns them negated) */
#define STASIS_ENOENT 2
#define STASIS_ESRCH 3
#define STASIS_EAGAIN 11
#define STASIS_EEXIST 17

typedef struct stasis_page_region {
    uint64_t start, end, categories;
} stasis_page_region_t;

typedef struct stasis_pm_scan_arg {
    uint64_t size;       /* sizeof(struct pm_scan_arg) */
    uint64_t flags;
    uint64_t start, end; /* range to scan */
    uint64_t walk_end;   /* out: where the walk stopped */
    uint64_t vec;        /* stasis_page_region_t array */
    uint64_t vec_len;
    uint64_t max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
} stasis_pm_scan_arg_t;
_Static_assert(sizeof(stasis_pm_scan_arg_t) == 96, "kernel ABI: struct pm_scan_arg");

#define STASIS_S_IFMT 0170000
#define STASIS_S_IFREG 0100000
#define STASIS_S_IFCHR 0020000
#define STASIS_S_IFDIR 0040000


/* struct linux_dirent64 (getdents64): a record is d_reclen bytes; the name is NUL-terminated. */
#define STASIS_DIRENT64_RECLEN_OFFSET 16
#define STASIS_DIRENT64_NAME_OFFSET 19
typedef struct stasis_dirent64_head {
    uint64_t d_ino;
    int64_t d_off;
    uint16_t d_reclen;
    uint8_t d_type;
} stasis_dirent64_head_t;
_Static_assert(__builtin_offsetof(stasis_dirent64_head_t, d_reclen) == STASIS_DIRENT64_RECLEN_OFFSET, "kernel ABI: dirent64");
_Static_assert(__builtin_offsetof(stasis_dirent64_head_t, d_type) + 1 == STASIS_DIRENT64_NAME_OFFSET, "kernel ABI: dirent64");

/* The siginfo of a sigqueue'd signal (si_code SI_QUEUE): the fields rt_(tg)sigqueueinfo reads. */
#define STASIS_SI_QUEUE (-1)
typedef struct stasis_queue_siginfo {
    int32_t signo;
    int32_t error;
    int32_t code;  /* STASIS_SI_QUEUE */
    int32_t padding;
    int32_t pid;
    uint32_t uid;
    uint64_t value; /* si_value */
    uint8_t rest[96];
} stasis_queue_siginfo_t;
_Static_assert(sizeof(stasis_queue_siginfo_t) == 128, "kernel ABI: siginfo_t");
_Static_assert(__builtin_offsetof(stasis_queue_siginfo_t, value) == 24, "kernel ABI: si_value");

#endif
