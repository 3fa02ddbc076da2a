/* timer-kinds: timers of every kind left with expirations pending across checkpoints.
 *   - a periodic CLOCK_MONOTONIC timerfd (TFD_NONBLOCK, 10 ms) never read: many expirations pending
 *   - a periodic CLOCK_BOOTTIME timerfd (20 ms) never read
 *   - a one-shot CLOCK_MONOTONIC timerfd an hour away, and an absolute CLOCK_REALTIME one an hour away
 *   - a periodic POSIX timer (10 ms) whose signal (SIGRTMIN+3) stays blocked: overruns pile up
 *   - a periodic ITIMER_REAL (20 ms) whose SIGALRM stays blocked
 * Waits 1.2 s before READY so that the first checkpoint finds many expirations. On SIGTERM each timer
 * must still be armed with its interval, its next expiry within one interval, its pending expirations
 * readable, and more expirations must follow. Prints PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t terminate_requested;
static void on_term(int signo) { (void)signo; terminate_requested = 1; }
static int failures;
static void fail(const char *what, long a, long b) {
    printf("FAIL %s (%ld, %ld)\n", what, a, b);
    fflush(stdout);
    failures++;
}
static long ns(struct timespec t) { return t.tv_sec * 1000000000L + t.tv_nsec; }

/* Periodic timerfd: interval kept, next expiry within one interval, at least `pending` expirations
 * readable, and another one within 10 s (no wall-clock bound beyond that). */
static void check_periodic_timerfd(const char *name, int fd, long interval_ns, uint64_t pending) {
    struct itimerspec now;
    if (timerfd_gettime(fd, &now) != 0) { fail(name, errno, 0); return; }
    if (ns(now.it_interval) != interval_ns) fail(name, ns(now.it_interval), interval_ns);
    if (ns(now.it_value) <= 0 || ns(now.it_value) > interval_ns) fail(name, ns(now.it_value), interval_ns);
    uint64_t count = 0;
    if (read(fd, &count, 8) != 8 || count < pending) fail(name, (long)count, (long)pending);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 10000) != 1 || read(fd, &count, 8) != 8 || count < 1) fail(name, -1, (long)count);
}

static void check_far_timerfd(const char *name, int fd) {
    struct itimerspec now;
    if (timerfd_gettime(fd, &now) != 0) { fail(name, errno, 0); return; }
    if (now.it_value.tv_sec < 3000 || now.it_value.tv_sec > 3600 || ns(now.it_interval) != 0)
        fail(name, (long)now.it_value.tv_sec, ns(now.it_interval));
    uint64_t count;
    if (read(fd, &count, 8) != -1 || errno != EAGAIN) fail(name, -2, errno);
}

int main(void) {
    signal(SIGTERM, on_term);
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGRTMIN + 3);
    sigaddset(&blocked, SIGALRM);
    sigprocmask(SIG_BLOCK, &blocked, NULL);

    int mono = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct itimerspec every10 = {.it_interval = {0, 10000000}, .it_value = {0, 10000000}};
    timerfd_settime(mono, 0, &every10, NULL);
    int boot = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK);
    struct itimerspec every20 = {.it_interval = {0, 20000000}, .it_value = {0, 20000000}};
    timerfd_settime(boot, 0, &every20, NULL);
    int once = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct itimerspec hour = {.it_value = {3600, 0}};
    timerfd_settime(once, 0, &hour, NULL);
    int absolute = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    struct itimerspec at = {.it_value = {wall.tv_sec + 3600, 0}};
    timerfd_settime(absolute, TFD_TIMER_ABSTIME, &at, NULL);

    struct sigevent event;
    memset(&event, 0, sizeof event);
    event.sigev_notify = SIGEV_SIGNAL;
    event.sigev_signo = SIGRTMIN + 3;
    event.sigev_value.sival_int = 4242;
    timer_t posix;
    timer_create(CLOCK_MONOTONIC, &event, &posix);
    timer_settime(posix, 0, &every10, NULL);
    struct itimerval alarm_every = {.it_interval = {0, 20000}, .it_value = {0, 20000}};
    setitimer(ITIMER_REAL, &alarm_every, NULL);

    usleep(1200000);
    printf("READY\n");
    fflush(stdout);
    while (!terminate_requested) usleep(1000);

    /* More than a second unread before the first checkpoint: at 10 ms, well over 50 expirations. */
    check_periodic_timerfd("periodic monotonic timerfd", mono, 10000000, 50);
    check_periodic_timerfd("periodic boottime timerfd", boot, 20000000, 25);
    check_far_timerfd("one-shot timerfd", once);
    check_far_timerfd("absolute realtime timerfd", absolute);

    struct itimerspec left;
    if (timer_gettime(posix, &left) != 0 || ns(left.it_interval) != 10000000 || ns(left.it_value) <= 0 ||
        ns(left.it_value) > 10000000)
        fail("periodic POSIX timer", ns(left.it_interval), ns(left.it_value));
    /* Its signal was pending all along, and the timer goes on: a SI_TIMER instance arrives. */
    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGRTMIN + 3);
    struct timespec ten = {10, 0};
    siginfo_t info;
    int timer_signals = 0, from_timer = 0;
    while (timer_signals < 8 && sigtimedwait(&wanted, &info, &ten) == SIGRTMIN + 3) {
        timer_signals++;
        if (info.si_code == SI_TIMER && info.si_value.sival_int == 4242) {
            from_timer = 1;
            break;
        }
    }
    if (!from_timer) fail("POSIX timer signal", timer_signals, 0);

    struct itimerval alarm_left;
    getitimer(ITIMER_REAL, &alarm_left);
    /* (Linux re-arms it only when the pending SIGALRM is taken: the value may read 0 until then.) */
    if (alarm_left.it_interval.tv_usec != 20000 || alarm_left.it_value.tv_sec != 0 || alarm_left.it_value.tv_usec > 20000)
        fail("periodic ITIMER_REAL", alarm_left.it_interval.tv_usec, alarm_left.it_value.tv_usec);
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGALRM);
    if (sigtimedwait(&wanted, &info, &ten) != SIGALRM) fail("SIGALRM", errno, 0);

    if (failures) return 1;
    printf("PASS\n");
    return 0;
}
