#!/usr/bin/env bash
# Checkpoint/restart benchmark: a memhog (N MiB filled with a pattern) under `stasis run`.
# For each size: checkpoint time, image size, restart time (until the restorer hands over), and `dd`
# writing the same bytes to the same directory with fsync, measured in the same run.
#   Benchmarks/checkpoint.sh [DIR] [SIZES_MIB...]      default: /tmp 64 1024
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-/tmp}; shift || true
SIZES=("${@:-64 1024}"); SIZES=(${SIZES[@]})
swift build -c release >/dev/null
BIN=$(swift build -c release --show-bin-path)
WORK=$(mktemp -d "$DIR/stasis-bench-XXXXXX")
trap 'kill -9 ${RUN:-} ${RESTART:-} 2>/dev/null || true; rm -rf "$WORK"' EXIT
cat > "$WORK/memhog.c" <<'C'
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
int main(int argc, char **argv) {
    size_t bytes = (size_t)atol(argv[1]) << 20;
    uint64_t *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (size_t i = 0; i < bytes / 8; i++) p[i] = i * 0x9e3779b97f4a7c15ull;
    printf("READY\n"); fflush(stdout);
    for (;;) pause();
}
C
cc -O2 -o "$WORK/memhog" "$WORK/memhog.c"
ms() { echo $(( ($2 - $1) / 1000000 )); }
printf "%-8s %14s %14s %12s %14s %12s\n" "MiB" "checkpoint_ms" "image_bytes" "MB/s" "dd_fsync_ms" "restart_ms"
for MIB in "${SIZES[@]}"; do
    rm -f "$WORK"/*.stasis "$WORK"/*.latest "$WORK/out" "$WORK/restored.pid"
    "$BIN/stasis" run --dir "$WORK" -- "$WORK/memhog" "$MIB" > "$WORK/out" 2>&1 &
    RUN=$!
    until grep -q READY "$WORK/out" 2>/dev/null; do sleep 0.05; done
    t0=$(date +%s%N); IMAGE=$("$BIN/stasis" checkpoint "$RUN"); t1=$(date +%s%N)
    SIZE=$(stat -c %s "$IMAGE")
    kill -9 "$RUN"; wait "$RUN" 2>/dev/null || true
    d0=$(date +%s%N); dd if=/dev/zero of="$WORK/dd.bin" bs=1M count="$MIB" conv=fsync status=none; d1=$(date +%s%N)
    rm -f "$WORK/dd.bin"
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    r0=$(date +%s%N)
    "$BIN/stasis" restart --pid-file "$WORK/restored.pid" "$IMAGE" > /dev/null 2>&1 &
    RESTART=$!
    until [ -s "$WORK/restored.pid" ]; do sleep 0.001; done
    r1=$(date +%s%N)
    kill -9 "$(cat "$WORK/restored.pid")" 2>/dev/null || true; wait "$RESTART" 2>/dev/null || true
    CK=$(ms "$t0" "$t1")
    printf "%-8s %14s %14s %12s %14s %12s\n" "$MIB" "$CK" "$SIZE" "$(( SIZE / 1000 / (CK > 0 ? CK : 1) ))" "$(ms "$d0" "$d1")" "$(ms "$r0" "$r1")"
done
