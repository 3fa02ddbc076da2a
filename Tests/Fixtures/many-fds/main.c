/* many-fds: thousands of descriptors, verified on SIGTERM (the shared-description search and restart's
 * descriptor numbers, Docs/ARCHITECTURE.md 2.4 and 3.3).
 *   many-fds DIR NULLS DUPS SOFT [PIPES]
 *   - NULLS independent opens of /dev/null: one inode, NULLS open file descriptions
 *   - DUPS dup()s of DIR/data at offset 12345, interleaved with those: one description
 *   - 100 independent opens of DIR/data, open number i at offset i + 1: one inode, 100 descriptions
 *   - PIPES pipes (default 4) holding "pipe-N", and a dup of each read end
 *   - the soft RLIMIT_NOFILE set to SOFT (0: the hard limit), which must be the program's again after restart
 * Prints READY, then PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KCMP_FILE 0
#define INDEPENDENT 100

static volatile sig_atomic_t terminate_requested;
static void on_term(int signo) { (void)signo; terminate_requested = 1; }
static int failures;
static void fail(const char *what, long detail) {
    if (failures < 20) printf("FAIL %s (%ld, errno %d)\n", what, detail, errno);
    fflush(stdout);
    failures++;
}

/* 0: one description, 1: two, -1: kcmp cannot tell (not built in, or a seccomp filter). */
static int distinct(int a, int b) {
    long r = syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, a, b);
    return r < 0 ? -1 : r != 0;
}

int main(int argc, char **argv) {
    if (argc < 5) return 2;
    signal(SIGTERM, on_term);
    int nulls = atoi(argv[2]), dups = atoi(argv[3]), pipe_count = argc > 5 ? atoi(argv[5]) : 4;
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = atol(argv[4]) > 0 ? (rlim_t)atol(argv[4]) : limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) { fail("setrlimit", (long)limit.rlim_cur); return 1; }
    rlim_t soft = limit.rlim_cur;

    char path[4096];
    snprintf(path, sizeof path, "%s/data", argv[1]);
    int data = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (data < 0) { fail("open data", 0); return 1; }
    static char block[20000];
    memset(block, 'd', sizeof block);
    if (write(data, block, sizeof block) != (ssize_t)sizeof block) { fail("write data", 0); return 1; }
    lseek(data, 12345, SEEK_SET);

    struct stat null_status;
    if (stat("/dev/null", &null_status) != 0) { fail("stat /dev/null", 0); return 1; }
    int *null_fds = calloc((size_t)nulls + 1, sizeof(int)), *dup_fds = calloc((size_t)dups + 1, sizeof(int));
    for (int i = 0; i < nulls || i < dups; i++) {
        if (i < nulls && (null_fds[i] = open("/dev/null", i % 2 ? O_RDWR : O_WRONLY)) < 0) { fail("open /dev/null", i); return 1; }
        if (i < dups && (dup_fds[i] = dup(data)) < 0) { fail("dup", i); return 1; }
    }
    int independent[INDEPENDENT];
    for (int i = 0; i < INDEPENDENT; i++) {
        if ((independent[i] = open(path, O_RDONLY)) < 0) { fail("open data again", i); return 1; }
        lseek(independent[i], i + 1, SEEK_SET);
    }
    int (*pipes)[2] = calloc((size_t)pipe_count + 1, sizeof *pipes), *pipe_dups = calloc((size_t)pipe_count + 1, sizeof(int));
    for (int i = 0; i < pipe_count; i++) {
        char text[16];
        int n = snprintf(text, sizeof text, "pipe-%d", i);
        if (pipe(pipes[i]) != 0 || write(pipes[i][1], text, (size_t)n) != n || (pipe_dups[i] = dup(pipes[i][0])) < 0) {
            fail("pipe", i);
            return 1;
        }
    }
    printf("READY %d nulls, %d dups, highest fd %d, soft limit %ld\n", nulls, dups, pipe_count ? pipe_dups[pipe_count - 1] : dup_fds[0], (long)soft);
    fflush(stdout);
    while (!terminate_requested) pause();

    /* Every /dev/null open is there, each its own description, with its access mode. */
    for (int i = 0; i < nulls; i++) {
        struct stat st;
        if (fstat(null_fds[i], &st) != 0 || !S_ISCHR(st.st_mode) || st.st_rdev != null_status.st_rdev) fail("a /dev/null fd", null_fds[i]);
        int mode = fcntl(null_fds[i], F_GETFL) & O_ACCMODE;
        if (mode != (i % 2 ? O_RDWR : O_WRONLY)) fail("a /dev/null fd's access mode", null_fds[i]);
        if (i > 0 && distinct(null_fds[i - 1], null_fds[i]) == 0) fail("two /dev/null opens became one description", null_fds[i]);
    }
    /* The dups are one description with the original: one offset. */
    if (lseek(data, 0, SEEK_CUR) != 12345) fail("the data file's offset", (long)lseek(data, 0, SEEK_CUR));
    for (int i = 0; i < dups; i++) {
        if (lseek(dup_fds[i], 0, SEEK_CUR) != 12345) fail("a dup's offset", dup_fds[i]);
        if (distinct(data, dup_fds[i]) == 1) fail("a dup is no longer the original's description", dup_fds[i]);
    }
    if (dups > 0) {
        lseek(dup_fds[dups - 1], 777, SEEK_SET);
        if (lseek(data, 0, SEEK_CUR) != 777) fail("a dup's seek did not move the original", dup_fds[dups - 1]);
        if (lseek(dup_fds[0], 0, SEEK_CUR) != 777) fail("a dup's seek did not move another dup", dup_fds[0]);
    }
    /* The independent opens of the same file keep their own offsets. */
    for (int i = 0; i < INDEPENDENT; i++) {
        if (lseek(independent[i], 0, SEEK_CUR) != i + 1) fail("an independent open's offset", independent[i]);
        if (distinct(data, independent[i]) == 0) fail("an independent open became the dups' description", independent[i]);
    }
    lseek(independent[0], 5000, SEEK_SET);
    if (lseek(independent[1], 0, SEEK_CUR) != 2) fail("independent opens share an offset", independent[1]);
    if (lseek(data, 0, SEEK_CUR) != (dups > 0 ? 777 : 12345)) fail("an independent open moved the dups", data);
    /* Each pipe still holds its bytes, readable through the dup of its read end. */
    for (int i = 0; i < pipe_count; i++) {
        char want[16], got[16] = {0};
        int n = snprintf(want, sizeof want, "pipe-%d", i);
        fcntl(pipe_dups[i], F_SETFL, O_NONBLOCK);  /* a pipe that lost its bytes must not hang the check */
        if (read(pipe_dups[i], got, (size_t)n) != n || memcmp(got, want, (size_t)n) != 0) fail("a pipe's bytes", i);
        if (distinct(pipes[i][0], pipe_dups[i]) == 1) fail("a pipe's dup'ed read end", pipe_dups[i]);
    }
    getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur != soft) fail("the soft RLIMIT_NOFILE", (long)limit.rlim_cur);
    printf(failures ? "FAIL (%d)\n" : "PASS\n", failures);
    fflush(stdout);
    return failures ? 1 : 0;
}
