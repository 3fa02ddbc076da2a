/* rst_pager.c: the lazy restart's pager process (rst_lazy.c sets it up and clones it; the diagram is
 * there). It serves faults on the program's lazily restored areas from the image, pages the rest in,
 * follows the program's fork, mremap, munmap and MADV_DONTNEED through userfaultfd events, checks
 * CRCs, and exits once every page is in place. */
#include "rst.h"
#include "rst_pager.h"

/* Stops the program and says why on the status pipe, which `stasis restart` reads once the program
 * is gone: "corrupt ..." (exit 3) when the image is damaged, "error ..." (exit 9) otherwise. The
 * line is complete before the kill, so the launcher finds it when it reaps the program. */
static __attribute__((noreturn)) void pager_stop(struct pager *p, const char *kind, const char *what, const char *advice) {
    struct rst_line line = {.length = 0};  /* one write: the restorer may be writing its own line */
    rst_line_text(&line, kind);
    rst_line_text(&line, "lazy restart: ");
    rst_line_text(&line, what);
    rst_line_text(&line, "; the restored program was stopped (");
    rst_line_text(&line, advice);
    rst_line_text(&line, ")\n");
    rst_line_send(&line, p->args->status_fd);
    stasis_syscall2(STASIS_NR_kill, p->args->program_pid, 9);
    stasis_syscall1(STASIS_NR_exit_group, 1);
    __builtin_unreachable();
}

/* The pager cannot go on (a read error, out of memory, too many children or moves). */
__attribute__((noreturn)) void rst_pager_die(struct pager *p, const char *what) {
    pager_stop(p, STASIS_STATUS_ERROR, what, "restart it again, or with --eager");
}

/* The image's page data does not match its checksum. */
static __attribute__((noreturn)) void pager_corrupt(struct pager *p, const char *what) {
    pager_stop(p, STASIS_STATUS_CORRUPT, what, "the image is damaged: restart an older image; `stasis verify` checks one");
}

static void wake(struct context *c, uint64_t address, uint64_t bytes) {
    uint64_t range[2] = {address, bytes};
    stasis_syscall3(STASIS_NR_ioctl, c->fd, (long)STASIS_UFFDIO_WAKE, (long)range);
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
        long r = stasis_syscall3(STASIS_NR_ioctl, c->fd, (long)STASIS_UFFDIO_COPY, (long)copy);
        uint64_t copied = r == 0 ? run : copy[4] > 0 ? (uint64_t)copy[4] / RST_PAGE : 0;
        for (uint64_t k = 0; k < copied; k++) c->state[page + done + k] = 1;
        done += copied;
        if (r == 0) continue;
        if (r == -STASIS_EAGAIN) {
            if (copied) continue;
            return -STASIS_EAGAIN;
        }
        if (r == -STASIS_ESRCH) {
            rst_pager_close_context(c);
            return -STASIS_ESRCH;
        }
        if (r == -STASIS_ENOENT && run > 1 && !copied) {
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
        if (r == -STASIS_EEXIST) wake(c, s->start + (page + done - s->page) * RST_PAGE, RST_PAGE);
        done++;
    }
    return 0;
}

/* Pager pages [page, page + count) of piece x (all inside it) into `into`. A compressed area's block
 * is read whole, checked against its CRC and decompressed once; the pages come from that copy. */
static void read_pages(struct pager *p, struct rst_lazy_piece *x, uint64_t page, uint64_t count, uint8_t *into) {
    if (!(x->flags & RST_PIECE_BLOCK)) {
        if (rst_pread_all(x->fd, into, count * RST_PAGE, x->offset + (page - x->first) * RST_PAGE) < 0)
            rst_pager_die(p, "cannot read the image");
        return;
    }
    if (p->decoded != x) {
        uint8_t *stored = x->flags & RST_PIECE_RAW ? p->block : p->stored;
        p->decoded = 0;
        if (rst_pread_all(x->fd, stored, x->stored_bytes, x->offset) < 0) rst_pager_die(p, "cannot read the image");
        uint32_t flags = (x->flags & RST_PIECE_RAW ? STASIS_BLOCK_RAW : 0) | (x->flags & RST_PIECE_SHUFFLED ? STASIS_BLOCK_SHUFFLED : 0);
        if (rst_decode_block(stored, x->stored_bytes, x->crc, flags, p->block, x->pages * RST_PAGE, p->unfiltered) < 0)
            pager_corrupt(p, "compressed page data damaged (checksum or block) in the image");
        p->decoded = x;
    }
    memcpy(into, p->block + (page - x->first) * RST_PAGE, count * RST_PAGE);
}

static long fault(struct pager *p, struct context *c, uint64_t address) {
    address &= ~(RST_PAGE - 1);
    struct span *s = rst_pager_span_at(c, address);
    if (!s) { /* not image memory (a hole in a lazy area, or grown): zero */
        int64_t zero[4] = {(int64_t)address, (int64_t)RST_PAGE, 0, 0};
        long r = stasis_syscall3(STASIS_NR_ioctl, c->fd, (long)STASIS_UFFDIO_ZEROPAGE, (long)zero);
        if (r == -STASIS_EAGAIN) return r;
        if (r == -STASIS_ESRCH) rst_pager_close_context(c);
        else if (r < 0) wake(c, address, RST_PAGE);
        return 0;
    }
    uint64_t page = s->page + (address - s->start) / RST_PAGE;
    if (c->state[page]) {
        /* arrived meanwhile (then ZEROPAGE meets EEXIST and wakes the thread); never loop on a fault */
        int64_t zero[4] = {(int64_t)address, (int64_t)RST_PAGE, 0, 0};
        long r = stasis_syscall3(STASIS_NR_ioctl, c->fd, (long)STASIS_UFFDIO_ZEROPAGE, (long)zero);
        if (r == -STASIS_EAGAIN) return r;
        if (r < 0) wake(c, address, RST_PAGE);
        return 0;
    }
    struct rst_lazy_piece *x = rst_pager_piece_of_page(p, page);
    uint64_t low = page, high = page + 1;
    uint64_t lowest = s->page > x->first ? s->page : x->first;
    uint64_t span_end = s->page + s->pages, piece_end = x->first + x->pages;
    uint64_t highest = span_end < piece_end ? span_end : piece_end;
    while (low > lowest && page - low < FAULT_PAGES / 2 && !c->state[low - 1]) low--;
    while (high < highest && high - low < FAULT_PAGES && !c->state[high]) high++;
    read_pages(p, x, low, high - low, p->buffer);
    return place(c, s, low, high - low, p->buffer);
}

/* One prefetch step: the next chunk of the image in file order, up to 2 MiB across pieces that are
 * contiguous in the same file (an area's runs are). The first context also checks each area's CRC,
 * so it reads pages that faults brought in already. Returns 1 while work remains. */
static int prefetch(struct pager *p, struct context *c, int checks) {
    uint64_t limit = PREFETCH_BYTES / RST_PAGE;
    while (c->cursor < p->pages) {
        uint64_t page = c->cursor;
        struct rst_lazy_piece *x = rst_pager_piece_of_page(p, page);
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
        while (count < limit && last + 1 < end && !(x->flags & RST_PIECE_BLOCK) && !(last[1].flags & RST_PIECE_BLOCK) &&
               last[1].fd == x->fd && last[1].area == x->area && last[1].offset == last->offset + last->pages * RST_PAGE) {
            last++;
            count += last->pages;
        }
        if (count > limit) count = limit;
        if (!check) { /* only up to the next page that is there already */
            uint64_t n = 1;
            while (n < count && !c->state[page + n]) n++;
            count = n;
        }
        if (x->flags & RST_PIECE_BLOCK) read_pages(p, x, page, count, p->buffer);
        else if (rst_pread_all(x->fd, p->buffer, count * RST_PAGE, x->offset + (page - x->first) * RST_PAGE) < 0)
            rst_pager_die(p, "cannot read the image");
        /* place every span that holds part of [page, page + count) */
        uint64_t k = 0;
        while (k < count) {
            struct span *s = rst_pager_span_of_page(c, page + k);
            if (!s) {
                c->state[page + k] = 1; /* unmapped */
                k++;
                continue;
            }
            uint64_t n = s->page + s->pages - (page + k);
            if (n > count - k) n = count - k;
            long r = place(c, s, page + k, n, p->buffer + k * RST_PAGE);
            if (r == -STASIS_EAGAIN) return 1; /* read the events, then this chunk again */
            if (r == -STASIS_ESRCH) return 0;
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
            if (c->state) rst_pager_release_context(p, c, p->pages);
            continue;
        }
        for (uint64_t k = 0; k < c->span_count; k++) {
            struct span *s = &c->spans[k];
            uint64_t page = s->page;
            while (page < s->page + s->pages && !c->state[page]) page++;
            if (page == s->page + s->pages) continue;
            struct rst_lazy_piece *x = rst_pager_piece_of_page(p, page);
            read_pages(p, x, page, 1, p->buffer);
            int64_t copy[5] = {(int64_t)(s->start + (page - s->page) * RST_PAGE), (int64_t)p->buffer, (int64_t)RST_PAGE, 0, 0};
            if (stasis_syscall3(STASIS_NR_ioctl, c->fd, (long)STASIS_UFFDIO_COPY, (long)copy) == -STASIS_ESRCH) rst_pager_release_context(p, c, p->pages);
            break;
        }
    }
}

/* One chunk of the parents' page data against the plan's CRCs. Returns 1 while checks remain. */
static int check_parents(struct pager *p) {
    struct rst_args *args = p->args;
    if (args->plan_fd < 0 || p->check >= args->plan.check_count) return 0;
    stasis_plan_check_t check;
    if (rst_plan_check(args, p->check, &check) < 0) rst_pager_die(p, "cannot read the restore plan");
    if (p->check_done == 0) p->check_crc = stasis_crc32c_begin();
    uint64_t n = check.bytes - p->check_done < PREFETCH_BYTES ? check.bytes - p->check_done : PREFETCH_BYTES;
    if (n && rst_pread_all(args->plan.image_fds[check.image], p->buffer, n, check.file_offset + p->check_done) < 0)
        rst_pager_die(p, "cannot read a parent image");
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
            case STASIS_UFFD_EVENT_PAGEFAULT:
                break;
            case STASIS_UFFD_EVENT_FORK:
                /* the child's pages: what the parent still lacked at the fork */
                if (rst_pager_new_context(p, (int)(uint32_t)m->a, c) < 0) {
                    reap_contexts(p);  /* children that exited meanwhile give their slots back */
                    if (rst_pager_new_context(p, (int)(uint32_t)m->a, &p->contexts[index]) < 0)
                        rst_pager_die(p, "too many processes forked while paging in");
                }
                break;
            case STASIS_UFFD_EVENT_REMAP:
                rst_pager_move_range(p, c, m->a, m->b, m->c);
                break;
            case STASIS_UFFD_EVENT_REMOVE:
            case STASIS_UFFD_EVENT_UNMAP:
                rst_pager_forget_range(p, c, m->a, m->b);
                break;
            default:
                break;
            }
        }
        for (long i = 0; i < count; i++) {
            c = &p->contexts[index];
            if (messages[i].event != STASIS_UFFD_EVENT_PAGEFAULT || !c->alive) continue;
            if (fault(p, c, messages[i].b) == -STASIS_EAGAIN && c->retry_count < 64) c->retry[c->retry_count++] = messages[i].b;
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

void rst_pager_main(struct rst_args *args, int go_fd, int hello_fd) {
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
    struct pager *p = rst_map_anonymous(sizeof(struct pager)); /* no globals in the restorer */
    if (!p) stasis_syscall1(STASIS_NR_exit_group, 1);
    p->args = args;
    p->pages = args->lazy_page_count;
    p->buffer = rst_map_anonymous(PREFETCH_BYTES);
    p->stored = rst_map_anonymous(RST_BLOCK_BYTES);
    p->block = rst_map_anonymous(RST_BLOCK_BYTES);
    p->unfiltered = rst_map_anonymous(RST_BLOCK_BYTES);
    if (!p->buffer || !p->stored || !p->block || !p->unfiltered || rst_pager_new_context(p, args->uffd, 0) < 0) rst_pager_die(p, "out of memory");
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
        stasis_syscall3(STASIS_NR_poll, (long)polls, p->count, wait > 0 ? (wait < 50 ? wait : 50) : 0);
        if (checking) check_parents(p);
        for (int i = 0; i < p->count; i++)
            if (polls[i].revents) read_events(p, i);
        for (int i = 0; i < p->count; i++) {
            struct context *c = &p->contexts[i];
            int n = c->retry_count;
            c->retry_count = 0;
            for (int k = 0; k < n && c->alive; k++)
                if (fault(p, c, c->retry[k]) == -STASIS_EAGAIN) c->retry[c->retry_count++] = c->retry[k];
        }
        if (monotonic_ms() < prefetch_from) continue;
        for (int i = 0; i < p->count; i++) {
            struct context *c = &p->contexts[i];
            if (c->alive && !prefetch(p, c, i == 0)) c->cursor = p->pages;
            if (!c->alive && c->state && i > 0) rst_pager_release_context(p, c, p->pages);
        }
    }
    /* Every page is in place: without the userfaultfd the areas are ordinary memory again. */
    for (int i = 0; i < p->count; i++) rst_pager_close_context(&p->contexts[i]);
    stasis_syscall1(STASIS_NR_exit_group, 0);
    __builtin_unreachable();
}
