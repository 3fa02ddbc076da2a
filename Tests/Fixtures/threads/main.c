/* threads: a self-verifying multithreaded fixture.
 *
 *   threads N
 *
 * N workers, each with its own counter, a __thread value, a thread name and
 * AVX2 registers (values unique to the thread) that it re-checks every
 * iteration; plus a thread in pthread_cond_wait, one in nanosleep, one in a
 * raw futex wait, one holding a recursive mutex (locked twice), a detached
 * thread, and a thread that exited before READY and is joined at the end.
 * The main thread holds an error-checking mutex across checkpoints.
 * On SIGTERM everything is verified; prints PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <errno.h>
#include <immintrin.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 256
static volatile int stop;
static volatile sig_atomic_t terminate_requested;
static __thread long tls_value;
static volatile long counters[MAX_WORKERS];
static volatile int worker_ok[MAX_WORKERS];
static int failures;

static pthread_mutex_t cond_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int cond_ready, cond_woke;
static volatile long sleeps;
static volatile int futex_word, futex_woke;
static pthread_mutex_t recursive;
static pthread_mutex_t errorcheck;
static volatile int recursive_ok = -1;
static volatile long detached_ticks;

static void on_term(int signo) { (void)signo; terminate_requested = 1; }
static void fail(const char *what) { printf("FAIL %s\n", what); fflush(stdout); failures++; }

__attribute__((target("avx2"))) static void *worker(void *arg) {
    long i = (long)arg;
    char name[16];
    snprintf(name, sizeof name, "worker-%ld", i);
    pthread_setname_np(pthread_self(), name);
    tls_value = i * 1000 + 7;
    __m256i mine = _mm256_set1_epi64x(0x1000 + i);
    int ok = 1;
    while (!stop) {
        __asm__ volatile("" : "+x"(mine));
        __m256i eq = _mm256_cmpeq_epi64(mine, _mm256_set1_epi64x(0x1000 + i));
        if (_mm256_movemask_epi8(eq) != -1 || tls_value != i * 1000 + 7) ok = 0;
        counters[i]++;
    }
    char now[16];
    pthread_getname_np(pthread_self(), now, sizeof now);
    if (strcmp(now, name) != 0) ok = 0;
    worker_ok[i] = ok;
    return NULL;
}

static void *cond_waiter(void *arg) {
    (void)arg;
    pthread_mutex_lock(&cond_lock);
    while (!cond_ready) pthread_cond_wait(&cond, &cond_lock);
    cond_woke = 1;
    pthread_mutex_unlock(&cond_lock);
    return NULL;
}

static void *sleeper(void *arg) {
    (void)arg;
    while (!stop) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL); /* EINTR is fine: the loop goes on */
        sleeps++;
    }
    return NULL;
}

static void *futex_waiter(void *arg) {
    (void)arg;
    while (futex_word == 0) syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    futex_woke = 1;
    return NULL;
}

static void *recursive_holder(void *arg) {
    (void)arg;
    pthread_mutex_lock(&recursive);
    pthread_mutex_lock(&recursive);
    while (!stop) usleep(2000);
    int a = pthread_mutex_unlock(&recursive);
    int b = pthread_mutex_unlock(&recursive);
    recursive_ok = (a == 0 && b == 0);
    return NULL;
}

static void *detached(void *arg) {
    (void)arg;
    for (;;) {
        detached_ticks++;
        usleep(1000);
    }
    return NULL;
}

static void *early_exit(void *arg) { return (void *)((long)arg + 1); }

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4;
    if (n < 1 || n > MAX_WORKERS) n = 4;
    signal(SIGTERM, on_term);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&recursive, &attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&errorcheck, &attr);
    pthread_mutex_lock(&errorcheck);

    pthread_t early;
    pthread_create(&early, NULL, early_exit, (void *)41);
    usleep(10000); /* it has exited; joined at the end */
    pthread_t workers[MAX_WORKERS], waiter, sleep_thread, futex_thread, holder, loose;
    for (long i = 0; i < n; i++) pthread_create(&workers[i], NULL, worker, (void *)i);
    pthread_create(&waiter, NULL, cond_waiter, NULL);
    pthread_create(&sleep_thread, NULL, sleeper, NULL);
    pthread_create(&futex_thread, NULL, futex_waiter, NULL);
    pthread_create(&holder, NULL, recursive_holder, NULL);
    pthread_create(&loose, NULL, detached, NULL);
    pthread_detach(loose);
    usleep(50000);
    printf("READY pid %d threads %d\n", getpid(), n + 6);
    fflush(stdout);

    while (!terminate_requested) usleep(1000);
    stop = 1;
    for (int i = 0; i < n; i++) pthread_join(workers[i], NULL);
    for (int i = 0; i < n; i++) {
        if (!worker_ok[i]) fail("worker registers, TLS or name");
        if (counters[i] <= 0) fail("worker counter");
    }
    pthread_mutex_lock(&cond_lock);
    cond_ready = 1;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&cond_lock);
    pthread_join(waiter, NULL);
    if (!cond_woke) fail("condition variable");
    futex_word = 1;
    syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    pthread_join(futex_thread, NULL);
    if (!futex_woke) fail("futex");
    pthread_join(sleep_thread, NULL);
    if (sleeps <= 0) fail("nanosleep");
    pthread_join(holder, NULL);
    if (recursive_ok != 1) fail("recursive mutex held across the checkpoint");
    if (pthread_mutex_unlock(&errorcheck) != 0) fail("error-checking mutex held by main");
    void *result = NULL;
    if (pthread_join(early, &result) != 0 || result != (void *)42) fail("join of an exited thread");
    long ticks = detached_ticks;
    usleep(20000);
    if (detached_ticks == ticks) fail("detached thread");
    if (!failures) printf("PASS threads %d\n", n + 6);
    fflush(stdout);
    return failures ? 1 : 0;
}
