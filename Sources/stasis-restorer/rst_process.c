/* rst_process.c: process-wide state restored after memory: brk, stack, arguments and environment
 * (PR_SET_MM_MAP), and interval timers. */
#include "rst.h"

/* prctl(PR_SET_MM, PR_SET_MM_MAP): brk, stack, arguments and environment as the
 * program had them (design-notes.md: glibc caches the old break). */
struct rst_prctl_mm_map {
    uint64_t start_code, end_code, start_data, end_data, start_brk, brk, start_stack;
    uint64_t arg_start, arg_end, env_start, env_end;
    uint64_t auxv;
    uint32_t auxv_size;
    uint32_t exe_fd;
};

void rst_restore_mm(struct rst_args *args) {
    const stasis_process_record_t *p = &args->process;
    uint64_t auxv_words[64];
    uint32_t auxv_bytes = p->auxv_bytes <= sizeof auxv_words ? p->auxv_bytes : 0;
    uint64_t tail = args->process_offset + sizeof *p;
    if (auxv_bytes &&
        rst_read_image(args, auxv_words, auxv_bytes, tail + p->cwd_bytes + p->exe_bytes) < 0)
        auxv_bytes = 0;
    struct rst_prctl_mm_map map = {
        .start_code = p->start_code, .end_code = p->end_code, .start_data = p->start_data, .end_data = p->end_data,
        .start_brk = p->start_brk, .brk = p->brk, .start_stack = p->start_stack, .arg_start = p->arg_start,
        .arg_end = p->arg_end, .env_start = p->env_start, .env_end = p->env_end,
        .auxv = (uint64_t)auxv_words, .auxv_size = auxv_bytes, .exe_fd = (uint32_t)-1,
    };
    long exe_fd = -1;
    if (p->exe_bytes && p->exe_bytes <= STASIS_MAX_PATH) {
        rst_read_path(args, tail + p->cwd_bytes, p->exe_bytes);
        exe_fd = stasis_syscall3(STASIS_NR_open, (long)args->path, RST_O_RDONLY | RST_O_CLOEXEC, 0);
    }
    long r = -1;
    if (exe_fd >= 0) {
        map.exe_fd = (uint32_t)exe_fd;
        r = stasis_syscall5(STASIS_NR_prctl, 35 /* PR_SET_MM */, 14 /* PR_SET_MM_MAP */, (long)&map, sizeof map, 0);
        stasis_syscall1(STASIS_NR_close, exe_fd);
    }
    if (r < 0) { /* no CAP_CHECKPOINT_RESTORE: keep /proc/self/exe as is */
        map.exe_fd = (uint32_t)-1;
        r = stasis_syscall5(STASIS_NR_prctl, 35, 14, (long)&map, sizeof map, 0);
    }
    if (r < 0 && map.auxv_size) {
        map.auxv_size = 0;
        map.auxv = 0;
        r = stasis_syscall5(STASIS_NR_prctl, 35, 14, (long)&map, sizeof map, 0);
    }
    if (r < 0) rst_warn(args, "PR_SET_MM_MAP failed; the heap break is the restorer's", (uint64_t)-r);
    stasis_syscall2(STASIS_NR_prctl, 15 /* PR_SET_NAME */, (long)p->comm);
    if (p->dumpable <= 2) stasis_syscall2(STASIS_NR_prctl, 4 /* PR_SET_DUMPABLE */, p->dumpable);
    if (p->personality && p->personality != 0xffffffffu) stasis_syscall1(STASIS_NR_personality, p->personality);
    if (p->no_new_privs) stasis_syscall5(STASIS_NR_prctl, 38 /* PR_SET_NO_NEW_PRIVS */, 1, 0, 0, 0);
    /* Resource limits: a hard limit above ours needs privilege; then keep ours and say so. */
    for (int resource = 0; resource < 16; resource++) {
        uint64_t wanted[2] = {p->rlimits[resource][0], p->rlimits[resource][1]};
        if (stasis_syscall4(STASIS_NR_prlimit64, 0, resource, (long)wanted, 0) == 0) continue;
        uint64_t current[2];
        if (stasis_syscall4(STASIS_NR_prlimit64, 0, resource, 0, (long)current) != 0) continue;
        wanted[1] = current[1];
        if (wanted[0] > current[1]) wanted[0] = current[1];
        stasis_syscall4(STASIS_NR_prlimit64, 0, resource, (long)wanted, 0);
        rst_warn(args, "a hard resource limit could not be raised back (needs CAP_SYS_RESOURCE); resource", (uint64_t)resource);
    }
}

/* Interval timers last: their signals must find the program's handlers and memory in place. */
void rst_restore_timers(struct rst_args *args) {
    for (int which = 0; which < 3; which++) {
        int64_t t[4] = {args->process.itimers[which][0], args->process.itimers[which][1],
                        args->process.itimers[which][2], args->process.itimers[which][3]};
        /* A periodic ITIMER_REAL re-arms only when its SIGALRM is dequeued: taken while that signal
         * was pending (the checkpoint handler blocks it), it reads as value 0. It is not disarmed:
         * the next expiry is one interval away. */
        if (!t[2] && !t[3]) {
            t[2] = t[0];
            t[3] = t[1];
        }
        if (!t[2] && !t[3]) continue; /* disarmed */
        stasis_syscall3(38 /* setitimer */, which, (long)t, 0);
    }
}

/* Every capability of the calling thread, ambient ones too (capabilities are per thread: each thread
 * calls this just before it returns into the program). Only with STASIS_RESTORER_DROP_CAPABILITIES. */
void rst_drop_capabilities(struct rst_args *args) {
    if (!(args->tree_flags & STASIS_RESTORER_DROP_CAPABILITIES)) return;
    stasis_syscall5(STASIS_NR_prctl, 47 /* PR_CAP_AMBIENT */, 4 /* PR_CAP_AMBIENT_CLEAR_ALL */, 0, 0, 0);
    struct { uint32_t version; int32_t pid; } header = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
    uint32_t none[6] = {0, 0, 0, 0, 0, 0};
    long r = stasis_syscall2(126 /* capset */, (long)&header, (long)none);
    /* Dropping capabilities cannot fail; if it did, the program must not run with them. */
    if (r < 0) rst_fail(args, "cannot drop the restorer's capabilities", (uint64_t)-r);
}
