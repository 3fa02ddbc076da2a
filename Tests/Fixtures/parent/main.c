/* parent: a process with a child, for the refusal of process trees. Forks a child that waits for
 * SIGTERM, prints "READY CHILD_PID". SIGHUP: the child is told to exit and left unreaped (a zombie,
 * "ZOMBIE"). SIGUSR1: the child is reaped ("REAPED status N"). SIGTERM: "PASS" and exit 0 (the child,
 * if still there, is ended and reaped first). */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t hup, usr1, term;
static void on_hup(int s) { (void)s; hup = 1; }
static void on_usr1(int s) { (void)s; usr1 = 1; }
static void on_term(int s) { (void)s; term = 1; }

int main(void) {
    pid_t child = fork();
    if (child == 0) {
        signal(SIGTERM, SIG_DFL);
        for (;;) pause();
    }
    signal(SIGHUP, on_hup);
    signal(SIGUSR1, on_usr1);
    signal(SIGTERM, on_term);
    printf("READY %d\n", (int)child);
    fflush(stdout);
    int reaped = 0;
    while (!term) {
        if (hup) {
            hup = 0;
            kill(child, SIGTERM);
            printf("ZOMBIE\n");
            fflush(stdout);
        }
        if (usr1 && !reaped) {
            int status = 0;
            if (waitpid(child, &status, 0) == child) {
                reaped = 1;
                printf("REAPED status %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
                fflush(stdout);
            }
        }
        usleep(2000);
    }
    if (!reaped) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    printf("PASS\n");
    return 0;
}
