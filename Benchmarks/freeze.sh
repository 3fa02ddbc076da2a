#!/usr/bin/env bash
# Freeze latency (checkpoint start to every thread stopped in its handler) and pause (start to thaw)
# for programs with 1, 8 and 64 busy threads; median and max of 20 checkpoints each, from the agent's
# own clock (`stasis checkpoint --json`). The images are small (a few MiB), so the pause is mostly
# the freeze plus writing memory.
#   Benchmarks/freeze.sh [DIR] [THREADS...]      default: /tmp 1 8 64
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-/tmp}; shift || true
COUNTS=("${@:-1 8 64}"); COUNTS=(${COUNTS[@]})
swift build -c release >/dev/null
BIN=$(swift build -c release --show-bin-path)
WORK=$(mktemp -d "$DIR/stasis-freeze-XXXXXX")
trap 'kill -9 ${RUN:-} 2>/dev/null || true; rm -rf "$WORK"' EXIT
cat > "$WORK/busy.c" <<'C'
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static volatile long sink[256];
static void *spin(void *arg) { long i = (long)arg; for (;;) sink[i]++; return NULL; }
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    for (long i = 1; i < n; i++) { pthread_t t; pthread_create(&t, NULL, spin, (void *)i); }
    printf("READY\n"); fflush(stdout);
    for (;;) pause();
}
C
cc -O2 -o "$WORK/busy" "$WORK/busy.c"
printf "%-8s %16s %16s %16s %16s\n" threads freeze_med_us freeze_max_us pause_med_us pause_max_us
for N in "${COUNTS[@]}"; do
    "$BIN/stasis" run --dir "$WORK" -- "$WORK/busy" "$N" > "$WORK/out" 2>&1 &
    RUN=$!
    until grep -q READY "$WORK/out" 2>/dev/null; do sleep 0.05; done
    : > "$WORK/times"
    for _ in $(seq 20); do
        JSON=$("$BIN/stasis" checkpoint --json "$RUN")
        python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["freeze_ns"], d["pause_ns"], d["threads"])' "$JSON" >> "$WORK/times"
        rm -f "$WORK"/*.stasis
    done
    kill -9 "$RUN"; wait "$RUN" 2>/dev/null || true
    python3 - "$WORK/times" "$N" <<'PY'
import statistics, sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
f = [r[0] / 1000 for r in rows]; p = [r[1] / 1000 for r in rows]
assert all(r[2] == int(sys.argv[2]) for r in rows), "thread count mismatch"
print(f"{sys.argv[2]:<8} {statistics.median(f):16.0f} {max(f):16.0f} {statistics.median(p):16.0f} {max(p):16.0f}")
PY
done
