/* constructor.c: runs when libStasisAgent.so is loaded.
 *
 * Only C runs here: the statically linked Swift runtime's own initializers
 * may not have run yet (design-notes.md). Everything the freeze window needs
 * is mapped now, so the handler never has to allocate. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "stasis_shim.h"
#include "stasis_syscall.h"
#include "stasis_protocol.h"

stasis_agent_config_t stasis_config;
stasis_agent_state_t stasis_state = {.magic = STASIS_AGENT_STATE_MAGIC};

void stasis_signal_entry(int signo, siginfo_t *info, void *ucontext);
void stasis_exec_resolve(void);

/* A signal number from the environment: decimal 1-64, anything else 0 (exec_interpose.c reads the new
 * image's environment the same way). */
int stasis_parse_signal(const char *text) {
    int value = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        value = value * 10 + (*p - '0');
        if (value > 64) return 0;
    }
    return value;
}


/* Scratch memory between two PROT_NONE guard pages: the kernel then never merges it with a
 * neighbouring mapping (in this process or a restored one), so /proc/self/maps shows it as its own
 * line and the agent can leave its contents out of images. */
static void *map_scratch(size_t bytes) {
    size_t page = 4096;
    char *region = mmap(NULL, bytes + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (region == MAP_FAILED) return NULL;
    if (mprotect(region + page, bytes, PROT_READ | PROT_WRITE) != 0) {
        munmap(region, bytes + 2 * page);
        return NULL;
    }
    return region + page;
}

/* --key: the signing key goes to scratch memory, which no image contains. */
static void load_key(const char *path, stasis_key_slot_t *slot) {
    if (!path || !*path) return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, slot->key, sizeof slot->key) : -1;
    if (fd >= 0) close(fd);
    if (n <= 0) {
        static const char msg[] = "stasis: cannot read the key file in STASIS_KEY_FILE; images will not be signed\n";
        (void)!write(2, msg, sizeof msg - 1);
        return;
    }
    slot->key_bytes = (uint32_t)n;
}

__attribute__((constructor)) static void stasis_shim_init(void) {
    stasis_exec_resolve(); /* the exec wrappers may run in a vfork child, where dlsym must not */
    const char *dir = getenv(STASIS_ENV_DIR);
    if (dir && *dir && strlen(dir) < sizeof stasis_config.image_dir) {
        strcpy(stasis_config.image_dir, dir);
    } else if (!getcwd(stasis_config.image_dir, sizeof stasis_config.image_dir)) {
        strcpy(stasis_config.image_dir, "/tmp");
    }
    const char *keep = getenv(STASIS_ENV_KEEP);
    if (keep) {
        long n = 0;
        for (const char *p = keep; *p >= '0' && *p <= '9' && n < 1000000; p++) n = n * 10 + (*p - '0');
        stasis_config.keep = (uint32_t)n;
    }
    const char *fork_writer = getenv(STASIS_ENV_FORK);
    stasis_config.fork_writer = !fork_writer || fork_writer[0] != '0'; /* copy-on-write unless STASIS_FORK=0 */
    const char *incremental = getenv(STASIS_ENV_INCREMENTAL);
    stasis_config.incremental = incremental && incremental[0] == '1';
    const char *compress = getenv(STASIS_ENV_COMPRESS);
    stasis_config.compress = compress && compress[0] == '1';
    const char *max_chain = getenv(STASIS_ENV_MAX_CHAIN);
    stasis_config.max_chain = 8;
    if (max_chain && *max_chain) {
        long n = 0;
        for (const char *p = max_chain; *p >= '0' && *p <= '9' && n < 100000; p++) n = n * 10 + (*p - '0');
        if (n >= 1) stasis_config.max_chain = (uint32_t)n;
    }
    const char *skip = getenv(STASIS_ENV_SKIP_UNSUPPORTED);
    stasis_config.skip_unsupported = skip && skip[0] == '1';
    const char *sig = getenv(STASIS_ENV_SIGNAL);
    stasis_config.trigger_signal = sig ? stasis_parse_signal(sig) : 0;
    if (stasis_config.trigger_signal <= 0 || stasis_config.trigger_signal == SIGKILL ||
        stasis_config.trigger_signal == SIGSTOP) {
        stasis_config.trigger_signal = SIGUSR2;
    }

    void *arena = map_scratch(STASIS_ARENA_BYTES);
    void *stack = map_scratch(STASIS_STACK_BYTES);
    if (!arena || !stack) {
        static const char msg[] = "stasis: cannot map agent memory; checkpoints are disabled for this process\n";
        (void)!write(2, msg, sizeof msg - 1);
        return;
    }
    stasis_config.arena_start = (uint64_t)arena;
    stasis_config.arena_bytes = STASIS_ARENA_BYTES;
    stasis_config.slots_start = (uint64_t)arena;
    stasis_config.key_slot = (uint64_t)arena + STASIS_ARENA_BYTES - sizeof(stasis_key_slot_t);
    load_key(getenv(STASIS_ENV_KEY_FILE), (stasis_key_slot_t *)stasis_config.key_slot);
    stasis_config.tracking_slot = stasis_config.key_slot - STASIS_TRACKING_BYTES;
    stasis_config.slot_capacity = STASIS_MAX_THREADS;
    stasis_config.stack_start = (uint64_t)stack;
    stasis_config.stack_bytes = STASIS_STACK_BYTES;

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = stasis_signal_entry;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&action.sa_mask); /* nothing interrupts a checkpoint */
    extern int __sigaction(int, const struct sigaction *, struct sigaction *);
    const char *exit_signal = getenv(STASIS_ENV_EXIT_SIGNAL);
    stasis_config.exit_signal = exit_signal ? stasis_parse_signal(exit_signal) : 0;
    if (stasis_config.exit_signal == SIGKILL || stasis_config.exit_signal == SIGSTOP ||
        stasis_config.exit_signal == stasis_config.trigger_signal)
        stasis_config.exit_signal = 0;
    const char *exit_code = getenv(STASIS_ENV_EXIT_CODE);
    if (exit_code && *exit_code) {
        int code = 0;
        for (const char *p = exit_code; *p >= '0' && *p <= '9' && code < 256; p++) code = code * 10 + (*p - '0');
        stasis_config.exit_code = code & 0xff;
    }
    if (stasis_config.exit_signal && __sigaction(stasis_config.exit_signal, &action, NULL) != 0) {
        static const char msg[] = "stasis: cannot install the checkpoint-on signal handler\n";
        (void)!write(2, msg, sizeof msg - 1);
    }
    if (__sigaction(stasis_config.trigger_signal, &action, NULL) != 0) { /* the real one: ours is interposed */
        static const char msg[] = "stasis: cannot install the checkpoint signal handler\n";
        (void)!write(2, msg, sizeof msg - 1);
        return;
    }
    /* The exec that started this image blocked these in the kernel (exec_interpose.c), so that a trigger
     * during the exec waited for this handler. They stay blocked until main (start_interpose.c): the
     * Swift runtime's initializers and the program's constructors run after this one, and a checkpoint
     * must not catch them half-done. The kernel never blocks them once the program runs (the program's
     * view, unblocked after an exec, is signal_interpose.c's). */
}
