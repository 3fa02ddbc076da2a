/* subreaper: runs a command as a child subreaper and says what outlived it.
 *
 *   subreaper COMMAND ARGS...
 *
 * Becomes a child subreaper (PR_SET_CHILD_SUBREAPER), forks and execs COMMAND, and waits for it. Every
 * process COMMAND leaves behind (an orphan of its, of theirs, a zombie nobody reaped) is then this
 * process's child: each is named on one line "LEFT pid PID state S name NAME", killed (SIGKILL) and reaped.
 * Then "SUBREAPER left N" and the command's own end as the exit status (exit code, or 128 + signal).
 * A test of `stasis restart` runs it under this to see that nothing it started survives it. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* Appends this process's children (of every thread) to `pids`; their count. */
static int children(pid_t *pids, int capacity) {
    int count = 0;
    DIR *tasks = opendir("/proc/self/task");
    if (!tasks) return 0;
    struct dirent *task;
    while ((task = readdir(tasks))) {
        if (task->d_name[0] == '.') continue;
        char path[128];
        snprintf(path, sizeof path, "/proc/self/task/%s/children", task->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        int pid;
        while (count < capacity && fscanf(f, "%d", &pid) == 1) pids[count++] = pid;
        fclose(f);
    }
    closedir(tasks);
    return count;
}

/* "S name" from /proc/PID/stat, for the LEFT line. */
static void describe(pid_t pid, char *state, char *name, size_t size) {
    *state = '?';
    snprintf(name, size, "?");
    char path[64], text[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    char *open = strchr(text, '('), *close = strrchr(text, ')');
    if (!open || !close || close < open || close[1] != ' ') return;
    *state = close[2];
    snprintf(name, size, "%.*s", (int)(close - open - 1), open + 1);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: subreaper COMMAND ARGS...\n");
        return 2;
    }
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror("subreaper: PR_SET_CHILD_SUBREAPER");
        return 2;
    }
    fflush(NULL);
    pid_t command = fork();
    if (command < 0) {
        perror("subreaper: fork");
        return 2;
    }
    if (command == 0) {
        execvp(argv[1], argv + 1);
        perror("subreaper: exec");
        _exit(127);
    }
    int status = 0;
    while (waitpid(command, &status, 0) != command) {
        if (errno != EINTR) {
            perror("subreaper: waitpid");
            return 2;
        }
    }
    /* Whatever the command left: orphans were made our children when their parents ended. */
    int left = 0;
    for (;;) {
        pid_t pids[1024];
        int count = children(pids, 1024);
        if (count == 0) break;
        for (int i = 0; i < count; i++) {
            char state, name[64];
            describe(pids[i], &state, name, sizeof name);
            printf("LEFT pid %d state %c name %s\n", (int)pids[i], state, name);
            left++;
            kill(pids[i], SIGKILL);
        }
        fflush(stdout);
        for (int i = 0; i < count; i++) {
            int ignored;
            while (waitpid(pids[i], &ignored, __WALL) < 0 && errno == EINTR) {}
        }
    }
    printf("SUBREAPER left %d\n", left);
    fflush(stdout);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
