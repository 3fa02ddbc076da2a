/* tree-pgroup: a process group of two children, signalled as a group.
 *
 * The root forks A and B and puts both in a new group led by A (setpgid in parent and child, the usual
 * race-free way). Each child waits for SIGUSR1, then exits 0 if its ids (pid, ppid, pgid A, sid) are as
 * before, else 1. Prints "READY A B".
 *
 * SIGTERM to the root: getpgid says A and B are in group A (and the root is not), then kill(-A, SIGUSR1)
 * must reach both: each exits 0 within 10 s. "PASS pgroup". */
#include "../tree-common/tree_fixture.h"

static volatile sig_atomic_t usr1;
static void on_usr1(int signo) { (void)signo; usr1 = 1; }

static pid_t start(pid_t group) {
    pid_t pid = tf_fork();
    if (pid == 0) {
        tf_on(SIGTERM, SIG_DFL);
        TF_CHECK(setpgid(0, group) == 0, "setpgid (child)");
        tf_ids_t mine = tf_ids();
        while (!usr1) tf_sleep_ms(5);
        _exit(tf_same_ids(group ? "member" : "leader", mine, 1) && mine.pgid == (group ? group : getpid()) ? 0 : 1);
    }
    /* The child may have done it already (EACCES once it has exec'd: it does not). */
    if (setpgid(pid, group ? group : pid) != 0 && errno != EACCES) tf_die("setpgid (parent)");
    return pid;
}

int main(void) {
    tf_ids_t ids = tf_ids();
    tf_catch_term();
    tf_on(SIGUSR1, on_usr1); /* inherited by the children; the root itself is not in their group */
    pid_t children[2];
    children[0] = start(0);
    children[1] = start(children[0]);
    tf_ready(children, 2);
    tf_wait_for_term();

    int ok = tf_same_ids("root", ids, 0);
    pid_t group = children[0];
    for (int i = 0; i < 2; i++) {
        pid_t pgid = getpgid(children[i]);
        if (pgid != group) {
            tf_say("FAIL pgroup: child %d is in group %d, not %d", (int)children[i], (int)pgid, (int)group);
            ok = 0;
        }
    }
    if (getpgrp() == group) {
        tf_say("FAIL pgroup: the root is in its children's group %d", (int)group);
        ok = 0;
    }
    TF_CHECK(kill(-group, SIGUSR1) == 0, "kill -group");
    for (int i = 0; i < 2; i++) {
        int status = 0;
        if (!tf_reap_within(children[i], 10, &status)) {
            tf_say("FAIL pgroup: child %d did not get SIGUSR1 sent to its group", (int)children[i]);
            tf_kill_and_reap(children[i]);
            ok = 0;
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            tf_say("FAIL pgroup: child %d %s", (int)children[i], tf_status_text(status));
            ok = 0;
        }
    }
    if (!ok) return 1;
    tf_say("PASS pgroup");
    return 0;
}
