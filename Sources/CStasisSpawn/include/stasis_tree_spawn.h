/* stasis_tree_spawn.h: creating the processes of a tree for `stasis restart TREE_DIR`
 * (Docs/ARCHITECTURE.md 3.6). C because the child side of a clone must not run Swift.
 *
 * The launcher lays out one stasis_tree_spawn_member_t per process (the manifest's, in its order)
 * and per stand-in (a transient process holding a process group whose leader had exited), maps a
 * stasis_tree_spawn_control_t shared with every process it will create, and calls
 * stasis_tree_start, which clones the root with clone3 set_tid. Every process then, in raw system
 * calls only:
 *
 *   1. blocks every signal, resets SIGCHLD to SIG_DFL (zombie children must stay zombies)
 *   2. setsid() if it leads its session, else setpgid(0, 0) if it leads its group;   ready += 1
 *   3. creates its own children in member order (clone3 set_tid = the child's PID,
 *      exit_signal = the child's), so that each has the right parent and session
 *   4. waits until every process is ready (every group that will be joined exists), then joins its
 *      group: setpgid(0, pgid) (a member's, a stand-in's, or restart's own);           joined += 1
 *   5. waits until every process has joined; a stand-in exits now, a zombie exits with its saved
 *      status (exit code, or its signal with the default action)
 *   6. waits for its stand-in and zombie children to end (reaps the stand-ins, leaves the zombies),
 *      and takes the signals their ends sent it (rt_sigtimedwait, zero timeout);       settled += 1
 *   7. waits until every live process has settled: from here on a SIGCHLD can only come from a
 *      restorer (a stopped process stopping), which its parent's restorer drains after the go
 *   8. PR_SET_PDEATHSIG, its descriptor plan (stasis_spawn_install), execve of the restorer
 *
 * A failure is recorded in the control block (which process, which step, errno) and the process
 * exits; every other process gives up when the launcher sets `abort`, or after
 * STASIS_TREE_SPAWN_TIMEOUT_MS at a barrier. The launcher kills and reaps what was started. */
#ifndef STASIS_TREE_SPAWN_H
#define STASIS_TREE_SPAWN_H

#include <stdint.h>

#include "stasis_spawn.h"

#define STASIS_TREE_SPAWN_MAX 1024 /* processes and stand-ins */
#define STASIS_TREE_SPAWN_TIMEOUT_MS 30000

/* stasis_tree_spawn_member_t.kind */
enum {
    STASIS_TREE_SPAWN_RESTORE = 0,  /* a live process: execs the restorer with `plan` */
    STASIS_TREE_SPAWN_ZOMBIE = 1,   /* exits with exit_status once every process is in its group (with no
                                     * capability when plan.keep_restore_capability: a user namespace of ours) */
    STASIS_TREE_SPAWN_STAND_IN = 2, /* makes group `pid`, lets the members join, exits; its creator reaps it */
};

/* Steps that can fail (stasis_tree_spawn_control_t.step). */
enum {
    STASIS_TREE_STEP_NONE = 0,
    STASIS_TREE_STEP_SETSID = 1,
    STASIS_TREE_STEP_OWN_GROUP = 2,
    STASIS_TREE_STEP_CLONE = 3,       /* errno EEXIST: the PID is in use */
    STASIS_TREE_STEP_JOIN_GROUP = 4,
    STASIS_TREE_STEP_WAIT_CHILD = 5,
    STASIS_TREE_STEP_DEATH_SIGNAL = 6,
    STASIS_TREE_STEP_DESCRIPTORS = 7,
    STASIS_TREE_STEP_EPOLL = 8,
    STASIS_TREE_STEP_CHDIR = 9,
    STASIS_TREE_STEP_EXEC = 10,
    STASIS_TREE_STEP_TIMEOUT = 11,    /* a barrier: some process never got there */
};

typedef struct stasis_tree_spawn_member {
    int32_t pid;          /* clone3 set_tid */
    int32_t creator;      /* index of the member that clones it; -1: the launcher (the root, index 0) */
    int32_t pgid;         /* the group it ends in: its own pid (leader), a member's or stand-in's, or restart's; 0: the one inherited */
    int32_t new_session;  /* 1: setsid() (it leads its session) */
    uint32_t kind;        /* STASIS_TREE_SPAWN_* */
    int32_t exit_signal;  /* what its creator gets when it ends (clone3 exit_signal; SIGCHLD, or 0...) */
    int32_t exit_status;  /* a zombie's: waitpid encoding */
    int32_t death_signal; /* PR_SET_PDEATHSIG; 0: none */
    char name[16];        /* PR_SET_NAME: a zombie's and a stand-in's (a live process's restorer sets its own) */
    stasis_spawn_plan_t plan; /* RESTORE: its descriptors, cwd, umask and the restorer's argv */
} stasis_tree_spawn_member_t;

/* MAP_SHARED between the launcher and every process of the tree (gone from each at its exec). */
typedef struct stasis_tree_spawn_control {
    volatile uint32_t ready;   /* processes past step 2 (futex word) */
    volatile uint32_t joined;  /* processes past step 4 (futex word) */
    volatile uint32_t settled; /* live processes past step 6 (futex word) */
    volatile uint32_t abort;   /* set by the launcher: everyone still here exits */
    volatile int32_t failed;   /* the first failure: member index + 1; 0: none */
    int32_t step[STASIS_TREE_SPAWN_MAX];  /* per member: the step that failed (written before `failed`) */
    int32_t error[STASIS_TREE_SPAWN_MAX]; /* per member: its errno */
    volatile uint8_t started[STASIS_TREE_SPAWN_MAX]; /* clone3 made it (set by it and by its creator) */
} stasis_tree_spawn_control_t;

typedef struct stasis_tree_spawn {
    const stasis_tree_spawn_member_t *_Nonnull members;
    int32_t count;
    int32_t live;         /* members of kind STASIS_TREE_SPAWN_RESTORE */
    stasis_tree_spawn_control_t *_Nonnull control;
} stasis_tree_spawn_t;

/* A zeroed control block shared with future children (mmap MAP_SHARED | MAP_ANONYMOUS), or NULL. */
stasis_tree_spawn_control_t *_Nullable stasis_tree_spawn_control_map(void);
void stasis_tree_spawn_control_unmap(stasis_tree_spawn_control_t *_Nonnull control);

/* Clones the root (member 0) with set_tid; the tree grows from it. Returns its pid, or -errno of the
 * clone3 (EPERM: choosing PIDs is not permitted; EEXIST: the PID is in use). */
int stasis_tree_spawn_start(const stasis_tree_spawn_t *_Nonnull tree);

/* Tells every process still in steps 1-6 to exit (they also time out on their own). */
void stasis_tree_spawn_abort(stasis_tree_spawn_control_t *_Nonnull control);

#endif
