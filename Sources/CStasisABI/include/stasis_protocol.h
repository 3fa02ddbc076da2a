/* stasis_protocol.h: what the launcher, the agent and the restorer tell each other outside the image.
 *
 *   stasis run ──environment (STASIS_*)──▶ program + libStasisAgent.so (constructor.c reads them)
 *   stasis checkpoint ──sigqueue(TOKEN)──▶ agent   (TOKEN never equals a magic below; the request and
 *                                                   result files are Docs/ARCHITECTURE.md 2.6)
 *   stasis restart ──argv (enum below)──▶ stasis-restorer ──status pipe lines──▶ stasis restart
 *
 * Swift mirrors these in Sources/StasisLauncher/Support/Protocol.swift; StasisLauncherTests checks
 * that the mirror matches. Names and numbers here are an interface between builds that may differ
 * (a program started by one `stasis` and checkpointed by another): append, never renumber. */
#ifndef STASIS_PROTOCOL_H
#define STASIS_PROTOCOL_H

/* ---- Environment variables: set by `stasis run` (Run.swift), read by the agent's constructor. ---- */
#define STASIS_ENV_DIR "STASIS_DIR"                           /* absolute image directory */
#define STASIS_ENV_SIGNAL "STASIS_SIGNAL"                     /* trigger signal number, 1-64 */
#define STASIS_ENV_KEEP "STASIS_KEEP"                         /* --keep N: newest images kept */
#define STASIS_ENV_KEY_FILE "STASIS_KEY_FILE"                 /* --key: absolute path of the key file */
#define STASIS_ENV_EXIT_SIGNAL "STASIS_EXIT_SIGNAL"           /* --checkpoint-on: signal number */
#define STASIS_ENV_EXIT_CODE "STASIS_EXIT_CODE"               /* --exit-code: 0-255 */
#define STASIS_ENV_FORK "STASIS_FORK"                         /* "0": --no-fork (write in place) */
#define STASIS_ENV_SKIP_UNSUPPORTED "STASIS_SKIP_UNSUPPORTED" /* "1": --skip-unsupported */
#define STASIS_ENV_INCREMENTAL "STASIS_INCREMENTAL"           /* "1": --incremental */
#define STASIS_ENV_COMPRESS "STASIS_COMPRESS"                 /* "1": --compress */
#define STASIS_ENV_MAX_CHAIN "STASIS_MAX_CHAIN"               /* --max-chain N (default 8) */
/* Read by `stasis restart` itself (tests, diagnostics): the pager serves only faults for this long. */
#define STASIS_ENV_PAGER_DELAY_MS "STASIS_PAGER_DELAY_MS"

/* ---- sigqueue values of the trigger signal. ----
 * The agent's own: the leader's freeze signal to its threads, and "a program trigger waits for a
 * thread that takes it". A `stasis checkpoint` request's value is its TOKEN, at least
 * STASIS_REQUEST_TOKEN_MIN, so it never equals either. */
#define STASIS_FREEZE_MAGIC 0x5354465aL
#define STASIS_WAKE_MAGIC 0x5354574bL
#define STASIS_REQUEST_TOKEN_MIN (1ull << 32)

/* ---- The restorer's argv, as `stasis restart` execs it: each a decimal number. ---- */
enum stasis_restorer_argument {
    STASIS_RESTORER_ARG_IMAGE_FD = 1,       /* the image, read-only */
    STASIS_RESTORER_ARG_STATUS_FD = 2,      /* the status pipe's write end */
    STASIS_RESTORER_ARG_KEY_FD = 3,         /* --key: a pipe holding the key; -1: none */
    STASIS_RESTORER_ARG_PLAN_FD = 4,        /* incremental: stasis_restore_plan.h memfd; -1: none */
    STASIS_RESTORER_ARG_LAZY = 5,           /* 1: lazy restart (pager) wanted; 0: --eager */
    STASIS_RESTORER_ARG_PAGER_DELAY_MS = 6, /* optional: STASIS_PAGER_DELAY_MS, 1-600000; 0: none */
    STASIS_RESTORER_ARG_GO_FD = 7,          /* process trees: the go pipe's read end; -1 (or absent): none */
    STASIS_RESTORER_ARG_TREE_FLAGS = 8,     /* STASIS_RESTORER_TREE_*, STASIS_RESTORER_DROP_CAPABILITIES (any process) */
    STASIS_RESTORER_ARGC_MIN = 3,           /* argv[0], IMAGE_FD, STATUS_FD */
    STASIS_RESTORER_ARGC_MAX = 9,
};

/* ---- Process trees (Docs/ARCHITECTURE.md 3.6): the go pipe and the restorer's tree flags. ----
 * A tree member's restorer writes "ok" once it could jump into the program, then reads one byte
 * from GO_FD: a byte means every process of the tree is restored, go on; end of file means the
 * launcher gave up: exit quietly (the launcher names the process that failed). A process that was
 * stopped is stopped by the launcher (SIGSTOP) while its restorer waits there. */
#define STASIS_RESTORER_TREE_SUBREAPER 2u /* prctl(PR_SET_CHILD_SUBREAPER) after the go */
/* A restore inside a user namespace of ours (stasis_namespace_spawn.h): the restorer runs with
 * CAP_CHECKPOINT_RESTORE there (to choose TIDs) and every thread drops all capabilities just before
 * it returns into the program, which had none. */
#define STASIS_RESTORER_DROP_CAPABILITIES 4u

/* ---- Status pipe lines, restorer (and lazy pager) to launcher, each ending in '\n'. ----
 * "warning TEXT" any number; then "ok" just before the jump into the program, or one
 * "error TEXT" (restore failed: exit 9) or "corrupt TEXT" (image damaged: exit 3). */
#define STASIS_STATUS_OK "ok"
#define STASIS_STATUS_WARNING "warning "
#define STASIS_STATUS_ERROR "error "
#define STASIS_STATUS_CORRUPT "corrupt "

#endif
