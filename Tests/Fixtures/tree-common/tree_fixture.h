/* tree_fixture.h: helpers shared by the process-tree fixtures (Tests/Fixtures/tree-*), included as
 * "../tree-common/tree_fixture.h" before any other header (it defines _GNU_SOURCE; compileFixture compiles
 * one main.c, and the include is relative to it).
 *
 * Conventions of every tree fixture (ProcessTreeTests drives them):
 *   - the root prints "READY PID..." listing the descendants the test must kill (each on one line,
 *     written with one write(2): every process appends to the same stdout file);
 *   - SIGTERM to the root: verify everything, print "PASS NAME ..." and exit 0, or "FAIL ..." and exit 1;
 *   - every system call is checked, EINTR is retried (a checkpoint interrupts calls), and a failure
 *     prints "FAIL <pid> <what>: <errno text>" and exits 1. */
#ifndef TREE_FIXTURE_H
#define TREE_FIXTURE_H
#pragma GCC diagnostic ignored "-Wunused-function" /* each fixture uses some of these */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t tf_term; /* SIGTERM arrived (tf_catch_term) */

/* One line, one write(2): lines of different processes never interleave (O_APPEND). */
static void tf_say(const char *format, ...) {
    char line[4096];
    va_list list;
    va_start(list, format);
    int n = vsnprintf(line, sizeof line - 1, format, list);
    va_end(list);
    if (n < 0) return;
    if ((size_t)n > sizeof line - 2) n = (int)sizeof line - 2;
    if (n == 0 || line[n - 1] != '\n') line[n++] = '\n';
    const char *p = line;
    while (n > 0) {
        ssize_t w = write(1, p, (size_t)n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) _exit(4);
        p += w;
        n -= (int)w;
    }
}

/* A failed system call or check: "FAIL pid what: errno text", exit 1. */
__attribute__((noreturn)) static void tf_die(const char *what) {
    int saved = errno;
    tf_say("FAIL %d %s: %s", (int)getpid(), what, saved ? strerror(saved) : "check failed");
    _exit(1);
}

#define TF_CHECK(condition, what) \
    do {                          \
        errno = 0;                \
        if (!(condition)) tf_die(what); \
    } while (0)

/* Sleeps `ms` milliseconds whatever signals arrive. */
static void tf_sleep_ms(long ms) {
    struct timespec left = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0)
        if (errno != EINTR) tf_die("nanosleep");
}

static double tf_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void tf_on(int signo, void (*handler)(int)) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (sigaction(signo, &action, NULL) != 0) tf_die("sigaction");
}

static void tf_on_term(int signo) { (void)signo; tf_term = 1; }
static void tf_catch_term(void) { tf_on(SIGTERM, tf_on_term); }

/* Until SIGTERM. */
static void tf_wait_for_term(void) {
    while (!tf_term) tf_sleep_ms(5);
}

static void tf_write_all(int fd, const void *buffer, size_t size, const char *what) {
    const char *p = buffer;
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) tf_die(what);
        p += n;
        size -= (size_t)n;
    }
}

/* Reads exactly `size` bytes; returns the count read before end of file (short only at EOF). */
static size_t tf_read_all(int fd, void *buffer, size_t size, const char *what) {
    char *p = buffer;
    size_t done = 0;
    while (done < size) {
        ssize_t n = read(fd, p + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) tf_die(what);
        if (n == 0) break;
        done += (size_t)n;
    }
    return done;
}

static void tf_close(int fd) {
    if (close(fd) != 0 && errno != EINTR) tf_die("close");
}

static void tf_pipe(int fds[2]) {
    if (pipe2(fds, O_CLOEXEC) != 0) tf_die("pipe2");
}

static pid_t tf_fork(void) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) tf_die("fork");
    return pid;
}

/* waitpid retrying EINTR; the status. */
static int tf_reap(pid_t pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) != pid)
        if (errno != EINTR) tf_die("waitpid");
    return status;
}

/* waitpid with a deadline: 1 and *status once `pid` ended, 0 if it still runs after `seconds`. */
static int tf_reap_within(pid_t pid, double seconds, int *status) {
    double deadline = tf_now() + seconds;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid) return 1;
        if (r < 0 && errno != EINTR) tf_die("waitpid");
        if (tf_now() > deadline) return 0;
        tf_sleep_ms(2);
    }
}

/* "exited 7", "killed by signal 9". */
static const char *tf_status_text(int status) {
    static char text[64];
    if (WIFEXITED(status)) snprintf(text, sizeof text, "exited %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status)) snprintf(text, sizeof text, "killed by signal %d", WTERMSIG(status));
    else snprintf(text, sizeof text, "status %#x", status);
    return text;
}

/* Ends a child that must not outlive a failed fixture (best effort). */
static void tf_kill_and_reap(pid_t pid) {
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
}

/* The ids a tree restore must bring back. */
typedef struct {
    pid_t pid, ppid, pgid, sid;
} tf_ids_t;

static tf_ids_t tf_ids(void) {
    tf_ids_t ids = {getpid(), getppid(), getpgid(0), getsid(0)};
    if (ids.pgid < 0 || ids.sid < 0) tf_die("getpgid/getsid");
    return ids;
}

/* 1 if the ids now are `before` (the ppid only when `check_ppid`: a root's parent changes at restart).
 * getpid is compared with the raw system call too (glibc caches nothing since 2.25; be sure). */
static int tf_same_ids(const char *who, tf_ids_t before, int check_ppid) {
    tf_ids_t now = tf_ids();
    pid_t raw = (pid_t)syscall(SYS_getpid);
    int ok = now.pid == before.pid && raw == before.pid && now.pgid == before.pgid && now.sid == before.sid &&
             (!check_ppid || now.ppid == before.ppid);
    if (!ok)
        tf_say("FAIL %s ids: pid %d (raw %d) ppid %d pgid %d sid %d, were pid %d ppid %d pgid %d sid %d", who,
               (int)now.pid, (int)raw, (int)now.ppid, (int)now.pgid, (int)now.sid, (int)before.pid,
               (int)before.ppid, (int)before.pgid, (int)before.sid);
    return ok;
}

/* "READY p1 p2 ...": the descendants the test must SIGKILL at every cycle. */
static void tf_ready(const pid_t *pids, int count) {
    char line[4096];
    int used = snprintf(line, sizeof line, "READY");
    for (int i = 0; i < count && used < (int)sizeof line - 16; i++) used += snprintf(line + used, sizeof line - (size_t)used, " %d", (int)pids[i]);
    tf_say("%s", line);
}

#endif
