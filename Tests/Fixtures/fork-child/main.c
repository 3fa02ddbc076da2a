/* fork-child: forks after the agent is loaded. The child (no exec) counts and
 * waits for SIGTERM; the parent forks and execs /bin/true once (an exec'd
 * child gets the agent from LD_PRELOAD), waits for it, then waits for
 * SIGTERM. Each prints PASS <role> on SIGTERM. Writes the child's PID to
 * argv[1]. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t terminate_requested;
static void on_term(int signo) { (void)signo; terminate_requested = 1; }

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    signal(SIGTERM, on_term);
    pid_t exec_child = fork();
    if (exec_child == 0) {
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(exec_child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        printf("FAIL exec child\n");
        return 1;
    }
    pid_t child = fork();
    if (child == 0) {
        volatile long count = 0;
        while (!terminate_requested) count++;
        printf("PASS child %ld\n", (long)(count > 0));
        fflush(stdout);
        _exit(0);
    }
    FILE *f = fopen(argv[1], "w");
    fprintf(f, "%d\n", child);
    fclose(f);
    printf("READY\n");
    fflush(stdout);
    while (!terminate_requested) pause();
    kill(child, SIGTERM);
    waitpid(child, &status, 0);
    printf("PASS parent\n");
    fflush(stdout);
    return 0;
}
