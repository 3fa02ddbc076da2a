/* log-writer: a batch program whose stdout and stderr are one log file (>>log 2>&1). Writes a line,
 * prints READY. On SIGTERM: writes "append=<0|1> shared=<0|1>" (is fd 1 still O_APPEND, are fds 1 and 2
 * still one open file), a line on stderr, then PASS, and exits 0. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile sig_atomic_t terminate_requested;
static void on_term(int signo) { (void)signo; terminate_requested = 1; }

int main(void) {
    signal(SIGTERM, on_term);
    printf("first line\nREADY\n");
    fflush(stdout);
    while (!terminate_requested) usleep(1000);
    int append = (fcntl(1, F_GETFL) & O_APPEND) != 0;
    int shared = syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, 1, 2) == 0;
    printf("append=%d shared=%d\n", append, shared);
    fflush(stdout);
    fprintf(stderr, "stderr line\n");
    printf("PASS\n");
    return 0;
}
