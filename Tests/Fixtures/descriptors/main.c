/* descriptors: kernel objects held across checkpoints, verified on SIGTERM.
 *   - a pipe with 5000 buffered bytes (both ends in the process)
 *   - a thread blocked in read() on an empty pipe, released after restart
 *   - an eventfd in semaphore mode with a count of 3, nonblocking
 *   - an epoll instance watching the data pipe and the eventfd, with user data
 *   - a timerfd with a 1 ms interval that keeps firing
 *   - a directory fd used with openat(), at a high fd number (1000)
 *   - a file written through two dup'ed fds (one offset between them)
 *   - an inotify instance watching the directory (wd 2, after a removed wd 1)
 *   - a TCP listener on loopback, a UNIX socketpair with queued bytes, a datagram pair with three
 *     queued messages, a pseudo-terminal pair in raw mode, and a POSIX timer with a far deadline: every kind at once
 *   - a named FIFO holding "fifo-data"
 *   - a temporary file deleted while open (tmpfile()) and a sealed memfd, with contents and offsets
 *   - a signalfd for SIGUSR1 (blocked), an RLIMIT_NOFILE soft limit of 200, and an
 *     ITIMER_REAL with a 5 ms interval whose SIGALRM handler counts
 * Prints READY, then PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

static volatile sig_atomic_t terminate_requested;
static void on_term(int signo) { (void)signo; terminate_requested = 1; }
static volatile long alarms;
static void on_alarm(int signo) { (void)signo; alarms++; }
static int failures;
static void fail(const char *what) { printf("FAIL %s (errno %d)\n", what, errno); fflush(stdout); failures++; }

static int idle_pipe[2];
static char idle_got[16];
static void *idle_reader(void *arg) {
    (void)arg;
    ssize_t n = read(idle_pipe[0], idle_got, sizeof idle_got - 1);
    if (n <= 0) idle_got[0] = '!';
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    signal(SIGTERM, on_term);
    int data_pipe[2];
    if (pipe(data_pipe) != 0 || pipe(idle_pipe) != 0) return 1;
    char pattern[5000];
    for (int i = 0; i < 5000; i++) pattern[i] = (char)('a' + i % 26);
    if (write(data_pipe[1], pattern, sizeof pattern) != sizeof pattern) return 1;
    pthread_t reader;
    pthread_create(&reader, NULL, idle_reader, NULL);

    int events = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0x1234};
    epoll_ctl(ep, EPOLL_CTL_ADD, data_pipe[0], &ev);
    ev.data.u64 = 0x5678;
    epoll_ctl(ep, EPOLL_CTL_ADD, events, &ev);
    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct itimerspec spec = {.it_interval = {0, 1000000}, .it_value = {0, 1000000}};
    timerfd_settime(timer, 0, &spec, NULL);
    int dir = open(argv[1], O_RDONLY | O_DIRECTORY);
    int path_only = open(argv[1], O_PATH | O_DIRECTORY); /* an O_PATH fd: openat works through it */
    if (dup2(dir, 1000) != 1000) return 1;
    close(dir);
    char dup_path[4096];
    snprintf(dup_path, sizeof dup_path, "%s/dup.txt", argv[1]);
    int first = open(dup_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int second = dup(first);
    if (write(first, "A", 1) != 1 || write(second, "B", 1) != 1) return 1;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in loopback = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t loopback_length = sizeof loopback;
    if (bind(listener, (struct sockaddr *)&loopback, sizeof loopback) != 0 || listen(listener, 4) != 0) return 1;
    getsockname(listener, (struct sockaddr *)&loopback, &loopback_length);
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0 || write(pair[0], "queued", 6) != 6) return 1;
    int datagrams[2]; /* three queued messages, one of them empty: they must come back as three */
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, datagrams) != 0 || send(datagrams[0], "one", 3, 0) != 3 ||
        send(datagrams[0], "", 0, 0) != 0 || send(datagrams[0], "three", 5, 0) != 5) return 1;
    int pty_master = posix_openpt(O_RDWR | O_NOCTTY);
    grantpt(pty_master);
    unlockpt(pty_master);
    int pty_slave = open(ptsname(pty_master), O_RDWR | O_NOCTTY);
    struct termios raw;
    tcgetattr(pty_slave, &raw);
    cfmakeraw(&raw);
    tcsetattr(pty_slave, TCSANOW, &raw);
    struct sigevent timer_event = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 3};
    timer_t far_timer;
    timer_create(CLOCK_MONOTONIC, &timer_event, &far_timer);
    struct itimerspec far_deadline = {.it_value = {7200, 0}};
    timer_settime(far_timer, 0, &far_deadline, NULL);
    int watcher = inotify_init1(IN_NONBLOCK);
    int removed = inotify_add_watch(watcher, "/", IN_CREATE);
    inotify_rm_watch(watcher, removed);
    int watch = inotify_add_watch(watcher, argv[1], IN_CREATE);
    char fifo_path[4096];
    snprintf(fifo_path, sizeof fifo_path, "%s/fifo", argv[1]);
    mkfifo(fifo_path, 0600);
    int fifo = open(fifo_path, O_RDWR | O_NONBLOCK);
    if (write(fifo, "fifo-data", 9) != 9) return 1;
    FILE *scratch = tmpfile();
    fputs("deleted-but-open contents", scratch);
    fflush(scratch);
    fseek(scratch, 8, SEEK_SET);
    int memory = memfd_create("stasis-test", MFD_ALLOW_SEALING);
    if (write(memory, "memfd contents", 14) != 14) return 1;
    fcntl(memory, F_ADD_SEALS, F_SEAL_SHRINK);
    lseek(memory, 6, SEEK_SET);
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    int signals = signalfd(-1, &usr1, SFD_NONBLOCK);
    struct rlimit files;
    getrlimit(RLIMIT_NOFILE, &files);
    files.rlim_cur = 200;
    setrlimit(RLIMIT_NOFILE, &files);
    signal(SIGALRM, on_alarm);
    struct itimerval every = {.it_interval = {0, 5000}, .it_value = {0, 5000}};
    setitimer(ITIMER_REAL, &every, NULL);

    printf("READY\n");
    fflush(stdout);
    while (!terminate_requested) usleep(1000);

    /* epoll reports both, with their data */
    struct epoll_event out[4];
    int n = epoll_wait(ep, out, 4, 1000);
    int saw_pipe = 0, saw_event = 0;
    for (int i = 0; i < n; i++) {
        if (out[i].data.u64 == 0x1234) saw_pipe = 1;
        if (out[i].data.u64 == 0x5678) saw_event = 1;
    }
    if (!saw_pipe || !saw_event) fail("epoll registrations");
    /* the buffered bytes, in order */
    char got[5000];
    size_t total = 0;
    while (total < sizeof got) {
        ssize_t r = read(data_pipe[0], got + total, sizeof got - total);
        if (r <= 0) break;
        total += (size_t)r;
    }
    if (total != sizeof got || memcmp(got, pattern, sizeof got) != 0) fail("pipe contents");
    /* semaphore: three reads of 1, then EAGAIN */
    uint64_t value = 0;
    for (int i = 0; i < 3; i++)
        if (read(events, &value, 8) != 8 || value != 1) fail("eventfd semaphore count");
    if (read(events, &value, 8) != -1 || errno != EAGAIN) fail("eventfd nonblocking");
    /* the timer keeps firing */
    usleep(5000);
    uint64_t ticks = 0;
    if (read(timer, &ticks, 8) != 8 || ticks == 0) fail("timerfd interval");
    /* openat through the directory fd */
    int probe = openat(1000, "probe.txt", O_RDONLY);
    if (probe < 0) fail("openat on the directory fd");
    if (openat(path_only, "probe.txt", O_RDONLY) < 0) fail("openat on the O_PATH fd");
    if (!(fcntl(path_only, F_GETFL) & O_PATH)) fail("O_PATH flag");
    /* dup'ed fds share one offset: nothing is overwritten */
    if (write(first, "C", 1) != 1 || write(second, "D", 1) != 1) fail("write through dup'ed fds");
    char dup_text[8] = {0};
    int check = open(dup_path, O_RDONLY);
    if (read(check, dup_text, sizeof dup_text - 1) != 4 || strcmp(dup_text, "ABCD") != 0) fail("dup'ed fds share one offset");
    /* inotify: a file created now is reported on the same watch descriptor */
    char created[4096];
    snprintf(created, sizeof created, "%s/created-after-restart", argv[1]);
    close(open(created, O_CREAT | O_WRONLY, 0600));
    char notices[4096];
    usleep(10000);
    ssize_t got_notices;
    do got_notices = read(watcher, notices, sizeof notices); while (got_notices < 0 && errno == EINTR);
    int seen_create = 0;
    for (ssize_t at = 0; at + (ssize_t)sizeof(struct inotify_event) <= got_notices;) {
        struct inotify_event *notice = (struct inotify_event *)(notices + at);
        if (notice->wd == watch && (notice->mask & IN_CREATE)) seen_create = 1;  /* (IN_IGNORED of wd 1 may come first) */
        at += (ssize_t)sizeof *notice + notice->len;
    }
    if (!seen_create) fail("inotify watch");
    unlink(created);
    /* sockets: the listener takes a new client; the pair still holds its bytes */
    int dialer = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(dialer, (struct sockaddr *)&loopback, sizeof loopback) != 0) fail("connect to the restored listener");
    struct tcp_info listener_info; /* a listener's tcpi_sacked is its backlog */
    socklen_t info_length = sizeof listener_info;
    if (getsockopt(listener, IPPROTO_TCP, TCP_INFO, &listener_info, &info_length) != 0 || listener_info.tcpi_sacked != 4)
        fail("listener backlog");
    char queued[8] = {0};
    if (read(pair[1], queued, 6) != 6 || strcmp(queued, "queued") != 0) fail("socketpair bytes");
    char message[8] = {0};
    if (recv(datagrams[1], message, sizeof message, MSG_DONTWAIT) != 3 || memcmp(message, "one", 3) != 0) fail("datagram 1");
    if (recv(datagrams[1], message, sizeof message, MSG_DONTWAIT) != 0) fail("datagram 2 (empty)");
    if (recv(datagrams[1], message, sizeof message, MSG_DONTWAIT) != 5 || memcmp(message, "three", 5) != 0) fail("datagram 3");
    if (recv(datagrams[1], message, sizeof message, MSG_DONTWAIT) != -1) fail("datagram: more than were queued");
    /* the pty pair: connected, still raw */
    struct termios now_modes;
    if (tcgetattr(pty_slave, &now_modes) != 0 || (now_modes.c_lflag & ICANON)) fail("pty slave modes");
    if (write(pty_master, "pt", 2) != 2) fail("pty master write");
    usleep(20000);
    char pty_got[4] = {0};
    if (read(pty_slave, pty_got, 2) != 2 || strcmp(pty_got, "pt") != 0) fail("pty pair");
    /* the POSIX timer */
    struct itimerspec left;
    if (timer_gettime(far_timer, &left) != 0 || left.it_value.tv_sec < 7000) fail("POSIX timer");
    /* the FIFO's buffered bytes */
    char fifo_got[16] = {0};
    if (read(fifo, fifo_got, sizeof fifo_got - 1) != 9 || strcmp(fifo_got, "fifo-data") != 0) fail("FIFO contents");
    /* deleted file and memfd: contents, offsets, seals */
    char rest[32] = {0};
    if (!fgets(rest, sizeof rest, scratch) || strcmp(rest, "but-open contents") != 0) fail("deleted file contents/offset");
    char mem[16] = {0};
    if (read(memory, mem, 8) != 8 || strcmp(mem, "contents") != 0) fail("memfd contents/offset");
    if (fcntl(memory, F_GET_SEALS) != F_SEAL_SHRINK) fail("memfd seals");
    /* signalfd, rlimit, itimer */
    raise(SIGUSR1);
    struct signalfd_siginfo info;
    if (read(signals, &info, sizeof info) != sizeof info || info.ssi_signo != SIGUSR1) fail("signalfd");
    struct rlimit now_files;
    getrlimit(RLIMIT_NOFILE, &now_files);
    if (now_files.rlim_cur != 200) fail("RLIMIT_NOFILE");
    long alarms_before = alarms;
    usleep(50000);
    if (alarms == alarms_before) fail("ITIMER_REAL");
    /* release the blocked reader */
    if (write(idle_pipe[1], "wake", 4) != 4) fail("write to the idle pipe");
    pthread_join(reader, NULL);
    if (strcmp(idle_got, "wake") != 0) fail("reader blocked on an empty pipe");
    if (!failures) printf("PASS\n");
    fflush(stdout);
    return failures ? 1 : 0;
}
