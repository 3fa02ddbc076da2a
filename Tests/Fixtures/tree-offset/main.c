/* tree-offset FILE: a parent and a child writing through one shared file offset.
 *
 * The root opens FILE (O_RDWR|O_CREAT|O_TRUNC, no O_APPEND) and forks: both hold the same open file
 * description, so each write(2) lands at the shared offset and moves it for both. Each writes a 24-byte
 * record "W SEQ(16 digits) CHECK(4 hex)\n" every millisecond, W being P (parent) or C (child), SEQ
 * counting from 1. Prints "READY CHILD".
 *
 * Restored separately (two descriptions at the same offset) they would overwrite each other's records.
 * SIGTERM to the root: kcmp(KCMP_FILE) must say the two fds are one description; the child stops and
 * sends its count; then FILE from 0 to the offset must hold whole, well-formed records, the parent's
 * SEQs 1..its count and the child's 1..its count, each exactly once, in order (bytes after the offset
 * may be left from a run that was killed after the checkpoint). "PASS offset P C". */
#include "../tree-common/tree_fixture.h"

#define RECORD 24
#define KCMP_FILE 0

static uint32_t check_of(char writer, uint64_t seq) { return (uint32_t)(((seq + (uint64_t)writer) * 2654435761u) >> 16) & 0xffff; }

static void write_record(int fd, char writer, uint64_t seq) {
    char record[RECORD + 1];
    snprintf(record, sizeof record, "%c %016llu %04x\n", writer, (unsigned long long)seq, check_of(writer, seq));
    ssize_t n;
    do n = write(fd, record, RECORD);
    while (n < 0 && errno == EINTR);
    TF_CHECK(n == RECORD, "write record"); /* a regular file write is not cut short by a signal */
}

int main(int argc, char **argv) {
    if (argc != 2) {
        tf_say("usage: tree-offset FILE");
        return 2;
    }
    tf_ids_t ids = tf_ids();
    tf_catch_term();
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    TF_CHECK(fd >= 0, "open FILE");
    int report[2];
    tf_pipe(report);
    pid_t child = tf_fork();
    if (child == 0) {
        tf_ids_t mine = tf_ids();
        tf_close(report[0]);
        uint64_t seq = 0;
        while (!tf_term) {
            write_record(fd, 'C', ++seq);
            tf_sleep_ms(1);
        }
        tf_write_all(report[1], &seq, sizeof seq, "write count");
        _exit(tf_same_ids("child", mine, 1) ? 0 : 1);
    }
    tf_close(report[1]);
    tf_ready(&child, 1);
    uint64_t seq = 0;
    while (!tf_term) {
        write_record(fd, 'P', ++seq);
        tf_sleep_ms(1);
    }

    int ok = tf_same_ids("root", ids, 0);
    long same = syscall(SYS_kcmp, getpid(), child, KCMP_FILE, fd, fd);
    if (same != 0) {
        tf_say("FAIL offset: kcmp says the parent's and the child's fd %d are not one open file description (%ld, %s)",
               fd, same, same < 0 ? strerror(errno) : "different");
        ok = 0;
    }
    TF_CHECK(kill(child, SIGTERM) == 0, "kill child");
    uint64_t child_count = 0;
    if (tf_read_all(report[0], &child_count, sizeof child_count, "read count") != sizeof child_count) {
        tf_say("FAIL offset: no count from the child");
        ok = 0;
    }
    int status = 0;
    if (!tf_reap_within(child, 30, &status) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        tf_say("FAIL offset: the child %s", tf_status_text(status));
        tf_kill_and_reap(child);
        ok = 0;
    }
    off_t end = lseek(fd, 0, SEEK_CUR);
    TF_CHECK(end >= 0, "lseek");
    if (end % RECORD != 0) {
        tf_say("FAIL offset: the offset %lld is not a whole number of records", (long long)end);
        return 1;
    }
    uint64_t next_p = 1, next_c = 1;
    char record[RECORD + 1];
    for (off_t at = 0; at < end; at += RECORD) {
        ssize_t n;
        do n = pread(fd, record, RECORD, at);
        while (n < 0 && errno == EINTR);
        TF_CHECK(n == RECORD, "pread");
        record[RECORD] = 0;
        char writer = record[0];
        char *stop;
        unsigned long long seq_read = strtoull(record + 2, &stop, 10);
        unsigned long check = strtoul(record + 19, NULL, 16);
        uint64_t *next = writer == 'P' ? &next_p : writer == 'C' ? &next_c : NULL;
        if (!next || record[1] != ' ' || stop != record + 18 || record[23] != '\n' || seq_read != *next ||
            check != check_of(writer, seq_read)) {
            tf_say("FAIL offset: record at %lld is \"%.23s\" (expected P %llu or C %llu)", (long long)at, record,
                   (unsigned long long)next_p, (unsigned long long)next_c);
            return 1;
        }
        (*next)++;
    }
    if (next_p != seq + 1 || next_c != child_count + 1) {
        tf_say("FAIL offset: the file holds P 1-%llu and C 1-%llu; they wrote %llu and %llu", (unsigned long long)next_p - 1,
               (unsigned long long)next_c - 1, (unsigned long long)seq, (unsigned long long)child_count);
        ok = 0;
    }
    if (!ok) return 1;
    tf_say("PASS offset %llu %llu", (unsigned long long)seq, (unsigned long long)child_count);
    return 0;
}
