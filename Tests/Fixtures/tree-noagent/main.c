/* tree-noagent [STATIC]: a descendant without the agent.
 *
 * The root (under `stasis run`) forks a child that execs /bin/sleep 100000 with LD_PRELOAD removed from
 * its environment: the sleep cannot take part in a checkpoint, and dies of the trigger signal if anyone
 * sends it one. With STATIC, the child execs that program instead, environment unchanged: a static
 * program ignores LD_PRELOAD (build this file with -static -DTREE_STATIC_SLEEPER for one that sleeps
 * until SIGTERM). Prints "READY CHILD".
 *
 * SIGTERM to the root: the child must still be running (a checkpoint that signalled it could have
 * killed it); the root ends it with SIGTERM and reaps it (killed by signal 15): "PASS noagent". */
#include "../tree-common/tree_fixture.h"

extern char **environ;

#ifdef TREE_STATIC_SLEEPER
int main(void) {
    for (;;) pause();
}
#else
int main(int argc, char **argv) {
    const char *program = argc > 1 ? argv[1] : "/bin/sleep";
    const char *name = strrchr(program, '/') ? strrchr(program, '/') + 1 : program;
    tf_ids_t ids = tf_ids();
    tf_catch_term();
    size_t count = 0;
    while (environ[count]) count++;
    char **plain = calloc(count + 1, sizeof *plain);
    TF_CHECK(plain != NULL, "calloc");
    size_t kept = 0;
    for (size_t i = 0; i < count; i++)
        if (argc > 1 || strncmp(environ[i], "LD_PRELOAD=", 11) != 0) plain[kept++] = environ[i];
    pid_t child = tf_fork();
    if (child == 0) {
        char *arguments[] = {(char *)name, "100000", NULL};
        execve(program, arguments, plain);
        tf_die("execve");
    }
    free(plain);
    /* Wait until the exec is done (the child's comm becomes the program's name): only then is it a process
     * without the agent. */
    char path[64], comm[32];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)child);
    double deadline = tf_now() + 10;
    for (;;) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        TF_CHECK(fd >= 0, "open /proc/CHILD/comm");
        size_t n = tf_read_all(fd, comm, sizeof comm - 1, "read comm");
        tf_close(fd);
        comm[n] = 0;
        size_t length = strlen(name) < 15 ? strlen(name) : 15; /* comm keeps 15 characters */
        if (strncmp(comm, name, length) == 0 && comm[length] == '\n') break;
        TF_CHECK(tf_now() < deadline, "the child never exec'd");
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
    TF_CHECK(kill(child, SIGTERM) == 0, "kill child");
    if (!tf_reap_within(child, 10, &status) || !WIFSIGNALED(status) || WTERMSIG(status) != SIGTERM) {
        tf_say("FAIL noagent: the child %s (killed by signal 15 expected)", tf_status_text(status));
        tf_kill_and_reap(child);
        ok = 0;
    }
    if (!ok) return 1;
    tf_say("PASS noagent");
    return 0;
}
#endif
