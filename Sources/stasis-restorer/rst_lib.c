/* rst_lib.c: the few library routines the restorer needs (the compiler may
 * emit memcpy/memset calls itself), logging to the launcher's status pipe. */
#include "rst.h"

void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, size_t n) {
    unsigned char *d = dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}

size_t rst_strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

void rst_write_text(int fd, const char *text) {
    size_t n = rst_strlen(text);
    while (n > 0) {
        long w = stasis_syscall3(STASIS_NR_write, fd, (long)text, (long)n);
        if (w == -4) continue;
        if (w <= 0) return;
        text += w;
        n -= (size_t)w;
    }
}

/* Status lines are built whole and written with one write(2): the restorer's main thread and the
 * pager share the status pipe, and a line written in pieces could interleave with the other's
 * (the launcher then read "corrupt lazy restart: ok"). Pipe writes up to PIPE_BUF are atomic. */
void rst_line_text(struct rst_line *line, const char *text) {
    while (*text && line->length < sizeof line->text - 1) line->text[line->length++] = *text++;
}

void rst_line_hex(struct rst_line *line, uint64_t value) {
    rst_line_text(line, "0x");
    int started = 0;
    for (int shift = 60; shift >= 0; shift -= 4) {
        unsigned nibble = (unsigned)(value >> shift) & 0xf;
        if (nibble || started || shift == 0) {
            started = 1;
            char digit[2] = {(char)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10), 0};
            rst_line_text(line, digit);
        }
    }
}

void rst_line_send(struct rst_line *line, int fd) {
    line->text[line->length] = 0;
    rst_write_text(fd, line->text);
    line->length = 0;
}

/* "KIND WHAT (0xVALUE)\n" as one write. */
static void status_line(int fd, const char *kind, const char *what, uint64_t value) {
    struct rst_line line = {.length = 0};
    rst_line_text(&line, kind);
    rst_line_text(&line, what);
    rst_line_text(&line, " (");
    rst_line_hex(&line, value);
    rst_line_text(&line, ")\n");
    rst_line_send(&line, fd);
}

/* The launcher reads the status pipe: "error ..." lines mean the restore failed (`stasis restart`
 * exits 9), "corrupt ..." lines that the image is damaged (exit 3, as for the launcher's own checks). */
static __attribute__((noreturn)) void fail_with(struct rst_args *args, const char *kind, const char *what, uint64_t value) {
    status_line(args && args->status_fd >= 0 ? args->status_fd : 2, kind, what, value);
    stasis_syscall1(STASIS_NR_exit_group, RST_EXIT_FAILED);
    __builtin_unreachable();
}

void rst_fail(struct rst_args *args, const char *what, uint64_t value) { fail_with(args, STASIS_STATUS_ERROR, what, value); }

void rst_fail_image(struct rst_args *args, const char *what, uint64_t value) { fail_with(args, STASIS_STATUS_CORRUPT, what, value); }

void rst_warn(struct rst_args *args, const char *what, uint64_t value) {
    if (args->status_fd >= 0) status_line(args->status_fd, STASIS_STATUS_WARNING, what, value);
}

int rst_pread_all(int fd, void *buffer, uint64_t count, uint64_t offset) {
    unsigned char *p = buffer;
    while (count > 0) {
        long n = stasis_syscall4(STASIS_NR_pread64, fd, (long)p, (long)(count > (1ul << 30) ? (1ul << 30) : count),
                                 (long)offset);
        if (n == -4) continue;
        if (n < 0) return (int)n;
        if (n == 0) return -5; /* EIO: the image is shorter than its records say */
        p += n;
        count -= (uint64_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}
