/* stasis_request.h: `stasis checkpoint` <-> the agent in the program (Docs/ARCHITECTURE.md 2.6).
 *
 *   launcher: mkdir CONTROL = STASIS_CONTROL_PREFIX EUID "-" TOKEN-in-hex (0700, the target's euid)
 *             [write CONTROL/request: stasis_checkpoint_request_t]
 *             sigqueue(PID, trigger, TOKEN)   again until CONTROL/accepted exists
 *   agent:    create CONTROL/accepted (O_EXCL: a repeat is dropped), read CONTROL/request,
 *             checkpoint, write CONTROL/result.tmp then rename it to CONTROL/result:
 *             stasis_checkpoint_result_t
 *   launcher: STASIS_RESULT_BUSY: remove result and accepted, signal again; else done; rmdir CONTROL
 *
 * Both files are fixed-size structs in the host's byte order (the two sides are one build). */
#ifndef STASIS_REQUEST_H
#define STASIS_REQUEST_H

#include <stdint.h>

#include "stasis_image_abi.h"

#define STASIS_CONTROL_PREFIX "/tmp/stasis-"
#define STASIS_REQUEST_FILE "request"
#define STASIS_ACCEPTED_FILE "accepted"
#define STASIS_RESULT_FILE "result"
#define STASIS_REQUEST_MAGIC 0x51525453u /* "STRQ" */
#define STASIS_RESULT_MAGIC 0x53525453u  /* "STRS" */
#define STASIS_RESULT_MESSAGE_MAX 1024

/* stasis_checkpoint_request_t.flags */
#define STASIS_REQUEST_SKIP_UNSUPPORTED 1u /* --skip-unsupported */
#define STASIS_REQUEST_NO_FORK 2u          /* --no-fork */
#define STASIS_REQUEST_INCREMENTAL 4u      /* --incremental */
#define STASIS_REQUEST_FULL 8u             /* --full */
#define STASIS_REQUEST_COMPRESS 16u        /* --compress */
#define STASIS_REQUEST_NO_COMPRESS 32u     /* --no-compress */

typedef struct stasis_checkpoint_request {
    uint32_t magic; /* STASIS_REQUEST_MAGIC */
    uint32_t flags; /* STASIS_REQUEST_* */
    char image_dir[STASIS_MAX_PATH]; /* absolute, NUL-terminated; empty: the program's own */
    char key_file[STASIS_MAX_PATH];  /* absolute, NUL-terminated; empty: none (the agent reads it) */
} stasis_checkpoint_request_t;
_Static_assert(sizeof(stasis_checkpoint_request_t) == 8 + 2 * STASIS_MAX_PATH, "protocol: stasis_checkpoint_request_t");
/* Field offsets for the agent, which reaches the text fields through raw pointers. */
#define STASIS_REQUEST_IMAGE_DIR_OFFSET 8
#define STASIS_REQUEST_KEY_FILE_OFFSET (8 + STASIS_MAX_PATH)
_Static_assert(__builtin_offsetof(stasis_checkpoint_request_t, image_dir) == STASIS_REQUEST_IMAGE_DIR_OFFSET, "protocol");
_Static_assert(__builtin_offsetof(stasis_checkpoint_request_t, key_file) == STASIS_REQUEST_KEY_FILE_OFFSET, "protocol");

/* stasis_checkpoint_result_t.status */
#define STASIS_RESULT_OK 0u
#define STASIS_RESULT_ERROR 1u /* message says why; the program keeps running */
#define STASIS_RESULT_BUSY 2u  /* the previous image of this process is still being written: ask again */

typedef struct stasis_checkpoint_result {
    uint32_t magic;  /* STASIS_RESULT_MAGIC */
    uint32_t status; /* STASIS_RESULT_* */
    uint32_t threads;
    uint32_t chain_length;           /* images in the new image's chain: 1 for a full image */
    uint32_t max_chain;              /* the program's --max-chain */
    uint32_t incremental_unavailable; /* 1: --incremental asked for, but no userfaultfd */
    uint64_t freeze_ns;              /* start to every thread stopped */
    uint64_t pause_ns;               /* start to thaw */
    uint64_t total_ns;               /* start to published */
    char image[STASIS_MAX_PATH];     /* OK: the image's path */
    char message[STASIS_RESULT_MESSAGE_MAX]; /* ERROR: one line, no newline */
    uint32_t processes;              /* OK: processes in the checkpoint (1, or a tree's count, zombies included) */
    uint32_t reserved;
} stasis_checkpoint_result_t;
_Static_assert(sizeof(stasis_checkpoint_result_t) == 56 + STASIS_MAX_PATH + STASIS_RESULT_MESSAGE_MAX,
               "protocol: stasis_checkpoint_result_t");
#define STASIS_RESULT_IMAGE_OFFSET 48
#define STASIS_RESULT_MESSAGE_OFFSET (48 + STASIS_MAX_PATH)
_Static_assert(__builtin_offsetof(stasis_checkpoint_result_t, image) == STASIS_RESULT_IMAGE_OFFSET, "protocol");
_Static_assert(__builtin_offsetof(stasis_checkpoint_result_t, message) == STASIS_RESULT_MESSAGE_OFFSET, "protocol");

#endif
