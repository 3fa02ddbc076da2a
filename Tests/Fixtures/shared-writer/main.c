/* shared-writer: a snapshot of shared memory must be one instant. A MAP_SHARED|MAP_ANONYMOUS area of
 * 64 MiB is rewritten without pause, page by page in ascending order, each pass with the next
 * generation number. Any instant's state is "pages 0..k at generation g, the rest at g - 1". A torn
 * image (pages read at different moments while the program runs on) would hold pages of generations
 * more than one apart, or a newer page after an older one. After a restart, SIGTERM checks the
 * pattern as it was restored (the first pass after the restore is also checked as it runs), and
 * prints PASS or FAIL. Prints READY once the first pass is done. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#define AREA (64ul << 20)
#define PAGE 4096ul

static volatile sig_atomic_t term;
static void on_term(int s) { (void)s; term = 1; }

/* Non-increasing generations in page order, at most one apart: the state of one instant. */
static int consistent(volatile uint64_t *area, uint64_t *low, uint64_t *high) {
    uint64_t first = area[0], previous = first, last = first;
    for (unsigned long page = 0; page < AREA / PAGE; page++) {
        uint64_t g = area[page * (PAGE / 8)];
        if (g > previous) return 0;
        previous = g;
        last = g;
    }
    *low = last;
    *high = first;
    return first - last <= 1;
}

int main(void) {
    volatile uint64_t *area = mmap(NULL, AREA, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    signal(SIGTERM, on_term);
    uint64_t generation = 0;
    int ready = 0;
    /* The pattern at the start of each pass must be consistent (all pages at one generation): the
     * restored process checks the image's state the moment it notices it was restored, i.e. when a
     * pass finds a page that is not what the previous pass wrote. */
    for (;;) {
        generation++;
        for (unsigned long page = 0; page < AREA / PAGE; page++) {
            uint64_t expected = generation - 1;
            uint64_t found = area[page * (PAGE / 8)];
            if (found != expected) {
                /* Only a restore changes memory under us: check the whole area as restored. */
                uint64_t low = 0, high = 0;
                int ok = consistent(area, &low, &high);
                printf("RESTORED at page %lu: generations %llu..%llu %s\n", page, (unsigned long long)low,
                       (unsigned long long)high, ok ? "consistent" : "TORN");
                fflush(stdout);
                if (!ok) {
                    printf("FAIL torn snapshot\n");
                    fflush(stdout);
                    return 1;
                }
                generation = high + 1;
                page = 0;
                /* Finish bringing every page to `generation - 1` ... then go on as usual. */
                for (unsigned long p = 0; p < AREA / PAGE; p++) area[p * (PAGE / 8)] = generation - 1;
                expected = generation - 1;
            }
            area[page * (PAGE / 8)] = generation;
        }
        if (!ready) {
            ready = 1;
            printf("READY\n");
            fflush(stdout);
        }
        if (term) {
            uint64_t low = 0, high = 0;
            int ok = consistent(area, &low, &high);
            printf("%s\n", ok ? "PASS" : "FAIL at exit");
            return ok ? 0 : 1;
        }
    }
}
