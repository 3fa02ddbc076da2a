/* blocked-read: sits in read(0) when checkpointed. After restart the same
 * read must continue (SA_RESTART: the kernel wound rip back to the syscall)
 * and return what is written to restart's stdin. Prints "GOT <line>" and
 * PASS, or FAIL with errno. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    printf("READY\n");
    fflush(stdout);
    char buffer[64] = {0};
    ssize_t n = read(0, buffer, sizeof buffer - 1);
    if (n <= 0) {
        printf("FAIL read returned %zd errno %d\n", n, errno);
        return 1;
    }
    printf("GOT %s", buffer);
    printf(strncmp(buffer, "hello", 5) == 0 ? "PASS\n" : "FAIL data\n");
    return 0;
}
