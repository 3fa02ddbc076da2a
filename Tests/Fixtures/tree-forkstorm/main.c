/* tree-forkstorm: processes forking and exiting as fast as they can, for checkpoints taken meanwhile.
 *
 * The root forks 3 stormers. A stormer loops: fork a child that, by turns, exits at once with a known
 * status (round % 100), first forks and reaps a grandchild of its own (which exits 5), or execs /bin/true
 * (status 0; the exec carries the agent); the stormer reaps it and checks the status. So at any moment
 * there are children being born, running, exec'ing, exiting and waiting to be reaped. Prints
 * "READY S1 S2 S3".
 *
 * SIGTERM to the root: the stormers get SIGTERM, finish their round and exit 0 if every status was right
 * (1 otherwise), after printing "stormer PID ROUNDS rounds". "PASS forkstorm" if all exited 0. */
#include "../tree-common/tree_fixture.h"

#define STORMERS 3

static int storm(void) {
    tf_ids_t ids = tf_ids();
    long round = 0, wrong = 0;
    while (!tf_term) {
        round++;
        int kind = (int)(round % 3);
        pid_t child = fork();
        if (child < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            tf_die("fork");
        }
        if (child == 0) {
            if (kind == 1) {
                pid_t grandchild = fork();
                if (grandchild < 0) _exit(98);
                if (grandchild == 0) _exit(5);
                int status;
                while (waitpid(grandchild, &status, 0) != grandchild)
                    if (errno != EINTR) _exit(97);
                _exit(WIFEXITED(status) && WEXITSTATUS(status) == 5 ? (int)(round % 100) : 99);
            }
            if (kind == 2) {
                execl("/bin/true", "true", (char *)NULL);
                _exit(96);
            }
            _exit((int)(round % 100));
        }
        int status = 0;
        while (waitpid(child, &status, 0) != child)
            if (errno != EINTR) tf_die("waitpid");
        int expected = kind == 2 ? 0 : (int)(round % 100);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != expected) {
            if (wrong++ < 3)
                tf_say("FAIL forkstorm: stormer %d round %ld: child %s, expected exited %d", (int)getpid(), round,
                       tf_status_text(status), expected);
        }
    }
    tf_say("stormer %d %ld rounds", (int)getpid(), round);
    return wrong == 0 && round > 0 && tf_same_ids("stormer", ids, 1) ? 0 : 1;
}

int main(void) {
    tf_ids_t ids = tf_ids();
    tf_catch_term();
    pid_t stormers[STORMERS];
    for (int i = 0; i < STORMERS; i++) {
        stormers[i] = tf_fork();
        if (stormers[i] == 0) _exit(storm());
    }
    tf_ready(stormers, STORMERS);
    while (!tf_term) {
        int status;
        pid_t early = waitpid(-1, &status, WNOHANG);
        if (early > 0) {
            tf_say("FAIL forkstorm: stormer %d ended early (%s)", (int)early, tf_status_text(status));
            for (int i = 0; i < STORMERS; i++) if (stormers[i] != early) tf_kill_and_reap(stormers[i]);
            return 1;
        }
        tf_sleep_ms(5);
    }
    int ok = tf_same_ids("root", ids, 0);
    for (int i = 0; i < STORMERS; i++) TF_CHECK(kill(stormers[i], SIGTERM) == 0, "kill stormer");
    for (int i = 0; i < STORMERS; i++) {
        int status = 0;
        if (!tf_reap_within(stormers[i], 30, &status) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            tf_say("FAIL forkstorm: stormer %d %s", (int)stormers[i], tf_status_text(status));
            tf_kill_and_reap(stormers[i]);
            ok = 0;
        }
    }
    if (!ok) return 1;
    tf_say("PASS forkstorm");
    return 0;
}
