/* rst_memory.c: the address space.
 *
 *   restorer as exec'd        after rst_find_hole + move        after rst_restore_area
 *   +------------------+      +------------------+               +------------------+
 *   | restorer code    |      | (unmapped)       |               | program areas    |
 *   | restorer stack   |      | work region:     |               | ...              |
 *   | [vvar] [vdso]    |  ->  |  code copy,stack |  ->           | work region      |
 *   +------------------+      | [vvar] [vdso] at |               | [vvar] [vdso] at |
 *                             |  the image's addr|               |  the image's addr|
 *                             +------------------+               +------------------+
 * The work region sits in a hole that no image area and no current mapping
 * uses; the program's restore tail unmaps it just before rt_sigreturn. */
#include "rst.h"


static uint64_t parse_hex(const char **p) {
    uint64_t v = 0;
    for (;;) {
        char c = **p;
        unsigned d;
        if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
        else return v;
        v = v << 4 | d;
        (*p)++;
    }
}

static int starts_with(const char *p, const char *end, const char *word) {
    while (*word) {
        if (p >= end || *p != *word) return 0;
        p++;
        word++;
    }
    return p == end || *p == '\n';
}

void rst_read_current_maps(struct rst_args *args) {
    char text[16384];
    /* Touch the buffer first: the kernel would otherwise grow [stack] while it copies the maps text
     * into it, after writing the old [stack] line, and the hole chosen one page below that line could
     * then overlap the grown stack (MAP_FIXED_NOREPLACE: EEXIST, now and then, by ASLR). */
    memset(text, 0, sizeof text);
    long fd = stasis_syscall3(STASIS_NR_open, (long)"/proc/self/maps", RST_O_RDONLY | RST_O_CLOEXEC, 0);
    if (fd < 0) rst_fail(args, "cannot open /proc/self/maps", (uint64_t)-fd);
    long total = 0;
    for (;;) {
        long n = stasis_syscall3(STASIS_NR_read, fd, (long)(text + total), (long)(sizeof text - 1 - total));
        if (n == -4) continue;
        if (n <= 0) break;
        total += n;
        if (total >= (long)sizeof text - 1) break;
    }
    stasis_syscall1(STASIS_NR_close, fd);
    text[total] = 0;
    args->current_count = 0;
    const char *p = text;
    const char *end = text + total;
    while (p < end && args->current_count < RST_MAX_CURRENT) {
        struct rst_range *r = &args->current[args->current_count++];
        r->start = parse_hex(&p);
        p++; /* '-' */
        r->end = parse_hex(&p);
        r->vdso_kind = 0;
        /* the path is the text after the fifth field */
        int spaces = 0;
        while (p < end && *p != '\n' && spaces < 5) {
            if (*p == ' ') {
                spaces++;
                while (p < end && *p == ' ') p++;
            } else {
                p++;
            }
        }
        const char *line_end = p;
        while (line_end < end && *line_end != '\n') line_end++;
        if (starts_with(p, line_end, "[vdso]")) r->vdso_kind = STASIS_AREA_VDSO;
        if (starts_with(p, line_end, "[vvar]")) r->vdso_kind = STASIS_AREA_VVAR;
        if (starts_with(p, line_end, "[vvar_vclock]")) r->vdso_kind = STASIS_AREA_VVAR_VCLOCK;
        /* Our own stack may still grow: keep the kernel's guard gap below it free as well. */
        if ((uint64_t)text >= r->start && (uint64_t)text < r->end)
            r->start = r->start > RST_STACK_GUARD ? r->start - RST_STACK_GUARD : 0;
        if (r->start >= RST_USER_TOP) args->current_count--; /* [vsyscall] */
        p = line_end + 1;
    }
}

/* ---- finding the hole ---------------------------------------------------- */

static int vdso_index(uint32_t kind) {
    return kind == STASIS_AREA_VDSO ? 0 : kind == STASIS_AREA_VVAR ? 1 : kind == STASIS_AREA_VVAR_VCLOCK ? 2 : -1;
}

/* Highest page-aligned start in [low, high) for `need` bytes that avoids the current mappings. */
static uint64_t fit_in_gap(struct rst_args *args, uint64_t low, uint64_t high, uint64_t need) {
    if (high < low + need) return 0;
    uint64_t pos = (high - need) & ~(RST_PAGE - 1);
    for (int tries = 0; tries < RST_MAX_CURRENT + 1; tries++) {
        if (pos < low) return 0;
        int moved = 0;
        for (int i = 0; i < args->current_count; i++) {
            const struct rst_range *r = &args->current[i];
            if (pos < r->end && pos + need > r->start) {
                if (r->start < need + RST_PAGE) return 0;
                pos = (r->start - need - RST_PAGE) & ~(RST_PAGE - 1);
                moved = 1;
            }
        }
        if (!moved) return pos;
    }
    return 0;
}

void rst_find_hole(struct rst_args *args) {
    /* The code copy: the mapping that holds this function. */
    uint64_t here = (uint64_t)&rst_find_hole;
    for (int i = 0; i < args->current_count; i++) {
        if (here >= args->current[i].start && here < args->current[i].end) {
            args->code_start = args->current[i].start;
            args->code_bytes = args->current[i].end - args->current[i].start;
        }
    }
    if (!args->code_bytes) rst_fail(args, "cannot find the restorer's own mapping", here);
    uint64_t args_bytes = (sizeof(struct rst_args) + RST_PAGE - 1) & ~(RST_PAGE - 1);
    uint64_t low_vdso = ~0ul, high_vdso = 0;
    for (int i = 0; i < args->current_count; i++) {
        if (!args->current[i].vdso_kind) continue;
        if (args->current[i].start < low_vdso) low_vdso = args->current[i].start;
        if (args->current[i].end > high_vdso) high_vdso = args->current[i].end;
    }
    uint64_t vdso_span = high_vdso > low_vdso ? high_vdso - low_vdso : 0;
    uint64_t threads = args->header.thread_count;
    if (threads < 1 || threads > RST_MAX_THREADS) rst_fail(args, "bad thread count in header", threads);
    uint64_t table_bytes = (threads * sizeof(struct rst_thread) + RST_PAGE - 1) & ~(RST_PAGE - 1);
    args->work_bytes = (args->lazy_requested ? rst_lazy_table_bytes() : 0) +
                       args->code_bytes + RST_STACK_BYTES + vdso_span + args_bytes + table_bytes +
                       threads * RST_THREAD_STACK_BYTES + RST_PAGE + 2 * RST_BLOCK_BYTES /* rst_blocks.c's buffers */;

    /* Walk the image's areas in address order; every gap between them is a candidate. */
    uint64_t offset = args->first_record;
    uint64_t previous_end = RST_MMAP_MIN;
    uint64_t best = 0;
    for (;;) {
        stasis_record_header_t record;
        if (offset + sizeof record > args->image_size || rst_read_image(args, &record, sizeof record, offset) < 0)
            rst_fail_image(args, "image truncated at record", offset);
        if (record.kind == STASIS_RECORD_END) break;
        uint64_t payload_end = offset + sizeof record + record.payload_bytes;
        uint64_t next = record.data_bytes ? record.data_offset + record.data_bytes : STASIS_RECORD_ALIGN_UP(payload_end);
        if (next <= offset || next > args->image_size) rst_fail_image(args, "record out of bounds at", offset);
        if (record.kind == STASIS_RECORD_MEMORY_AREA) {
            stasis_memory_area_record_t area;
            if (record.payload_bytes < sizeof area || rst_read_image(args, &area, sizeof area, offset + sizeof record) < 0)
                rst_fail_image(args, "bad memory area record at", offset);
            int k = vdso_index(area.flags & (STASIS_AREA_VDSO | STASIS_AREA_VVAR | STASIS_AREA_VVAR_VCLOCK));
            if (k >= 0) { /* for rst_move_vdso: one walk over the records, not two */
                args->vdso_image_start[k] = area.start;
                args->vdso_image_end[k] = area.end;
            }
            if (!(area.flags & STASIS_AREA_VSYSCALL)) {
                if (area.start < previous_end || area.end <= area.start || area.end > RST_USER_TOP)
                    rst_fail_image(args, "memory areas overlap or leave user space at", area.start);
                uint64_t fit = fit_in_gap(args, previous_end, area.start, args->work_bytes);
                if (fit > best) best = fit;
                previous_end = area.end;
            }
        }
        offset = next;
    }
    uint64_t fit = fit_in_gap(args, previous_end, RST_USER_TOP, args->work_bytes);
    if (fit > best) best = fit;
    if (!best) rst_fail(args, "no free address range for the restorer", args->work_bytes);
    args->work_start = best;
    args->vdso_temp = best + args->code_bytes + RST_STACK_BYTES;
}

/* ---- after the move ------------------------------------------------------ */

/* Unmaps everything the exec gave us except the vDSO family (moved next). */
void rst_unmap_restorer(struct rst_args *args) {
    for (int i = 0; i < args->current_count; i++) {
        const struct rst_range *r = &args->current[i];
        if (r->vdso_kind) continue;
        stasis_syscall2(STASIS_NR_munmap, (long)r->start, (long)(r->end - r->start));
    }
}

/* Moves [vvar], [vvar_vclock] and [vdso] together to the image's addresses: the
 * restored code holds pointers into the old vDSO. Via a scratch range first, so
 * that a move never lands on a part not yet moved. */
void rst_move_vdso(struct rst_args *args) {
    const uint64_t *image_start = args->vdso_image_start, *image_end = args->vdso_image_end; /* rst_find_hole's */
    int image_has_vdso = image_start[0] || image_start[1] || image_start[2];
    uint64_t current_low = ~0ul;
    for (int i = 0; i < args->current_count; i++)
        if (args->current[i].vdso_kind && args->current[i].start < current_low) current_low = args->current[i].start;
    if (!image_has_vdso) return;
    /* Same members, same sizes, same spacing, or nothing works. */
    uint64_t image_low = ~0ul;
    for (int k = 0; k < 3; k++)
        if (image_start[k] && image_start[k] < image_low) image_low = image_start[k];
    int seen[3] = {0, 0, 0};
    for (int i = 0; i < args->current_count; i++) {
        const struct rst_range *r = &args->current[i];
        int k = vdso_index(r->vdso_kind);
        if (k < 0) continue;
        seen[k] = 1;
        if (!image_start[k] || image_end[k] - image_start[k] != r->end - r->start ||
            image_start[k] - image_low != r->start - current_low)
            rst_fail(args, "vDSO layout differs from the checkpointed kernel's; restart on a machine with the same kernel",
                     r->end - r->start);
    }
    for (int k = 0; k < 3; k++)
        if (image_start[k] && !seen[k])
            rst_fail(args, "vDSO layout differs from the checkpointed kernel's; restart on a machine with the same kernel", k);
    if (image_low == current_low) return;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < args->current_count; i++) {
            struct rst_range *r = &args->current[i];
            if (!r->vdso_kind) continue;
            uint64_t size = r->end - r->start;
            uint64_t to = pass == 0 ? args->vdso_temp + (r->start - current_low) : image_start[vdso_index(r->vdso_kind)];
            long moved = stasis_syscall5(STASIS_NR_mremap, (long)r->start, (long)size, (long)size,
                                         RST_MREMAP_MAYMOVE | RST_MREMAP_FIXED, (long)to);
            if (moved < 0) rst_fail(args, "cannot move the vDSO", (uint64_t)-moved);
            r->start = to;
            r->end = to + size;
        }
        if (pass == 0) current_low = args->vdso_temp;
    }
}

/* ---- program memory -------------------------------------------------------- */


/* The path of `length` bytes at image offset `offset`, into args->path (NUL-terminated). */
void rst_read_path(struct rst_args *args, uint64_t offset, uint32_t length) {
    if (length > STASIS_MAX_PATH || rst_read_image(args, args->path, length, offset) < 0)
        rst_fail(args, "bad path in record at", offset);
    args->path[length] = 0;
}

static void map_area(struct rst_args *args, const stasis_memory_area_record_t *area, uint64_t path_offset) {
    uint64_t size = area->end - area->start;
    int shared = (area->flags & STASIS_AREA_SHARED) != 0;
    int prot = (int)area->prot | (area->run_count ? RST_PROT_WRITE : 0); /* writable while data is read in */
    long mapped;
    if (area->flags & (STASIS_AREA_ANONYMOUS | STASIS_AREA_SCRATCH)) {
        int flags = RST_MAP_FIXED | RST_MAP_ANONYMOUS | (shared ? RST_MAP_SHARED : RST_MAP_PRIVATE);
        if (area->flags & STASIS_AREA_STACK) flags |= RST_MAP_GROWSDOWN;
        if (area->run_count) prot |= RST_PROT_READ;
        mapped = stasis_syscall6(STASIS_NR_mmap, (long)area->start, (long)size, prot, flags, -1, 0);
    } else {
        rst_read_path(args, path_offset, area->path_bytes);
        long fd = -1;
        if (shared) fd = stasis_syscall3(STASIS_NR_open, (long)args->path, RST_O_RDWR | RST_O_CLOEXEC, 0);
        if (fd < 0) fd = stasis_syscall3(STASIS_NR_open, (long)args->path, RST_O_RDONLY | RST_O_CLOEXEC, 0);
        if (fd < 0) {
            struct rst_line line = {.length = 0};
            rst_line_text(&line, "cannot open mapped file ");
            rst_line_text(&line, args->path);
            rst_fail(args, line.text, (uint64_t)-fd);
        }
        if (area->run_count) prot |= RST_PROT_READ;
        mapped = stasis_syscall6(STASIS_NR_mmap, (long)area->start, (long)size, prot,
                                 RST_MAP_FIXED | (shared ? RST_MAP_SHARED : RST_MAP_PRIVATE), fd, (long)area->file_offset);
        stasis_syscall1(STASIS_NR_close, fd);
    }
    if (mapped != (long)area->start) rst_fail(args, "cannot map memory area at", area->start);
}

/* ---- shared mappings of memfds and deleted files -------------------------- */

static struct rst_file_object *find_file_object(struct rst_args *args, uint64_t device, uint64_t inode) {
    for (int i = 0; i < args->file_object_count; i++)
        if (args->file_objects[i].device == device && args->file_objects[i].inode == inode) return &args->file_objects[i];
    return 0;
}

void rst_note_file_object(struct rst_args *args, const stasis_file_descriptor_record_t *fd) {
    if (fd->kind != STASIS_FD_MEMFD && fd->kind != STASIS_FD_DELETED) return;
    if (find_file_object(args, fd->device, fd->inode) || args->file_object_count >= RST_MAX_FILE_OBJECTS) return;
    struct rst_file_object *o = &args->file_objects[args->file_object_count++];
    o->device = fd->device;
    o->inode = fd->inode;
    o->fd = fd->fd;
    o->own = 0;
}

void rst_close_file_objects(struct rst_args *args) {
    for (int i = 0; i < args->file_object_count; i++) /* ours and the launcher's; the program's fds stay */
        if (args->file_objects[i].own) stasis_syscall1(STASIS_NR_close, args->file_objects[i].fd);
    args->file_object_count = 0;
}

/* The program's recreated file: mapped MAP_SHARED through a fresh open of /proc/self/fd/N (the fd's own
 * access mode may be narrower than the mapping's; read-write first, then read-only for a read-only
 * mapping of a write-sealed memfd). Its contents are already the file's: the area's pages are not read. */
static int map_program_file(struct rst_args *args, const stasis_memory_area_record_t *area, int program_fd) {
    char *p = args->path;
    const char *prefix = "/proc/self/fd/";
    int n = 0;
    while (prefix[n]) { p[n] = prefix[n]; n++; }
    char digits[12];
    int d = 0;
    uint32_t v = (uint32_t)program_fd;
    do { digits[d++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (d) p[n++] = digits[--d];
    p[n] = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        long fd = stasis_syscall3(STASIS_NR_open, (long)p, (attempt ? RST_O_RDONLY : RST_O_RDWR) | RST_O_CLOEXEC, 0);
        if (fd < 0) continue;
        long mapped = stasis_syscall6(STASIS_NR_mmap, (long)area->start, (long)(area->end - area->start), (long)area->prot,
                                      RST_MAP_FIXED | RST_MAP_SHARED, fd, (long)area->file_offset);
        stasis_syscall1(STASIS_NR_close, fd);
        if (mapped == (long)area->start) return 0;
    }
    return -1;
}

/* No descriptor has the file: one memfd of the restorer's own per device/inode, so that every area
 * that mapped it shares it again; the areas' pages fill it. */
static long own_file_object(struct rst_args *args, const stasis_memory_area_record_t *area) {
    struct rst_file_object *o = find_file_object(args, area->device, area->inode);
    long fd;
    if (o) {
        fd = o->fd;
    } else {
        fd = stasis_syscall2(STASIS_NR_memfd_create, (long)"stasis-shared", 1 /* MFD_CLOEXEC */);
        if (fd < 0) rst_fail(args, "cannot create a memfd for the shared area at", area->start);
        if (args->file_object_count < RST_MAX_FILE_OBJECTS) {
            o = &args->file_objects[args->file_object_count++];
            o->device = area->device;
            o->inode = area->inode;
            o->fd = (int32_t)fd;
            o->own = 1;
        }
    }
    uint64_t needed = area->file_offset + (area->end - area->start);
    long size = stasis_syscall3(STASIS_NR_lseek, fd, 0, 2 /* SEEK_END */);
    if (size < 0 || (uint64_t)size < needed) {
        long r = stasis_syscall2(STASIS_NR_ftruncate, fd, (long)needed);
        if (r < 0) rst_fail(args, "cannot size the memfd for the shared area at", area->start);
    }
    return fd;
}


int rst_restore_area(struct rst_args *args, const stasis_record_header_t *record, uint64_t offset) {
    stasis_memory_area_record_t area;
    uint64_t payload = offset + sizeof *record;
    if (record->payload_bytes < sizeof area || rst_read_image(args, &area, sizeof area, payload) < 0) return -1;
    uint64_t runs_bytes = (uint64_t)area.run_count * sizeof(stasis_page_run_t);
    if ((uint64_t)record->payload_bytes != sizeof area + runs_bytes + area.path_bytes) return -1;
    if (area.flags & (STASIS_AREA_VSYSCALL | STASIS_AREA_VDSO | STASIS_AREA_VVAR | STASIS_AREA_VVAR_VCLOCK)) return 0;
    if (area.start % RST_PAGE || area.end % RST_PAGE || area.end <= area.start || area.end > RST_USER_TOP) return -1;
    if (area.start < args->work_start + args->work_bytes && area.end > args->work_start)
        rst_fail(args, "memory area overlaps the restorer", area.start);
    if ((area.flags & STASIS_AREA_FILE_OBJECT) && (area.flags & STASIS_AREA_SHARED)) {
        struct rst_file_object *o = find_file_object(args, area.device, area.inode);
        if (o && o->own != 1) { /* the program's recreated file, or a tree's object from the plan: filled */
            if (map_program_file(args, &area, o->fd) < 0) rst_fail(args, "cannot map the memfd or deleted file again at", area.start);
            rst_plan_skip_segments(args, &area);
            return 0;
        }
        long fd = own_file_object(args, &area);
        int prot = (int)area.prot | (area.run_count ? RST_PROT_WRITE | RST_PROT_READ : 0);
        long mapped = stasis_syscall6(STASIS_NR_mmap, (long)area.start, (long)(area.end - area.start), prot,
                                      RST_MAP_FIXED | RST_MAP_SHARED, fd, (long)area.file_offset);
        if (mapped != (long)area.start) rst_fail(args, "cannot map memory area at", area.start);
    } else {
        map_area(args, &area, payload + sizeof area + runs_bytes);
    }
    uint64_t slot = args->agent.key_slot;
    if ((area.flags & STASIS_AREA_SCRATCH) && slot >= area.start && slot + sizeof(stasis_key_slot_t) <= area.end)
        args->key_slot_ok = 1;

    /* Page data: runs in order, contiguous in the file from data_offset; inherited runs (an
     * incremental image) hold none: the plan's segments bring their pages from the parents. A lazy
     * area (rst_lazy.c) only records where its pages are: the pager brings them in and checks the CRC. */
    int compressed = (area.flags & STASIS_AREA_COMPRESSED) != 0;
    if (compressed && (record->data_bytes || (area.flags & STASIS_AREA_SHARED) || !args->block_buffer))
        rst_fail_image(args, "bad compressed memory area at", area.start);
    /* A compressed area's own pages come in the PAGE_BLOCKS records after it (rst_blocks.c), each
     * block checked by its own CRC: the area has no data CRC to check in order. */
    int lazy = rst_lazy_wants(args, &area)
        ? rst_lazy_add_area(args, area.start, area.end, compressed ? 0 : record->data_bytes, record->data_crc) : -1;
    uint64_t area_pages = (area.end - area.start) / RST_PAGE;
    uint64_t data = record->data_offset;
    uint64_t stored = 0;
    uint32_t crc = stasis_crc32c_begin();
    stasis_page_run_t runs[256];
    for (uint64_t i = 0; i < area.run_count; i += 256) {
        uint64_t batch = area.run_count - i < 256 ? area.run_count - i : 256;
        if (rst_read_image(args, runs, batch * sizeof runs[0], payload + sizeof area + i * sizeof runs[0]) < 0)
            return -1;
        for (uint64_t j = 0; j < batch; j++) {
            uint64_t first = runs[j].first_page & ~STASIS_RUN_INHERITED;
            if (first >= area_pages || runs[j].page_count > area_pages - first) return -1;
            if (runs[j].first_page & STASIS_RUN_INHERITED) {
                if (args->plan_fd < 0) rst_fail(args, "incremental image without a restore plan; area", area.start);
                continue;
            }
            if (compressed) continue;
            uint64_t bytes = runs[j].page_count * RST_PAGE;
            if (stored + bytes > record->data_bytes) return -1;
            void *into = (void *)(area.start + first * RST_PAGE);
            if (lazy >= 0) {
                rst_lazy_add_piece(args, (uint64_t)into, bytes, args->image_fd, data, lazy);
            } else {
                int err = rst_pread_all(args->image_fd, into, bytes, data);
                if (err < 0) rst_fail(args, "cannot read page data for area", area.start);
                crc = stasis_crc32c_update(crc, into, bytes);
            }
            data += bytes;
            stored += bytes;
        }
    }
    if (stored != record->data_bytes) return -1;
    if (lazy < 0 && stored && stasis_crc32c_end(crc) != record->data_crc)
        rst_fail_image(args, "page data checksum mismatch for area", area.start);
    rst_plan_read_segments(args, &area, lazy >= 0);
    if (compressed) { /* protection once its blocks are in */
        rst_blocks_begin(args, &area, payload + sizeof area, lazy);
        return 0;
    }
    /* mapped readable and writable for the reads above: back to the recorded protection, if it differs */
    if (area.run_count && (area.prot & (RST_PROT_READ | RST_PROT_WRITE)) != (RST_PROT_READ | RST_PROT_WRITE)) {
        long r = stasis_syscall3(STASIS_NR_mprotect, (long)area.start, (long)(area.end - area.start), (long)area.prot);
        if (r < 0) rst_fail(args, "cannot protect memory area", area.start);
    }
    return 0;
}
