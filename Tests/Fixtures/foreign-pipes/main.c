/* foreign-pipes: runs as an ordinary user with pipes another user (root) created. fd 3 is the write end
 * of a pipe whose reader is outside the job; fd 4 is the read end of a pipe whose writer (outside) wrote
 * "HELLO-IN" and left; fd 5 is a file root created (mode 0600) holding "root-data", deleted while open.
 * Writes "OUT-BYTES\n" to fd 3 (its reader does not read yet), also keeps a pipe of
 * its own with "INSIDE" buffered, waits until fd 4 has its bytes, prints READY. On SIGTERM: fd 4 must
 * still hold exactly "HELLO-IN" then end of file, its own pipe "INSIDE", fd 5 "root-data".
 * Prints PASS or FAIL <what>. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static volatile sig_atomic_t terminate_requested;
static void on_term(int signo) { (void)signo; terminate_requested = 1; }

static int read_all(int fd, char *buffer, int capacity) {
    int total = 0;
    for (;;) {
        ssize_t n = read(fd, buffer + total, (size_t)(capacity - total));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n < 0 ? -1 : total;
        total += (int)n;
        if (total == capacity) return total;
    }
}

int main(void) {
    signal(SIGTERM, on_term);
    signal(SIGPIPE, SIG_IGN);
    int own[2];
    if (pipe(own) != 0 || write(own[1], "INSIDE", 6) != 6) { printf("FAIL own pipe\n"); return 1; }
    if (write(3, "OUT-BYTES\n", 10) != 10) { printf("FAIL write fd 3\n"); return 1; }
    for (int i = 0; i < 60000; i++) {
        int pending = 0;
        if (ioctl(4, FIONREAD, &pending) == 0 && pending >= 8) break;
        usleep(1000);
    }
    printf("READY\n");
    fflush(stdout);
    while (!terminate_requested) usleep(1000);
    char got[64] = {0};
    int n = read_all(4, got, sizeof got - 1);
    if (n != 8 || strcmp(got, "HELLO-IN") != 0) { printf("FAIL fd 4 holds %d bytes: %s\n", n, got); return 1; }
    char mine[16] = {0};
    if (read(own[0], mine, sizeof mine) != 6 || strcmp(mine, "INSIDE") != 0) { printf("FAIL own pipe: %s\n", mine); return 1; }
    char data[16] = {0};
    if (pread(5, data, sizeof data, 0) != 9 || strcmp(data, "root-data") != 0) { printf("FAIL fd 5: %s\n", data); return 1; }
    printf("PASS\n");
    return 0;
}
