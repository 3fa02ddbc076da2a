#!/usr/bin/env bash
# Many-mappings benchmark (issue 16): a program with 30,000 one-page anonymous areas between PROT_NONE
# gaps (60,000 mappings), every page written. Per run: the checkpoint pause and total (agent clock,
# `stasis checkpoint --json`) copy-on-write and in place (--no-fork), then the restart time until the
# program runs again (--pid-file written; lazy = the default, and --eager) of the copy-on-write image.
# Runs are interleaved; the medians are printed last.
#   [STASIS_BIN=DIR] Benchmarks/mappings.sh [RUNS] [AREAS] [DIR]      default: 5 30000 /tmp
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}; AREAS=${2:-30000}; DIR=${3:-/tmp}
if [ -z "${STASIS_BIN:-}" ]; then swift build -c release >/dev/null; fi
BIN=${STASIS_BIN:-$(swift build -c release --show-bin-path)}  # STASIS_BIN: another build's bin dir
WORK=$(mktemp -d "$DIR/stasis-maps-XXXXXX")
trap 'kill -9 ${RUN:-} ${RESTART:-} 2>/dev/null || true; { [ -s "$WORK/restored.pid" ] && kill -9 "$(cat "$WORK/restored.pid")" 2>/dev/null; } || true; rm -rf "$WORK"' EXIT
cat > "$WORK/areas.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long areas = atol(argv[1]), page = sysconf(_SC_PAGESIZE);
    char *base = mmap(NULL, (size_t)(2 * areas + 1) * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) { perror("mmap"); return 1; }
    for (long i = 0; i < areas; i++) {  /* page 2i+1 readable and writable, its neighbours PROT_NONE */
        char *p = base + (2 * i + 1) * page;
        if (mprotect(p, page, PROT_READ | PROT_WRITE) != 0) { perror("mprotect"); return 1; }
        p[0] = (char)(i * 7 + 1); p[page - 1] = (char)i;
    }
    printf("READY\n"); fflush(stdout);
    for (;;) pause();
}
C
cc -O2 -o "$WORK/areas" "$WORK/areas.c"
json() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
restart_ms() {  # IMAGE [OPTIONS]: ms until the restored program runs (its pid file is written)
    rm -f "$WORK/restored.pid"
    local r0 r1; r0=$(date +%s%N)
    "$BIN/stasis" restart --pid-file "$WORK/restored.pid" "${@:2}" "$1" > "$WORK/restart.out" 2>&1 &
    RESTART=$!
    until [ -s "$WORK/restored.pid" ]; do
        kill -0 "$RESTART" 2>/dev/null || { cat "$WORK/restart.out" >&2; exit 1; }
        sleep 0.001
    done
    r1=$(date +%s%N); LAST_MS=$(( (r1 - r0) / 1000000 ))
    kill -9 "$(cat "$WORK/restored.pid")" 2>/dev/null || true; wait "$RESTART" 2>/dev/null || true
}
checkpoint() {  # MODE: one checkpoint; PAUSE, TOTAL (ms), IMAGE
    rm -f "$WORK"/*.stasis "$WORK"/*.latest "$WORK/out"
    local flag=(); [ "$1" = in-place ] && flag=(--no-fork)
    "$BIN/stasis" run --dir "$WORK" "${flag[@]}" -- "$WORK/areas" "$AREAS" > "$WORK/out" 2>&1 &
    RUN=$!
    until grep -q READY "$WORK/out" 2>/dev/null; do sleep 0.05; done
    local out; out=$("$BIN/stasis" checkpoint --json "$RUN")
    IMAGE=$(json "$out" image); PAUSE=$(( $(json "$out" pause_ns) / 1000000 )); TOTAL=$(( $(json "$out" total_ns) / 1000000 ))
    kill -9 "$RUN"; wait "$RUN" 2>/dev/null || true
}
printf "%-4s %10s %10s %11s %11s %8s %9s\n" run cow_pause cow_total place_pause place_total lazy_ms eager_ms
declare -a CP CT IP IT LZ EG
for r in $(seq "$RUNS"); do
    checkpoint in-place; IP+=("$PAUSE"); IT+=("$TOTAL")
    checkpoint cow; CP+=("$PAUSE"); CT+=("$TOTAL")
    restart_ms "$IMAGE"; LZ+=("$LAST_MS")
    restart_ms "$IMAGE" --eager; EG+=("$LAST_MS")
    printf "%-4s %10s %10s %11s %11s %8s %9s\n" "$r" "${CP[-1]}" "${CT[-1]}" "${IP[-1]}" "${IT[-1]}" "${LZ[-1]}" "${EG[-1]}"
done
median() { printf "%s\n" "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf "%-4s %10s %10s %11s %11s %8s %9s\n" med "$(median "${CP[@]}")" "$(median "${CT[@]}")" "$(median "${IP[@]}")" \
    "$(median "${IT[@]}")" "$(median "${LZ[@]}")" "$(median "${EG[@]}")"
