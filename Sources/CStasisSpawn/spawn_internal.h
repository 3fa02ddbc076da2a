/* spawn_internal.h: what spawn.c and tree_spawn.c share (not part of the Swift module). */
#ifndef STASIS_SPAWN_INTERNAL_H
#define STASIS_SPAWN_INTERNAL_H

#include <stdint.h>

#include "stasis_spawn.h"
#include "stasis_tree_spawn.h"

/* The steps of a child that can fail, as its exit status (ARCHITECTURE.md 3.2 names them). */
enum {
    STASIS_SPAWN_FAILED_CHDIR = 123,
    STASIS_SPAWN_FAILED_EPOLL = 124,
    STASIS_SPAWN_FAILED_DESCRIPTORS = 125,
    STASIS_SPAWN_FAILED_EXEC = 127,
};

struct clone_args_v2 {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

#define STASIS_SIGCHLD 17
#define STASIS_NR_close_range 436

/* In the child, raw system calls only: descriptors, epoll registrations, cwd, umask. 0, or the
 * STASIS_SPAWN_FAILED_* step with its errno in *error. */
int stasis_spawn_install(const stasis_spawn_plan_t *plan, int32_t *error);
/* The child's whole life: stasis_spawn_install, then the exec; exits with the failed step's status. */
__attribute__((noreturn)) void stasis_spawn_child(const stasis_spawn_plan_t *plan);
/* execve of plan->path with an empty environment; returns only with -errno. */
long stasis_spawn_exec(const stasis_spawn_plan_t *plan);

/* Runs steps 1-8 of stasis_tree_spawn.h as member `index` in the calling process (a namespace's init
 * whose tree's root had PID 1). */
__attribute__((noreturn)) void stasis_tree_spawn_become(const stasis_tree_spawn_t *tree, int index);

#endif
