/* two-threads: a program with a second thread, which this version refuses to checkpoint. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static void *idle(void *arg) { (void)arg; for (;;) pause(); return NULL; }
int main(void) {
    pthread_t thread;
    pthread_create(&thread, NULL, idle, NULL);
    printf("READY\n");
    fflush(stdout);
    for (;;) pause();
}
