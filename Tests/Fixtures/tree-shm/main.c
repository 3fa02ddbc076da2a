/* tree-shm: shared memory between a parent and a child, anonymous and POSIX shm, with process-shared
 * mutexes.
 *
 *   ANON  mmap(MAP_SHARED|MAP_ANONYMOUS): a mutex and a counter that both processes increment under it
 *         every 200 µs, each also counting its own increments in private memory; a byte pattern.
 *   SHM   shm_open("/stasis-tree-ROOTPID"): a mutex, a pattern, handshake words. Not written while the
 *         test checkpoints and kills (the file outlives the processes, so what a killed run wrote there
 *         would not match the restored processes' memory); used only to verify.
 *
 * Prints "SHM NAME" and "READY CHILD". SIGTERM to the root:
 *   1. the root stops incrementing and sends SIGTERM to the child, which stops too and stores its
 *      own count in ANON (under the mutex);
 *   2. ANON's counter must equal the two private counts (no update lost: the region is one, the mutex
 *      excludes);
 *   3. writes by one are seen by the other: the root puts a token in each region, the child answers
 *      token + 1 through the other region;
 *   4. the SHM mutex excludes across processes: while the root holds it, the child's trylock gets EBUSY;
 *      after the root unlocks, the child's lock succeeds;
 *   5. both patterns are intact (in both processes); the child exits 0; the root unlinks SHM.
 * "PASS shm COUNTER". */
#include "../tree-common/tree_fixture.h" /* first: it defines _GNU_SOURCE */

#include <pthread.h>
#include <sys/mman.h>

#define REGION (64 * 1024)
#define PATTERN_BYTES (REGION - 4096)

typedef struct {
    pthread_mutex_t mutex;
    uint64_t counter;
    uint64_t child_total;
    volatile uint64_t child_done;
    volatile uint64_t ping, pong;
    uint8_t pattern[PATTERN_BYTES] __attribute__((aligned(4096)));
} anon_t;

typedef struct {
    pthread_mutex_t mutex;
    volatile uint64_t ping, pong;
    volatile int32_t held, trylock_result, locked_after;
    uint8_t pattern[PATTERN_BYTES] __attribute__((aligned(4096)));
} shm_t;

_Static_assert(sizeof(anon_t) <= REGION && sizeof(shm_t) <= REGION, "regions");

static uint8_t anon_byte(size_t i) { return (uint8_t)(i * 7 + 3); }
static uint8_t shm_byte(size_t i) { return (uint8_t)(i * 13 + 5); }

static void init_mutex(pthread_mutex_t *mutex) {
    pthread_mutexattr_t attributes;
    int r = pthread_mutexattr_init(&attributes);
    if (r == 0) r = pthread_mutexattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
    if (r == 0) r = pthread_mutex_init(mutex, &attributes);
    errno = r;
    if (r != 0) tf_die("pthread_mutex_init");
    pthread_mutexattr_destroy(&attributes);
}

static void lock(pthread_mutex_t *mutex) {
    int r = pthread_mutex_lock(mutex);
    errno = r;
    if (r != 0) tf_die("pthread_mutex_lock");
}

static void unlock(pthread_mutex_t *mutex) {
    int r = pthread_mutex_unlock(mutex);
    errno = r;
    if (r != 0) tf_die("pthread_mutex_unlock");
}

static int patterns_intact(const char *who, anon_t *anon, shm_t *shm) {
    for (size_t i = 0; i < PATTERN_BYTES; i++) {
        if (anon->pattern[i] != anon_byte(i) || shm->pattern[i] != shm_byte(i)) {
            tf_say("FAIL shm: %s sees byte %zu as %u (anonymous) and %u (shm)", who, i, anon->pattern[i], shm->pattern[i]);
            return 0;
        }
    }
    return 1;
}

/* Waits up to 20 s for *word to become nonzero (or `value` when nonzero). */
static int wait_for(volatile void *word, int is32, uint64_t value) {
    double deadline = tf_now() + 20;
    for (;;) {
        uint64_t now = is32 ? (uint64_t)(uint32_t) * (volatile int32_t *)word : *(volatile uint64_t *)word;
        if (value ? now == value : now != 0) return 1;
        if (tf_now() > deadline) return 0;
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        tf_sleep_ms(1);
    }
}

static int child(anon_t *anon, shm_t *shm) {
    tf_ids_t mine = tf_ids();
    uint64_t count = 0;
    while (!tf_term) {
        lock(&anon->mutex);
        anon->counter++;
        count++;
        unlock(&anon->mutex);
        struct timespec pause = {0, 200000};
        nanosleep(&pause, NULL);
    }
    int ok = patterns_intact("the child", anon, shm);
    lock(&anon->mutex);
    anon->child_total = count;
    anon->child_done = 1;
    unlock(&anon->mutex);
    if (!wait_for(&anon->ping, 0, 0) || !wait_for(&shm->ping, 0, 0)) {
        tf_say("FAIL shm: the child never saw the root's tokens");
        return 1;
    }
    lock(&shm->mutex);
    shm->pong = anon->ping + 1;
    unlock(&shm->mutex);
    lock(&anon->mutex);
    anon->pong = shm->ping + 1;
    unlock(&anon->mutex);
    if (!wait_for(&shm->held, 1, 1)) {
        tf_say("FAIL shm: the root never held the shm mutex");
        return 1;
    }
    int r = pthread_mutex_trylock(&shm->mutex);
    if (r == 0) unlock(&shm->mutex);
    shm->trylock_result = r ? r : -1;
    if (!wait_for(&shm->held, 1, 2)) {
        tf_say("FAIL shm: the root never let the shm mutex go");
        return 1;
    }
    lock(&shm->mutex);
    shm->locked_after = 1;
    unlock(&shm->mutex);
    ok = tf_same_ids("child", mine, 1) && ok;
    return ok ? 0 : 1;
}

int main(void) {
    tf_ids_t ids = tf_ids();
    tf_catch_term();
    anon_t *anon = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    TF_CHECK(anon != MAP_FAILED, "mmap anonymous");
    char name[64];
    snprintf(name, sizeof name, "/stasis-tree-%d", (int)getpid());
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    TF_CHECK(fd >= 0, "shm_open");
    TF_CHECK(ftruncate(fd, REGION) == 0, "ftruncate");
    shm_t *shm = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    TF_CHECK(shm != MAP_FAILED, "mmap shm");
    tf_close(fd);
    init_mutex(&anon->mutex);
    init_mutex(&shm->mutex);
    for (size_t i = 0; i < PATTERN_BYTES; i++) {
        anon->pattern[i] = anon_byte(i);
        shm->pattern[i] = shm_byte(i);
    }
    tf_say("SHM %s", name);
    pid_t pid = tf_fork();
    if (pid == 0) _exit(child(anon, shm));
    tf_ready(&pid, 1);
    uint64_t count = 0;
    while (!tf_term) {
        lock(&anon->mutex);
        anon->counter++;
        count++;
        unlock(&anon->mutex);
        struct timespec pause = {0, 200000};
        nanosleep(&pause, NULL);
    }

    int ok = tf_same_ids("root", ids, 0) && patterns_intact("the root", anon, shm);
    TF_CHECK(kill(pid, SIGTERM) == 0, "kill child");
    if (!wait_for(&anon->child_done, 0, 0)) {
        tf_say("FAIL shm: the child never reported its count through the anonymous region");
        tf_kill_and_reap(pid);
        shm_unlink(name);
        return 1;
    }
    lock(&anon->mutex);
    uint64_t counter = anon->counter, total = count + anon->child_total;
    unlock(&anon->mutex);
    if (counter != total || count == 0 || anon->child_total == 0) {
        tf_say("FAIL shm: the shared counter is %llu; the root added %llu and the child %llu",
               (unsigned long long)counter, (unsigned long long)count, (unsigned long long)anon->child_total);
        ok = 0;
    }
    uint64_t token = ((uint64_t)getpid() << 20) ^ (uint64_t)(tf_now() * 1000);
    lock(&anon->mutex);
    anon->ping = token;
    unlock(&anon->mutex);
    lock(&shm->mutex);
    shm->ping = token ^ 0x5555;
    unlock(&shm->mutex);
    if (!wait_for(&shm->pong, 0, token + 1) || !wait_for(&anon->pong, 0, (token ^ 0x5555) + 1)) {
        tf_say("FAIL shm: tokens %llx/%llx came back as %llx (shm) and %llx (anonymous)", (unsigned long long)token,
               (unsigned long long)(token ^ 0x5555), (unsigned long long)shm->pong, (unsigned long long)anon->pong);
        ok = 0;
    }
    lock(&shm->mutex);
    shm->held = 1;
    if (!wait_for(&shm->trylock_result, 1, 0) || shm->trylock_result != EBUSY) {
        tf_say("FAIL shm: while the root held the shm mutex the child's trylock gave %d", shm->trylock_result);
        ok = 0;
    }
    unlock(&shm->mutex);
    shm->held = 2;
    if (!wait_for(&shm->locked_after, 1, 0)) {
        tf_say("FAIL shm: the child could not take the shm mutex after the root let it go");
        ok = 0;
    }
    int status = 0;
    if (!tf_reap_within(pid, 30, &status) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        tf_say("FAIL shm: the child %s", tf_status_text(status));
        tf_kill_and_reap(pid);
        ok = 0;
    }
    TF_CHECK(shm_unlink(name) == 0, "shm_unlink");
    if (!ok) return 1;
    tf_say("PASS shm %llu", (unsigned long long)counter);
    return 0;
}
