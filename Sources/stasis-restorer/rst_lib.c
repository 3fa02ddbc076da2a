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

void rst_write_hex(int fd, uint64_t value) {
    char text[19];
    text[0] = '0';
    text[1] = 'x';
    int i = 2;
    int started = 0;
    for (int shift = 60; shift >= 0; shift -= 4) {
        unsigned nibble = (unsigned)(value >> shift) & 0xf;
        if (nibble || started || shift == 0) {
            started = 1;
            text[i++] = (char)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);
        }
    }
    text[i] = 0;
    rst_write_text(fd, text);
}

/* The launcher reads the status pipe: "error ..." lines mean the restore failed (`stasis restart`
 * exits 9), "corrupt ..." lines that the image is damaged (exit 3, as for the launcher's own checks). */
static __attribute__((noreturn)) void fail_with(struct rst_args *args, const char *kind, const char *what, uint64_t value) {
    int fd = args && args->status_fd >= 0 ? args->status_fd : 2;
    rst_write_text(fd, kind);
    rst_write_text(fd, what);
    rst_write_text(fd, " (");
    rst_write_hex(fd, value);
    rst_write_text(fd, ")\n");
    stasis_syscall1(STASIS_NR_exit_group, RST_EXIT_FAILED);
    __builtin_unreachable();
}

void rst_fail(struct rst_args *args, const char *what, uint64_t value) { fail_with(args, STASIS_STATUS_ERROR, what, value); }

void rst_fail_image(struct rst_args *args, const char *what, uint64_t value) { fail_with(args, STASIS_STATUS_CORRUPT, what, value); }

void rst_warn(struct rst_args *args, const char *what, uint64_t value) {
    if (args->status_fd < 0) return;
    rst_write_text(args->status_fd, STASIS_STATUS_WARNING);
    rst_write_text(args->status_fd, what);
    rst_write_text(args->status_fd, " (");
    rst_write_hex(args->status_fd, value);
    rst_write_text(args->status_fd, ")\n");
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
