/* memfd-shared: files mapped MAP_SHARED must stay one file with their descriptors and with each other.
 *   A: a memfd (fd kept, sealed F_SEAL_GROW|F_SEAL_SHRINK), mapped shared twice
 *   B: a memfd mapped shared twice, its fd closed (the mappings are all that holds it)
 *   C: a regular file in DIR (argv[1]), mapped shared, deleted, fd kept
 * Writes a pattern through the mappings before READY. On SIGTERM: the pattern is there, a write through
 * each fd shows in its mappings and a write through a mapping shows through the fd and the other
 * mapping, the seals are the same. Prints PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile sig_atomic_t terminate_requested;
static void on_term(int signo) { (void)signo; terminate_requested = 1; }
static int failed;
static void fail(const char *what) { printf("FAIL %s\n", what); failed = 1; }

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    signal(SIGTERM, on_term);
    int a = memfd_create("shared-a", MFD_ALLOW_SEALING);
    if (a < 0 || ftruncate(a, 8192) != 0) return 1;
    char *a1 = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0);
    char *a2 = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, a, 4096);
    if (a1 == MAP_FAILED || a2 == MAP_FAILED) return 1;
    if (fcntl(a, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) != 0) return 1;
    strcpy(a1, "pattern-a");
    strcpy(a1 + 4096, "second-page");

    int b = memfd_create("shared-b", 0);
    if (b < 0 || ftruncate(b, 4096) != 0) return 1;
    char *b1 = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, b, 0);
    char *b2 = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, b, 0);
    if (b1 == MAP_FAILED || b2 == MAP_FAILED) return 1;
    close(b);
    strcpy(b1, "pattern-b");

    char path[4096];
    snprintf(path, sizeof path, "%s/mapped-file", argv[1]);
    int c = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (c < 0 || ftruncate(c, 4096) != 0) return 1;
    char *c1 = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, c, 0);
    if (c1 == MAP_FAILED) return 1;
    unlink(path);
    strcpy(c1, "pattern-c");

    printf("READY\n");
    fflush(stdout);
    while (!terminate_requested) usleep(1000);

    char got[32] = {0};
    if (strcmp(a1, "pattern-a") != 0 || strcmp(a2, "second-page") != 0) fail("memfd A contents");
    if (pread(a, got, 9, 0) != 9 || strcmp(got, "pattern-a") != 0) fail("memfd A through its fd");
    if (pwrite(a, "via-fd", 6, 4096) != 6 || memcmp(a1 + 4096, "via-fd", 6) != 0) fail("memfd A: fd write not in mapping 1");
    if (memcmp(a2, "via-fd", 6) != 0) fail("memfd A: fd write not in mapping 2");
    memcpy(a2 + 100, "via-map", 7);
    memset(got, 0, sizeof got);
    if (pread(a, got, 7, 4196) != 7 || strcmp(got, "via-map") != 0) fail("memfd A: mapping write not seen through the fd");
    if (memcmp(a1 + 4196, "via-map", 7) != 0) fail("memfd A: mapping 2 write not in mapping 1");
    if (fcntl(a, F_GET_SEALS) != (F_SEAL_GROW | F_SEAL_SHRINK)) fail("memfd A seals");

    if (strcmp(b1, "pattern-b") != 0) fail("memfd B contents");
    memcpy(b1 + 200, "one-file", 8);
    if (memcmp(b2 + 200, "one-file", 8) != 0) fail("memfd B: the two mappings are no longer one file");

    if (strcmp(c1, "pattern-c") != 0) fail("deleted file contents");
    if (pwrite(c, "via-fd", 6, 300) != 6 || memcmp(c1 + 300, "via-fd", 6) != 0) fail("deleted file: fd write not in mapping");
    memcpy(c1 + 400, "via-map", 7);
    memset(got, 0, sizeof got);
    if (pread(c, got, 7, 400) != 7 || strcmp(got, "via-map") != 0) fail("deleted file: mapping write not seen through the fd");
    if (!failed) printf("PASS\n");
    return failed;
}
