#!/usr/bin/env bash
# Checkpoint/restart benchmark: a memhog (N MiB filled with a pattern) under `stasis run`, for each size:
#   pause (program stopped: --no-fork = in place, cow = the default copy-on-write writer),
#   checkpoint time until the image is published (fsync'd), MB/s, image size, restart time until the
#   program runs again (lazy: the default; then paged_in = until the pager has brought every page in;
#   eager: --eager, every page read first; page cache dropped before each), and in the same run the
#   limits: `dd` writing the same bytes to the same directory with fsync, and memcpy of the same bytes.
#   Then the incremental case: with `stasis run --incremental`, a full image, 1% of the pages rewritten,
#   and an incremental image (mode "incr-1%": its pause, time, size, and the restart through the chain).
#   Benchmarks/checkpoint.sh [DIR] [SIZES_MIB...]      default: /tmp 64 512 2048
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-/tmp}; shift || true
SIZES=("${@:-64 512 2048}"); SIZES=(${SIZES[@]})
swift build -c release >/dev/null
BIN=$(swift build -c release --show-bin-path)
WORK=$(mktemp -d "$DIR/stasis-bench-XXXXXX")
trap 'kill -9 ${RUN:-} ${RESTART:-} 2>/dev/null || true; { [ -s "$WORK/restored.pid" ] && kill -9 "$(cat "$WORK/restored.pid")" 2>/dev/null; } || true; rm -rf "$WORK"' EXIT
cat > "$WORK/memhog.c" <<'C'
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
static volatile sig_atomic_t touch;
static void on_usr1(int signo) { (void)signo; touch = 1; }
int main(int argc, char **argv) {
    signal(SIGUSR1, on_usr1);
    size_t bytes = (size_t)atol(argv[1]) << 20;
    uint64_t *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (size_t i = 0; i < bytes / 8; i++) p[i] = i * 0x9e3779b97f4a7c15ull + 1;
    if (argc > 2) { /* memcpy baseline */
        uint64_t *q = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        memset(q, 1, bytes);
        struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a); memcpy(q, p, bytes); clock_gettime(CLOCK_MONOTONIC, &b);
        printf("%ld\n", (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000);
        return q[bytes / 16] == 7;
    }
    printf("READY\n"); fflush(stdout);
    for (;;) {
        pause();
        if (!touch) continue;
        touch = 0; /* SIGUSR1: rewrite 1% of the pages (every 100th) */
        for (size_t i = 0; i < bytes / 8; i += 512 * 100) p[i] += 1;
        printf("TOUCHED\n"); fflush(stdout);
    }
}
C
cc -O2 -o "$WORK/memhog" "$WORK/memhog.c"
ms() { echo $(( ($2 - $1) / 1000000 )); }
json() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
printf "%-6s %-8s %9s %13s %7s %12s %9s %11s %9s %9s %9s\n" MiB mode pause_ms checkpoint_ms MB/s image_bytes lazy_ms paged_in_ms eager_ms dd_ms memcpy_ms
pager_running() { ps -eo stat=,comm= | grep -v '^Z' | grep -q stasis-pager; }
restart_ms() {  # IMAGE [OPTIONS]: restart until the program runs (ms in LAST_MS); leaves it running in RESTART
    rm -f "$WORK/restored.pid"
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    local r0 r1; r0=$(date +%s%N)
    "$BIN/stasis" restart --pid-file "$WORK/restored.pid" "${@:2}" "$1" > /dev/null 2>&1 &
    RESTART=$!
    until [ -s "$WORK/restored.pid" ]; do sleep 0.001; done
    r1=$(date +%s%N); R0=$r0; LAST_MS=$(( (r1 - r0) / 1000000 ))
}
stop_restored() { kill -9 "$(cat "$WORK/restored.pid")" 2>/dev/null || true; wait "$RESTART" 2>/dev/null || true; }
for MIB in "${SIZES[@]}"; do
    d0=$(date +%s%N); dd if=/dev/zero of="$WORK/dd.bin" bs=1M count="$MIB" conv=fsync status=none; d1=$(date +%s%N)
    rm -f "$WORK/dd.bin"
    MEMCPY=$("$WORK/memhog" "$MIB" memcpy)
    for MODE in in-place cow incr-1%; do
        rm -f "$WORK"/*.stasis "$WORK"/*.latest "$WORK/out" "$WORK/restored.pid"
        FLAG=(); [ "$MODE" = in-place ] && FLAG=(--no-fork); [ "$MODE" = incr-1% ] && FLAG=(--incremental)
        "$BIN/stasis" run --dir "$WORK" "${FLAG[@]}" -- "$WORK/memhog" "$MIB" > "$WORK/out" 2>&1 &
        RUN=$!
        until grep -q READY "$WORK/out" 2>/dev/null; do sleep 0.05; done
        if [ "$MODE" = incr-1% ]; then  # the full parent first, then 1% rewritten
            "$BIN/stasis" checkpoint "$RUN" > /dev/null
            kill -USR1 "$RUN"; until grep -q TOUCHED "$WORK/out" 2>/dev/null; do sleep 0.01; done
        fi
        t0=$(date +%s%N); JSON=$("$BIN/stasis" checkpoint --json "$RUN"); t1=$(date +%s%N)
        IMAGE=$(json "$JSON" image); PAUSE=$(( $(json "$JSON" pause_ns) / 1000000 ))
        SIZE=$(stat -c %s "$IMAGE")
        kill -9 "$RUN"; wait "$RUN" 2>/dev/null || true
        restart_ms "$IMAGE"; LAZY=$LAST_MS
        while pager_running; do sleep 0.005; done
        PAGED=$(( ($(date +%s%N) - R0) / 1000000 ))
        stop_restored
        restart_ms "$IMAGE" --eager; EAGER=$LAST_MS
        stop_restored
        CK=$(ms "$t0" "$t1")
        printf "%-6s %-8s %9s %13s %7s %12s %9s %11s %9s %9s %9s\n" "$MIB" "$MODE" "$PAUSE" "$CK" "$(( SIZE / 1000 / (CK > 0 ? CK : 1) ))" \
            "$SIZE" "$LAZY" "$PAGED" "$EAGER" "$(ms "$d0" "$d1")" "$MEMCPY"
    done
done
