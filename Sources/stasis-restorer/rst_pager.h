/* rst_pager.h: what the pager's two files share (rst_pager.c serves pages and events; rst_pager_map.c
 * keeps, per userfaultfd context, which address ranges hold which image pages). */
#ifndef RST_PAGER_H
#define RST_PAGER_H
#include "rst.h"

#define FAULT_PAGES 16          /* served around a fault: 64 KiB */
#define PREFETCH_BYTES (2ul << 20)
#define MAX_CONTEXTS 64

struct uffd_msg_ {
    uint8_t event, reserved1;
    uint16_t reserved2;
    uint32_t reserved3;
    uint64_t a, b, c; /* pagefault: flags, address; fork: ufd; remap: from, to, len; remove: start, end */
};


static inline int64_t monotonic_ms(void) {
    int64_t ts[2] = {0, 0};
    stasis_syscall2(STASIS_NR_clock_gettime, 1 /* CLOCK_MONOTONIC */, (long)ts);
    return ts[0] * 1000 + ts[1] / 1000000;
}

/* One address range of a context that holds image pages [page, page + pages) (pager page numbers:
 * the pieces' pages, back to back). */
struct span {
    uint64_t start, pages, page;
};

struct context {
    int fd;
    int alive;
    uint8_t *state;        /* per pager page: 0 not yet there, 1 there (or must read as zero, or gone) */
    struct span *spans;    /* sorted by start */
    uint32_t *by_page;     /* span indexes sorted by page */
    uint64_t span_count, span_capacity;
    uint64_t cursor;       /* prefetch: next pager page */
    uint64_t retry[64];    /* faults that met EAGAIN (the map was changing) */
    int retry_count;
};

struct pager {
    struct rst_args *args;
    struct context contexts[MAX_CONTEXTS];
    int count;
    uint8_t *buffer;       /* PREFETCH_BYTES */
    uint8_t *stored;       /* a compressed block's stored bytes (RST_BLOCK_BYTES) */
    uint8_t *block;        /* the pages of the block `decoded` (RST_BLOCK_BYTES) */
    uint8_t *unfiltered;   /* a filtered block, decoded before the filter is undone (RST_BLOCK_BYTES) */
    struct rst_lazy_piece *decoded;
    uint64_t pages;        /* pager pages in all */
    /* the restore plan's checks of parent page data, one chunk at a time once the pages are in */
    uint32_t check;
    uint64_t check_done;
    uint32_t check_crc;
};

struct span *rst_pager_span_at(struct context *c, uint64_t address);
struct span *rst_pager_span_of_page(struct context *c, uint64_t page);
struct rst_lazy_piece *rst_pager_piece_of_page(struct pager *p, uint64_t page);
int rst_pager_new_context(struct pager *p, int fd, struct context *from);
void rst_pager_close_context(struct context *c);
void rst_pager_release_context(struct pager *p, struct context *c, uint64_t pages);
void rst_pager_forget_range(struct pager *p, struct context *c, uint64_t start, uint64_t end);
void rst_pager_move_range(struct pager *p, struct context *c, uint64_t from, uint64_t to, uint64_t length);
__attribute__((noreturn)) void rst_pager_die(struct pager *p, const char *what);

#endif
