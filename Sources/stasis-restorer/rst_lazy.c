/* rst_lazy.c: lazy restart. Large private anonymous areas are mapped empty and registered with a
 * userfaultfd (missing mode); a pager process serves their pages from the image when the program
 * touches them and copies the rest in the background, file order, then exits. The program runs
 * again as soon as the restorer is done, whatever the image's size.
 *
 *   restorer                                   pager (an orphan: clone, clone, exit)
 *   userfaultfd + UFFDIO_API (fork, remap,
 *     remove, unmap events)
 *   map areas; lazy ones get pieces, no reads
 *   clone the pager  ------------------------>  waits on the go pipe
 *   UFFDIO_REGISTER every lazy area
 *   write "go", close the userfaultfd  ----->  poll: faults first (the pages around the fault),
 *   threads, sigreturn: the program runs         else the next 2 MiB of the image; events keep
 *                                                its map of addresses right (mremap, munmap,
 *                                                MADV_DONTNEED: zero, fork: a second map)
 *                                              all pages in place: close the userfaultfd, exit
 *
 * The pager checks every lazily served area's page CRC as it reads the image in order (pages served
 * on a fault are read again for it); on a mismatch it kills the program and says so on the status
 * pipe ("corrupt ..."), and `stasis restart` exits 3 as for any damaged image.
 * Without the privilege for a full userfaultfd (root, CAP_SYS_PTRACE, or
 * vm.unprivileged_userfaultfd=1: a user-mode-only one would fail the program's system calls on
 * pages not yet there) the restorer reads everything in, as with --eager. */
#include "rst.h"

#define UFFDIO_API_ 0xC018AA3Ful
#define UFFDIO_REGISTER_ 0xC020AA00ul
#define UFFDIO_WAKE_ 0x8010AA02ul
#define UFFDIO_COPY_ 0xC028AA03ul
#define UFFDIO_ZEROPAGE_ 0xC020AA04ul
#define UFFD_FEATURES_ ((1ull << 1) | (1ull << 2) | (1ull << 3) | (1ull << 6)) /* EVENT_FORK, REMAP, REMOVE, UNMAP */
#define EVENT_PAGEFAULT 0x12
#define EVENT_FORK 0x13
#define EVENT_REMAP 0x14
#define EVENT_REMOVE 0x15
#define EVENT_UNMAP 0x16
#define NR_poll 7
#define NR_clone 56
#define NR_userfaultfd 323
#define FAULT_PAGES 16          /* served around a fault: 64 KiB */
#define PREFETCH_BYTES (2ul << 20)
#define MAX_CONTEXTS 64
#define ENOENT_ 2 /* errno values, negated by the kernel */
#define ESRCH_ 3
#define EAGAIN_ 11
#define EEXIST_ 17

struct uffd_msg_ {
    uint8_t event, reserved1;
    uint16_t reserved2;
    uint32_t reserved3;
    uint64_t a, b, c; /* pagefault: flags, address; fork: ufd; remap: from, to, len; remove: start, end */
};

static void *map_anonymous(uint64_t bytes) {
    long p = stasis_syscall6(STASIS_NR_mmap, 0, (long)bytes, 3, 0x02 | 0x20 /* PRIVATE|ANONYMOUS */, -1, 0);
    return p < 0 && p > -4096 ? 0 : (void *)p;
}

static int64_t monotonic_ms(void) {
    int64_t ts[2] = {0, 0};
    stasis_syscall2(STASIS_NR_clock_gettime, 1 /* CLOCK_MONOTONIC */, (long)ts);
    return ts[0] * 1000 + ts[1] / 1000000;
}

/* ---- restorer side ---------------------------------------------------------- */

/* The pager's tables live in the work region (sized by rst_lazy_table_bytes): the restored program
 * does not keep them, the pager has its copy. */
uint64_t rst_lazy_table_bytes(void) {
    uint64_t bytes = RST_LAZY_PIECES * sizeof(struct rst_lazy_piece) + RST_LAZY_AREAS * sizeof(struct rst_lazy_area);
    return (bytes + RST_PAGE - 1) & ~(RST_PAGE - 1);
}

void rst_lazy_place_tables(struct rst_args *args, uint64_t at) {
    args->lazy_pieces = (struct rst_lazy_piece *)at;
    args->lazy_areas = (struct rst_lazy_area *)(at + RST_LAZY_PIECES * sizeof(struct rst_lazy_piece));
    args->lazy_piece_capacity = RST_LAZY_PIECES;
    args->lazy_area_capacity = RST_LAZY_AREAS;
}

void rst_lazy_open(struct rst_args *args) {
    args->uffd = -1;
    if (!args->lazy_requested || !args->lazy_pieces) return;
    long fd = stasis_syscall1(NR_userfaultfd, 02000000 | 04000 /* O_CLOEXEC | O_NONBLOCK */);
    if (fd < 0) {
        args->lazy_unavailable = fd; /* said once an area would have been lazy (rst_lazy_start) */
        return;
    }
    uint64_t api[3] = {0xAA, UFFD_FEATURES_, 0};
    long r = stasis_syscall3(STASIS_NR_ioctl, fd, (long)UFFDIO_API_, (long)api);
    if (r < 0) {
        stasis_syscall1(STASIS_NR_close, fd);
        args->lazy_unavailable = r;
        return;
    }
    args->uffd = (int)fd;
}

/* Whether an area's pages are served by the pager: private anonymous memory of some size. */
int rst_lazy_wants(struct rst_args *args, const stasis_memory_area_record_t *area) {
    if (!args->lazy_requested || !area->run_count || !args->lazy_pieces) return 0;
    if (area->flags & (STASIS_AREA_SHARED | STASIS_AREA_SCRATCH | STASIS_AREA_STACK)) return 0;
    if (!(area->flags & STASIS_AREA_ANONYMOUS) || !(area->prot & 1)) return 0;
    if (area->end - area->start < (1ul << 20)) return 0;
    if (args->uffd < 0) {
        args->lazy_missed = 1;
        return 0;
    }
    return args->lazy_area_count < args->lazy_area_capacity;
}

/* A lazy area: its own page data must match `crc` (checked by the pager). Returns its index. */
int rst_lazy_add_area(struct rst_args *args, uint64_t start, uint64_t end, uint64_t data_bytes, uint32_t crc) {
    struct rst_lazy_area *a = &args->lazy_areas[args->lazy_area_count];
    a->start = start;
    a->end = end;
    a->data_bytes = data_bytes;
    a->expected_crc = crc;
    a->crc = stasis_crc32c_begin();
    a->seen = 0;
    return (int)args->lazy_area_count++;
}

void rst_lazy_add_piece(struct rst_args *args, uint64_t address, uint64_t bytes, int fd, uint64_t offset, int area) {
    if (args->lazy_piece_count >= args->lazy_piece_capacity) {
        /* Too fragmented for the table: read this piece now. */
        if (rst_pread_all(fd, (void *)address, bytes, offset) < 0) rst_fail(args, "cannot read page data at", address);
        if (area >= 0) args->lazy_areas[area].data_bytes = 0; /* its CRC can no longer be checked in order */
        return;
    }
    struct rst_lazy_piece *last = args->lazy_piece_count ? &args->lazy_pieces[args->lazy_piece_count - 1] : 0;
    uint64_t page = args->lazy_page_count;
    if (last && last->fd == fd && last->area == area && last->address + last->pages * RST_PAGE == address &&
        last->offset + last->pages * RST_PAGE == offset) {
        last->pages += bytes / RST_PAGE;
    } else {
        struct rst_lazy_piece *p = &args->lazy_pieces[args->lazy_piece_count++];
        p->address = address;
        p->pages = bytes / RST_PAGE;
        p->offset = offset;
        p->fd = fd;
        p->area = area;
        p->first = page;
    }
    args->lazy_page_count += bytes / RST_PAGE;
}

static void pager_main(struct rst_args *args, int go_fd, int hello_fd) __attribute__((noreturn));

/* Starts the pager and registers the lazy areas; the restorer keeps no userfaultfd. */
void rst_lazy_start(struct rst_args *args) {
    if (args->lazy_missed) {
        rst_warn(args, args->lazy_unavailable == -22 /* EINVAL: no fork/remap events */
                     ? "this kernel's userfaultfd lacks the events lazy restart needs; every page was read in now; errno"
                     : "lazy restart needs a full userfaultfd (root, CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1); "
                       "every page was read in now; errno", (uint64_t)-args->lazy_unavailable);
    }
    if (args->uffd < 0) return;
    if (!args->lazy_piece_count) {
        stasis_syscall1(STASIS_NR_close, args->uffd);
        args->uffd = -1;
        return;
    }
    int go[2], hello[2];
    if (stasis_syscall2(STASIS_NR_pipe2, (long)go, 02000000) < 0 || stasis_syscall2(STASIS_NR_pipe2, (long)hello, 02000000) < 0)
        rst_fail(args, "cannot create the pager's pipes", 0);
    args->program_pid = (int32_t)stasis_syscall0(STASIS_NR_getpid);
    /* clone, clone, exit: the pager is nobody's child in the program (init or a subreaper reaps it). */
    long middle = stasis_syscall5(NR_clone, 0, 0, 0, 0, 0);
    if (middle < 0) rst_fail(args, "cannot start the pager", (uint64_t)-middle);
    if (middle == 0) {
        long pager = stasis_syscall5(NR_clone, 0, 0, 0, 0, 0);
        if (pager == 0) pager_main(args, go[0], hello[1]);
        stasis_syscall1(STASIS_NR_exit_group, pager > 0 ? 0 : 1);
    }
    int status = 0;
    while (stasis_syscall4(STASIS_NR_wait4, middle, (long)&status, 0x40000000 /* __WALL */, 0) == -4) {
    }
    if (status != 0) rst_fail(args, "cannot start the pager", (uint64_t)status);
    stasis_syscall1(STASIS_NR_close, go[0]);
    stasis_syscall1(STASIS_NR_close, hello[1]);
    int32_t pager_pid = 0;
    if (stasis_syscall3(STASIS_NR_read, hello[0], (long)&pager_pid, sizeof pager_pid) != sizeof pager_pid)
        rst_fail(args, "the pager did not start", 0);
    stasis_syscall1(STASIS_NR_close, hello[0]);
    args->pager_pid = pager_pid;
    for (uint32_t i = 0; i < args->lazy_area_count; i++) {
        struct rst_lazy_area *a = &args->lazy_areas[i];
        uint64_t reg[4] = {a->start, a->end - a->start, 1 /* MODE_MISSING */, 0};
        long r = stasis_syscall3(STASIS_NR_ioctl, args->uffd, (long)UFFDIO_REGISTER_, (long)reg);
        if (r < 0) rst_fail(args, "cannot register a memory area for lazy restart", a->start);
    }
    char byte = 'g';
    stasis_syscall3(STASIS_NR_write, go[1], (long)&byte, 1);
    stasis_syscall1(STASIS_NR_close, go[1]);
    stasis_syscall1(STASIS_NR_close, args->uffd);
    args->uffd = -1;
}

/* ---- the pager ---------------------------------------------------------------- */

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
    uint64_t pages;        /* pager pages in all */
    /* the restore plan's checks of parent page data, one chunk at a time once the pages are in */
    uint32_t check;
    uint64_t check_done;
    uint32_t check_crc;
};

/* Stops the program and says why on the status pipe, which `stasis restart` reads once the program
 * is gone: "corrupt ..." (exit 3) when the image is damaged, "error ..." (exit 9) otherwise. The
 * line is complete before the kill, so the launcher finds it when it reaps the program. */
static __attribute__((noreturn)) void pager_stop(struct pager *p, const char *kind, const char *what, const char *advice) {
    rst_write_text(p->args->status_fd, kind);
    rst_write_text(p->args->status_fd, "lazy restart: ");
    rst_write_text(p->args->status_fd, what);
    rst_write_text(p->args->status_fd, "; the restored program was stopped (");
    rst_write_text(p->args->status_fd, advice);
    rst_write_text(p->args->status_fd, ")\n");
    stasis_syscall2(STASIS_NR_kill, p->args->program_pid, 9);
    stasis_syscall1(STASIS_NR_exit_group, 1);
    __builtin_unreachable();
}

/* The pager cannot go on (a read error, out of memory, too many children or moves). */
static __attribute__((noreturn)) void pager_die(struct pager *p, const char *what) {
    pager_stop(p, STASIS_STATUS_ERROR, what, "restart it again, or with --eager");
}

/* The image's page data does not match its checksum. */
static __attribute__((noreturn)) void pager_corrupt(struct pager *p, const char *what) {
    pager_stop(p, STASIS_STATUS_CORRUPT, what, "the image is damaged: restart an older image; `stasis verify` checks one");
}

/* Heapsorts: no allocation, O(n log n) (pieces of an incremental image interleave by address). */
static int span_before(struct context *c, uint64_t a, uint64_t b) { return c->spans[a].start < c->spans[b].start; }
static int page_before(struct context *c, uint64_t a, uint64_t b) {
    return c->spans[c->by_page[a]].page < c->spans[c->by_page[b]].page;
}
static void swap_spans(struct context *c, uint64_t a, uint64_t b) {
    struct span t = c->spans[a];
    c->spans[a] = c->spans[b];
    c->spans[b] = t;
}
static void swap_pages(struct context *c, uint64_t a, uint64_t b) {
    uint32_t t = c->by_page[a];
    c->by_page[a] = c->by_page[b];
    c->by_page[b] = t;
}
static void heapsort(struct context *c, uint64_t n, int (*before)(struct context *, uint64_t, uint64_t),
                     void (*swap)(struct context *, uint64_t, uint64_t)) {
    for (uint64_t end = n; end > 1;) {
        if (end == n) { /* build the heap once */
            for (uint64_t start = n / 2; start-- > 0;) {
                uint64_t root = start;
                for (uint64_t child; (child = 2 * root + 1) < n; root = child) {
                    if (child + 1 < n && before(c, child, child + 1)) child++;
                    if (!before(c, root, child)) break;
                    swap(c, root, child);
                }
            }
        }
        swap(c, 0, --end);
        uint64_t root = 0;
        for (uint64_t child; (child = 2 * root + 1) < end; root = child) {
            if (child + 1 < end && before(c, child, child + 1)) child++;
            if (!before(c, root, child)) break;
            swap(c, root, child);
        }
    }
}

static void sort_spans(struct context *c) {
    heapsort(c, c->span_count, span_before, swap_spans);
    for (uint64_t i = 0; i < c->span_count; i++) c->by_page[i] = (uint32_t)i;
    heapsort(c, c->span_count, page_before, swap_pages);
}

static struct span *span_at(struct context *c, uint64_t address) {
    uint64_t low = 0, high = c->span_count;
    while (low < high) {
        uint64_t mid = (low + high) / 2;
        if (c->spans[mid].start + c->spans[mid].pages * RST_PAGE <= address) low = mid + 1;
        else high = mid;
    }
    if (low < c->span_count && c->spans[low].start <= address) return &c->spans[low];
    return 0;
}

static struct span *span_of_page(struct context *c, uint64_t page) {
    uint64_t low = 0, high = c->span_count;
    while (low < high) {
        uint64_t mid = (low + high) / 2;
        struct span *s = &c->spans[c->by_page[mid]];
        if (s->page + s->pages <= page) low = mid + 1;
        else high = mid;
    }
    if (low < c->span_count) {
        struct span *s = &c->spans[c->by_page[low]];
        if (s->page <= page && page < s->page + s->pages) return s;
    }
    return 0;
}

static struct rst_lazy_piece *piece_of_page(struct pager *p, uint64_t page) {
    uint64_t low = 0, high = p->args->lazy_piece_count;
    while (low < high) {
        uint64_t mid = (low + high) / 2;
        struct rst_lazy_piece *x = &p->args->lazy_pieces[mid];
        if (x->first + x->pages <= page) low = mid + 1;
        else high = mid;
    }
    return &p->args->lazy_pieces[low];
}

static int new_context(struct pager *p, int fd, struct context *from) {
    /* a slot whose process is gone is taken again: a program may fork often while paging in */
    int slot = p->count;
    for (int i = 1; i < p->count; i++)
        if (!p->contexts[i].alive && !p->contexts[i].state) slot = i;
    if (slot >= MAX_CONTEXTS) return -1;
    struct context *c = &p->contexts[slot];
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->alive = 1;
    c->span_capacity = (from ? from->span_count : p->args->lazy_piece_count) + 65536; /* splits: 2 per event */
    c->state = map_anonymous(p->pages + 1);
    c->spans = map_anonymous(c->span_capacity * sizeof(struct span));
    c->by_page = map_anonymous(c->span_capacity * sizeof(uint32_t));
    if (!c->state || !c->spans || !c->by_page) return -1;
    if (from) {
        memcpy(c->state, from->state, p->pages);
        memcpy(c->spans, from->spans, from->span_count * sizeof(struct span));
        c->span_count = from->span_count;
    } else {
        for (uint64_t i = 0; i < p->args->lazy_piece_count; i++) {
            struct rst_lazy_piece *x = &p->args->lazy_pieces[i];
            c->spans[i] = (struct span){x->address, x->pages, x->first};
        }
        c->span_count = p->args->lazy_piece_count;
    }
    sort_spans(c);
    if (slot == p->count) p->count++;
    return 0;
}

static void close_context(struct context *c) {
    if (!c->alive) return;
    stasis_syscall1(STASIS_NR_close, c->fd);
    c->alive = 0;
}

/* A context whose process is gone (ESRCH) gives its memory back and its slot (not the first's:
 * its tables hold the CRC state). */
static void release_context(struct pager *p, struct context *c, uint64_t pages) {
    close_context(c);
    if (c == &p->contexts[0] || !c->state) return;
    stasis_syscall2(STASIS_NR_munmap, (long)c->state, (long)(pages + 1));
    stasis_syscall2(STASIS_NR_munmap, (long)c->spans, (long)(c->span_capacity * sizeof(struct span)));
    stasis_syscall2(STASIS_NR_munmap, (long)c->by_page, (long)(c->span_capacity * sizeof(uint32_t)));
    c->state = 0;
    c->spans = 0;
    c->by_page = 0;
}

/* Splits the span containing `address` so that a span starts there. */
static void split_at(struct pager *p, struct context *c, uint64_t address) {
    struct span *s = span_at(c, address);
    if (!s || s->start == address) return;
    if (c->span_count >= c->span_capacity) pager_die(p, "too many mremap/munmap calls while paging in");
    uint64_t head = (address - s->start) / RST_PAGE;
    struct span tail = {address, s->pages - head, s->page + head};
    s->pages = head;
    c->spans[c->span_count++] = tail;
    sort_spans(c);
}

/* Pages in [start, end) no longer come from the image: munmap'ed, or MADV_DONTNEED (then zero). */
static void forget_range(struct pager *p, struct context *c, uint64_t start, uint64_t end) {
    split_at(p, c, start);
    split_at(p, c, end);
    uint64_t kept = 0;
    for (uint64_t i = 0; i < c->span_count; i++) {
        struct span *s = &c->spans[i];
        if (s->start >= start && s->start + s->pages * RST_PAGE <= end) {
            for (uint64_t k = 0; k < s->pages; k++) c->state[s->page + k] = 1;
            continue;
        }
        c->spans[kept++] = *s;
    }
    c->span_count = kept;
    sort_spans(c);
}

static void move_range(struct pager *p, struct context *c, uint64_t from, uint64_t to, uint64_t length) {
    split_at(p, c, from);
    split_at(p, c, from + length);
    for (uint64_t i = 0; i < c->span_count; i++) {
        struct span *s = &c->spans[i];
        if (s->start >= from && s->start + s->pages * RST_PAGE <= from + length) s->start = s->start - from + to;
    }
    sort_spans(c);
}

static void wake(struct context *c, uint64_t address, uint64_t bytes) {
    uint64_t range[2] = {address, bytes};
    stasis_syscall3(STASIS_NR_ioctl, c->fd, (long)UFFDIO_WAKE_, (long)range);
}

/* Copies pager pages [page, page + count) (all in one span and one piece) from `data` into place.
 * Returns 0, or -EAGAIN (the map is changing: read the events first), or -ESRCH (process gone). */
static long place(struct context *c, struct span *s, uint64_t page, uint64_t count, const uint8_t *data) {
    uint64_t done = 0;
    while (done < count) {
        if (c->state[page + done]) {
            done++;
            continue;
        }
        uint64_t run = 1;
        while (done + run < count && !c->state[page + done + run]) run++;
        uint64_t address = s->start + (page + done - s->page) * RST_PAGE;
        int64_t copy[5] = {(int64_t)address, (int64_t)(data + done * RST_PAGE), (int64_t)(run * RST_PAGE), 0, 0};
        long r = stasis_syscall3(STASIS_NR_ioctl, c->fd, (long)UFFDIO_COPY_, (long)copy);
        uint64_t copied = r == 0 ? run : copy[4] > 0 ? (uint64_t)copy[4] / RST_PAGE : 0;
        for (uint64_t k = 0; k < copied; k++) c->state[page + done + k] = 1;
        done += copied;
        if (r == 0) continue;
        if (r == -EAGAIN_) {
            if (copied) continue;
            return -EAGAIN_;
        }
        if (r == -ESRCH_) {
            close_context(c);
            return -ESRCH_;
        }
        if (r == -ENOENT_ && run > 1 && !copied) {
            /* a copy may not cross areas (the program split one with mprotect): page by page */
            for (uint64_t k = 0; k < run; k++) {
                long one = place(c, s, page + done + k, 1, data + (done + k) * RST_PAGE);
                if (one) return one;
            }
            done += run;
            continue;
        }
        /* EEXIST: the page is there already (a fault got it); ENOENT for one page: unmapped meanwhile. */
        c->state[page + done] = 1;
        if (r == -EEXIST_) wake(c, s->start + (page + done - s->page) * RST_PAGE, RST_PAGE);
        done++;
    }
    return 0;
}

static long fault(struct pager *p, struct context *c, uint64_t address) {
    address &= ~(RST_PAGE - 1);
    struct span *s = span_at(c, address);
    if (!s) { /* not image memory (a hole in a lazy area, or grown): zero */
        int64_t zero[4] = {(int64_t)address, (int64_t)RST_PAGE, 0, 0};
        long r = stasis_syscall3(STASIS_NR_ioctl, c->fd, (long)UFFDIO_ZEROPAGE_, (long)zero);
        if (r == -EAGAIN_) return r;
        if (r == -ESRCH_) close_context(c);
        else if (r < 0) wake(c, address, RST_PAGE);
        return 0;
    }
    uint64_t page = s->page + (address - s->start) / RST_PAGE;
    if (c->state[page]) {
        /* arrived meanwhile (then ZEROPAGE meets EEXIST and wakes the thread); never loop on a fault */
        int64_t zero[4] = {(int64_t)address, (int64_t)RST_PAGE, 0, 0};
        long r = stasis_syscall3(STASIS_NR_ioctl, c->fd, (long)UFFDIO_ZEROPAGE_, (long)zero);
        if (r == -EAGAIN_) return r;
        if (r < 0) wake(c, address, RST_PAGE);
        return 0;
    }
    struct rst_lazy_piece *x = piece_of_page(p, page);
    uint64_t low = page, high = page + 1;
    uint64_t lowest = s->page > x->first ? s->page : x->first;
    uint64_t span_end = s->page + s->pages, piece_end = x->first + x->pages;
    uint64_t highest = span_end < piece_end ? span_end : piece_end;
    while (low > lowest && page - low < FAULT_PAGES / 2 && !c->state[low - 1]) low--;
    while (high < highest && high - low < FAULT_PAGES && !c->state[high]) high++;
    if (rst_pread_all(x->fd, p->buffer, (high - low) * RST_PAGE, x->offset + (low - x->first) * RST_PAGE) < 0)
        pager_die(p, "cannot read the image");
    return place(c, s, low, high - low, p->buffer);
}

/* One prefetch step: the next chunk of the image in file order, up to 2 MiB across pieces that are
 * contiguous in the same file (an area's runs are). The first context also checks each area's CRC,
 * so it reads pages that faults brought in already. Returns 1 while work remains. */
static int prefetch(struct pager *p, struct context *c, int checks) {
    uint64_t limit = PREFETCH_BYTES / RST_PAGE;
    while (c->cursor < p->pages) {
        uint64_t page = c->cursor;
        struct rst_lazy_piece *x = piece_of_page(p, page);
        struct rst_lazy_area *area = x->area >= 0 ? &p->args->lazy_areas[x->area] : 0;
        int check = checks && area && area->data_bytes;
        if (!check && c->state[page]) {
            c->cursor++;
            continue;
        }
        /* extend across following pieces of the same file, contiguous there, same area */
        uint64_t count = x->first + x->pages - page;
        struct rst_lazy_piece *last = x;
        struct rst_lazy_piece *end = p->args->lazy_pieces + p->args->lazy_piece_count;
        while (count < limit && last + 1 < end && last[1].fd == x->fd && last[1].area == x->area &&
               last[1].offset == last->offset + last->pages * RST_PAGE) {
            last++;
            count += last->pages;
        }
        if (count > limit) count = limit;
        if (!check) { /* only up to the next page that is there already */
            uint64_t n = 1;
            while (n < count && !c->state[page + n]) n++;
            count = n;
        }
        if (rst_pread_all(x->fd, p->buffer, count * RST_PAGE, x->offset + (page - x->first) * RST_PAGE) < 0)
            pager_die(p, "cannot read the image");
        /* place every span that holds part of [page, page + count) */
        uint64_t k = 0;
        while (k < count) {
            struct span *s = span_of_page(c, page + k);
            if (!s) {
                c->state[page + k] = 1; /* unmapped */
                k++;
                continue;
            }
            uint64_t n = s->page + s->pages - (page + k);
            if (n > count - k) n = count - k;
            long r = place(c, s, page + k, n, p->buffer + k * RST_PAGE);
            if (r == -EAGAIN_) return 1; /* read the events, then this chunk again */
            if (r == -ESRCH_) return 0;
            k += n;
        }
        if (check) {
            area->crc = stasis_crc32c_update(area->crc, p->buffer, count * RST_PAGE);
            area->seen += count * RST_PAGE;
            if (area->seen == area->data_bytes && stasis_crc32c_end(area->crc) != area->expected_crc)
                pager_corrupt(p, "page data checksum mismatch in the image");
        }
        c->cursor = page + count;
        return 1;
    }
    return 0;
}

/* Whether a forked child's process still exists: nothing tells the pager when one exits, but a copy
 * into its memory then fails with ESRCH. The probe copies the image's own bytes onto a page the
 * child already has (EEXIST while it lives; harmless either way). */
static void reap_contexts(struct pager *p) {
    for (int i = 1; i < p->count; i++) {
        struct context *c = &p->contexts[i];
        if (!c->alive) {
            if (c->state) release_context(p, c, p->pages);
            continue;
        }
        for (uint64_t k = 0; k < c->span_count; k++) {
            struct span *s = &c->spans[k];
            uint64_t page = s->page;
            while (page < s->page + s->pages && !c->state[page]) page++;
            if (page == s->page + s->pages) continue;
            struct rst_lazy_piece *x = piece_of_page(p, page);
            if (rst_pread_all(x->fd, p->buffer, RST_PAGE, x->offset + (page - x->first) * RST_PAGE) < 0) break;
            int64_t copy[5] = {(int64_t)(s->start + (page - s->page) * RST_PAGE), (int64_t)p->buffer, (int64_t)RST_PAGE, 0, 0};
            if (stasis_syscall3(STASIS_NR_ioctl, c->fd, (long)UFFDIO_COPY_, (long)copy) == -ESRCH_) release_context(p, c, p->pages);
            break;
        }
    }
}

/* One chunk of the parents' page data against the plan's CRCs. Returns 1 while checks remain. */
static int check_parents(struct pager *p) {
    struct rst_args *args = p->args;
    if (args->plan_fd < 0 || p->check >= args->plan.check_count) return 0;
    stasis_plan_check_t check;
    if (rst_plan_check(args, p->check, &check) < 0) pager_die(p, "cannot read the restore plan");
    if (p->check_done == 0) p->check_crc = stasis_crc32c_begin();
    uint64_t n = check.bytes - p->check_done < PREFETCH_BYTES ? check.bytes - p->check_done : PREFETCH_BYTES;
    if (n && rst_pread_all(args->plan.image_fds[check.image], p->buffer, n, check.file_offset + p->check_done) < 0)
        pager_die(p, "cannot read a parent image");
    p->check_crc = stasis_crc32c_update(p->check_crc, p->buffer, n);
    p->check_done += n;
    if (p->check_done >= check.bytes) {
        if (stasis_crc32c_end(p->check_crc) != check.crc) pager_corrupt(p, "page data checksum mismatch in a parent image");
        p->check++;
        p->check_done = 0;
    }
    return 1;
}

static void read_events(struct pager *p, int index) {
    struct uffd_msg_ messages[16];
    for (;;) {
        struct context *c = &p->contexts[index];
        if (!c->alive) return;
        long n = stasis_syscall3(STASIS_NR_read, c->fd, (long)messages, sizeof messages);
        if (n == -4) continue;
        if (n <= 0) return; /* EAGAIN: drained */
        /* Map changes first, faults after: a thread's munmap/madvise goes on as soon as its event is
         * read, so a fault read in the same batch must not copy into a range already given up. */
        long count = n / (long)sizeof messages[0];
        for (long i = 0; i < count; i++) {
            struct uffd_msg_ *m = &messages[i];
            c = &p->contexts[index];
            switch (m->event) {
            case EVENT_PAGEFAULT:
                break;
            case EVENT_FORK:
                /* the child's pages: what the parent still lacked at the fork */
                if (new_context(p, (int)(uint32_t)m->a, c) < 0) {
                    reap_contexts(p);  /* children that exited meanwhile give their slots back */
                    if (new_context(p, (int)(uint32_t)m->a, &p->contexts[index]) < 0)
                        pager_die(p, "too many processes forked while paging in");
                }
                break;
            case EVENT_REMAP:
                move_range(p, c, m->a, m->b, m->c);
                break;
            case EVENT_REMOVE:
            case EVENT_UNMAP:
                forget_range(p, c, m->a, m->b);
                break;
            default:
                break;
            }
        }
        for (long i = 0; i < count; i++) {
            c = &p->contexts[index];
            if (messages[i].event != EVENT_PAGEFAULT || !c->alive) continue;
            if (fault(p, c, messages[i].b) == -EAGAIN_ && c->retry_count < 64) c->retry[c->retry_count++] = messages[i].b;
        }
    }
}

/* Closes every descriptor but the sorted `keep` ones: the pager must not hold the program's pipes
 * and sockets open (a reader would wait for its EOF), nor the launcher's status pipe. */
static void close_all_but(int *keep, int count) {
    for (int i = 1; i < count; i++) { /* insertion sort: a handful */
        int v = keep[i], j = i;
        while (j > 0 && keep[j - 1] > v) {
            keep[j] = keep[j - 1];
            j--;
        }
        keep[j] = v;
    }
    long next = 0;
    for (int i = 0; i < count; i++) {
        if (keep[i] < next) continue;
        if (keep[i] > next) stasis_syscall3(436 /* close_range */, next, keep[i] - 1, 0);
        next = keep[i] + 1;
    }
    stasis_syscall3(436, next, 0x7fffffff, 0);
}

static void pager_main(struct rst_args *args, int go_fd, int hello_fd) {
    stasis_syscall2(STASIS_NR_prctl, 15 /* PR_SET_NAME */, (long)"stasis-pager");
    /* Pages it has not served would read as zero if it died: keep the OOM killer away (lazy restart
     * runs with privilege: the write works) and leave only a deliberate SIGKILL. */
    long oom = stasis_syscall3(STASIS_NR_open, (long)"/proc/self/oom_score_adj", 1 /* O_WRONLY */, 0);
    if (oom >= 0) {
        stasis_syscall3(STASIS_NR_write, oom, (long)"-1000", 5);
        stasis_syscall1(STASIS_NR_close, oom);
    }
    int32_t self = (int32_t)stasis_syscall0(STASIS_NR_getpid);
    stasis_syscall3(STASIS_NR_write, hello_fd, (long)&self, sizeof self);
    int keep[STASIS_PLAN_MAX_IMAGES + 5];
    int kept = 0;
    keep[kept++] = args->status_fd; /* for a checksum mismatch: `stasis restart` reports it */
    keep[kept++] = go_fd;
    keep[kept++] = args->uffd;
    keep[kept++] = args->image_fd;
    for (uint32_t i = 0; args->plan_fd >= 0 && i < args->plan.image_count; i++) keep[kept++] = args->plan.image_fds[i];
    if (args->plan_fd >= 0) keep[kept++] = args->plan_fd; /* its checks of the parents' page data */
    close_all_but(keep, kept);
    char byte;
    /* EOF instead of "go": the restorer failed; nothing to serve. */
    if (stasis_syscall3(STASIS_NR_read, go_fd, (long)&byte, 1) != 1) stasis_syscall1(STASIS_NR_exit_group, 0);
    stasis_syscall1(STASIS_NR_close, go_fd);
    struct pager *p = map_anonymous(sizeof(struct pager)); /* no globals in the restorer */
    if (!p) stasis_syscall1(STASIS_NR_exit_group, 1);
    p->args = args;
    p->pages = args->lazy_page_count;
    p->buffer = map_anonymous(PREFETCH_BYTES);
    if (!p->buffer || new_context(p, args->uffd, 0) < 0) pager_die(p, "out of memory");
    /* STASIS_PAGER_DELAY_MS (tests): serve only faults at first, so that they meet pages not yet there. */
    int64_t prefetch_from = monotonic_ms() + args->pager_delay_ms;
    for (;;) {
        struct {
            int fd;
            short events, revents;
        } polls[MAX_CONTEXTS];
        int busy = 0;
        for (int i = 0; i < p->count; i++) {
            struct context *c = &p->contexts[i];
            polls[i].fd = c->alive ? c->fd : -1;
            polls[i].events = 1; /* POLLIN */
            polls[i].revents = 0;
            if (c->alive && (c->cursor < p->pages || c->retry_count)) busy = 1;
        }
        /* the parents' checks last, a chunk per round, while the program still lives */
        int checking = !busy && p->contexts[0].alive && args->plan_fd >= 0 && p->check < args->plan.check_count;
        if (!busy && !checking) break;
        int64_t wait = prefetch_from - monotonic_ms();
        stasis_syscall3(NR_poll, (long)polls, p->count, wait > 0 ? (wait < 50 ? wait : 50) : 0);
        if (checking) check_parents(p);
        for (int i = 0; i < p->count; i++)
            if (polls[i].revents) read_events(p, i);
        for (int i = 0; i < p->count; i++) {
            struct context *c = &p->contexts[i];
            int n = c->retry_count;
            c->retry_count = 0;
            for (int k = 0; k < n && c->alive; k++)
                if (fault(p, c, c->retry[k]) == -EAGAIN_) c->retry[c->retry_count++] = c->retry[k];
        }
        if (monotonic_ms() < prefetch_from) continue;
        for (int i = 0; i < p->count; i++) {
            struct context *c = &p->contexts[i];
            if (c->alive && !prefetch(p, c, i == 0)) c->cursor = p->pages;
            if (!c->alive && c->state && i > 0) release_context(p, c, p->pages);
        }
    }
    /* Every page is in place: without the userfaultfd the areas are ordinary memory again. */
    for (int i = 0; i < p->count; i++) close_context(&p->contexts[i]);
    stasis_syscall1(STASIS_NR_exit_group, 0);
    __builtin_unreachable();
}
