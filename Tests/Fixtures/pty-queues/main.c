/* pty-queues: two pseudo-terminal pairs with bytes queued in both directions.
 *   canonical (the default modes: ICANON, ECHO, ICRNL, OPOST|ONLCR): "line one\npartial" written to the
 *     master (a complete line and a partial one, echoed to the master), "to-master\n" written to the slave
 *   raw (cfmakeraw): "raw-in\003\177" written to the master, "raw-out\n" written to the slave
 *   lone: a master whose slave nobody has opened yet (a terminal emulator before its child opens it):
 *     it must not come back hung up (read gives EAGAIN, not EIO)
 * Nothing is read before READY. On SIGTERM each side must read exactly what was queued, the partial line
 * must still be partial (not readable until its newline comes), and the modes must be as they were.
 * Prints PASS or FAIL <what>. */
#define _XOPEN_SOURCE 600
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static volatile sig_atomic_t terminate_requested;
static void on_term(int signo) { (void)signo; terminate_requested = 1; }
static int failed;
static void fail(const char *what) { printf("FAIL %s\n", what); fflush(stdout); failed = 1; }

static void open_pair(int *master, int *slave) {
    *master = posix_openpt(O_RDWR | O_NOCTTY);
    if (*master < 0 || grantpt(*master) || unlockpt(*master)) exit(2);
    *slave = open(ptsname(*master), O_RDWR | O_NOCTTY);
    if (*slave < 0) exit(2);
}

static int pending(int fd) { int n = 0; ioctl(fd, FIONREAD, &n); return n; }

/* Everything `fd` has within a short wait (the tty layer hands bytes over asynchronously). */
static int read_available(int fd, char *into, int capacity) {
    int total = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (total < capacity && poll(&p, 1, 200) > 0 && (p.revents & POLLIN)) {
        ssize_t n = read(fd, into + total, (size_t)(capacity - total));
        if (n <= 0) break;
        total += (int)n;
    }
    return total;
}

static void expect_bytes(int fd, const char *expected, int length, const char *what) {
    char got[256] = {0};
    int n = read_available(fd, got, sizeof got);
    if (n != length || memcmp(got, expected, (size_t)length) != 0) {
        printf("FAIL %s: got %d bytes:", what, n);
        for (int i = 0; i < n; i++) printf(" %02x", (unsigned char)got[i]);
        printf("\n");
        failed = 1;
    }
}

int main(void) {
    signal(SIGTERM, on_term);
    int cm, cs, rm, rs;
    open_pair(&cm, &cs);
    open_pair(&rm, &rs);
    int lone = posix_openpt(O_RDWR | O_NOCTTY);
    if (lone < 0 || grantpt(lone) || unlockpt(lone)) return 2;
    struct termios raw;
    tcgetattr(rs, &raw);
    cfmakeraw(&raw);
    tcsetattr(rs, TCSANOW, &raw);
    if (write(cm, "line one\npartial", 16) != 16) return 2;
    for (int i = 0; i < 10000 && pending(cm) < 17; i++) usleep(1000);  /* the echo first, then the slave's own */
    if (write(cs, "to-master\n", 10) != 10) return 2;
    if (write(rm, "raw-in\003\177", 8) != 8 || write(rs, "raw-out\n", 8) != 8) return 2;
    /* Until the line disciplines have it all: the complete line (canonical), the raw input, both outputs. */
    for (int i = 0; i < 10000 && (pending(cs) < 9 || pending(rs) < 8 || pending(cm) < 28 || pending(rm) < 8); i++) usleep(1000);
    printf("READY\n");
    fflush(stdout);
    while (!terminate_requested) usleep(1000);

    struct termios now;
    tcgetattr(cs, &now);
    if (!(now.c_lflag & ICANON) || !(now.c_lflag & ECHO) || !(now.c_oflag & OPOST)) fail("canonical modes");
    tcgetattr(rs, &now);
    if (now.c_lflag & (ICANON | ECHO | ISIG)) fail("raw modes");
    fcntl(cm, F_SETFL, O_NONBLOCK);
    fcntl(rm, F_SETFL, O_NONBLOCK);
    fcntl(cs, F_SETFL, O_NONBLOCK);
    fcntl(rs, F_SETFL, O_NONBLOCK);
    /* slave -> master: the echo of the input, then what the slave wrote (OPOST turned \n into \r\n). */
    expect_bytes(cm, "line one\r\npartialto-master\r\n", 28, "canonical master queue");
    expect_bytes(rm, "raw-out\n", 8, "raw master queue");
    /* master -> slave */
    char line[64] = {0};
    if (read(cs, line, sizeof line) != 9 || strcmp(line, "line one\n") != 0) fail("canonical slave: the complete line");
    struct pollfd p = {.fd = cs, .events = POLLIN};
    if (poll(&p, 1, 100) != 0) fail("canonical slave: the partial line became readable on its own");
    if (write(cm, " done\n", 6) != 6) fail("write to the canonical master");
    memset(line, 0, sizeof line);
    if (read_available(cs, line, sizeof line) != 13 || strcmp(line, "partial done\n") != 0) fail("canonical slave: the partial line");
    expect_bytes(rs, "raw-in\003\177", 8, "raw slave queue");
    fcntl(lone, F_SETFL, O_NONBLOCK);
    char c;
    struct pollfd q = {.fd = lone, .events = POLLIN};
    if (poll(&q, 1, 0) != 0 || read(lone, &c, 1) != -1 || errno != EAGAIN) fail("lone master: hung up");
    if (!failed) printf("PASS\n");
    return failed;
}
