/* tree-noagent: a descendant without the agent.
 *
 * The root (under `stasis run`) forks a child that execs /bin/sleep 100000 with LD_PRELOAD removed from
 * its environment: the sleep cannot take part in a checkpoint, and dies of the trigger signal if anyone
 * sends it one. Prints "READY SLEEP".
 *
 * SIGTERM to the root: the sleep must still be running (a checkpoint that signalled it would have
 * killed it); the root ends it with SIGTERM and reaps it (killed by signal 15): "PASS noagent". */
#include "../tree-common/tree_fixture.h"

extern char **environ;

int main(void) {
    tf_ids_t ids = tf_ids();
    tf_catch_term();
    size_t count = 0;
    while (environ[count]) count++;
    char **plain = calloc(count + 1, sizeof *plain);
    TF_CHECK(plain != NULL, "calloc");
    size_t kept = 0;
    for (size_t i = 0; i < count; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0) plain[kept++] = environ[i];
    pid_t child = tf_fork();
    if (child == 0) {
        char *argv[] = {"sleep", "100000", NULL};
        execve("/bin/sleep", argv, plain);
        tf_die("execve /bin/sleep");
    }
    free(plain);
    /* Wait until the exec is done (the child's comm becomes "sleep"): only then is it a process without
     * the agent. */
    char path[64], comm[32];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)child);
    double deadline = tf_now() + 10;
    for (;;) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        TF_CHECK(fd >= 0, "open /proc/CHILD/comm");
        size_t n = tf_read_all(fd, comm, sizeof comm - 1, "read comm");
        tf_close(fd);
        comm[n] = 0;
        if (strcmp(comm, "sleep\n") == 0) break;
        TF_CHECK(tf_now() < deadline, "the child never became sleep");
        tf_sleep_ms(2);
    }
    tf_ready(&child, 1);
    tf_wait_for_term();

    int ok = tf_same_ids("root", ids, 0);
    int status = 0;
    pid_t r;
    while ((r = waitpid(child, &status, WNOHANG)) < 0 && errno == EINTR) {}
    if (r != 0) {
        tf_say("FAIL noagent: the child without the agent ended: %s", r == child ? tf_status_text(status) : strerror(errno));
        return 1;
    }
    TF_CHECK(kill(child, SIGTERM) == 0, "kill sleep");
    if (!tf_reap_within(child, 10, &status) || !WIFSIGNALED(status) || WTERMSIG(status) != SIGTERM) {
        tf_say("FAIL noagent: the sleep %s (killed by signal 15 expected)", tf_status_text(status));
        tf_kill_and_reap(child);
        ok = 0;
    }
    if (!ok) return 1;
    tf_say("PASS noagent");
    return 0;
}
