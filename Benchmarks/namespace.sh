#!/usr/bin/env bash
# Restart time with and without the PID namespace path (issue 14): `stasis restart --eager` of a small
# program (4 threads, 16 MiB written) that was blocked reading stdin; restart gives it /dev/null, so as
# soon as it runs again it writes one byte to stdout and ends. Two times per run, from the start of
# `stasis restart`: to that byte (the program runs again: what a restart costs) and to restart's exit
# (adds the program's end and, in a namespace, the namespace's teardown). Median and max of N runs,
# the modes interleaved:
#   root, host PIDs        the original PID is free: clone3 set_tid on the host (the baseline)
#   root, namespace        the original still runs (stopped), so its PID is taken: a PID namespace
#   uid 65534, namespace   an ordinary user: user + PID + mount namespace, fresh /proc
#   uid 65534, new PID     the same with --no-namespace (new PID, patched TIDs)
#   Benchmarks/namespace.sh [RUNS]     default 20; needs root (and setpriv for uid 65534)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}
swift build -c release >/dev/null
BIN=$(swift build -c release --show-bin-path)
WORK=$(mktemp -d /tmp/stasis-namespace-XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cat > "$WORK/reader.c" <<'C'
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static void *idle(void *arg) { (void)arg; for (;;) pause(); }
int main(void) {
    char *heap = malloc(16 << 20);
    memset(heap, 7, 16 << 20);
    pthread_t t;
    for (int i = 0; i < 3; i++) pthread_create(&t, 0, idle, 0);
    char c;
    while (read(0, &c, 1) > 0) {}
    write(1, "x", 1);
    return heap[100] == 7 ? 0 : 1;
}
C
cat > "$WORK/clock.c" <<'C'
/* clock COMMAND...: runs COMMAND with stdout a pipe and stdin /dev/null; prints the microseconds to
 * the first byte on that pipe and to COMMAND's exit (which must be 0). */
#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static long long now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000LL + t.tv_nsec / 1000; }
int main(int argc, char **argv) {
    int p[2];
    if (argc < 2 || pipe(p)) return 2;
    long long start = now();
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0); dup2(p[1], 1); dup2(null, 2);
        close(p[0]); close(p[1]);
        execvp(argv[1], argv + 1);
        _exit(127);
    }
    close(p[1]);
    char c;
    long long first = read(p[0], &c, 1) == 1 ? now() - start : -1;
    int status;
    waitpid(pid, &status, 0);
    long long end = now() - start;
    printf("%lld %lld\n", first, end);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 && first >= 0 ? 0 : 1;
}
C
cc -O1 -pthread "$WORK/reader.c" -o "$WORK/reader"
cc -O1 "$WORK/clock.c" -o "$WORK/clock"
AS_USER=(setpriv --reuid=65534 --regid=65534 --clear-groups)

# Starts the reader under `stasis run` (as $1: root or user) reading a fifo nobody writes; prints its image.
checkpointed() {
    local who=$1 dir="$WORK/$1" fifo="$WORK/$1.fifo"
    mkdir -p "$dir"; chmod 777 "$dir"
    local prefix=(); [ "$who" = user ] && prefix=("${AS_USER[@]}")
    "${prefix[@]}" "$BIN/stasis" run --dir "$dir" -- "$WORK/reader" < "$fifo" > /dev/null 2>&1 &
    local pid=$!
    sleep 0.5
    "${prefix[@]}" "$BIN/stasis" checkpoint --dir "$dir" "$pid" | tail -1
    echo "$pid" > "$WORK/$who.pid"
}
# Each fifo is held open read-write here: readers never see its end, and opening it never blocks.
for who in root user; do mkfifo "$WORK/$who.fifo"; chmod 666 "$WORK/$who.fifo"; done
exec 7<>"$WORK/root.fifo" 8<>"$WORK/user.fifo"
ROOT_IMAGE=$(checkpointed root)
USER_IMAGE=$(checkpointed user)
ROOT_PID=$(cat "$WORK/root.pid")
PIDS+=("$ROOT_PID" "$(cat "$WORK/user.pid")")
kill -STOP "$ROOT_PID"          # root's original stays, stopped: its PID is taken for the namespace mode
kill -9 "$(cat "$WORK/user.pid")"

declare -A times ends
measure() {  # mode command...: adds the run's two times (µs) to times[mode] and ends[mode]
    local mode=$1; shift
    local result
    result=$("$WORK/clock" "$@") || { echo "a restart failed: $*" >&2; exit 1; }
    times[$mode]+="${result% *} "
    ends[$mode]+="${result#* } "
}
for ((i = 0; i < RUNS; i++)); do
    # root, host: the PID must be free: the original goes for this run and comes back stopped
    kill -9 "$ROOT_PID"; while [ -e "/proc/$ROOT_PID" ]; do sleep 0.01; done
    measure host "$BIN/stasis" restart --eager --fd 0=inherit --fd 1=inherit "$ROOT_IMAGE"
    "$BIN/stasis" restart --eager --no-namespace "$ROOT_IMAGE" < "$WORK/root.fifo" > /dev/null 2>&1 &
    PIDS+=("$!"); disown "$!"   # it ends by SIGKILL with its program: no job report
    while [ ! -e "/proc/$ROOT_PID" ]; do sleep 0.01; done
    kill -STOP "$ROOT_PID"
    measure rootns "$BIN/stasis" restart --eager --fd 0=inherit --fd 1=inherit "$ROOT_IMAGE"
    measure userns "${AS_USER[@]}" "$BIN/stasis" restart --eager --fd 0=inherit --fd 1=inherit "$USER_IMAGE"
    measure usernew "${AS_USER[@]}" "$BIN/stasis" restart --eager --no-namespace --fd 0=inherit --fd 1=inherit "$USER_IMAGE"
done
stats() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {printf "%8.2f %8.2f", a[int((NR+1)/2)]/1000, a[NR]/1000}'; }
printf "%-24s %17s %17s   %s\n" "" "running again" "restart ended" "(ms, $RUNS runs, interleaved)"
printf "%-24s %8s %8s %8s %8s\n" mode median max median max
for mode in host rootns userns usernew; do
    case $mode in host) name="root, host PIDs";; rootns) name="root, namespace";; userns) name="uid 65534, namespace";; usernew) name="uid 65534, new PID";; esac
    printf "%-24s %s %s\n" "$name" "$(echo "${times[$mode]}" | stats)" "$(echo "${ends[$mode]}" | stats)"
done
