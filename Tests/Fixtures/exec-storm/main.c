/* exec-storm: execs while the test sends the trigger signal over and over (ExecSafetyTests).
 *
 *   exec-storm chain N    execs itself N times in place (same PID), rotating through execve, execv,
 *                         execvp, execvpe, execl, execlp, execle, fexecve and execveat; every 50th
 *                         image also tries an exec that fails (ENOENT expected, errno kept, the
 *                         trigger not left blocked). Prints "READY PID", then "PASS chain N".
 *   exec-storm spawn N    becomes a process group leader and starts N children, rotating through
 *                         fork+execve, vfork+execve, fork+execvp, posix_spawn (no attributes) and
 *                         posix_spawnp (attributes with an empty signal mask); each child execs
 *                         this binary as "child", which checks its mask and exits 0. Prints
 *                         "READY PID", then "PASS spawn N", or "FAIL ..." for each child that died.
 *   exec-storm child      the spawned role (above).
 *   exec-storm noagent    exits 0 if the kernel does not block the trigger in it (a program exec'd
 *                         without the agent must not inherit a blocked trigger), 3 if it does.
 *
 * Every role that carries the agent installs its own SIGUSR2 handler first thing in main, so the test's
 * `kill -USR2` goes to the program (no image per signal), and checks at startup that the kernel does
 * not block the trigger (the agent's constructor unblocks it after exec) and that sigprocmask reports
 * it unblocked. Before READY, spawn checks the "noagent" case for execve and posix_spawn.
 * Nothing here may die of the trigger: without the exec wrappers, one that lands after the kernel
 * reset the handlers and before the new image's agent installed its own kills the process. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static volatile sig_atomic_t usr2_count;
static void on_usr2(int signo) { (void)signo; usr2_count++; }

static void say(const char *text) {
    size_t left = strlen(text);
    while (left > 0) {
        ssize_t n = write(1, text, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) _exit(4);
        text += n;
        left -= (size_t)n;
    }
}

static void fail(const char *what) {
    char line[512];
    snprintf(line, sizeof line, "FAIL %s (errno %d)\n", what, errno);
    say(line);
    _exit(1);
}

static int trigger_signal(void) {
    const char *text = getenv("STASIS_SIGNAL");
    int signo = text ? atoi(text) : 0;
    return (signo > 0 && signo < 65 && signo != SIGKILL && signo != SIGSTOP) ? signo : SIGUSR2;
}

/* The kernel's mask (SigBlk in /proc/self/status): the interposed sigprocmask only shows the program's view. */
static unsigned long long kernel_blocked(void) {
    int fd;
    do fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) fail("open /proc/self/status");
    char buffer[8192];
    size_t used = 0;
    for (;;) {
        ssize_t n = read(fd, buffer + used, sizeof buffer - 1 - used);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("read /proc/self/status");
        if (n == 0) break;
        used += (size_t)n;
        if (used == sizeof buffer - 1) break;
    }
    close(fd);
    buffer[used] = 0;
    char *line = strstr(buffer, "\nSigBlk:");
    if (!line) fail("no SigBlk in /proc/self/status");
    return strtoull(line + 8, NULL, 16);
}

/* The kernel must not block the trigger in a program that carries the agent (nor in one exec'd without
 * it), and the program's own view must say unblocked after an exec. */
static void check_trigger_unblocked(const char *where) {
    int signo = trigger_signal();
    char what[160];
    if (kernel_blocked() & (1ull << (signo - 1))) {
        snprintf(what, sizeof what, "%s: the kernel blocks signal %d", where, signo);
        fail(what);
    }
    sigset_t now;
    if (sigprocmask(SIG_BLOCK, NULL, &now) != 0) fail("sigprocmask");
    if (sigismember(&now, signo)) {
        snprintf(what, sizeof what, "%s: sigprocmask reports signal %d blocked", where, signo);
        fail(what);
    }
}

static void install_handler(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_usr2;
    action.sa_flags = SA_RESTART;
    if (sigaction(SIGUSR2, &action, NULL) != 0) fail("sigaction SIGUSR2");
}

static void self_path(char *path, size_t size) {
    ssize_t n = readlink("/proc/self/exe", path, size - 1);
    if (n <= 0 || (size_t)n >= size - 1) fail("readlink /proc/self/exe");
    path[n] = 0;
}

/* A failing exec returns -1 with its errno and leaves the trigger unblocked in the kernel. */
static void check_failing_exec(int which) {
    char *argv[] = {"exec-storm", "never", NULL};
    errno = 0;
    int r;
    switch (which % 3) {
    case 0: r = execve("/nonexistent/exec-storm", argv, environ); break;
    case 1: r = execl("/nonexistent/exec-storm", "exec-storm", "never", (char *)NULL); break;
    default: r = execvp("exec-storm-not-in-any-path", argv); break;
    }
    if (r != -1 || errno != ENOENT) fail("a failing exec did not return -1 with ENOENT");
    check_trigger_unblocked("after a failing exec");
}

static void chain(char *self, long remaining, long total) {
    if (remaining == 0) {
        char line[64];
        snprintf(line, sizeof line, "PASS chain %ld\n", total);
        say(line);
        exit(0);
    }
    if (remaining % 50 == 0) check_failing_exec((int)(remaining / 50));
    char next[32], all[32];
    snprintf(next, sizeof next, "%ld", remaining - 1);
    snprintf(all, sizeof all, "%ld", total);
    char *argv[] = {"exec-storm", "chain", next, all, NULL};
    int fd;
    switch (remaining % 9) {
    case 0: execve(self, argv, environ); break;
    case 1: execv(self, argv); break;
    case 2: execvp(self, argv); break;
    case 3: execvpe(self, argv, environ); break;
    case 4: execl(self, "exec-storm", "chain", next, all, (char *)NULL); break;
    case 5: execlp(self, "exec-storm", "chain", next, all, (char *)NULL); break;
    case 6: execle(self, "exec-storm", "chain", next, all, (char *)NULL, environ); break;
    case 7:
        do fd = open(self, O_RDONLY | O_CLOEXEC);
        while (fd < 0 && errno == EINTR);
        if (fd < 0) fail("open self");
        fexecve(fd, argv, environ);
        break;
    default: execveat(AT_FDCWD, self, argv, environ, 0); break;
    }
    fail("exec in the chain");
}

static const char *method_name(int method) {
    static const char *names[] = {"fork+execve", "vfork+execve", "fork+execvp", "posix_spawn", "posix_spawnp"};
    return names[method];
}

/* Starts one child of the given method running `self ROLE`; returns its PID. */
static pid_t start(char *self, const char *role, int method, char **environment) {
    char *argv[] = {"exec-storm", (char *)role, NULL};
    pid_t pid;
    int r;
    switch (method) {
    case 0:
        pid = fork();
        if (pid == 0) {
            execve(self, argv, environment);
            _exit(127);
        }
        break;
    case 1:
        pid = vfork();
        if (pid == 0) {
            execve(self, argv, environment);
            _exit(127);
        }
        break;
    case 2:
        pid = fork();
        if (pid == 0) {
            execvp(self, argv);
            _exit(127);
        }
        break;
    case 3:
        r = posix_spawn(&pid, self, NULL, NULL, argv, environment);
        if (r != 0) {
            errno = r;
            fail("posix_spawn");
        }
        break;
    default: {
        posix_spawnattr_t attributes;
        sigset_t empty;
        sigemptyset(&empty);
        if (posix_spawnattr_init(&attributes) != 0 || posix_spawnattr_setsigmask(&attributes, &empty) != 0 ||
            posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK) != 0)
            fail("posix_spawnattr");
        r = posix_spawnp(&pid, self, NULL, &attributes, argv, environment);
        posix_spawnattr_destroy(&attributes);
        if (r != 0) {
            errno = r;
            fail("posix_spawnp");
        }
        break;
    }
    }
    if (pid < 0) fail("fork");
    return pid;
}

static int reap(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) != pid)
        if (errno != EINTR) fail("waitpid");
    return status;
}

/* The environment without LD_PRELOAD: a program exec'd so does not carry the agent. */
static char **without_preload(void) {
    size_t count = 0;
    while (environ[count]) count++;
    char **copy = calloc(count + 1, sizeof *copy);
    if (!copy) fail("calloc");
    size_t kept = 0;
    for (size_t i = 0; i < count; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0) copy[kept++] = environ[i];
    return copy;
}

static void spawn(char *self, long total) {
    char **plain = without_preload();
    for (int method = 0; method < 5; method += 3) { /* execve and posix_spawn: before any storm */
        int status = reap(start(self, "noagent", method, plain));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            char what[128];
            snprintf(what, sizeof what, "a child exec'd without the agent by %s: status %#x", method_name(method), status);
            fail(what);
        }
    }
    free(plain);
    if (setpgid(0, 0) != 0) fail("setpgid");
    char line[128];
    snprintf(line, sizeof line, "READY %d\n", (int)getpid());
    say(line);
    long failures = 0;
    for (long i = 0; i < total; i++) {
        int method = (int)(i % 5);
        int status = reap(start(self, "child", method, environ));
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
        failures++;
        if (WIFSIGNALED(status)) {
            snprintf(line, sizeof line, "FAIL child %ld (%s) died of signal %d\n", i, method_name(method), WTERMSIG(status));
        } else {
            snprintf(line, sizeof line, "FAIL child %ld (%s) exited %d\n", i, method_name(method), WEXITSTATUS(status));
        }
        say(line);
    }
    if (failures) exit(1);
    snprintf(line, sizeof line, "PASS spawn %ld\n", total);
    say(line);
    exit(0);
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "noagent") == 0) {
        int signo = trigger_signal();
        return (kernel_blocked() & (1ull << (signo - 1))) ? 3 : 0;
    }
    install_handler();
    check_trigger_unblocked(argc >= 2 ? argv[1] : "start");
    if (argc >= 2 && strcmp(argv[1], "child") == 0) return 0;
    char self[4096];
    self_path(self, sizeof self);
    if (argc == 3 && strcmp(argv[1], "spawn") == 0) spawn(self, atol(argv[2]));
    if (argc == 3 && strcmp(argv[1], "chain") == 0) {
        char line[64];
        snprintf(line, sizeof line, "READY %d\n", (int)getpid());
        say(line);
        chain(self, atol(argv[2]), atol(argv[2]));
    }
    if (argc == 4 && strcmp(argv[1], "chain") == 0) chain(self, atol(argv[2]), atol(argv[3]));
    say("usage: exec-storm chain N | spawn N\n");
    return 2;
}
