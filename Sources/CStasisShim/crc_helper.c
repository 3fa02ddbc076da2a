/* FREEZE WINDOW: the copy-on-write writer's CRC thread (stasis_crc_helper.h). */
#include "stasis_crc_helper.h"
#include "stasis_shim.h"

static void crc_helper_main(stasis_crc_helper_t *helper) {
    for (;;) {
        int32_t state = stasis_atomic_load(&helper->state);
        if (state != STASIS_CRC_POSTED) {
            stasis_futex_wait(&helper->state, state, 0);
            continue;
        }
        helper->crc = stasis_crc32c_update(helper->crc, helper->data, helper->count);
        stasis_atomic_store(&helper->state, STASIS_CRC_DONE);
        stasis_futex_wake_all(&helper->state);
    }
}

/* clone(CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM): the child
 * starts on stack_top with the function and its argument pushed there, calls it, and (never, as it
 * loops) exit(0)s this thread only. It inherits the caller's signal mask: the writer runs in the
 * agent's signal handler with every signal blocked. */
long stasis_crc_helper_start(stasis_crc_helper_t *helper, void *stack_top) {
    helper->state = STASIS_CRC_IDLE;
    void **sp = (void **)stack_top;
    *--sp = helper;
    *--sp = (void *)crc_helper_main;
    long flags = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000;
    long r;
    register long r10 __asm__("r10") = 0; /* child_tid */
    register long r8 __asm__("r8") = 0;   /* tls: unchanged (CLONE_SETTLS not set) */
    __asm__ volatile(
        "syscall\n\t"
        "test %%rax, %%rax\n\t"
        "jnz 1f\n\t"
        /* the child, on the new stack */
        "xor %%ebp, %%ebp\n\t"
        "pop %%rax\n\t"
        "pop %%rdi\n\t"
        "and $-16, %%rsp\n\t"
        "call *%%rax\n\t"
        "mov $60, %%eax\n\t"
        "xor %%edi, %%edi\n\t"
        "syscall\n\t"
        "hlt\n\t"
        "1:\n\t"
        : "=a"(r)
        : "a"(56L), "D"(flags), "S"(sp), "d"(0L), "r"(r10), "r"(r8)
        : "rcx", "r11", "memory");
    return r;
}

void stasis_crc_helper_post(stasis_crc_helper_t *helper, uint32_t crc, const void *data, unsigned long count) {
    helper->crc = crc;
    helper->data = data;
    helper->count = count;
    stasis_atomic_store(&helper->state, STASIS_CRC_POSTED);
    stasis_futex_wake_all(&helper->state);
}

uint32_t stasis_crc_helper_wait(stasis_crc_helper_t *helper) {
    int32_t state;
    while ((state = stasis_atomic_load(&helper->state)) != STASIS_CRC_DONE) stasis_futex_wait(&helper->state, state, 0);
    uint32_t crc = helper->crc;
    stasis_atomic_store(&helper->state, STASIS_CRC_IDLE);
    return crc;
}
