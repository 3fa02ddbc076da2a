/* pty-pair: owns a pseudo-terminal pair (as terminal emulators, expect and tmux do), with the slave in
 * raw mode and a window size. On SIGTERM: the pair must still be a connected pair with those settings.
 * Prints READY, then PASS or FAIL <what>. */
#define _XOPEN_SOURCE 600
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static volatile sig_atomic_t terminate_requested;
static void on_term(int signo) { (void)signo; terminate_requested = 1; }

int main(void) {
    signal(SIGTERM, on_term);
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    grantpt(master);
    unlockpt(master);
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    struct termios modes;
    tcgetattr(slave, &modes);
    cfmakeraw(&modes);
    tcsetattr(slave, TCSANOW, &modes);
    struct winsize size = {.ws_row = 33, .ws_col = 111};
    ioctl(master, TIOCSWINSZ, &size);
    printf("READY\n");
    fflush(stdout);
    while (!terminate_requested) usleep(1000);
    struct termios now;
    struct winsize now_size;
    if (tcgetattr(slave, &now) != 0 || (now.c_lflag & (ECHO | ICANON))) { printf("FAIL slave modes\n"); return 1; }
    if (ioctl(slave, TIOCGWINSZ, &now_size) != 0 || now_size.ws_row != 33 || now_size.ws_col != 111) {
        printf("FAIL window size\n");
        return 1;
    }
    if (write(master, "ping", 4) != 4) { printf("FAIL write to master\n"); return 1; }
    char got[8] = {0};
    usleep(20000);
    if (read(slave, got, 4) != 4 || strcmp(got, "ping") != 0) { printf("FAIL pair not connected\n"); return 1; }
    printf("PASS\n");
    return 0;
}
