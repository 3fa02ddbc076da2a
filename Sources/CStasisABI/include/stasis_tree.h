/* stasis_tree.h: how the processes of a tree checkpoint work together (Docs/ARCHITECTURE.md 2.7).
 *
 * The process asked for a checkpoint (the ROOT) finds it has children and becomes the coordinator.
 * In its own freeze window (its threads already stopped) it creates a memfd holding one
 * stasis_tree_control_t, maps it, and freezes the tree level by level:
 *
 *   coordinator                                   each member (its leader thread, in its handler)
 *   for each process of the next level:
 *     /proc/PID/stat: state, ppid, pgrp, session
 *     zombie: recorded, not signalled
 *     else sigqueue(PID, trigger, MAGIC<<32|fd) ──▶ open /proc/ROOT/fd/FD, map it, find its slot
 *                                                   (members[i].process.pid == getpid()), freeze its
 *                                                   own threads, list its fds into descriptors[i],
 *   wait for every member of the level  ◀───────── progress = FROZEN (futex wake on `changes`)
 *   read their children: the next level           wait for phase
 *   (a frozen process cannot fork: a process forked meanwhile is in the next level or not created)
 *   phase = CAPTURE ──────────────────────────────▶ write DIRECTORY/PID.stasis: every record but memory
 *                                                   (SHARED_DESCRIPTION via kcmp against the
 *                                                   descriptors of earlier members), clone its
 *                                                   copy-on-write writer (or, in place, write memory)
 *   wait for every member         ◀─────────────── progress = CAPTURED, wait for phase
 *   phase = THAW ─────────────────────────────────▶ thaw its threads, unmap the control block, return
 *                                                   the writer: memory, END, fsync: progress = WRITTEN
 *   the root's writer: wait for every member WRITTEN, write DIRECTORY/tree, fsync, rename
 *   DIRECTORY to DIR/COMM-PID-SEQ.stasis, fsync DIR, report
 *
 * Any failure before THAW: phase = ABORT, everyone thaws, the directory is removed, the root reports
 * which process failed and why. A member that does not answer within STASIS_TREE_FREEZE_TIMEOUT_MS
 * fails the checkpoint (it may not carry the agent: static, setuid, LD_PRELOAD cleared).
 *
 * The control block lives only while the tree is frozen (and in the writers): no member keeps a
 * mapping or a descriptor of it once thawed. */
#ifndef STASIS_TREE_H
#define STASIS_TREE_H

#include <stdint.h>

#include "stasis_image_abi.h"

/* sigqueue value of a tree freeze request: (STASIS_TREE_MAGIC << 32) | the memfd's number in the root.
 * Request tokens (STASIS_REQUEST_TOKEN_MIN and up) never have this high half (the launcher skips it). */
#define STASIS_TREE_MAGIC 0x53545452ull /* "STTR" */
#define STASIS_TREE_MAX_PROCESSES 512
#define STASIS_TREE_MAX_MEMBER_FDS 2048
#define STASIS_TREE_FREEZE_TIMEOUT_MS 5000
#define STASIS_TREE_CONTROL_MAGIC 0x4c52544345455254ull /* "TREECTRL" */

/* stasis_tree_control_t.phase: coordinator to members (a futex word). */
enum {
    STASIS_TREE_PHASE_FREEZE = 0,
    STASIS_TREE_PHASE_CAPTURE = 1,
    STASIS_TREE_PHASE_THAW = 2,
    STASIS_TREE_PHASE_ABORT = 3,
};

/* stasis_tree_member_t.progress: member to coordinator; every change bumps `changes` and wakes it. */
enum {
    STASIS_MEMBER_SIGNALLED = 0,
    STASIS_MEMBER_FROZEN = 1,
    STASIS_MEMBER_CAPTURED = 2,
    STASIS_MEMBER_WRITTEN = 3,
    STASIS_MEMBER_FAILED = 4,
};

/* One descriptor of a member, for the others' kcmp search. */
typedef struct stasis_tree_descriptor {
    int32_t fd;
    uint32_t access;  /* fcntl F_GETFL & O_ACCMODE, plus 1 (0: unknown) */
    uint64_t device, inode;
} stasis_tree_descriptor_t;

typedef struct stasis_tree_member {
    stasis_tree_process_record_t process; /* the manifest's record: the coordinator's ids, the member's own fields */
    volatile int32_t progress;            /* STASIS_MEMBER_* */
    int32_t writer_pid;                   /* its copy-on-write writer, while it writes */
    uint32_t descriptor_count;
    uint32_t fail_step;                   /* FreezeFailure.Step of a failure */
    int32_t fail_errno;
    uint32_t reserved;
    int64_t fail_object;
    char message[256];                    /* a failure, as the member describes it (one line, NUL-terminated) */
} stasis_tree_member_t;

typedef struct stasis_tree_control {
    uint64_t magic;                   /* STASIS_TREE_CONTROL_MAGIC */
    volatile int32_t phase;           /* STASIS_TREE_PHASE_* (futex) */
    volatile int32_t changes;         /* bumped at every member progress change (futex) */
    uint32_t member_count;
    uint32_t flags;                   /* STASIS_REQUEST_* flags of the checkpoint (stasis_request.h) */
    uint64_t sequence;                /* the tree image's number */
    char directory[STASIS_MAX_PATH];  /* the tree's temporary directory: members write PID.stasis there */
    char key_file[STASIS_MAX_PATH];   /* `stasis checkpoint --key`: every member signs with it; empty: their own */
    stasis_tree_member_t members[STASIS_TREE_MAX_PROCESSES];
} stasis_tree_control_t;

/* After the control struct, at STASIS_TREE_DESCRIPTORS_OFFSET: each member's descriptor list,
 * STASIS_TREE_MAX_MEMBER_FDS entries per member (tmpfs gives pages only where they are written). */
#define STASIS_TREE_DESCRIPTORS_OFFSET 1048576
#define STASIS_TREE_CONTROL_BYTES 26214400 /* the offset + 512 members x 2048 descriptors x 24 bytes */
_Static_assert(STASIS_TREE_CONTROL_BYTES == STASIS_TREE_DESCRIPTORS_OFFSET + STASIS_TREE_MAX_PROCESSES * STASIS_TREE_MAX_MEMBER_FDS * 24,
               "STASIS_TREE_CONTROL_BYTES");
_Static_assert(sizeof(stasis_tree_control_t) <= STASIS_TREE_DESCRIPTORS_OFFSET, "stasis_tree_control_t");
_Static_assert(sizeof(stasis_tree_descriptor_t) == 24, "stasis_tree_descriptor_t");

#pragma clang assume_nonnull begin
static inline stasis_tree_member_t *stasis_tree_member(stasis_tree_control_t *control, uint32_t index) {
    return &control->members[index];
}
/* The text fields as plain pointers (Swift would see them as 4096-element tuples). */
static inline char *stasis_tree_directory(stasis_tree_control_t *control) { return control->directory; }
static inline char *stasis_tree_key_file(stasis_tree_control_t *control) { return control->key_file; }
static inline char *stasis_tree_message(stasis_tree_member_t *member) { return member->message; }
static inline char *stasis_tree_comm(stasis_tree_member_t *member) { return member->process.comm; }
static inline stasis_tree_descriptor_t *stasis_tree_descriptors(stasis_tree_control_t *control, uint32_t index) {
    return (stasis_tree_descriptor_t *)((char *)control + STASIS_TREE_DESCRIPTORS_OFFSET) + (uint64_t)index * STASIS_TREE_MAX_MEMBER_FDS;
}
#pragma clang assume_nonnull end

#endif
