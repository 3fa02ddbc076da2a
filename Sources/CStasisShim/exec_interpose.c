/* exec_interpose.c: a trigger that arrives while the process execs stays pending instead of killing it.
 *
 * exec resets every handled signal to SIG_DFL at its point of no return, and the new image has a handler
 * for the trigger only once the agent's constructor has run. A trigger in between (a tree checkpoint
 * signals every descendant; `kill -USR2` comes any time) would take the default action: death. The
 * blocked mask survives exec, so:
 *
 *   wrapper, old image                              constructor.c, new image
 *   the new environment keeps the agent? no ──▶ the real call, nothing changed
 *   rt_sigprocmask(BLOCK, trigger [+ exit signal])
 *   the real exec ──────────── success ───────────▶ installs its handlers, then
 *      │ failure                                    rt_sigprocmask(UNBLOCK, the same): a trigger
 *   rt_sigprocmask(SETMASK, the old mask): a        that arrived meanwhile is delivered now
 *   trigger that arrived meanwhile is delivered;
 *   return -1, errno as the exec left it
 *
 * posix_spawn and posix_spawnp: glibc's child execs through an internal execve that no wrapper sees,
 * so the trigger is added to the attributes' signal mask instead (POSIX_SPAWN_SETSIGMASK, from the
 * caller's mask when the caller set none); glibc's child runs with every signal blocked until it
 * installs that mask, and the exec keeps it.
 *
 * Which signals: the new image's, from the new environment (STASIS_SIGNAL, STASIS_EXIT_SIGNAL, parsed as
 * constructor.c does). Only for a new image that will load the agent, as far as its environment says:
 * one whose LD_PRELOAD no longer names libStasisAgent.so runs without the agent and would keep the
 * trigger blocked for good. Known limits (Docs/ARCHITECTURE.md 2.1): a static or setuid program exec'd
 * with the agent still in LD_PRELOAD does not load it and starts with the trigger blocked; system() and
 * popen() spawn through glibc internals and are not covered. The program's view of the mask starts
 * unblocked in the new image either way (signal_interpose.c's program_blocked is zero there).
 *
 * The wrappers may run in a vfork child, which shares the parent's memory and stack: raw system calls,
 * no malloc, no locks, no stdio, no errno writes of their own; the real functions are looked up by the
 * constructor (stasis_exec_resolve), with a lazy lookup only if an exec comes before it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "stasis_protocol.h"
#include "stasis_syscall.h"

extern char **environ;

/* The agent's file name, as `stasis run` puts it in LD_PRELOAD (StasisLauncher Paths.agentLibrary). */
#define STASIS_AGENT_LIBRARY "libStasisAgent.so"
/* execl, execlp, execle: arguments beyond this many fail with E2BIG (their argv is built on the stack). */
#define STASIS_EXECL_MAX_ARGUMENTS 65536

typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execv_fn)(const char *, char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);
typedef int (*execveat_fn)(int, const char *, char *const[], char *const[], int);
typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                        char *const[], char *const[]);

static struct {
    execve_fn execve, execvpe;
    execv_fn execv, execvp;
    fexecve_fn fexecve;
    execveat_fn execveat;
    spawn_fn posix_spawn, posix_spawnp;
} next;

/* Called by the constructor: dlsym takes locks, which a vfork child must not. */
void stasis_exec_resolve(void) {
    next.execve = (execve_fn)dlsym(RTLD_NEXT, "execve");
    next.execvpe = (execve_fn)dlsym(RTLD_NEXT, "execvpe");
    next.execv = (execv_fn)dlsym(RTLD_NEXT, "execv");
    next.execvp = (execv_fn)dlsym(RTLD_NEXT, "execvp");
    next.fexecve = (fexecve_fn)dlsym(RTLD_NEXT, "fexecve");
    next.execveat = (execveat_fn)dlsym(RTLD_NEXT, "execveat");
    next.posix_spawn = (spawn_fn)dlsym(RTLD_NEXT, "posix_spawn");
    next.posix_spawnp = (spawn_fn)dlsym(RTLD_NEXT, "posix_spawnp");
}

/* "NAME=" at the start of entry: the value, else NULL. */
static const char *value_of(const char *entry, const char *name) {
    while (*name)
        if (*entry++ != *name++) return NULL;
    return *entry == '=' ? entry + 1 : NULL;
}

int stasis_parse_signal(const char *text); /* constructor.c */

/* 1 if the LD_PRELOAD list (entries separated by ':' or ' ', as ld.so reads it) has an entry whose file
 * name is the agent's. */
static int preloads_agent(const char *list) {
    static const char name[] = STASIS_AGENT_LIBRARY;
    const char *entry = list;
    for (const char *p = list;; p++) {
        if (*p == ':' || *p == ' ' || *p == 0) {
            const char *base = entry;
            for (const char *q = entry; q < p; q++)
                if (*q == '/') base = q + 1;
            if ((size_t)(p - base) == sizeof name - 1 && memcmp(base, name, sizeof name - 1) == 0) return 1;
            if (*p == 0) return 0;
            entry = p + 1;
        }
    }
}

/* The kernel mask bits to hold blocked across an exec into `envp`: the trigger and the --checkpoint-on
 * signal the new image's agent will install, or 0 when the new image will not carry the agent. */
static uint64_t guarded_bits(char *const envp[]) {
    if (!envp) return 0;
    int agent = 0, trigger = -1, exit_signal = -1;
    for (char *const *e = envp; *e; e++) {
        const char *value;
        if ((value = value_of(*e, "LD_PRELOAD"))) agent = preloads_agent(value); /* ld.so takes the last one */
        else if (trigger < 0 && (value = value_of(*e, STASIS_ENV_SIGNAL))) trigger = stasis_parse_signal(value); /* getenv: the first */
        else if (exit_signal < 0 && (value = value_of(*e, STASIS_ENV_EXIT_SIGNAL))) exit_signal = stasis_parse_signal(value);
    }
    if (!agent) return 0;
    if (trigger <= 0 || trigger == SIGKILL || trigger == SIGSTOP) trigger = SIGUSR2;
    uint64_t bits = 1ull << (trigger - 1);
    if (exit_signal > 0 && exit_signal != SIGKILL && exit_signal != SIGSTOP) bits |= 1ull << (exit_signal - 1);
    return bits;
}

/* Blocks `bits` (if any) in this thread's kernel mask; *old gets the mask before. 1 if it blocked. */
static int guard(uint64_t bits, uint64_t *old) {
    return bits && stasis_syscall4(STASIS_NR_rt_sigprocmask, SIG_BLOCK, (long)&bits, (long)old, 8) == 0;
}

/* After a failed exec: the mask as it was. Raw, so errno stays the exec's. */
static void unguard(int guarded, const uint64_t *old) {
    if (guarded) stasis_syscall4(STASIS_NR_rt_sigprocmask, SIG_SETMASK, (long)old, 0, 8);
}

static int missing(void) {
    errno = ENOSYS;
    return -1;
}

static int guarded_execve(const char *path, char *const argv[], char *const envp[]) {
    if (!next.execve) stasis_exec_resolve();
    if (!next.execve) return missing();
    uint64_t old;
    int guarded = guard(guarded_bits(envp), &old);
    int r = next.execve(path, argv, envp);
    unguard(guarded, &old);
    return r;
}

static int guarded_execvp(const char *file, char *const argv[]) {
    if (!next.execvp) stasis_exec_resolve();
    if (!next.execvp) return missing();
    uint64_t old;
    int guarded = guard(guarded_bits(environ), &old);
    int r = next.execvp(file, argv);
    unguard(guarded, &old);
    return r;
}

int execve(const char *path, char *const argv[], char *const envp[]) { return guarded_execve(path, argv, envp); }

int execvp(const char *file, char *const argv[]) { return guarded_execvp(file, argv); }

int execv(const char *path, char *const argv[]) {
    if (!next.execv) stasis_exec_resolve();
    if (!next.execv) return missing();
    uint64_t old;
    int guarded = guard(guarded_bits(environ), &old);
    int r = next.execv(path, argv);
    unguard(guarded, &old);
    return r;
}

int execvpe(const char *file, char *const argv[], char *const envp[]) {
    if (!next.execvpe) stasis_exec_resolve();
    if (!next.execvpe) return missing();
    uint64_t old;
    int guarded = guard(guarded_bits(envp), &old);
    int r = next.execvpe(file, argv, envp);
    unguard(guarded, &old);
    return r;
}

int fexecve(int fd, char *const argv[], char *const envp[]) {
    if (!next.fexecve) stasis_exec_resolve();
    if (!next.fexecve) return missing();
    uint64_t old;
    int guarded = guard(guarded_bits(envp), &old);
    int r = next.fexecve(fd, argv, envp);
    unguard(guarded, &old);
    return r;
}

int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags) {
    if (!next.execveat) stasis_exec_resolve();
    if (!next.execveat) return missing();
    uint64_t old;
    int guarded = guard(guarded_bits(envp), &old);
    int r = next.execveat(dirfd, path, argv, envp, flags);
    unguard(guarded, &old);
    return r;
}

/* execl, execlp, execle: count the arguments, build argv on the stack, go through the guarded calls above
 * (glibc's own would call its internal execve, which no wrapper sees). count_arguments returns the count
 * including argv[0], or -1 with E2BIG past STASIS_EXECL_MAX_ARGUMENTS. */
static long count_arguments(va_list list) {
    long count = 1;
    while (va_arg(list, const char *)) {
        if (++count > STASIS_EXECL_MAX_ARGUMENTS) {
            errno = E2BIG;
            return -1;
        }
    }
    return count;
}

static void fill_arguments(char **argv, long count, const char *first, va_list list) {
    argv[0] = (char *)first;
    for (long i = 1; i < count; i++) argv[i] = va_arg(list, char *);
    argv[count] = NULL;
}

/* In an execl-style function: `argv` (on the stack) from `arg` and the variadic arguments after it,
 * `list` left just past the NULL that ends them (execle's envp comes next); -1 (errno E2BIG) when too many. */
#define STASIS_VARIADIC_ARGV(argv, arg, list)                                                                    \
    va_list list;                                                                                              \
    va_start(list, arg);                                                                                       \
    long argv##_count = count_arguments(list);                                                                 \
    va_end(list);                                                                                              \
    if (argv##_count < 0) return -1;                                                                           \
    char *argv[argv##_count + 1];                                                                              \
    va_start(list, arg);                                                                                       \
    fill_arguments(argv, argv##_count, arg, list);                                                             \
    (void)va_arg(list, char *)

int execl(const char *path, const char *arg, ...) {
    STASIS_VARIADIC_ARGV(argv, arg, list);
    va_end(list);
    return guarded_execve(path, argv, environ);
}

int execlp(const char *file, const char *arg, ...) {
    STASIS_VARIADIC_ARGV(argv, arg, list);
    va_end(list);
    return guarded_execvp(file, argv);
}

int execle(const char *path, const char *arg, ...) {
    STASIS_VARIADIC_ARGV(argv, arg, list);
    char *const *envp = va_arg(list, char *const *);
    va_end(list);
    return guarded_execve(path, argv, envp);
}

/* A copy of `attributes` (or defaults) whose signal mask also blocks `bits`. */
static void guarded_attributes(const posix_spawnattr_t *attributes, uint64_t bits, posix_spawnattr_t *copy) {
    short flags = 0;
    sigset_t mask;
    sigemptyset(&mask);
    if (attributes) {
        *copy = *attributes; /* glibc's posix_spawnattr_t is plain data (posix_spawnattr_init is a memset) */
        posix_spawnattr_getflags(attributes, &flags);
    } else {
        posix_spawnattr_init(copy);
    }
    if (flags & POSIX_SPAWN_SETSIGMASK) {
        posix_spawnattr_getsigmask(attributes, &mask);
    } else {
        stasis_syscall4(STASIS_NR_rt_sigprocmask, SIG_BLOCK, 0, (long)&mask, 8); /* the caller's kernel mask */
    }
    for (int signo = 1; signo <= 64; signo++)
        if (bits & (1ull << (signo - 1))) sigaddset(&mask, signo);
    posix_spawnattr_setsigmask(copy, &mask);
    posix_spawnattr_setflags(copy, (short)(flags | POSIX_SPAWN_SETSIGMASK));
}

static int spawn(spawn_fn real, pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                 const posix_spawnattr_t *attributes, char *const argv[], char *const envp[]) {
    uint64_t bits = guarded_bits(envp);
    if (!bits) return real(pid, path, actions, attributes, argv, envp);
    posix_spawnattr_t copy;
    guarded_attributes(attributes, bits, &copy);
    return real(pid, path, actions, &copy, argv, envp);
}

int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                const posix_spawnattr_t *attributes, char *const argv[], char *const envp[]) {
    if (!next.posix_spawn) stasis_exec_resolve();
    if (!next.posix_spawn) return ENOSYS;
    return spawn(next.posix_spawn, pid, path, actions, attributes, argv, envp);
}

int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                 const posix_spawnattr_t *attributes, char *const argv[], char *const envp[]) {
    if (!next.posix_spawnp) stasis_exec_resolve();
    if (!next.posix_spawnp) return ENOSYS;
    return spawn(next.posix_spawnp, pid, file, actions, attributes, argv, envp);
}

/* The constructor, once its handlers are installed: an exec's wrapper (above) left them blocked in the
 * kernel; the agent never lets the kernel block them (signal_interpose.c keeps the program's bit). */
void stasis_exec_unblock(int trigger, int exit_signal) {
    uint64_t bits = 0;
    if (trigger > 0 && trigger <= 64) bits |= 1ull << (trigger - 1);
    if (exit_signal > 0 && exit_signal <= 64) bits |= 1ull << (exit_signal - 1);
    if (bits) stasis_syscall4(STASIS_NR_rt_sigprocmask, SIG_UNBLOCK, (long)&bits, 0, 8);
}
