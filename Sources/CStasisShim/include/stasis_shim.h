/* stasis_shim.h: the C half of libStasisAgent.so, as seen from Swift.
 *
 * The constructor maps the agent's scratch memory and installs the trigger
 * handler. On the trigger signal the handler fills a stasis_capture_t with
 * what the signal frame and a few system calls say about the thread, switches
 * to the agent's own stack and calls stasis_agent_checkpoint (Swift). */
#ifndef STASIS_SHIM_H
#define STASIS_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include "stasis_image_abi.h"

#define STASIS_ARENA_BYTES (256ul << 20)  /* reserved, MAP_NORESERVE: pages cost only when touched */
#define STASIS_STACK_BYTES (512ul << 10)

typedef struct stasis_agent_config {
    char image_dir[STASIS_MAX_PATH]; /* STASIS_DIR, else cwd at load */
    int32_t trigger_signal;          /* STASIS_SIGNAL, else SIGUSR2 */
    uint32_t reserved;
    uint64_t arena_start, arena_bytes; /* scratch memory: mapped in images, contents not stored */
    uint64_t stack_start, stack_bytes; /* the handler's own stack: likewise */
} stasis_agent_config_t;

/* What the handler captured for the Swift side. */
typedef struct stasis_capture {
    stasis_thread_record_t thread;   /* filled by the shim */
    const void *_Nullable xsave;     /* the frame's fpstate, thread.xsave_bytes long */
    int32_t signal_code;             /* si_code: SI_QUEUE for `stasis checkpoint` */
    int32_t sender_pid;
    int64_t request_id;              /* si_value for SI_QUEUE, else 0 */
    stasis_agent_config_t *_Nonnull config;
    stasis_agent_state_t *_Nonnull state;
    uint64_t restore_tail;           /* address of stasis_restore_tail */
} stasis_capture_t;

/* Implemented in Swift (StasisAgent): writes the image. Returns 0 or -errno. */
int32_t stasis_agent_checkpoint(stasis_capture_t *_Nonnull capture);

#endif
