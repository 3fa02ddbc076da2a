/* The copy-on-write writer's CRC thread (crc_helper.c). The writer is a process of its own, so a second
 * thread there is nothing the program can see: while the writer write(2)s a large piece of page data,
 * the helper computes its CRC32C on the other core, and reading each page for the first time (slow in
 * a forked copy: its page table entries are new) happens once, in whichever gets there first.
 *
 *   writer                                     helper (CLONE_VM | CLONE_THREAD, arena stack)
 *   post(crc, data, count): state = POSTED --> crc = stasis_crc32c_update(crc, data, count)
 *   write(2) data in pieces                    state = DONE, futex wake
 *   wait(): until state == DONE; state = IDLE
 *
 * One job at a time. Freeze-window code: raw syscalls, no allocation, no locks. The thread ends with
 * the writer's exit_group. */
#ifndef STASIS_CRC_HELPER_H
#define STASIS_CRC_HELPER_H

#include <stdint.h>

enum { STASIS_CRC_IDLE = 0, STASIS_CRC_POSTED = 1, STASIS_CRC_DONE = 2 };

typedef struct stasis_crc_helper {
    volatile int32_t state; /* STASIS_CRC_*: the futex word */
    uint32_t crc;           /* in: the state to continue from; out (DONE): the state after data */
    const void *_Nullable data;
    unsigned long count;
} stasis_crc_helper_t;

/* Starts the helper thread on the stack that ends at stack_top (16-byte aligned). Returns its TID, or
 * -errno (then there is no helper). */
long stasis_crc_helper_start(stasis_crc_helper_t *_Nonnull helper, void *_Nonnull stack_top);

/* Hands the helper one piece of data (the helper must be idle). */
void stasis_crc_helper_post(stasis_crc_helper_t *_Nonnull helper, uint32_t crc, const void *_Nonnull data,
                            unsigned long count);

/* Waits until the posted piece is done; returns the CRC state after it. The helper is idle again. */
uint32_t stasis_crc_helper_wait(stasis_crc_helper_t *_Nonnull helper);

#endif
