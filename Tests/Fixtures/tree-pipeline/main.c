/* tree-pipeline: producer | filter | consumer, three exec'd processes with data in flight in both pipes.
 *
 *   root ──fork+exec──▶ tree-pipeline producer   writes 26-byte records "SEQ(16 hex) HASH(8 hex)\n",
 *        │                     │ pipe 1          as fast as the pipe takes them
 *        ├──fork+exec──▶ tree-pipeline filter     checks each record (seq continues, hash), writes
 *        │                     │ pipe 2          35-byte records "SEQ HASH HASH2\n"
 *        └──fork+exec──▶ tree-pipeline consumer   reads slowly (64 records, then 5 ms), checks each
 *
 * The consumer is the slowest, so both pipes stay full: a checkpoint always finds data in flight in
 * both (the test also waits for the producer and the filter to block in pipe_write). Records are not a
 * divisor of the page size: lost or repeated bytes break the framing, not just the count.
 *
 * Prints "READY PRODUCER FILTER CONSUMER". SIGTERM to the root: the root sends SIGTERM to the producer,
 * which stops and closes pipe 1; the filter and the consumer drain to end of file. Each child sends its
 * record count over a results pipe and exits 0 if everything it saw was right (ids unchanged too). The
 * root checks the three statuses and that the counts agree: "PASS pipeline N records". */
#include "../tree-common/tree_fixture.h"

#define RECORD1 26
#define RECORD2 35
#define FD_IN 10
#define FD_OUT 11
#define FD_RESULTS 12

typedef struct {
    int32_t role; /* 0 producer, 1 filter, 2 consumer */
    int32_t ok;
    uint64_t count;
} result_t;

static uint32_t hash1(uint64_t seq) { return (uint32_t)((seq * 0x9E3779B97F4A7C15ull) >> 32); }
static uint32_t hash2(uint64_t seq) { return (uint32_t)((seq ^ 0xA5A5A5A5DEADBEEFull) * 0xC2B2AE3D27D4EB4Full >> 29); }

static void report(int role, int ok, uint64_t count) {
    result_t result = {role, ok, count};
    tf_write_all(FD_RESULTS, &result, sizeof result, "write results");
}

static int producer(void) {
    tf_ids_t ids = tf_ids();
    tf_catch_term();
    signal(SIGPIPE, SIG_IGN);
    uint64_t seq = 0;
    char record[RECORD1 + 1];
    while (!tf_term) {
        snprintf(record, sizeof record, "%016llx %08x\n", (unsigned long long)seq, hash1(seq));
        const char *p = record;
        size_t left = RECORD1;
        while (left > 0) { /* a SIGTERM in the middle of a record still finishes it */
            ssize_t n = write(FD_OUT, p, left);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) tf_die("producer write");
            p += n;
            left -= (size_t)n;
        }
        seq++;
    }
    tf_close(FD_OUT);
    int ok = tf_same_ids("producer", ids, 1);
    report(0, ok, seq);
    return ok ? 0 : 1;
}

/* Parses "%016llx %08x" at `text` (the byte after it is the caller's to check); 0 if malformed. */
static int parse_record(const char *text, uint64_t *seq, uint32_t *hash) {
    char copy[RECORD1];
    memcpy(copy, text, RECORD1 - 1);
    copy[RECORD1 - 1] = 0;
    char *end;
    if (copy[16] != ' ') return 0;
    copy[16] = 0;
    *seq = strtoull(copy, &end, 16);
    if (end != copy + 16) return 0;
    *hash = (uint32_t)strtoul(copy + 17, &end, 16);
    return end == copy + 25;
}

static int filter(void) {
    tf_ids_t ids = tf_ids();
    tf_on(SIGTERM, SIG_IGN); /* ends at end of file */
    uint64_t expected = 0;
    int ok = 1;
    char in[RECORD1], out[RECORD2 + 1];
    for (;;) {
        size_t n = tf_read_all(FD_IN, in, RECORD1, "filter read");
        if (n == 0) break;
        uint64_t seq;
        uint32_t hash;
        if (n != RECORD1 || !parse_record(in, &seq, &hash) || in[25] != '\n' || seq != expected || hash != hash1(seq)) {
            tf_say("FAIL filter: record %llu: got %zu bytes \"%.*s\"", (unsigned long long)expected, n, (int)n - 1, in);
            ok = 0;
            break;
        }
        snprintf(out, sizeof out, "%016llx %08x %08x\n", (unsigned long long)seq, hash, hash2(seq));
        tf_write_all(FD_OUT, out, RECORD2, "filter write");
        expected++;
    }
    tf_close(FD_OUT);
    ok = tf_same_ids("filter", ids, 1) && ok;
    report(1, ok, expected);
    return ok ? 0 : 1;
}

static int consumer(void) {
    tf_ids_t ids = tf_ids();
    tf_on(SIGTERM, SIG_IGN);
    uint64_t expected = 0;
    int ok = 1;
    char in[RECORD2];
    for (;;) {
        size_t n = tf_read_all(FD_IN, in, RECORD2, "consumer read");
        if (n == 0) break;
        uint64_t seq;
        uint32_t hash;
        char tail[9], *end;
        memcpy(tail, in + 26, 8);
        tail[8] = 0;
        uint32_t second = (uint32_t)strtoul(tail, &end, 16);
        if (n != RECORD2 || !parse_record(in, &seq, &hash) || in[25] != ' ' || end != tail + 8 || in[34] != '\n' ||
            seq != expected || hash != hash1(seq) || second != hash2(seq)) {
            tf_say("FAIL consumer: record %llu: got %zu bytes \"%.*s\"", (unsigned long long)expected, n, (int)n - 1, in);
            ok = 0;
            break;
        }
        expected++;
        if (expected % 64 == 0) tf_sleep_ms(5);
    }
    ok = tf_same_ids("consumer", ids, 1) && ok;
    report(2, ok, expected);
    return ok ? 0 : 1;
}

/* Forks `self ROLE` with `in` on FD_IN, `out` on FD_OUT (-1: none) and the results pipe on FD_RESULTS. */
static pid_t start(const char *self, const char *role, int in, int out, int results) {
    pid_t pid = tf_fork();
    if (pid > 0) return pid;
    if (in >= 0 && dup2(in, FD_IN) != FD_IN) tf_die("dup2 in");
    if (out >= 0 && dup2(out, FD_OUT) != FD_OUT) tf_die("dup2 out");
    if (dup2(results, FD_RESULTS) != FD_RESULTS) tf_die("dup2 results");
    execl(self, "tree-pipeline", role, (char *)NULL);
    tf_die("execl");
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "producer") == 0) return producer();
    if (argc == 2 && strcmp(argv[1], "filter") == 0) return filter();
    if (argc == 2 && strcmp(argv[1], "consumer") == 0) return consumer();
    if (argc != 1) {
        tf_say("usage: tree-pipeline");
        return 2;
    }
    tf_ids_t ids = tf_ids();
    tf_catch_term();
    char self[4096];
    ssize_t length = readlink("/proc/self/exe", self, sizeof self - 1);
    TF_CHECK(length > 0, "readlink /proc/self/exe");
    self[length] = 0;
    int one[2], two[2], results[2];
    tf_pipe(one);
    tf_pipe(two);
    tf_pipe(results);
    pid_t children[3];
    children[0] = start(self, "producer", -1, one[1], results[1]);
    children[1] = start(self, "filter", one[0], two[1], results[1]);
    children[2] = start(self, "consumer", two[0], -1, results[1]);
    tf_close(one[0]);
    tf_close(one[1]);
    tf_close(two[0]);
    tf_close(two[1]);
    tf_close(results[1]);
    tf_ready(children, 3);

    while (!tf_term) {
        int status;
        pid_t early = waitpid(-1, &status, WNOHANG);
        if (early > 0) {
            tf_say("FAIL pipeline: child %d ended early (%s)", (int)early, tf_status_text(status));
            for (int i = 0; i < 3; i++) if (children[i] != early) tf_kill_and_reap(children[i]);
            return 1;
        }
        tf_sleep_ms(5);
    }
    int ok = tf_same_ids("root", ids, 0);
    TF_CHECK(kill(children[0], SIGTERM) == 0, "kill producer");
    const char *names[3] = {"producer", "filter", "consumer"};
    for (int i = 0; i < 3; i++) {
        int status;
        if (!tf_reap_within(children[i], 60, &status)) {
            tf_say("FAIL pipeline: the %s did not finish", names[i]);
            for (int j = i; j < 3; j++) tf_kill_and_reap(children[j]);
            return 1;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            tf_say("FAIL pipeline: the %s %s", names[i], tf_status_text(status));
            ok = 0;
        }
    }
    uint64_t counts[3] = {0, 0, 0};
    int seen = 0;
    result_t result;
    while (tf_read_all(results[0], &result, sizeof result, "read results") == sizeof result) {
        if (result.role < 0 || result.role > 2) continue;
        counts[result.role] = result.count;
        seen |= 1 << result.role;
        if (!result.ok) ok = 0;
    }
    if (seen != 7 || counts[0] != counts[1] || counts[1] != counts[2] || counts[0] < 4096) {
        tf_say("FAIL pipeline: counts producer %llu filter %llu consumer %llu (reports %#x)",
               (unsigned long long)counts[0], (unsigned long long)counts[1], (unsigned long long)counts[2], seen);
        ok = 0;
    }
    if (!ok) return 1;
    tf_say("PASS pipeline %llu records", (unsigned long long)counts[2]);
    return 0;
}
