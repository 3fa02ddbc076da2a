/* sleeper: sleeps 1.5 s in nanosleep, then 1.5 s in sleep()-style clock_nanosleep via usleep,
 * and fails if either returns early with EINTR (a checkpoint must not cut a sleep short, live or
 * restored). Prints READY first, PASS or FAIL last. */
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    printf("READY\n");
    fflush(stdout);
    struct timespec request = {1, 500000000}, rem = {0, 0};
    int first = nanosleep(&request, &rem);
    int first_errno = errno;
    int second = usleep(1500000);
    int second_errno = errno;
    if (first != 0 || second != 0) {
        printf("FAIL nanosleep %d errno %d, usleep %d errno %d\n", first, first_errno, second, second_errno);
        return 1;
    }
    printf("PASS\n");
    return 0;
}
