/* posix-timers: a periodic POSIX timer signalling the process (SIGUSR1, 2 ms) and a second one with a
 * far deadline, created after a deleted one so that ids have a gap. On SIGTERM: the first must still
 * fire, the second must keep its id and remaining time. PASS or FAIL <what>. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t terminate_requested;
static volatile long ticks;
static void on_term(int signo) { (void)signo; terminate_requested = 1; }
static void on_tick(int signo) { (void)signo; ticks++; }

int main(void) {
    signal(SIGTERM, on_term);
    signal(SIGUSR1, on_tick);
    struct sigevent event;
    memset(&event, 0, sizeof event);
    event.sigev_notify = SIGEV_SIGNAL;
    event.sigev_signo = SIGUSR1;
    timer_t periodic, gap, far;
    timer_create(CLOCK_MONOTONIC, &event, &periodic);
    timer_create(CLOCK_MONOTONIC, &event, &gap);
    timer_delete(gap);
    event.sigev_signo = SIGUSR2 + 10; /* a real-time signal nobody sends */
    timer_create(CLOCK_REALTIME, &event, &far);
    struct itimerspec every = {.it_interval = {0, 2000000}, .it_value = {0, 2000000}};
    timer_settime(periodic, 0, &every, NULL);
    struct itimerspec later = {.it_value = {3600, 0}};
    timer_settime(far, 0, &later, NULL);
    printf("READY\n");
    fflush(stdout);
    while (!terminate_requested) usleep(1000);
    long before = ticks;
    usleep(50000);
    if (ticks == before) { printf("FAIL periodic timer stopped\n"); return 1; }
    struct itimerspec left;
    if (timer_gettime(far, &left) != 0 || left.it_value.tv_sec < 3000 || left.it_value.tv_sec > 3600) {
        printf("FAIL far timer lost (%ld s left)\n", (long)left.it_value.tv_sec);
        return 1;
    }
    printf("PASS\n");
    return 0;
}
