/* stasis_namespace_spawn.h: restoring into a new PID namespace, where every original PID and TID can
 * be had (Docs/ARCHITECTURE.md 3.7). C because the child side of a clone must not run Swift.
 *
 * `stasis restart` clones an init with CLONE_NEWPID | CLONE_NEWNS (and CLONE_NEWUSER when it may not
 * make a PID namespace on its own: an ordinary user). In raw system calls only, the init
 *
 *   1. maps the caller's uid and gid to themselves (a user namespace: setgroups "deny" first)
 *   2. makes every mount private to its namespace and mounts a fresh /proc on /proc, so that the
 *      program's /proc/self and /proc/PID agree with its getpid(); sets ns_last_pid to last_pid
 *   3. clones the restorer (or a tree's root) with clone3 set_tid = the original PID, innermost level
 *      only: the host picks the outer one. With a user namespace, the child keeps
 *      CAP_CHECKPOINT_RESTORE as an ambient capability across the restorer's exec
 *      (stasis_spawn_plan_t.keep_restore_capability): only that lets the restorer choose its threads'
 *      TIDs and /proc/self/exe; the restorer drops it before the program runs
 *   4. reports STARTED, closes every descriptor but the report pipe, and reaps every process of the
 *      namespace until the program (the tree's root) ends: then reports ENDED with its wait status
 *      and exits (which ends whatever the program left running in the namespace).
 *
 * `stasis run --pid-namespace` uses the same init for a program started afresh (PID 2 inside).
 *
 * A program whose PID was 1 is the init itself: the init execs the restorer at step 3, and the
 * launcher waits for it directly (STARTED carries 0).
 *
 * Any failure before step 4 is one FAILED report (the step and its errno), then the init exits. */
#ifndef STASIS_NAMESPACE_SPAWN_H
#define STASIS_NAMESPACE_SPAWN_H

#include <stdint.h>

#include "stasis_spawn.h"
#include "stasis_tree_spawn.h"

typedef struct stasis_namespace {
    int32_t new_user;  /* 1: a user namespace too, the caller's uid and gid mapped to themselves */
    uint32_t uid, gid; /* the caller's effective ids (for the maps) */
    int32_t report_fd; /* a pipe's write end, close-on-exec: stasis_namespace_report_t records */
    int32_t release_fd; /* a pipe's read end, close-on-exec: the restorer of a single process waits for a
                           byte there before its exec, so that it is alive while restart looks up its
                           PID on the host (a program may end at once); -1: none */
    int32_t last_pid;   /* the highest PID or TID the image(s) will ask for: written to the namespace's
                           ns_last_pid, so that a process made without a chosen PID (a lazy restart's
                           pager) is numbered above them and never takes a thread's TID; 0: none */
} stasis_namespace_t;

/* stasis_namespace_report_t.kind */
enum {
    STASIS_NAMESPACE_FAILED = 1,  /* step, error: the init gives up and exits */
    STASIS_NAMESPACE_STARTED = 2, /* value: the program's PID in the namespace; 0: the init is the program */
    STASIS_NAMESPACE_ENDED = 3,   /* value: the program's wait status */
};

/* stasis_namespace_report_t.step */
enum {
    STASIS_NAMESPACE_STEP_SETGROUPS = 1,
    STASIS_NAMESPACE_STEP_UID_MAP = 2,
    STASIS_NAMESPACE_STEP_GID_MAP = 3,
    STASIS_NAMESPACE_STEP_PRIVATE_MOUNTS = 4,
    STASIS_NAMESPACE_STEP_MOUNT_PROC = 5,
    STASIS_NAMESPACE_STEP_CLONE = 6, /* the program's own PID: clone3 set_tid */
};

typedef struct stasis_namespace_report {
    int32_t kind;
    int32_t step;  /* FAILED */
    int32_t error; /* FAILED: errno */
    int32_t value; /* STARTED, ENDED */
} stasis_namespace_report_t;

/* Clones the init, which starts the restorer of `plan` with plan->wanted_pid. Returns the init's PID
 * (on the host), or -errno of the clone (EPERM, ENOSPC, EINVAL: no namespace for us). */
int stasis_spawn_in_namespace(const stasis_spawn_plan_t *_Nonnull plan, const stasis_namespace_t *_Nonnull ns);

/* `stasis run --pid-namespace`: the init clones a child (PID 2 inside) that waits for the release
 * byte, unblocks `unblock_mask` (what the launcher blocked for its forwarding) and execs `path` with
 * `argv` and `envp` (exit status 127 if that fails). The init's PID, or -errno of its clone. */
int stasis_run_in_namespace(const char *_Nonnull path, char *_Nullable const *_Nonnull argv,
                            char *_Nullable const *_Nonnull envp, uint64_t unblock_mask,
                            const stasis_namespace_t *_Nonnull ns);

/* The same for a tree: the init clones the tree's root (stasis_tree_spawn.h), the tree grows from it. */
int stasis_tree_spawn_in_namespace(const stasis_tree_spawn_t *_Nonnull tree, const stasis_namespace_t *_Nonnull ns);

#endif
