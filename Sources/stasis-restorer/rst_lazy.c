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

#define UFFD_FEATURES_ (STASIS_UFFD_FEATURE_EVENT_FORK | STASIS_UFFD_FEATURE_EVENT_REMAP | STASIS_UFFD_FEATURE_EVENT_REMOVE | STASIS_UFFD_FEATURE_EVENT_UNMAP)

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
    long fd = stasis_syscall1(STASIS_NR_userfaultfd, 02000000 | 04000 /* O_CLOEXEC | O_NONBLOCK */);
    if (fd < 0) {
        args->lazy_unavailable = fd; /* said once an area would have been lazy (rst_lazy_start) */
        return;
    }
    uint64_t api[3] = {0xAA, UFFD_FEATURES_, 0};
    long r = stasis_syscall3(STASIS_NR_ioctl, fd, (long)STASIS_UFFDIO_API, (long)api);
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
    if (last && !last->flags && last->fd == fd && last->area == area && last->address + last->pages * RST_PAGE == address &&
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
        p->flags = 0;
    }
    args->lazy_page_count += bytes / RST_PAGE;
}


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
    long middle = stasis_syscall5(STASIS_NR_clone, 0, 0, 0, 0, 0);
    if (middle < 0) rst_fail(args, "cannot start the pager", (uint64_t)-middle);
    if (middle == 0) {
        rst_drop_capabilities(args); /* the pager needs none */
        long pager = stasis_syscall5(STASIS_NR_clone, 0, 0, 0, 0, 0);
        if (pager == 0) rst_pager_main(args, go[0], hello[1]);
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
        long r = stasis_syscall3(STASIS_NR_ioctl, args->uffd, (long)STASIS_UFFDIO_REGISTER, (long)reg);
        if (r < 0) rst_fail(args, "cannot register a memory area for lazy restart", a->start);
    }
    char byte = 'g';
    stasis_syscall3(STASIS_NR_write, go[1], (long)&byte, 1);
    stasis_syscall1(STASIS_NR_close, go[1]);
    stasis_syscall1(STASIS_NR_close, args->uffd);
    args->uffd = -1;
}
