/* queued-signals: signals left pending, each with its siginfo, in the process's queue and in two
 * threads' own queues, all blocked:
 *   process-directed: SIGRTMIN+1 queued with values 7 then 8 (taken by a handler on SIGTERM),
 *                     SIGRTMIN+2 with 111 then 222 (read through a signalfd), SIGRTMIN+4 with 47,
 *                     SIGUSR1 from kill() (SI_USER), SIGCHLD from a child that exited with 3
 *                     (the kernel's CLD_EXITED siginfo)
 *   main thread:      SIGRTMIN+4 with 46 (pthread_sigqueue to itself)
 *   second thread:    SIGRTMIN+4 with 44 then 45, and SIGUSR1 from pthread_kill
 * On SIGTERM every instance must be there, in its own queue, in order, with its si_code, si_value,
 * sender pid and uid (the pid the program had at the start), and nothing more. PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t terminate_requested, verify_thread, thread_done, tid_requested, tid_reported;
static void on_term(int signo) { (void)signo; terminate_requested = 1; }
static int failures;
static pid_t original_pid;
static int tkill_code; /* si_code of a pthread_kill on this kernel (SI_TKILL, or SI_USER on Linux 6.18) */
static uid_t uid;
static void fail(const char *what, long a, long b) {
    printf("FAIL %s (%ld, %ld)\n", what, a, b);
    fflush(stdout);
    failures++;
}

static int delivered[8], delivered_codes[8], delivered_pids[8], delivered_count;
static void on_rt1(int signo, siginfo_t *info, void *context) {
    (void)signo; (void)context;
    if (delivered_count < 8) {
        delivered[delivered_count] = info->si_value.sival_int;
        delivered_codes[delivered_count] = info->si_code;
        delivered_pids[delivered_count] = info->si_pid;
        delivered_count++;
    }
}

/* One pending instance of `signo` taken with sigtimedwait (zero timeout), checked. */
static void expect_next(const char *what, int signo, int code, int value) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    struct timespec zero = {0, 0};
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int got = sigtimedwait(&set, &info, &zero);
    if (got != signo) { fail(what, got, errno); return; }
    if (info.si_code != code) fail(what, info.si_code, code);
    if (info.si_pid != original_pid || info.si_uid != uid) fail(what, info.si_pid, info.si_uid);
    if (code == SI_QUEUE && info.si_value.sival_int != value) fail(what, info.si_value.sival_int, value);
}

static void expect_none(const char *what, int signo) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    struct timespec zero = {0, 0};
    int got = sigtimedwait(&set, NULL, &zero);
    if (got != -1) fail(what, got, 0);
}

/* The SigPnd (thread's own) or ShdPnd (process) mask of /proc/self/task/TID/status. */
static uint64_t pending_mask(pid_t tid, const char *field) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
    FILE *f = fopen(path, "r");
    uint64_t mask = 0;
    if (!f) return ~0ull;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0) mask = strtoull(line + strlen(field), NULL, 16);
    fclose(f);
    return mask;
}
static uint64_t bit(int signo) { return 1ull << (signo - 1); }

static volatile pid_t second_tid;
static void *second(void *arg) {
    (void)arg;
    second_tid = (pid_t)syscall(SYS_gettid);
    while (!verify_thread) {
        if (tid_requested && !tid_reported) { /* a restart may have given it a new tid */
            second_tid = (pid_t)syscall(SYS_gettid);
            tid_reported = 1;
        }
        usleep(1000);
    }
    /* Its own queue first: sigtimedwait takes a thread's own signals before the process's. */
    expect_next("thread SIGRTMIN+4 first", SIGRTMIN + 4, SI_QUEUE, 44);
    expect_next("thread SIGRTMIN+4 second", SIGRTMIN + 4, SI_QUEUE, 45);
    expect_next("thread SIGUSR1", SIGUSR1, tkill_code, 0);
    if (pending_mask(second_tid, "SigPnd:") != 0) fail("thread queue not empty", (long)pending_mask(second_tid, "SigPnd:"), 0);
    thread_done = 1;
    return NULL;
}

int main(void) {
    original_pid = getpid();
    uid = getuid();
    signal(SIGTERM, on_term);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_rt1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGRTMIN + 1, &sa, NULL);
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGRTMIN + 1);
    sigaddset(&blocked, SIGRTMIN + 2);
    sigaddset(&blocked, SIGRTMIN + 4);
    sigaddset(&blocked, SIGUSR1);
    sigaddset(&blocked, SIGCHLD);
    sigaddset(&blocked, SIGRTMIN + 5);
    pthread_sigmask(SIG_BLOCK, &blocked, NULL);
    {
        pthread_kill(pthread_self(), SIGRTMIN + 5);
        sigset_t probe;
        sigemptyset(&probe);
        sigaddset(&probe, SIGRTMIN + 5);
        siginfo_t info;
        sigwaitinfo(&probe, &info);
        tkill_code = info.si_code;
    }
    sigset_t for_fd;
    sigemptyset(&for_fd);
    sigaddset(&for_fd, SIGRTMIN + 2);
    int sfd = signalfd(-1, &for_fd, SFD_NONBLOCK | SFD_CLOEXEC);

    pthread_t thread;
    pthread_create(&thread, NULL, second, NULL);
    while (!second_tid) usleep(1000);

    union sigval v;
    v.sival_int = 7; sigqueue(original_pid, SIGRTMIN + 1, v);
    v.sival_int = 8; sigqueue(original_pid, SIGRTMIN + 1, v);
    v.sival_int = 111; sigqueue(original_pid, SIGRTMIN + 2, v);
    v.sival_int = 222; sigqueue(original_pid, SIGRTMIN + 2, v);
    v.sival_int = 44; pthread_sigqueue(thread, SIGRTMIN + 4, v);
    v.sival_int = 45; pthread_sigqueue(thread, SIGRTMIN + 4, v);
    v.sival_int = 46; pthread_sigqueue(pthread_self(), SIGRTMIN + 4, v);
    v.sival_int = 47; sigqueue(original_pid, SIGRTMIN + 4, v);
    kill(original_pid, SIGUSR1);
    pthread_kill(thread, SIGUSR1);
    pid_t child = fork();
    if (child == 0) _exit(3);
    waitpid(child, NULL, 0); /* reaped; its SIGCHLD stays pending */
    printf("READY\n");
    fflush(stdout);
    while (!terminate_requested) usleep(1000);

    /* Each queue holds what it held. */
    tid_requested = 1;
    while (!tid_reported) usleep(1000);
    pid_t main_tid = getpid();
    uint64_t shared = bit(SIGRTMIN + 1) | bit(SIGRTMIN + 2) | bit(SIGRTMIN + 4) | bit(SIGUSR1) | bit(SIGCHLD);
    uint64_t in_main = pending_mask(main_tid, "ShdPnd:"), own_main = pending_mask(main_tid, "SigPnd:");
    uint64_t own_second = pending_mask(second_tid, "SigPnd:");
    if ((in_main & ~bit(SIGTERM)) != shared) fail("process queue", (long)in_main, (long)shared);
    if (own_main != bit(SIGRTMIN + 4)) fail("main thread queue", (long)own_main, (long)bit(SIGRTMIN + 4));
    if (own_second != (bit(SIGRTMIN + 4) | bit(SIGUSR1))) fail("second thread queue", (long)own_second, 0);

    verify_thread = 1;
    while (!thread_done) usleep(1000);
    pthread_join(thread, NULL);

    expect_next("main SIGRTMIN+4 (own)", SIGRTMIN + 4, SI_QUEUE, 46);
    expect_next("process SIGRTMIN+4", SIGRTMIN + 4, SI_QUEUE, 47);
    expect_none("a third SIGRTMIN+4", SIGRTMIN + 4);
    expect_next("process SIGUSR1", SIGUSR1, SI_USER, 0);
    expect_none("a second SIGUSR1", SIGUSR1);
    {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGCHLD);
        struct timespec zero = {0, 0};
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (sigtimedwait(&set, &info, &zero) != SIGCHLD || info.si_code != CLD_EXITED || info.si_pid != child ||
            info.si_status != 3)
            fail("SIGCHLD siginfo", info.si_code, info.si_status);
    }

    struct signalfd_siginfo fdinfo[4];
    ssize_t n = read(sfd, fdinfo, sizeof fdinfo);
    if (n != 2 * (ssize_t)sizeof fdinfo[0]) fail("signalfd instances", (long)n, 2 * (long)sizeof fdinfo[0]);
    else if (fdinfo[0].ssi_int != 111 || fdinfo[1].ssi_int != 222 || fdinfo[0].ssi_code != SI_QUEUE ||
             (pid_t)fdinfo[1].ssi_pid != original_pid)
        fail("signalfd values", fdinfo[0].ssi_int, fdinfo[1].ssi_int);

    sigset_t rt1;
    sigemptyset(&rt1);
    sigaddset(&rt1, SIGRTMIN + 1);
    pthread_sigmask(SIG_UNBLOCK, &rt1, NULL);
    if (delivered_count != 2 || delivered[0] != 7 || delivered[1] != 8)
        fail("SIGRTMIN+1 delivery", delivered_count, delivered_count > 0 ? delivered[0] : -1);
    for (int i = 0; i < delivered_count; i++)
        if (delivered_codes[i] != SI_QUEUE || delivered_pids[i] != original_pid)
            fail("SIGRTMIN+1 siginfo", delivered_codes[i], delivered_pids[i]);

    if (failures) return 1;
    printf("PASS\n");
    return 0;
}
