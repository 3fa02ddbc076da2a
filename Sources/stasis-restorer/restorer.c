/* restorer.c: stasis-restorer, exec'd by `stasis restart` with the program's
 * descriptors, cwd and umask already in place.
 *
 *   stasis-restorer IMAGE_FD STATUS_FD [KEY_FD|-1 [PLAN_FD|-1 [LAZY [DELAY_MS [GO_FD|-1 TREE_FLAGS]]]]]
 *   (LAZY: 1 = rst_lazy.c; GO_FD, TREE_FLAGS: a member of a process tree, rst_thread.c)
 *
 * Algorithm:
 *   1. read and check the image header; list our own mappings
 *   2. find a hole that no image area and no current mapping uses; copy our
 *      code there with a fresh stack, and continue from the copy (phase 2)
 *   3. unmap everything the exec gave us but the vDSO family; move that to the
 *      image's vDSO addresses
 *   4. map every memory area and read its pages in; collect the process,
 *      agent, signal and thread records on the way
 *   5. PR_SET_MM_MAP (brk, stack, args, env, exe), name
 *   6. thread state, signal actions, then the program's restore tail unmaps
 *      the work region and rt_sigreturns into the saved registers
 * Any failure: an "error ..." line on STATUS_FD and exit 86. After step 3 the
 * process can only exit; the launcher reports the error. */
#include "rst.h"

static int parse_int(const char *s) {
    int v = 0;
    if (!s || !*s) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

static int collect_record(struct rst_args *args, const stasis_record_header_t *record, uint64_t offset) {
    uint64_t payload = offset + sizeof *record;
    if (args->blocks_area.active && record->kind != STASIS_RECORD_PAGE_BLOCKS)
        rst_fail_image(args, "compressed memory area without all its page data; area", args->blocks_area.start);
    switch (record->kind) {
    case STASIS_RECORD_MEMORY_AREA:
        return rst_restore_area(args, record, offset);
    case STASIS_RECORD_PAGE_BLOCKS:
        return rst_restore_blocks(args, record, offset);
    case STASIS_RECORD_PROCESS:
        if (record->payload_bytes < sizeof args->process ||
            rst_read_image(args, &args->process, sizeof args->process, payload) < 0)
            return -1;
        if ((uint64_t)sizeof args->process + args->process.cwd_bytes + args->process.exe_bytes +
                args->process.auxv_bytes != record->payload_bytes)
            return -1;
        args->process_offset = payload;
        args->have_process = 1;
        return 0;
    case STASIS_RECORD_AGENT:
        if (record->payload_bytes != sizeof args->agent ||
            rst_read_image(args, &args->agent, sizeof args->agent, payload) < 0)
            return -1;
        args->have_agent = 1;
        return 0;
    case STASIS_RECORD_SIGNAL_ACTIONS:
        if (record->payload_bytes != sizeof args->signals ||
            rst_read_image(args, &args->signals, sizeof args->signals, payload) < 0)
            return -1;
        args->have_signals = 1;
        return 0;
    case STASIS_RECORD_THREAD: {
        if (args->thread_count >= (int)args->header.thread_count) return -1;
        struct rst_thread *t = &args->threads[args->thread_count];
        if (record->payload_bytes < sizeof t->record ||
            rst_read_image(args, &t->record, sizeof t->record, payload) < 0)
            return -1;
        if (t->record.xsave_bytes > STASIS_MAX_XSAVE || record->payload_bytes != sizeof t->record + t->record.xsave_bytes)
            return -1;
        t->xsave_offset = payload + sizeof t->record;
        t->index = args->thread_count;
        t->args = args;
        t->done = 0;
        args->thread_count++;
        return 0;
    }
    case STASIS_RECORD_POSIX_TIMER:
        if (record->payload_bytes != sizeof(stasis_posix_timer_record_t)) return -1;
        if (args->timer_count >= 64) {
            rst_warn(args, "more than 64 POSIX timers; the rest are not restored", 64);
            return 0;
        }
        if (rst_read_image(args, &args->timers[args->timer_count], sizeof args->timers[0], payload) < 0) return -1;
        args->timer_count++;
        return 0;
    case STASIS_RECORD_PENDING_SIGNAL: {
        if (record->payload_bytes != sizeof(stasis_pending_signal_record_t)) return -1;
        if (args->pending_count >= STASIS_MAX_PENDING_SIGNALS) return 0; /* the agent never writes more */
        stasis_pending_signal_record_t *p = &args->pending[args->pending_count];
        if (rst_read_image(args, p, sizeof *p, payload) < 0) return -1;
        int32_t si_signo;
        __builtin_memcpy(&si_signo, p->siginfo, 4);
        if (p->signal < 1 || p->signal > 64 || p->signal == 9 || p->signal == 19 || si_signo != p->signal ||
            (p->flags & ~STASIS_PENDING_PROCESS))
            return -1;
        args->pending_count++;
        return 0;
    }
    case STASIS_RECORD_FILE_DESCRIPTOR: {
        /* The launcher put every descriptor in place; close-on-exec can only be set after our exec. */
        stasis_file_descriptor_record_t fd;
        if (record->payload_bytes < sizeof fd || rst_read_image(args, &fd, sizeof fd, payload) < 0) return -1;
        if (fd.fd_flags & 1 /* FD_CLOEXEC */) stasis_syscall3(STASIS_NR_fcntl, fd.fd, 2 /* F_SETFD */, 1);
        rst_note_file_object(args, &fd);
        return 0;
    }
    default:
        return 0; /* unknown kinds are skipped by length */
    }
}

/* Phase 2: runs from the copy in the work region, on its stack. */
__attribute__((noreturn, used)) static void rst_phase2(struct rst_args *args) {
    rst_unmap_restorer(args);
    rst_move_vdso(args);
    rst_lazy_open(args);
    rst_for_each_record(args, collect_record);
    rst_check_plan_done(args);
    rst_close_file_objects(args);
    rst_lazy_start(args);  /* a pager, if one runs, checks the parents' page data */
    if (!args->pager_pid) rst_verify_plan_checks(args);
    rst_close_plan(args);
    if (!args->have_process || !args->have_agent || args->thread_count != (int)args->header.thread_count)
        rst_fail(args, "image lacks a process or agent record, or some of its threads", (uint64_t)args->thread_count);
    uint64_t tail = args->agent.restore_tail, thread_tail = args->agent.restore_thread_tail;
    if (tail < RST_MMAP_MIN || tail >= RST_USER_TOP || thread_tail < RST_MMAP_MIN || thread_tail >= RST_USER_TOP)
        rst_fail(args, "bad restore tail address", tail);
    rst_restore_mm(args);
    if (args->key_fd >= 0) {
        /* The signing key goes back into the agent's scratch memory, so later images are signed. */
        if (args->key_slot_ok) {
            stasis_key_slot_t *slot = (stasis_key_slot_t *)args->agent.key_slot;
            long n = stasis_syscall3(STASIS_NR_read, args->key_fd, (long)slot->key, STASIS_KEY_MAX);
            slot->key_bytes = n > 0 ? (uint32_t)n : 0;
        } else {
            rst_warn(args, "the image has no key slot; later images will not be signed", 0);
        }
        stasis_syscall1(STASIS_NR_close, args->key_fd);
    }
    rst_restore_threads(args);
}

__attribute__((noreturn, used)) static void rst_start(uint64_t *initial_sp) {
    long argc = (long)initial_sp[0];
    char **argv = (char **)(initial_sp + 1);
    /* No signal may reach a program handler while restorer code runs (threads created below inherit
     * this mask); each thread's rt_sigreturn installs the program's own. */
    uint64_t all = ~0ull;
    stasis_syscall4(STASIS_NR_rt_sigprocmask, 2 /* SIG_SETMASK */, (long)&all, 0, 8);
    struct rst_args local;
    memset(&local, 0, sizeof local);
    local.status_fd = -1;
    /* argv positions: stasis_protocol.h (the launcher builds it with RestorerArguments). */
    if (argc < STASIS_RESTORER_ARGC_MIN)
        rst_fail(&local, "usage: stasis-restorer IMAGE_FD STATUS_FD (run by `stasis restart`)", (uint64_t)argc);
    local.image_fd = parse_int(argv[STASIS_RESTORER_ARG_IMAGE_FD]);
    local.status_fd = parse_int(argv[STASIS_RESTORER_ARG_STATUS_FD]);
    local.key_fd = argc > STASIS_RESTORER_ARG_KEY_FD ? parse_int(argv[STASIS_RESTORER_ARG_KEY_FD]) : -1;
    local.plan_fd = argc > STASIS_RESTORER_ARG_PLAN_FD ? parse_int(argv[STASIS_RESTORER_ARG_PLAN_FD]) : -1;
    local.lazy_requested = argc > STASIS_RESTORER_ARG_LAZY && parse_int(argv[STASIS_RESTORER_ARG_LAZY]) == 1;
    local.pager_delay_ms = argc > STASIS_RESTORER_ARG_PAGER_DELAY_MS && parse_int(argv[STASIS_RESTORER_ARG_PAGER_DELAY_MS]) > 0
                               ? parse_int(argv[STASIS_RESTORER_ARG_PAGER_DELAY_MS]) : 0;
    local.go_fd = argc > STASIS_RESTORER_ARG_GO_FD ? parse_int(argv[STASIS_RESTORER_ARG_GO_FD]) : -1;
    local.tree_flags = argc > STASIS_RESTORER_ARG_TREE_FLAGS && parse_int(argv[STASIS_RESTORER_ARG_TREE_FLAGS]) > 0
                           ? (uint32_t)parse_int(argv[STASIS_RESTORER_ARG_TREE_FLAGS]) : 0;
    if (local.image_fd < 0 || local.status_fd < 0) rst_fail(&local, "bad descriptor arguments", 0);

    rst_read_header(&local);
    rst_read_plan(&local);
    rst_read_current_maps(&local);
    rst_find_hole(&local);

    /* Build the work region: code copy | stack | vdso scratch | args. */
    long mapped = stasis_syscall6(STASIS_NR_mmap, (long)local.work_start, (long)local.work_bytes, 7 /* rwx */,
                                  RST_MAP_PRIVATE | RST_MAP_ANONYMOUS | RST_MAP_FIXED_NOREPLACE, -1, 0);
    if (mapped != (long)local.work_start) {
        /* Say what was in the way (the maps as they are now), for the report. */
        rst_read_current_maps(&local);
        for (int i = 0; i < local.current_count; i++) {
            if (local.current[i].start < local.work_start + local.work_bytes && local.current[i].end > local.work_start) {
                rst_warn(&local, "the restorer's work region at", local.work_start);
                rst_warn(&local, "overlaps a mapping from", local.current[i].start);
                rst_warn(&local, "to", local.current[i].end);
            }
        }
        rst_fail(&local, "cannot map the restorer's work region", (uint64_t)-mapped);
    }
    memcpy((void *)local.work_start, (void *)local.code_start, local.code_bytes);
    /* code | stack | vdso scratch (vdso_temp) | block buffer | lazy tables | args | thread table | thread stacks | slack page */
    uint64_t threads = local.header.thread_count;
    uint64_t table_bytes = (threads * sizeof(struct rst_thread) + RST_PAGE - 1) & ~(RST_PAGE - 1);
    uint64_t args_bytes = (sizeof local + RST_PAGE - 1) & ~(RST_PAGE - 1);
    local.thread_stacks = local.work_start + local.work_bytes - RST_PAGE - threads * RST_THREAD_STACK_BYTES;
    local.threads = (struct rst_thread *)(local.thread_stacks - table_bytes);
    uint64_t args_at = (uint64_t)local.threads - args_bytes;
    if (local.lazy_requested) rst_lazy_place_tables(&local, args_at - rst_lazy_table_bytes());
    local.block_buffer = (uint8_t *)(args_at - (local.lazy_requested ? rst_lazy_table_bytes() : 0) - 2 * RST_BLOCK_BYTES);
    struct rst_args *args = (struct rst_args *)args_at;
    memcpy(args, &local, sizeof local);
    /* the vdso scratch range must be free for mremap: unmap it within our region */
    uint64_t stack_top = local.work_start + local.code_bytes + RST_STACK_BYTES;
    uint64_t delta = local.work_start - local.code_start;
    uint64_t phase2 = (uint64_t)&rst_phase2 + delta;
    __asm__ volatile("mov %0, %%rsp\n\t"
                     "xor %%ebp, %%ebp\n\t"
                     "call *%1\n\t"
                     "ud2\n"
                     :
                     : "r"(stack_top), "r"(phase2), "D"(args)
                     : "memory");
    __builtin_unreachable();
}

/* The ELF entry point: hand the initial stack pointer (argc, argv...) to rst_start. */
__asm__(".text\n"
        ".globl rst_entry\n"
        ".type rst_entry,@function\n"
        "rst_entry:\n"
        "    mov %rsp, %rdi\n"
        "    and $-16, %rsp\n"
        "    call rst_start\n"
        "    ud2\n");
