/* tree-server: a preforked TCP server, two workers accept()ing on one listening socket.
 *
 * The root listens on 127.0.0.1, port 0 (the kernel picks one), prints "PORT N", forks workers 1 and 2
 * and keeps the socket open itself. A worker accepts a connection, reads one line, answers
 * "worker K pid PID served COUNT\n" and closes it, then pauses 50 ms before accepting again (so that a
 * burst of connections reaches both). Prints "READY W1 W2".
 *
 * SIGTERM to the root: kcmp(KCMP_FILE) must say each worker's listening fd is the root's socket (one
 * socket, not two bound copies); the workers get SIGTERM and exit 0 if their ids are as before (each
 * prints "worker K served COUNT"). "PASS server". The test checks the answers themselves. */
#include "../tree-common/tree_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define KCMP_FILE 0

static void on_term_interrupting(int signo) { (void)signo; tf_term = 1; }

static int worker(int index, int listener) {
    tf_ids_t mine = tf_ids();
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_term_interrupting; /* no SA_RESTART: SIGTERM ends a blocked accept */
    TF_CHECK(sigaction(SIGTERM, &action, NULL) == 0, "sigaction worker");
    signal(SIGPIPE, SIG_IGN);
    long served = 0;
    while (!tf_term) {
        int connection = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (connection < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) continue;
            tf_die("accept4");
        }
        struct timeval timeout = {5, 0};
        TF_CHECK(setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) == 0, "SO_RCVTIMEO");
        char line[256];
        size_t used = 0;
        while (used < sizeof line - 1) {
            ssize_t n = read(connection, line + used, 1);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0 || line[used] == '\n') break;
            used++;
        }
        served++;
        char answer[128];
        int length = snprintf(answer, sizeof answer, "worker %d pid %d served %ld\n", index, (int)getpid(), served);
        ssize_t n;
        do n = write(connection, answer, (size_t)length);
        while (n < 0 && errno == EINTR);
        tf_close(connection);
        tf_sleep_ms(50);
    }
    tf_say("worker %d served %ld", index, served);
    return tf_same_ids("worker", mine, 1) ? 0 : 1;
}

int main(void) {
    tf_ids_t ids = tf_ids();
    tf_catch_term();
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    TF_CHECK(listener >= 0, "socket");
    int one = 1;
    TF_CHECK(setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0, "SO_REUSEADDR");
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    TF_CHECK(bind(listener, (struct sockaddr *)&address, sizeof address) == 0, "bind");
    TF_CHECK(listen(listener, 64) == 0, "listen");
    /* accept wakes every 0.5 s (EAGAIN): a SIGTERM just before a worker blocks in accept is not missed. */
    struct timeval wake = {0, 500000};
    TF_CHECK(setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &wake, sizeof wake) == 0, "SO_RCVTIMEO listener");
    socklen_t length = sizeof address;
    TF_CHECK(getsockname(listener, (struct sockaddr *)&address, &length) == 0, "getsockname");
    tf_say("PORT %d", ntohs(address.sin_port));
    pid_t workers[2];
    for (int i = 0; i < 2; i++) {
        workers[i] = tf_fork();
        if (workers[i] == 0) _exit(worker(i + 1, listener));
    }
    tf_ready(workers, 2);
    tf_wait_for_term();

    int ok = tf_same_ids("root", ids, 0);
    for (int i = 0; i < 2; i++) {
        long same = syscall(SYS_kcmp, getpid(), workers[i], KCMP_FILE, listener, listener);
        if (same != 0) {
            tf_say("FAIL server: worker %d's fd %d is not the root's listening socket (kcmp %ld)", i + 1, listener, same);
            ok = 0;
        }
    }
    for (int i = 0; i < 2; i++) TF_CHECK(kill(workers[i], SIGTERM) == 0, "kill worker");
    for (int i = 0; i < 2; i++) {
        int status = 0;
        if (!tf_reap_within(workers[i], 30, &status) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            tf_say("FAIL server: worker %d %s", i + 1, tf_status_text(status));
            tf_kill_and_reap(workers[i]);
            ok = 0;
        }
    }
    if (!ok) return 1;
    tf_say("PASS server");
    return 0;
}
