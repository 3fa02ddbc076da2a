/* rst_plan.c: the restore plan of an incremental image (stasis_restore_plan.h, written by the
 * launcher): which pages of an area come from which parent image, and the parents' CRC checks. */
#include "rst.h"

void rst_read_plan(struct rst_args *args) {
    if (args->plan_fd < 0) return;
    if (rst_pread_all(args->plan_fd, &args->plan, sizeof args->plan, 0) < 0 || args->plan.magic != STASIS_PLAN_MAGIC ||
        args->plan.image_count > STASIS_PLAN_MAX_IMAGES)
        rst_fail(args, "bad restore plan from the launcher", 0);
    args->next_segment = 0;
    /* A tree member's shared memory objects, made and filled by the launcher (stasis_restore_plan.h):
     * they come first, so areas map them and no FILE_DESCRIPTOR record's fd takes their place. */
    if (args->plan.object_count > STASIS_PLAN_MAX_OBJECTS || args->plan.object_count > RST_MAX_FILE_OBJECTS)
        rst_fail(args, "too many shared objects in the restore plan", args->plan.object_count);
    uint64_t at = sizeof args->plan + (uint64_t)args->plan.segment_count * sizeof(stasis_page_segment_t) +
                  (uint64_t)args->plan.check_count * sizeof(stasis_plan_check_t);
    for (uint32_t i = 0; i < args->plan.object_count; i++) {
        stasis_plan_object_t object;
        if (rst_pread_all(args->plan_fd, &object, sizeof object, at + i * sizeof object) < 0 || object.fd < 0)
            rst_fail(args, "bad shared object in the restore plan", i);
        struct rst_file_object *o = &args->file_objects[args->file_object_count++];
        o->device = object.device;
        o->inode = object.inode;
        o->fd = object.fd;
        o->own = 2;
    }
}

/* The plan's segments inside `area` (they come in address order, as areas do). */
/* The next segment of the plan if it starts inside `area` (1), else 0; does not consume it. */
static int next_segment_in(struct rst_args *args, const stasis_memory_area_record_t *area, stasis_page_segment_t *segment) {
    if (args->plan_fd < 0 || args->next_segment >= args->plan.segment_count) return 0;
    uint64_t at = sizeof args->plan + (uint64_t)args->next_segment * sizeof *segment;
    if (rst_pread_all(args->plan_fd, segment, sizeof *segment, at) < 0) rst_fail(args, "cannot read the restore plan", at);
    return segment->address < area->end;
}

/* The plan's segments inside an area whose pages are not read (a program file mapped again). */
void rst_plan_skip_segments(struct rst_args *args, const stasis_memory_area_record_t *area) {
    stasis_page_segment_t segment;
    while (next_segment_in(args, area, &segment)) args->next_segment++;
}

void rst_plan_read_segments(struct rst_args *args, const stasis_memory_area_record_t *area, int lazy) {
    stasis_page_segment_t segment;
    while (next_segment_in(args, area, &segment)) {
        if (segment.address < area->start || segment.bytes > area->end - segment.address || segment.bytes % RST_PAGE ||
            segment.address % RST_PAGE || segment.image >= args->plan.image_count)
            rst_fail(args, "restore plan segment outside its area at", segment.address);
        if (lazy)
            rst_lazy_add_piece(args, segment.address, segment.bytes, args->plan.image_fds[segment.image], segment.file_offset, -1);
        else if (rst_pread_all(args->plan.image_fds[segment.image], (void *)segment.address, segment.bytes, segment.file_offset) < 0)
            rst_fail(args, "cannot read inherited pages from a parent image at", segment.address);
        args->next_segment++;
    }
}

void rst_check_plan_done(struct rst_args *args) {
    if (args->plan_fd < 0) return;
    if (args->next_segment != args->plan.segment_count)
        rst_fail(args, "restore plan segments outside every memory area", args->next_segment);
}

/* Reads check `index` of the plan: a parent area's whole page data and its CRC. */
int rst_plan_check(struct rst_args *args, uint32_t index, stasis_plan_check_t *check) {
    uint64_t at = sizeof args->plan + (uint64_t)args->plan.segment_count * sizeof(stasis_page_segment_t) +
                  (uint64_t)index * sizeof *check;
    if (rst_pread_all(args->plan_fd, check, sizeof *check, at) < 0 || check->image >= args->plan.image_count) return -1;
    return 0;
}

/* The parents' page data the segments came from, against its CRCs (before the program runs; a lazy
 * restart's pager does this instead while it pages in). */
void rst_verify_plan_checks(struct rst_args *args) {
    if (args->plan_fd < 0 || !args->plan.check_count) return;
    uint64_t chunk = 1ul << 20;
    uint8_t *buffer = rst_map_anonymous(chunk);
    if (!buffer) rst_fail(args, "no memory to check the parent images", chunk);
    for (uint32_t i = 0; i < args->plan.check_count; i++) {
        stasis_plan_check_t check;
        if (rst_plan_check(args, i, &check) < 0) rst_fail(args, "cannot read the restore plan's checks", i);
        uint32_t crc = stasis_crc32c_begin();
        for (uint64_t done = 0; done < check.bytes; done += chunk) {
            uint64_t n = check.bytes - done < chunk ? check.bytes - done : chunk;
            if (rst_pread_all(args->plan.image_fds[check.image], (void *)buffer, n, check.file_offset + done) < 0)
                rst_fail(args, "cannot read a parent image at", check.file_offset + done);
            crc = stasis_crc32c_update(crc, (void *)buffer, n);
        }
        if (stasis_crc32c_end(crc) != check.crc)
            rst_fail_image(args, "page data checksum mismatch in a parent image at offset", check.file_offset);
    }
    stasis_syscall2(STASIS_NR_munmap, (long)buffer, (long)chunk);
}

/* After the pager has its copies: the program keeps none of the parents' descriptors. */
void rst_close_plan(struct rst_args *args) {
    if (args->plan_fd < 0) return;
    for (uint32_t i = 0; i < args->plan.image_count; i++) stasis_syscall1(STASIS_NR_close, args->plan.image_fds[i]);
    stasis_syscall1(STASIS_NR_close, args->plan_fd);
}

