/* stasis_tree_abi.h: the records of a process tree's checkpoint (image format version 3; part of the
 * image format: stasis_image_abi.h includes it; Docs/IMAGE-FORMAT.md 7). The coordination between the
 * processes while they are checkpointed is stasis_tree.h. */
#ifndef STASIS_TREE_ABI_H
#define STASIS_TREE_ABI_H

#include <stdint.h>

/* ---- Process trees (version 3) ----
 *
 * A checkpoint of a process with descendants is a directory, published whole with one rename:
 *
 *   COMM-PID-SEQ.stasis/            0700
 *     tree                          the manifest: an image file (same header; pid = the root's,
 *                                   thread_count = 0, program = the root's exe) holding one
 *                                   TREE_PROCESS record per process, parents before children,
 *                                   root first, then END
 *     PID.stasis                    one ordinary image per live process (zombies have none)
 *
 * Member images are complete single-process images; what spans processes is said in the manifest
 * (who is whose parent, groups, sessions, zombies) and in SHARED_DESCRIPTION records (which open
 * file descriptions are one object held by several processes). */
#define STASIS_TREE_MANIFEST_NAME "tree"

/* SHARED_DESCRIPTION: in a tree member image. Descriptor `fd` of this process is the same open file
 * description (kcmp KCMP_FILE) as `owner_fd` of process `owner_pid`, a member that comes earlier in
 * the manifest: restart gives both one description (one offset, one pipe, one socket), made from the
 * owner's FILE_DESCRIPTOR record. This process's own FILE_DESCRIPTOR record for `fd` is still there
 * (kind, flags, close-on-exec) but its contents (pipe bytes...) are not used. */
typedef struct stasis_shared_description_record {
    int32_t fd;
    int32_t owner_pid;
    int32_t owner_fd;
    uint32_t reserved;
} stasis_shared_description_record_t;
_Static_assert(sizeof(stasis_shared_description_record_t) == 16, "image ABI: stasis_shared_description_record_t");

/* TREE_PROCESS.state */
#define STASIS_TREE_RUNNING 0u  /* running or sleeping: has a member image */
#define STASIS_TREE_STOPPED 1u  /* stopped by a signal (SIGSTOP, SIGTSTP...): has a member image, comes back stopped */
#define STASIS_TREE_ZOMBIE 2u   /* exited, not yet reaped: no image; comes back as a zombie with exit_status */
/* TREE_PROCESS.flags */
#define STASIS_TREE_ROOT 1u             /* the process the checkpoint was asked of (first record) */
#define STASIS_TREE_CHILD_SUBREAPER 2u  /* prctl(PR_SET_CHILD_SUBREAPER) */
#define STASIS_TREE_OWN_GROUP 4u        /* pgid outside the tree (the root's job's group): restart's group */
#define STASIS_TREE_OWN_SESSION 8u      /* sid outside the tree: restart's session */

/* TREE_PROCESS: one process of the tree, in the manifest. */
typedef struct stasis_tree_process_record {
    int32_t pid, ppid, pgid, sid;  /* as getpid, getppid, getpgid, getsid gave them */
    uint32_t state;                /* STASIS_TREE_* */
    uint32_t flags;                /* STASIS_TREE_ROOT, ... */
    int32_t exit_status;           /* zombies: the status wait() will report (waitpid encoding) */
    int32_t exit_signal;           /* the signal its parent gets when it exits (SIGCHLD, or 0...) */
    int32_t pdeath_signal;         /* prctl(PR_GET_PDEATHSIG) */
    uint32_t reserved;
    char comm[16];                 /* process name */
    uint64_t image_bytes;          /* size of PID.stasis (0 for a zombie) */
    uint32_t image_header_crc;     /* its header's header_crc: binds the member to this manifest */
    uint32_t reserved2;
} stasis_tree_process_record_t;
_Static_assert(sizeof(stasis_tree_process_record_t) == 72, "image ABI: stasis_tree_process_record_t");

#endif
