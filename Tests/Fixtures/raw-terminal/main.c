/* raw-terminal: puts its terminal (fd 0) in raw mode, no echo, as editors and REPLs do.
 * On SIGTERM checks that fd 0 is a terminal still in that mode: PASS or FAIL. */
#include <signal.h>
#include <stdio.h>
#include <termios.h>
#include <unistd.h>

static volatile sig_atomic_t terminate_requested;
static void on_term(int signo) { (void)signo; terminate_requested = 1; }

int main(void) {
    signal(SIGTERM, on_term);
    struct termios modes;
    if (tcgetattr(0, &modes) != 0) { printf("FAIL not a terminal\n"); return 1; }
    modes.c_lflag &= ~(ECHO | ICANON);
    modes.c_cc[VMIN] = 3;
    tcsetattr(0, TCSANOW, &modes);
    printf("READY\n");
    fflush(stdout);
    while (!terminate_requested) usleep(1000);
    struct termios now;
    if (tcgetattr(0, &now) != 0) { printf("FAIL fd 0 is no terminal after restart\n"); return 1; }
    if (now.c_lflag & (ECHO | ICANON) || now.c_cc[VMIN] != 3) { printf("FAIL terminal modes lost\n"); return 1; }
    printf("PASS\n");
    return 0;
}
