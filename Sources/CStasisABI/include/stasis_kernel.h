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

#endif
