/* start_interpose.c: the trigger an exec kept blocked is unblocked at the program's main, not earlier.
 *
 * exec_interpose.c blocks the trigger across an exec, so that a checkpoint asked meanwhile waits for
 * the new image's handler. The handler is installed by the agent's constructor, but the image is not
 * yet a program then: the agent's own Swift runtime initializers and the program's constructors run
 * after it, and they hold state no checkpoint should see half-done (the Swift runtime reads
 * /proc/self/maps through pthread_getattr_np: a tree checkpoint that caught a freshly exec'd process
 * there saved an open descriptor on /proc/PID/maps, which no restart can reopen before the process
 * exists). So the trigger stays blocked until __libc_start_main calls main, which every dynamically
 * linked glibc program goes through; a pending trigger is delivered there, at a clean point.
 *
 * A process whose trigger was not blocked at load (the first program of `stasis run`, or one whose
 * exec came from outside the agent) is not affected: nothing is blocked, the unblock does nothing. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>

#include "stasis_shim.h"

extern stasis_agent_config_t stasis_config;
void stasis_exec_unblock(int trigger, int exit_signal);

typedef int (*main_fn)(int, char **, char **);
typedef int (*start_fn)(main_fn, int, char **, void (*)(void), void (*)(void), void (*)(void), void *);

static main_fn program_main;

static int stasis_main(int argc, char **argv, char **envp) {
    stasis_exec_unblock(stasis_config.trigger_signal, stasis_config.exit_signal);
    return program_main(argc, argv, envp);
}

int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void), void (*fini)(void),
                      void (*rtld_fini)(void), void *stack_end) {
    start_fn next = (start_fn)dlsym(RTLD_NEXT, "__libc_start_main");
    program_main = main;
    return next(stasis_main, argc, argv, init, fini, rtld_fini, stack_end);
}
