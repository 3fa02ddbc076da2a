/* rst_image.c: reads the image header and walks its records, checking every
 * length and offset against the file before anything uses them. The launcher
 * has validated the image already; the restorer trusts nothing anyway. */
#include "rst.h"

void rst_read_header(struct rst_args *args) {
    stasis_kstat_t st;
    if (stasis_syscall2(STASIS_NR_fstat, args->image_fd, (long)&st) < 0) rst_fail(args, "cannot stat the image", 0);
    args->image_size = (uint64_t)st.st_size;
    args->window_bytes = 0;
    if (rst_pread_all(args->image_fd, &args->header, sizeof args->header, 0) < 0)
        rst_fail_image(args, "image too short for its header", args->image_size);
    const char magic[STASIS_IMAGE_MAGIC_BYTES] = STASIS_IMAGE_MAGIC;
    for (int i = 0; i < STASIS_IMAGE_MAGIC_BYTES; i++)
        if (args->header.magic[i] != magic[i]) rst_fail_image(args, "not a Stasis image", 0);
    if (args->header.version < STASIS_IMAGE_VERSION_OLDEST || args->header.version > STASIS_IMAGE_VERSION) rst_fail(args, "unsupported image version", args->header.version);
    if (args->header.arch != STASIS_ARCH_X86_64) rst_fail(args, "image is for another architecture", args->header.arch);
    if (args->header.page_size != RST_PAGE) rst_fail(args, "image page size differs", args->header.page_size);
    if (args->header.header_bytes != sizeof(stasis_image_header_t) || args->header.program_bytes > STASIS_MAX_PATH)
        rst_fail_image(args, "corrupt image header", 0);
    args->first_record = STASIS_RECORD_ALIGN_UP(sizeof(stasis_image_header_t) + args->header.program_bytes);
    stasis_image_header_t copy = args->header;
    copy.header_crc = 0;
    uint32_t crc = stasis_crc32c_update(stasis_crc32c_begin(), &copy, sizeof copy);
    crc = stasis_crc32c_end(rst_crc_of_file(args, crc, sizeof copy, args->header.program_bytes));
    if (crc != args->header.header_crc) rst_fail_image(args, "image header checksum mismatch", crc);
}

/* Reads record bytes (headers, payloads, paths) of the image like rst_pread_all, through a window:
 * a miss reads 1 KiB from `offset` (or the request, up to the window's size), so a record's header,
 * payload and path, and the small records packed after it, cost one pread instead of one each.
 * (More would mostly copy the padding before page data, or page data itself.) */
int rst_read_image(struct rst_args *args, void *buffer, uint64_t count, uint64_t offset) {
    if (count > sizeof args->window) return rst_pread_all(args->image_fd, buffer, count, offset);
    if (!args->window_bytes || offset < args->window_offset || offset - args->window_offset > args->window_bytes ||
        count > args->window_bytes - (offset - args->window_offset)) {
        args->window_bytes = 0;
        if (offset > args->image_size || count > args->image_size - offset) return -5; /* EIO: short image */
        uint64_t want = count > 1024 ? count : 1024;
        if (want > sizeof args->window) want = sizeof args->window;
        if (want > args->image_size - offset) want = args->image_size - offset;
        int err = rst_pread_all(args->image_fd, args->window, want, offset);
        if (err < 0) return err;
        args->window_offset = offset;
        args->window_bytes = want;
    }
    memcpy(buffer, args->window + (offset - args->window_offset), count);
    return 0;
}

/* Continues `crc` over `count` bytes of the image at `offset`. */
uint32_t rst_crc_of_file(struct rst_args *args, uint32_t crc, uint64_t offset, uint64_t count) {
    unsigned char buffer[4096];
    while (count > 0) {
        uint64_t n = count < sizeof buffer ? count : sizeof buffer;
        if (rst_read_image(args, buffer, n, offset) < 0) rst_fail(args, "image read failed at", offset);
        crc = stasis_crc32c_update(crc, buffer, n);
        offset += n;
        count -= n;
    }
    return crc;
}

/* Calls fn for every record before END; fails on any inconsistency. */
void rst_for_each_record(struct rst_args *args, rst_record_fn fn) {
    uint64_t offset = args->first_record;
    uint64_t count = 0;
    for (;;) {
        stasis_record_header_t record;
        if (offset + sizeof record > args->image_size || rst_read_image(args, &record, sizeof record, offset) < 0)
            rst_fail_image(args, "image truncated at record", offset);
        uint64_t payload_end = offset + sizeof record + record.payload_bytes;
        uint64_t next;
        if (record.data_bytes) {
            uint64_t expected = (payload_end + RST_PAGE - 1) & ~(RST_PAGE - 1);
            if (record.data_offset != expected || record.data_bytes % RST_PAGE ||
                record.data_bytes > args->image_size || record.data_offset > args->image_size - record.data_bytes)
                rst_fail_image(args, "record data out of bounds at", offset);
            next = record.data_offset + record.data_bytes;
        } else {
            if (record.data_offset) rst_fail_image(args, "record data offset without data at", offset);
            next = STASIS_RECORD_ALIGN_UP(payload_end);
        }
        if (payload_end > args->image_size || next > args->image_size) rst_fail_image(args, "record out of bounds at", offset);
        uint32_t crc = stasis_crc32c_update(stasis_crc32c_begin(), &record, STASIS_RECORD_CRC_OFFSET);
        crc = stasis_crc32c_end(rst_crc_of_file(args, crc, offset + sizeof record, record.payload_bytes));
        if (crc != record.payload_crc) rst_fail_image(args, "record checksum mismatch at", offset);
        if (record.kind == STASIS_RECORD_END) {
            stasis_end_record_t end;
            if (record.payload_bytes != sizeof end || rst_read_image(args, &end, sizeof end, offset + sizeof record) < 0 ||
                end.magic != STASIS_END_MAGIC || end.record_count != count || end.end_offset != offset)
                rst_fail_image(args, "image END record does not match", offset);
            return;
        }
        if (fn(args, &record, offset) < 0) rst_fail(args, "bad record at", offset);
        count++;
        offset = next;
    }
}
