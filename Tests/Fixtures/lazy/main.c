/* lazy: a fixture for lazy restart. It fills PAGES pages with a pattern and waits. After a restart,
 * SIGUSR1 makes it use its memory in every way that must work while pages are still being brought
 * in: a system call reading from a page not there yet and one writing into one, MADV_DONTNEED,
 * mremap, munmap and fork (the child checks every page), then it checks every page itself and
 * prints "LAZY 1" if its memory was still registered for lazy paging at the start (smaps "um"),
 * then "LAZYCHECK PASS" or "LAZYCHECK FAIL <what>". SIGTERM: a final check, PASS or FAIL.
 *
 *   lazy PAGES */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
static volatile sig_atomic_t terminate_requested, exercise_requested;
static void on_term(int signo) { (void)signo; terminate_requested = 1; }
static void on_usr1(int signo) { (void)signo; exercise_requested = 1; }

static uint64_t word(long page, int i) { return (uint64_t)page * 0x9e3779b97f4a7c15ull ^ (uint64_t)i ^ 0x5a5a000000000000ull; }
static void fill(unsigned char *p, long page) {
    for (int i = 0; i < PAGE / 8; i++) ((uint64_t *)p)[i] = word(page, i);
}
static int holds(const unsigned char *p, long page) { /* page < 0: zero */
    for (int i = 0; i < PAGE / 8; i++)
        if (((const uint64_t *)p)[i] != (page < 0 ? 0 : word(page, i))) return 0;
    return 1;
}

static long pages;
static unsigned char *buffer, *moved;
/* what each page of `buffer` must hold: its own pattern, -1 zero, -2 gone (moved or unmapped) */
static long *expect;

static const char *check_all(void) {
    for (long i = 0; i < pages; i++) {
        if (expect[i] == -2) continue;
        if (!holds(buffer + i * PAGE, expect[i])) return "buffer page";
    }
    for (long i = 0; i < 1000; i++)
        if (!holds(moved + i * PAGE, 1000 + i)) return "moved page";
    return 0;
}

static int lazily_registered(void) {
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int found = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmFlags:", 8) && strstr(line, " um")) found = 1;
    if (f) fclose(f);
    return found;
}

static const char *exercise(void) {
    printf("LAZY %d\n", lazily_registered());
    fflush(stdout);
    int fds[2];
    if (pipe(fds)) return "pipe";
    /* write(2) from a page not yet there, read it back */
    unsigned char copy[PAGE];
    if (write(fds[1], buffer + 10 * PAGE, PAGE) != PAGE || read(fds[0], copy, PAGE) != PAGE || !holds(copy, 10)) return "write from page";
    /* read(2) into a page not yet there: page 20 then holds page 21's pattern */
    unsigned char other[PAGE];
    fill(other, 21);
    if (write(fds[1], other, PAGE) != PAGE || read(fds[0], buffer + 20 * PAGE, PAGE) != PAGE) return "read into page";
    expect[20] = 21;
    close(fds[0]);
    close(fds[1]);
    madvise(buffer + 100 * PAGE, 100 * PAGE, MADV_DONTNEED);
    for (long i = 100; i < 200; i++) expect[i] = -1;
    unsigned char *to = mmap(NULL, 1000 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    moved = mremap(buffer + 1000 * PAGE, 1000 * PAGE, 1000 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to);
    if (moved == MAP_FAILED) return "mremap";
    for (long i = 1000; i < 2000; i++) expect[i] = -2;
    munmap(buffer + 3000 * PAGE, 100 * PAGE);
    for (long i = 3000; i < 3100; i++) expect[i] = -2;
    pid_t child = fork();
    if (child == 0) _exit(check_all() ? 1 : 0);
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return "forked child";
    /* many short-lived children, as a shell makes: each checks a few pages and exits */
    for (int n = 0; n < 100; n++) {
        pid_t quick = fork();
        if (quick == 0) {
            for (long k = 0; k < 8; k++) {
                long i = 4000 + (n * 97 + k * 13) % (pages - 4000);
                if (expect[i] != -2 && !holds(buffer + i * PAGE, expect[i])) _exit(1);
            }
            _exit(0);
        }
        if (quick < 0 || waitpid(quick, &status, 0) != quick || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return "short-lived child";
    }
    return check_all();
}

int main(int argc, char **argv) {
    pages = argc > 1 ? atol(argv[1]) : 65536;
    if (pages < 4096) pages = 4096;
    signal(SIGTERM, on_term);
    signal(SIGUSR1, on_usr1);
    buffer = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect = calloc(pages, sizeof *expect);
    if (buffer == MAP_FAILED || !expect) return 1;
    for (long i = 0; i < pages; i++) {
        fill(buffer + i * PAGE, i);
        expect[i] = i;
    }
    moved = buffer + 1000 * PAGE; /* until it is moved */
    printf("READY\n");
    fflush(stdout);
    while (!terminate_requested) {
        if (exercise_requested) {
            exercise_requested = 0;
            const char *failure = exercise();
            printf(failure ? "LAZYCHECK FAIL %s\n" : "LAZYCHECK PASS\n", failure);
            fflush(stdout);
        }
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
    const char *failure = check_all();
    printf(failure ? "FAIL %s\n" : "PASS\n", failure);
    fflush(stdout);
    return failure ? 1 : 0;
}
