/* pid-identity: a self-verifying fixture for a restart's PID and thread ids (issue 14).
 *
 *   pid-identity [same|new] [exit=N|signal=N]
 *
 * Four threads: main and three workers. The main thread holds an error-checking mutex and a
 * recursive mutex (locked twice) across checkpoints; worker 0 holds an error-checking mutex of its
 * own. At start it records getpid(), every thread's gettid(), the pid in /proc/self/stat,
 * readlink("/proc/self") and the TIDs listed in /proc/self/task, checks that they agree, and prints
 *   READY pid P tids T0 T1 T2 T3
 * Each thread also records its capability sets (CapInh, CapPrm, CapEff, CapAmb of
 * /proc/thread-self/status) and the main thread readlink("/proc/self/exe").
 * On SIGTERM each thread checks its own gettid(), readlink("/proc/thread-self") and capabilities
 * (a restore in a user namespace keeps CAP_CHECKPOINT_RESTORE until just before the program runs:
 * none may be left), the main thread checks the process's ids and /proc/self/exe and sends each
 * worker a pthread_kill (glibc addresses it by the TID it cached), the mutex owners unlock (every
 * unlock must return 0), and it prints
 *   PASS pid-identity pid P tids T0 T1 T2 T3
 * then exits 0 (or exit(N), or dies of signal N after resetting it to SIG_DFL: for the exit-status
 * tests), or prints FAIL <what> per mismatch and exits 1. getppid() is not checked.
 *
 * `same` (the default): every id must be the one recorded at start (a restore with the original
 * PID and TIDs, on the host or in a PID namespace).
 * `new`: the PID must differ from the one at start (a restore with a new PID, thread ids patched);
 * every id must still agree with /proc. Mutexes held across such a restore keep their old owner ids,
 * and /proc/self/exe names the restorer (README, known limits): both are reported on NOTE lines, not
 * checked. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define WORKERS 3
#define THREADS (WORKERS + 1)

static volatile sig_atomic_t terminate_requested;
static volatile int stop;
static int expect_same = 1;
static int failures;

static pid_t start_pid;
static pid_t start_tids[THREADS];      /* [0] main, [1 + i] worker i */
static volatile pid_t now_tids[THREADS]; /* the same after SIGTERM */
static volatile int started[WORKERS];
static volatile int worker_failures[WORKERS];
static volatile pid_t kill_received_by[WORKERS];
static volatile int checked[WORKERS];
static volatile int unlock_result = -1; /* worker 0's unlock of its own mutex */

static pthread_mutex_t main_errorcheck, main_recursive, worker_errorcheck;

#define CAP_SETS 4 /* CapInh, CapPrm, CapEff, CapAmb */
static unsigned long long start_caps[THREADS][CAP_SETS];
static char start_exe[4096];

static void on_term(int signo) { (void)signo; terminate_requested = 1; }

static void fail(const char *what, long expected, long got) {
    printf("FAIL %s: expected %ld, got %ld\n", what, expected, got);
    fflush(stdout);
    failures++;
}

static pid_t tid(void) { return (pid_t)syscall(SYS_gettid); }

/* The first field of /proc/self/stat; -1 if unreadable. */
static long stat_pid(void) {
    FILE *f = fopen("/proc/self/stat", "r");
    long pid = -1;
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1) pid = -1;
        fclose(f);
    }
    return pid;
}

/* readlink(path) as a number ("/proc/self" -> "1234"); -1 if unreadable. */
static long link_number(const char *path) {
    char text[64];
    ssize_t n = readlink(path, text, sizeof text - 1);
    if (n <= 0) return -1;
    text[n] = 0;
    return strtol(text, NULL, 10);
}

/* Whether readlink("/proc/thread-self") is "PID/task/TID". */
static int thread_self_is(pid_t pid, pid_t t) {
    char text[64], want[64];
    ssize_t n = readlink("/proc/thread-self", text, sizeof text - 1);
    if (n <= 0) return 0;
    text[n] = 0;
    snprintf(want, sizeof want, "%d/task/%d", pid, t);
    return strcmp(text, want) == 0;
}

/* The calling thread's capability sets from /proc/thread-self/status; 0 or -1. */
static int read_caps(unsigned long long *out) {
    static const char *const names[CAP_SETS] = {"CapInh:", "CapPrm:", "CapEff:", "CapAmb:"};
    FILE *f = fopen("/proc/thread-self/status", "r");
    if (!f) return -1;
    char line[256];
    int found = 0;
    while (fgets(line, sizeof line, f))
        for (int i = 0; i < CAP_SETS; i++)
            if (strncmp(line, names[i], strlen(names[i])) == 0) {
                out[i] = strtoull(line + strlen(names[i]), NULL, 16);
                found++;
            }
    fclose(f);
    return found == CAP_SETS ? 0 : -1;
}

/* Whether the calling thread's capabilities are `thread`'s at start. */
static int caps_unchanged(int thread) {
    unsigned long long now[CAP_SETS];
    return read_caps(now) == 0 && memcmp(now, start_caps[thread], sizeof now) == 0;
}

static int compare_ids(const void *a, const void *b) { return *(const pid_t *)a - *(const pid_t *)b; }

/* The TIDs in /proc/self/task, sorted; their number, or -1. */
static int task_list(pid_t *out, int capacity) {
    DIR *dir = opendir("/proc/self/task");
    if (!dir) return -1;
    int n = 0;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
        if (n == capacity) { n = -1; break; }
        out[n++] = (pid_t)atoi(entry->d_name);
    }
    closedir(dir);
    if (n > 0) qsort(out, (size_t)n, sizeof *out, compare_ids);
    return n;
}

/* The process's own ids against each other and (same) the ones at start; `tids`: every thread's now. */
static void check_process(const char *when, const pid_t *tids) {
    char what[128];
    pid_t pid = getpid();
    if (expect_same && pid != start_pid) { snprintf(what, sizeof what, "%s getpid", when); fail(what, start_pid, pid); }
    if (!expect_same && pid == start_pid) { snprintf(what, sizeof what, "%s getpid is the old one", when); fail(what, -1, pid); }
    long syscall_pid = syscall(SYS_getpid);
    if (syscall_pid != pid) { snprintf(what, sizeof what, "%s raw getpid", when); fail(what, pid, syscall_pid); }
    if (tid() != pid) { snprintf(what, sizeof what, "%s main thread's gettid", when); fail(what, pid, tid()); }
    long in_stat = stat_pid();
    if (in_stat != pid) { snprintf(what, sizeof what, "%s /proc/self/stat pid", when); fail(what, pid, in_stat); }
    long self = link_number("/proc/self");
    if (self != pid) { snprintf(what, sizeof what, "%s readlink /proc/self", when); fail(what, pid, self); }
    pid_t listed[64], sorted[THREADS];
    memcpy(sorted, tids, sizeof sorted);
    qsort(sorted, THREADS, sizeof *sorted, compare_ids);
    int n = task_list(listed, 64);
    if (n != THREADS) { snprintf(what, sizeof what, "%s thread count in /proc/self/task", when); fail(what, THREADS, n); }
    for (int i = 0; i < THREADS && i < n; i++)
        if (listed[i] != sorted[i]) { snprintf(what, sizeof what, "%s TID in /proc/self/task", when); fail(what, sorted[i], listed[i]); }
}

/* pthread_kill's check: the thread whose turn it is records who got the signal. */
static volatile int usr1_turn = -1;
static void on_usr1(int signo) {
    (void)signo;
    if (usr1_turn >= 0) kill_received_by[usr1_turn] = tid();
}

static void *worker(void *arg) {
    long i = (long)arg;
    start_tids[1 + i] = tid();
    if (read_caps(start_caps[1 + i]) != 0) worker_failures[i] |= 4;
    if (i == 0) pthread_mutex_lock(&worker_errorcheck);
    started[i] = 1;
    while (!stop) usleep(1000);
    pid_t now = tid();
    now_tids[1 + i] = now; /* the main thread compares /proc/self/task with these */
    if (expect_same && now != start_tids[1 + i]) worker_failures[i] |= 1;
    if (!thread_self_is(getpid(), now)) worker_failures[i] |= 2;
    if (!caps_unchanged(1 + i)) worker_failures[i] |= 4;
    if (i == 0) unlock_result = pthread_mutex_unlock(&worker_errorcheck);
    checked[i] = 1;
    while (stop < 2) usleep(1000); /* alive until the main thread has listed /proc/self/task */
    return NULL;
}

int main(int argc, char **argv) {
    int exit_code = 0, exit_signal = 0;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "same") == 0) expect_same = 1;
        else if (strcmp(argv[a], "new") == 0) expect_same = 0;
        else if (strncmp(argv[a], "exit=", 5) == 0) exit_code = atoi(argv[a] + 5);
        else if (strncmp(argv[a], "signal=", 7) == 0) exit_signal = atoi(argv[a] + 7);
        else { fprintf(stderr, "usage: pid-identity [same|new] [exit=N|signal=N]\n"); return 2; }
    }
    signal(SIGTERM, on_term);
    struct sigaction usr1 = {0};
    usr1.sa_handler = on_usr1;
    sigaction(SIGUSR1, &usr1, NULL);

    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&main_errorcheck, &attr);
    pthread_mutex_init(&worker_errorcheck, &attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&main_recursive, &attr);
    pthread_mutex_lock(&main_errorcheck);
    pthread_mutex_lock(&main_recursive);
    pthread_mutex_lock(&main_recursive);

    start_pid = getpid();
    start_tids[0] = tid();
    if (read_caps(start_caps[0]) != 0 || readlink("/proc/self/exe", start_exe, sizeof start_exe - 1) <= 0) {
        printf("FAIL cannot read /proc/thread-self/status or /proc/self/exe at start\n");
        return 1;
    }
    pthread_t workers[WORKERS];
    for (long i = 0; i < WORKERS; i++) pthread_create(&workers[i], NULL, worker, (void *)i);
    for (int i = 0; i < WORKERS; i++)
        while (!started[i]) usleep(1000);
    int saved_same = expect_same;
    expect_same = 1; /* at start, "same" is what must hold */
    check_process("at start", start_tids);
    expect_same = saved_same;
    if (failures) return 1;
    printf("READY pid %d tids %d %d %d %d\n", start_pid, start_tids[0], start_tids[1], start_tids[2], start_tids[3]);
    fflush(stdout);

    while (!terminate_requested) usleep(1000);

    stop = 1;
    for (int i = 0; i < WORKERS; i++)
        while (!checked[i]) usleep(1000);
    pid_t now[THREADS];
    now[0] = tid();
    for (int i = 0; i < WORKERS; i++) now[1 + i] = now_tids[1 + i];
    check_process("after restart", now);
    for (int i = 0; i < WORKERS; i++) { /* glibc's pthread_kill signals the TID cached in struct pthread */
        usr1_turn = i;
        kill_received_by[i] = 0;
        int r = pthread_kill(workers[i], SIGUSR1);
        for (int wait = 0; wait < 2000 && kill_received_by[i] == 0; wait++) usleep(1000);
        if (r != 0) fail("pthread_kill", 0, r);
        else if (kill_received_by[i] != now[1 + i]) fail("pthread_kill reached thread", now[1 + i], kill_received_by[i]);
    }
    usr1_turn = -1;
    stop = 2;
    for (int i = 0; i < WORKERS; i++) pthread_join(workers[i], NULL);
    for (int i = 0; i < WORKERS; i++) {
        if (worker_failures[i] & 1) fail("a worker's gettid", start_tids[1 + i], now[1 + i]);
        if (worker_failures[i] & 2) fail("a worker's readlink /proc/thread-self is PID/task/TID", 1, 0);
        if (worker_failures[i] & 4) fail("a worker's capabilities are the ones it had", 1, 0);
    }
    if (!thread_self_is(getpid(), tid())) fail("main's readlink /proc/thread-self is PID/task/TID", 1, 0);
    if (!caps_unchanged(0)) fail("main's capabilities are the ones it had", 1, 0);
    char exe[4096] = {0};
    if (readlink("/proc/self/exe", exe, sizeof exe - 1) <= 0) exe[0] = 0;
    if (strcmp(exe, start_exe) != 0) {
        if (expect_same) {
            printf("FAIL /proc/self/exe: expected %s, got %s\n", start_exe, exe);
            failures++;
        } else {
            printf("NOTE /proc/self/exe after a new PID: %s\n", exe);
        }
    }
    int a = pthread_mutex_unlock(&main_errorcheck);
    int b = pthread_mutex_unlock(&main_recursive);
    int c = pthread_mutex_unlock(&main_recursive);
    if (expect_same) {
        if (a != 0) fail("unlock of the error-checking mutex held by main", 0, a);
        if (b != 0 || c != 0) fail("unlocks of the recursive mutex held twice by main", 0, b ? b : c);
        if (unlock_result != 0) fail("unlock of the error-checking mutex held by worker 0", 0, unlock_result);
    } else {
        printf("NOTE unlocks after a new PID: main errorcheck %d recursive %d %d worker %d\n", a, b, c, unlock_result);
    }
    if (failures) return 1;
    printf("PASS pid-identity pid %d tids %d %d %d %d\n", getpid(), now[0], now[1], now[2], now[3]);
    fflush(stdout);
    if (exit_signal) {
        signal(exit_signal, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, exit_signal);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise(exit_signal);
    }
    return exit_code;
}
