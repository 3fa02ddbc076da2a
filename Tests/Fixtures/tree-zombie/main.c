/* tree-zombie: a parent with a zombie child and a running child.
 *
 * The root forks ZOMBIE, which exits 42 at once and is left unreaped (the root makes sure it has
 * exited with waitid(WNOWAIT), which reaps nothing), and RUNNING, which waits until SIGUSR1 and then
 * exits 7 (8 if its ids changed). Prints "READY ZOMBIE RUNNING".
 *
 * SIGTERM to the root: RUNNING must still be running (waitid WNOHANG sees nothing) and ZOMBIE still a
 * zombie of this root (waitid WNOWAIT sees it, exited 42); then it reaps ZOMBIE (exited 42), tells
 * RUNNING (SIGUSR1) and reaps it (exited 7); no child is left (ECHILD). "PASS zombie". */
#include "../tree-common/tree_fixture.h"

static volatile sig_atomic_t told;
static void on_usr1(int signo) { (void)signo; told = 1; }

int main(void) {
    tf_ids_t ids = tf_ids();
    tf_catch_term();
    pid_t zombie = tf_fork();
    if (zombie == 0) _exit(42);
    pid_t running = tf_fork();
    if (running == 0) {
        tf_ids_t mine = tf_ids();
        tf_on(SIGTERM, SIG_DFL);
        tf_on(SIGUSR1, on_usr1);
        while (!told) tf_sleep_ms(5);
        _exit(tf_same_ids("running child", mine, 1) ? 7 : 8);
    }
    siginfo_t info;
    memset(&info, 0, sizeof info);
    while (waitid(P_PID, (id_t)zombie, &info, WEXITED | WNOWAIT) != 0)
        if (errno != EINTR) tf_die("waitid zombie");
    pid_t children[2] = {zombie, running};
    tf_ready(children, 2);
    tf_wait_for_term();

    int ok = tf_same_ids("root", ids, 0);
    memset(&info, 0, sizeof info);
    int r;
    while ((r = waitid(P_PID, (id_t)running, &info, WEXITED | WNOHANG | WNOWAIT)) != 0 && errno == EINTR) {}
    if (r != 0 || info.si_pid != 0) {
        tf_say("FAIL zombie: the running child is not running (waitid %s, si_pid %d, code %d, status %d)",
               r ? strerror(errno) : "0", (int)info.si_pid, info.si_code, info.si_status);
        ok = 0;
    }
    memset(&info, 0, sizeof info);
    while ((r = waitid(P_PID, (id_t)zombie, &info, WEXITED | WNOHANG | WNOWAIT)) != 0 && errno == EINTR) {}
    if (r != 0 || info.si_pid != zombie || info.si_code != CLD_EXITED || info.si_status != 42) {
        tf_say("FAIL zombie: the zombie is not waiting to be reaped with status 42 (waitid %s, si_pid %d, code %d, "
               "status %d)", r ? strerror(errno) : "0", (int)info.si_pid, info.si_code, info.si_status);
        ok = 0;
    }
    int status = 0;
    if (!tf_reap_within(zombie, 10, &status) || !WIFEXITED(status) || WEXITSTATUS(status) != 42) {
        tf_say("FAIL zombie: reaping the zombie gave %s", tf_status_text(status));
        ok = 0;
    }
    TF_CHECK(kill(running, SIGUSR1) == 0, "kill running child");
    if (!tf_reap_within(running, 30, &status)) {
        tf_say("FAIL zombie: the running child did not exit when told");
        tf_kill_and_reap(running);
        return 1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 7) {
        tf_say("FAIL zombie: the running child %s (7 expected)", tf_status_text(status));
        ok = 0;
    }
    if (waitpid(-1, &status, WNOHANG) != -1 || errno != ECHILD) {
        tf_say("FAIL zombie: a child is left");
        ok = 0;
    }
    if (!ok) return 1;
    tf_say("PASS zombie");
    return 0;
}
