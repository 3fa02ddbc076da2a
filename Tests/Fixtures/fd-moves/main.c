/* fd-moves: stasis_spawn_install's parallel move (CStasisSpawn/spawn.c), compiled in with clang. Each
 * case runs in a forked child (the install closes every fd that is not a target): sources that are
 * other moves' targets, cycles, a source read by several moves, a move onto its own source, a target
 * held by an unrelated fd. The child checks each target's object (by inode) and its close-on-exec
 * flag, and that the other fds are closed. Prints PASS or FAIL <case> <step>. */
#define _GNU_SOURCE
#include "../../../Sources/CStasisSpawn/spawn.c"

#include <sys/wait.h>

#define MAX_FDS 64
static ino_t inode_of(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

/* A fresh pipe end at `fd` (close-on-exec, as the launcher's sources are); its inode. */
static ino_t object_at(int fd) {
    int ends[2];
    if (pipe2(ends, O_CLOEXEC) != 0) return 0;
    if (ends[0] != fd) {
        dup3(ends[0], fd, O_CLOEXEC);
        close(ends[0]);
    }
    close(ends[1]);
    return inode_of(fd);
}

/* 0 when every move's target holds its source's original object, without close-on-exec, and every
 * fd up to MAX_FDS that is no target (nor kept stdio) is closed; else the failing step. */
static int run_case(const stasis_fd_move_t *moves, int count) {
    ino_t before[MAX_FDS] = {0};
    for (int i = 0; i < count; i++) {
        if (!before[moves[i].source]) before[moves[i].source] = object_at(moves[i].source);
    }
    stasis_spawn_plan_t plan = {.path = "/nonexistent", .argv = NULL, .moves = moves, .move_count = count, .keep_stdio = 7};
    int32_t error = 0;
    if (stasis_spawn_install(&plan, &error) != 0) return 100 + error;
    for (int i = 0; i < count; i++) {
        if (inode_of(moves[i].target) != before[moves[i].source]) return 1 + i;
        if (fcntl(moves[i].target, F_GETFD) != 0) return 40 + i;
    }
    for (int fd = 3; fd < MAX_FDS; fd++) {
        int target = 0;
        for (int i = 0; i < count; i++) target |= moves[i].target == fd;
        if (!target && fcntl(fd, F_GETFD) >= 0) return 80;
    }
    return 0;
}

#define M(s, t) {(s), (t), 0, 0}
int main(void) {
    static const stasis_fd_move_t swap[] = {M(10, 11), M(11, 10)};
    static const stasis_fd_move_t mixed[] = {
        M(20, 21), M(21, 22), M(22, 20),  /* a cycle of three */
        M(30, 30),                        /* onto its own source: only close-on-exec changes */
        M(31, 32), M(31, 33), M(32, 34),  /* one source twice; 32's object must leave before 31's comes */
        M(33, 35),                        /* a chain through a target that another move writes */
        M(40, 4),                         /* a low target */
        M(41, 42), M(42, 41), M(41, 43),  /* a swap whose one side is also read a second time */
    };
    static const stasis_fd_move_t chain[] = {M(5, 6), M(6, 7), M(7, 8), M(8, 9), M(9, 50)};
    struct { const char *name; const stasis_fd_move_t *moves; int count; } cases[] = {
        {"swap", swap, 2}, {"mixed", mixed, (int)(sizeof mixed / sizeof mixed[0])}, {"chain", chain, 5},
    };
    int failed = 0;
    for (unsigned c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        pid_t child = fork();
        if (child == 0) _exit(run_case(cases[c].moves, cases[c].count));
        int status = 0;
        waitpid(child, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            printf("FAIL %s %d\n", cases[c].name, WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
            failed = 1;
        }
    }
    if (!failed) printf("PASS\n");
    return failed;
}
