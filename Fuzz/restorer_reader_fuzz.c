/* libFuzzer target for the restorer's own image reader (Sources/stasis-restorer/rst_image.c): header
 * check, record framing and payload checksums, over a memfd holding the input. rst_fail (and rst_fail_image) longjmp back
 * here instead of exiting. The per-kind callback repeats the restorer's size checks without mapping
 * anything. Built by Fuzz/run.sh with clang -fsanitize=fuzzer,address. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../Sources/stasis-restorer/rst.h"

static jmp_buf bail;

void rst_fail(struct rst_args *args, const char *what, uint64_t value) {
    (void)args; (void)what; (void)value;
    longjmp(bail, 1);
}
void rst_fail_image(struct rst_args *args, const char *what, uint64_t value) { rst_fail(args, what, value); }
void rst_warn(struct rst_args *args, const char *what, uint64_t value) { (void)args; (void)what; (void)value; }
int rst_pread_all(int fd, void *buffer, uint64_t count, uint64_t offset) {
    while (count > 0) {
        ssize_t n = pread(fd, buffer, count, (off_t)offset);
        if (n < 0) return -5;
        if (n == 0) return -5;
        buffer = (char *)buffer + n;
        count -= (uint64_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

static int check_record(struct rst_args *args, const stasis_record_header_t *record, uint64_t offset) {
    uint64_t payload = offset + sizeof *record;
    if (record->kind == STASIS_RECORD_MEMORY_AREA) {
        stasis_memory_area_record_t area;
        if (record->payload_bytes < sizeof area || rst_pread_all(args->image_fd, &area, sizeof area, payload) < 0) return -1;
        uint64_t runs_bytes = (uint64_t)area.run_count * sizeof(stasis_page_run_t);
        if ((uint64_t)record->payload_bytes != sizeof area + runs_bytes + area.path_bytes) return -1;
        uint64_t pages = area.end > area.start ? (area.end - area.start) / 4096 : 0, stored = 0;
        for (uint64_t i = 0; i < area.run_count; i++) {
            stasis_page_run_t run;
            if (rst_pread_all(args->image_fd, &run, sizeof run, payload + sizeof area + i * sizeof run) < 0) return -1;
            if (run.first_page >= pages || run.page_count > pages - run.first_page) return -1;
            stored += run.page_count * 4096;
        }
        if (stored != record->data_bytes) return -1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("image", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (write(fd, data, size) != (ssize_t)size) { close(fd); return 0; }
    struct rst_args *args = calloc(1, sizeof *args);
    args->image_fd = fd;
    args->status_fd = -1;
    if (!setjmp(bail)) {
        rst_read_header(args);
        rst_for_each_record(args, check_record);
    }
    free(args);
    close(fd);
    return 0;
}
