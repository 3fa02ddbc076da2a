/* tree-big [FANOUT...]: a tree of many processes, all busy and talking to each other.
 *
 * Default shape 3 4 4: the root has 3 children, each of them 4, each of those 4: 1 + 3 + 12 + 48 = 64
 * processes. Every process:
 *   - checksums a private 64 KiB pattern derived from its own PID (CPU work; a changed byte is a FAIL);
 *   - pings each child over its own pipe pair with a sequence number and expects it back plus one;
 *   - answers its parent's pings (poll with a 1 ms timeout) and checks their sequence.
 * So every pipe has data in flight now and then, and a process that lost, repeated or reordered a
 * message, or came back with another PID, notices. Every process sends its PID to the root over a shared
 * report pipe; the root prints "READY" and all 63 descendants.
 *
 * SIGTERM to the root: each process stops, sends SIGTERM to its children and waits for them; it exits 0
 * if every check passed, its ids are as before and every child exited 0. The root prints
 * "PASS big N processes" (N counted on the way down), else "FAIL ...". */
#include "../tree-common/tree_fixture.h"

#include <poll.h>

#define PATTERN (64 * 1024)
#define MAX_CHILDREN 16
#define MAX_LEVELS 6

typedef struct {
    pid_t pid;
    int to, from; /* pings out, answers in */
    uint64_t seq;
} child_t;

static uint8_t pattern[PATTERN];
static child_t children[MAX_CHILDREN];
static int child_count;
static int parent_in = -1, parent_out = -1;
static uint64_t parent_seq;
static int ok = 1;
static int failures;

/* A check failed: this process fails, and says so (its first three failures only: no flood). */
#define FAIL(...)                                 \
    do {                                          \
        ok = 0;                                   \
        if (failures++ < 3) tf_say(__VA_ARGS__);  \
    } while (0)

static uint8_t byte_of(size_t i) { return (uint8_t)((i * 31 + (size_t)getpid()) & 0xff); }

static void fill_pattern(void) {
    for (size_t i = 0; i < PATTERN; i++) pattern[i] = byte_of(i);
}

static void check_pattern(void) {
    pid_t pid = getpid();
    for (size_t i = 0; i < PATTERN; i++) {
        if (pattern[i] != (uint8_t)((i * 31 + (size_t)pid) & 0xff)) {
            FAIL("FAIL big: %d: pattern byte %zu is %u", (int)pid, i, pattern[i]);
            return;
        }
    }
}

static void answer_parent(void) {
    if (parent_in < 0) return;
    struct pollfd p = {.fd = parent_in, .events = POLLIN};
    int r = poll(&p, 1, 1);
    if (r < 0 && errno == EINTR) return;
    TF_CHECK(r >= 0, "poll");
    if (r == 0) return;
    uint64_t seq;
    size_t n = tf_read_all(parent_in, &seq, sizeof seq, "read ping");
    if (n == 0) _exit(0); /* the parent is gone (0: a failed subtree) */
    if (n != sizeof seq || seq != parent_seq) {
        FAIL("FAIL big: %d: ping %llu from the parent, expected %llu", (int)getpid(), (unsigned long long)seq,
             (unsigned long long)parent_seq);
    }
    parent_seq = seq + 1;
    uint64_t reply = seq + 1;
    tf_write_all(parent_out, &reply, sizeof reply, "write answer");
}

static void ping_children(void) {
    for (int i = 0; i < child_count; i++) tf_write_all(children[i].to, &children[i].seq, sizeof children[i].seq, "write ping");
    for (int i = 0; i < child_count; i++) {
        uint64_t reply = 0;
        if (tf_read_all(children[i].from, &reply, sizeof reply, "read answer") != sizeof reply ||
            reply != children[i].seq + 1) {
            FAIL("FAIL big: %d: child %d answered %llu to %llu", (int)getpid(), (int)children[i].pid,
                 (unsigned long long)reply, (unsigned long long)children[i].seq);
        }
        children[i].seq = reply; /* the next ping carries the answer: the child expects it */
    }
}

static int grow(const int *fanout, int levels, int report);

/* The life of every process once its children exist. Returns its exit status. */
static int live(void) {
    tf_ids_t ids = tf_ids();
    fill_pattern();
    while (!tf_term) {
        check_pattern();
        ping_children();
        answer_parent();
    }
    int count = 1;
    for (int i = 0; i < child_count; i++) TF_CHECK(kill(children[i].pid, SIGTERM) == 0, "kill child");
    for (int i = 0; i < child_count; i++) {
        int status = 0;
        if (!tf_reap_within(children[i].pid, 60, &status) || !WIFEXITED(status) || WEXITSTATUS(status) == 0) {
            FAIL("FAIL big: %d: child %d %s", (int)getpid(), (int)children[i].pid, tf_status_text(status));
            tf_kill_and_reap(children[i].pid);
        } else {
            count += WEXITSTATUS(status); /* a child's status is the size of its subtree */
        }
    }
    if (!tf_same_ids("big", ids, parent_in >= 0)) ok = 0;
    return ok ? count : 0;
}

/* Forks this process's children (fanout[0] of them), each growing the rest of the shape. */
static int grow(const int *fanout, int levels, int report) {
    child_count = levels > 0 ? fanout[0] : 0;
    for (int i = 0; i < child_count; i++) {
        int down[2], up[2];
        tf_pipe(down);
        tf_pipe(up);
        pid_t pid = tf_fork();
        if (pid == 0) {
            for (int j = 0; j < i; j++) { /* the siblings' pipes are not this child's */
                tf_close(children[j].to);
                tf_close(children[j].from);
            }
            tf_close(down[1]);
            tf_close(up[0]);
            if (parent_in >= 0) {
                tf_close(parent_in);
                tf_close(parent_out);
            }
            parent_in = down[0];
            parent_out = up[1];
            parent_seq = 0;
            pid_t self = getpid();
            tf_write_all(report, &self, sizeof self, "report pid");
            return grow(fanout + 1, levels - 1, report);
        }
        tf_close(down[0]);
        tf_close(up[1]);
        children[i] = (child_t){pid, down[1], up[0], 0};
    }
    return -1; /* the caller goes on: this process's children exist */
}

int main(int argc, char **argv) {
    int fanout[MAX_LEVELS] = {3, 4, 4};
    int levels = 3;
    if (argc > 1) {
        levels = argc - 1 < MAX_LEVELS ? argc - 1 : MAX_LEVELS;
        for (int i = 0; i < levels; i++) {
            fanout[i] = atoi(argv[i + 1]);
            if (fanout[i] < 1 || fanout[i] > MAX_CHILDREN) {
                tf_say("usage: tree-big [FANOUT...] (1-%d each)", MAX_CHILDREN);
                return 2;
            }
        }
    }
    int expected = 1, width = 1;
    for (int i = 0; i < levels; i++) {
        width *= fanout[i];
        expected += width;
    }
    if (expected > 250) {
        tf_say("tree-big: at most 250 processes (exit statuses carry subtree sizes)");
        return 2;
    }
    tf_catch_term();
    int report[2];
    tf_pipe(report);
    pid_t root = getpid();
    grow(fanout, levels, report[1]);
    if (getpid() != root) {
        tf_close(report[1]);
        _exit(live());
    }
    tf_close(report[1]);
    pid_t descendants[256];
    int known = 0;
    while (known < expected - 1) {
        if (tf_read_all(report[0], &descendants[known], sizeof(pid_t), "read report") != sizeof(pid_t)) break;
        known++;
    }
    tf_close(report[0]);
    if (known != expected - 1) {
        tf_say("FAIL big: %d of %d descendants reported", known, expected - 1);
        return 1;
    }
    tf_ready(descendants, known);
    int count = live();
    if (count != expected) {
        tf_say("FAIL big: %d of %d processes finished cleanly", count, expected);
        return 1;
    }
    tf_say("PASS big %d processes", count);
    return 0;
}
