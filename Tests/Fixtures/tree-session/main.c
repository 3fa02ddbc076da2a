/* tree-session: a child that leads its own session, and a grandchild in its own group of that session.
 *
 *   root (the test's session and group)
 *    └─ S: setsid() (sid = pgid = S)
 *        └─ G: setpgid(0, 0) (pgid G, sid S), PR_SET_PDEATHSIG SIGHUP (a handler notes it)
 *
 * Prints "READY S G". SIGTERM to the root: from outside, getsid/getpgid of S and G must be as above; the
 * root sends SIGTERM to S, S to G. G exits 0 if its pid, ppid (S), pgid and sid are as before, its
 * parent-death signal is still SIGHUP and it never got one; S exits 0 if its own ids are as before and G
 * exited 0. "PASS session". */
#include "../tree-common/tree_fixture.h"

static volatile sig_atomic_t parent_died;
static void on_hup(int signo) { (void)signo; parent_died = 1; }

static int grandchild(void) {
    tf_catch_term();
    tf_on(SIGHUP, on_hup);
    TF_CHECK(setpgid(0, 0) == 0, "setpgid grandchild");
    TF_CHECK(prctl(PR_SET_PDEATHSIG, SIGHUP) == 0, "PR_SET_PDEATHSIG");
    tf_ids_t mine = tf_ids();
    tf_wait_for_term();
    int ok = tf_same_ids("grandchild", mine, 1);
    int signo = 0;
    TF_CHECK(prctl(PR_GET_PDEATHSIG, &signo) == 0, "PR_GET_PDEATHSIG");
    if (signo != SIGHUP) {
        tf_say("FAIL session: the grandchild's parent-death signal is %d, not SIGHUP", signo);
        ok = 0;
    }
    if (parent_died) {
        tf_say("FAIL session: the grandchild got its parent-death signal");
        ok = 0;
    }
    return ok ? 0 : 1;
}

static int session_leader(int report) {
    tf_catch_term();
    TF_CHECK(setsid() == getpid(), "setsid");
    tf_ids_t mine = tf_ids();
    pid_t g = tf_fork();
    if (g == 0) _exit(grandchild());
    if (setpgid(g, g) != 0 && errno != EACCES) tf_die("setpgid (for the grandchild)");
    tf_write_all(report, &g, sizeof g, "report grandchild");
    tf_close(report);
    tf_wait_for_term();
    int ok = tf_same_ids("session leader", mine, 1) && mine.sid == mine.pid && mine.pgid == mine.pid;
    TF_CHECK(kill(g, SIGTERM) == 0, "kill grandchild");
    int status = 0;
    if (!tf_reap_within(g, 20, &status) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        tf_say("FAIL session: the grandchild %s", tf_status_text(status));
        tf_kill_and_reap(g);
        ok = 0;
    }
    return ok ? 0 : 1;
}

int main(void) {
    tf_ids_t ids = tf_ids();
    tf_catch_term();
    int report[2];
    tf_pipe(report);
    pid_t s = tf_fork();
    if (s == 0) {
        tf_close(report[0]);
        _exit(session_leader(report[1]));
    }
    tf_close(report[1]);
    pid_t g = 0;
    if (tf_read_all(report[0], &g, sizeof g, "read grandchild") != sizeof g) {
        tf_say("FAIL session: no grandchild");
        tf_kill_and_reap(s);
        return 1;
    }
    tf_close(report[0]);
    pid_t children[2] = {s, g};
    tf_ready(children, 2);
    tf_wait_for_term();

    int ok = tf_same_ids("root", ids, 0);
    pid_t s_sid = getsid(s), s_pgid = getpgid(s), g_sid = getsid(g), g_pgid = getpgid(g);
    if (s_sid != s || s_pgid != s || g_sid != s || g_pgid != g) {
        tf_say("FAIL session: S %d has sid %d pgid %d; G %d has sid %d pgid %d", (int)s, (int)s_sid, (int)s_pgid, (int)g,
               (int)g_sid, (int)g_pgid);
        ok = 0;
    }
    if (ids.sid == s || ids.pgid == s) {
        tf_say("FAIL session: the root is in its child's session or group");
        ok = 0;
    }
    TF_CHECK(kill(s, SIGTERM) == 0, "kill S");
    int status = 0;
    if (!tf_reap_within(s, 30, &status) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        tf_say("FAIL session: S %s", tf_status_text(status));
        tf_kill_and_reap(s);
        ok = 0;
    }
    if (!ok) return 1;
    tf_say("PASS session");
    return 0;
}
