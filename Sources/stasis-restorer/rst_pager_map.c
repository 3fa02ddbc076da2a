/* rst_pager_map.c: the pager's map of the program's address space, per userfaultfd context (the
 * program and each child it forked while pages were coming in): sorted spans of addresses that hold
 * image pages, kept right through mremap, munmap and MADV_DONTNEED events. */
#include "rst_pager.h"

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

struct span *rst_pager_span_at(struct context *c, uint64_t address) {
    uint64_t low = 0, high = c->span_count;
    while (low < high) {
        uint64_t mid = (low + high) / 2;
        if (c->spans[mid].start + c->spans[mid].pages * RST_PAGE <= address) low = mid + 1;
        else high = mid;
    }
    if (low < c->span_count && c->spans[low].start <= address) return &c->spans[low];
    return 0;
}

struct span *rst_pager_span_of_page(struct context *c, uint64_t page) {
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

struct rst_lazy_piece *rst_pager_piece_of_page(struct pager *p, uint64_t page) {
    uint64_t low = 0, high = p->args->lazy_piece_count;
    while (low < high) {
        uint64_t mid = (low + high) / 2;
        struct rst_lazy_piece *x = &p->args->lazy_pieces[mid];
        if (x->first + x->pages <= page) low = mid + 1;
        else high = mid;
    }
    return &p->args->lazy_pieces[low];
}

int rst_pager_new_context(struct pager *p, int fd, struct context *from) {
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
    c->state = rst_map_anonymous(p->pages + 1);
    c->spans = rst_map_anonymous(c->span_capacity * sizeof(struct span));
    c->by_page = rst_map_anonymous(c->span_capacity * sizeof(uint32_t));
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

void rst_pager_close_context(struct context *c) {
    if (!c->alive) return;
    stasis_syscall1(STASIS_NR_close, c->fd);
    c->alive = 0;
}

/* A context whose process is gone (ESRCH) gives its memory back and its slot (not the first's:
 * its tables hold the CRC state). */
void rst_pager_release_context(struct pager *p, struct context *c, uint64_t pages) {
    rst_pager_close_context(c);
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
    struct span *s = rst_pager_span_at(c, address);
    if (!s || s->start == address) return;
    if (c->span_count >= c->span_capacity) rst_pager_die(p, "too many mremap/munmap calls while paging in");
    uint64_t head = (address - s->start) / RST_PAGE;
    struct span tail = {address, s->pages - head, s->page + head};
    s->pages = head;
    c->spans[c->span_count++] = tail;
    sort_spans(c);
}

/* Pages in [start, end) no longer come from the image: munmap'ed, or MADV_DONTNEED (then zero). */
void rst_pager_forget_range(struct pager *p, struct context *c, uint64_t start, uint64_t end) {
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

void rst_pager_move_range(struct pager *p, struct context *c, uint64_t from, uint64_t to, uint64_t length) {
    split_at(p, c, from);
    split_at(p, c, from + length);
    for (uint64_t i = 0; i < c->span_count; i++) {
        struct span *s = &c->spans[i];
        if (s->start >= from && s->start + s->pages * RST_PAGE <= from + length) s->start = s->start - from + to;
    }
    sort_spans(c);
}
