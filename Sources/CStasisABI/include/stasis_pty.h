/* stasis_pty.h: the bytes queued in a pseudo-terminal pair, taken out and put back. Header-only, raw
 * system calls, no libc, no allocation: the agent calls it in the freeze window and the launcher at
 * restart. `modes` is the kernel's struct termios as TCGETS gives it (36 bytes: iflag, oflag, cflag,
 * lflag, line, cc[19]).
 *
 * Input (written to the master, not yet read from the slave) lives in the slave's line discipline,
 * where a partial line of a canonical-mode terminal cannot be read. It is read with ICANON and ECHO off
 * (a partial line is then readable) and put back by writing it to the master again with the program's
 * ICANON setting but no input processing, no signals and no special characters (so each byte is taken
 * as it is and a partial line stays partial), with ECHO on and OPOST off: the master reads back exactly
 * one echoed byte per byte, which tells that the line discipline has taken them all; the echo is
 * discarded. Output (written to the slave, not yet read from the master) is read from the master and
 * written to the slave again with OPOST off, as it was already processed. The modes are then put back
 * unchanged (ICANON unchanged: the line discipline keeps the line state). */
#ifndef STASIS_PTY_H
#define STASIS_PTY_H

#include <stdint.h>
#include "stasis_syscall.h"

#define STASIS_PTY_INPUT_MAX 4096u          /* N_TTY_BUF_SIZE: the most a line discipline holds */
#define STASIS_PTY_OUTPUT_MAX (68u << 10)   /* the master's line discipline and the flip buffers */

typedef struct stasis_pty_modes { uint32_t iflag, oflag, cflag, lflag; uint8_t line, cc[19]; } stasis_pty_modes_t;
_Static_assert(sizeof(stasis_pty_modes_t) == 36, "struct termios (kernel)");

static inline long stasis_pty_poll_in(int fd, int timeout_ms) {
    struct { int32_t fd; int16_t events, revents; } p = {fd, 1 /* POLLIN */, 0};
    long r = stasis_syscall3(7 /* poll */, (long)&p, 1, timeout_ms);
    return r > 0 && (p.revents & 1) ? 1 : 0;
}

/* Reads what `fd` has now (poll flushes the tty's pending buffer work first), up to `cap` bytes. */
static inline uint32_t stasis_pty_drain(int fd, uint8_t *into, uint32_t cap) {
    uint32_t n = 0;
    while (n < cap && stasis_pty_poll_in(fd, 0)) {
        long r = stasis_syscall3(0 /* read */, fd, (long)(into + n), cap - n);
        if (r == -4 /* EINTR */) continue;
        if (r <= 0) break;
        n += (uint32_t)r;
    }
    return n;
}

static inline int stasis_pty_set(int slave, const stasis_pty_modes_t *modes) {
    return stasis_syscall3(16 /* ioctl */, slave, 0x5402 /* TCSETS */, (long)modes) == 0 ? 0 : -1;
}

/* Puts `input` into the slave's line discipline and `output` into the master's read queue, leaving the
 * slave with `modes`. `scratch` (at least STASIS_PTY_INPUT_MAX bytes) takes the echo. 0, or -1 when the
 * echo did not all come back (some input may then be missing). */
static inline int stasis_pty_requeue(int master, int slave, const stasis_pty_modes_t *modes, const uint8_t *input,
                                     uint32_t input_bytes, const uint8_t *output, uint32_t output_bytes, uint8_t *scratch) {
    int result = 0;
    stasis_pty_modes_t put = *modes;
    /* A byte the input does not hold stands for every special character (0 would be taken as one). */
    uint8_t seen[256] = {0};
    for (uint32_t i = 0; i < input_bytes; i++) seen[input[i]] = 1;
    uint8_t unused = 0;
    for (int c = 255; c > 0; c--) if (!seen[c]) { unused = (uint8_t)c; break; }
    put.iflag &= ~(0040u | 0100u | 0200u | 0400u | 01000u | 02000u | 010000u | 010u | 020u | 02u);
        /* ISTRIP INLCR IGNCR ICRNL IUCLC IXON IXOFF PARMRK INPCK BRKINT */
    put.oflag &= ~01u; /* OPOST */
    put.lflag &= ~(01u | 04u | 020u | 040u | 0100u | 01000u | 02000u | 04000u | 010000u | 040000u | 0100000u | 0200000u);
        /* ISIG XCASE ECHOE ECHOK ECHONL ECHOCTL ECHOPRT ECHOKE FLUSHO PENDIN IEXTEN EXTPROC */
    put.lflag |= 010u; /* ECHO */
    static const int specials[] = {2, 3, 4, 11, 12, 14, 15, 16}; /* ERASE KILL EOF EOL REPRINT WERASE LNEXT EOL2 */
    for (unsigned i = 0; i < sizeof specials / sizeof specials[0]; i++) put.cc[specials[i]] = unused;
    if (stasis_pty_set(slave, &put) < 0) return -1;
    if (input_bytes) {
        uint32_t sent = 0;
        while (sent < input_bytes) {
            long r = stasis_syscall3(1 /* write */, master, (long)(input + sent), input_bytes - sent);
            if (r == -4) continue;
            if (r <= 0) { result = -1; break; }
            sent += (uint32_t)r;
        }
        uint32_t echoed = 0;
        for (int tries = 0; echoed < sent && tries < 100; tries++) {  /* up to 5 s under load */
            if (!stasis_pty_poll_in(master, 50)) continue;
            long r = stasis_syscall3(0 /* read */, master, (long)scratch, STASIS_PTY_INPUT_MAX);
            if (r == -4) continue;
            if (r <= 0) break;
            echoed += (uint32_t)r;
        }
        if (echoed != sent) result = -1;
    }
    uint32_t written = 0;
    while (written < output_bytes) {
        long r = stasis_syscall3(1 /* write */, slave, (long)(output + written), output_bytes - written);
        if (r == -4) continue;
        if (r <= 0) { result = -1; break; }
        written += (uint32_t)r;
    }
    if (stasis_pty_set(slave, modes) < 0) result = -1;
    return result;
}

/* Takes both queues of the pair out (the master's pending output first, then the slave's input) and
 * puts them back as they were; the caller keeps copies in `output` and `input`. */
static inline int stasis_pty_take_queues(int master, int slave, const stasis_pty_modes_t *modes, uint8_t *input,
                                         uint32_t *input_bytes, uint8_t *output, uint32_t *output_bytes, uint8_t *scratch) {
    *output_bytes = stasis_pty_drain(master, output, STASIS_PTY_OUTPUT_MAX);
    stasis_pty_modes_t readable = *modes;
    readable.lflag &= ~(02u | 010u | 0100u | 01u | 0100000u); /* ICANON ECHO ECHONL ISIG IEXTEN */
    readable.cc[5] = 0;  /* VTIME */
    readable.cc[6] = 0;  /* VMIN */
    *input_bytes = 0;
    if (stasis_pty_set(slave, &readable) == 0) *input_bytes = stasis_pty_drain(slave, input, STASIS_PTY_INPUT_MAX);
    if (*input_bytes == 0 && *output_bytes == 0) return stasis_pty_set(slave, modes);
    return stasis_pty_requeue(master, slave, modes, input, *input_bytes, output, *output_bytes, scratch);
}

#endif
