#!/usr/bin/env bash
# Process trees: freeze latency (start to every process of the tree stopped), pause (start to thaw)
# and checkpoint time (start to the tree's directory published), from the root agent's own clock
# (`stasis checkpoint --json`), for trees of 1, 8 and 64 processes that each hold 64 MiB of written
# memory; median and max of 10 checkpoints each. Then restart time: `stasis restart` of the last image
# until every process of the tree runs again (its --pid-file, then each PID in /proc), median of 3.
# The one-process tree is the baseline of the same run: the table gives each size's ratio to it.
#   Benchmarks/tree.sh [DIR] [PROCESSES...]      default: /tmp 1 8 64
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-/tmp}; shift || true
COUNTS=("${@:-1 8 64}"); COUNTS=(${COUNTS[@]})
swift build -c release >/dev/null
BIN=$(swift build -c release --show-bin-path)
WORK=$(mktemp -d "$DIR/stasis-tree-XXXXXX")
# Ends the tree's processes, by PID, only while a PID still runs our fixture (a freed PID may be anyone's).
kill_tree() {
    [ -f "$WORK/pids" ] || return 0
    for p in $(cat "$WORK/pids"); do
        case "$p" in ''|*[!0-9]*) continue ;; esac
        [ "$p" -gt 1 ] || continue
        if cat "/proc/$p/cmdline" 2>/dev/null | tr '\0' ' ' | grep -q "$WORK/tree"; then kill -9 "$p" 2>/dev/null || true; fi
    done
}
cleanup() {
    [ -n "${RUN:-}" ] && kill -9 "$RUN" 2>/dev/null || true
    kill_tree
    [ -n "${RESTART:-}" ] && kill -9 "$RESTART" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cat > "$WORK/tree.c" <<'C'
/* N processes (the root and N-1 children), each with 64 MiB written, all sleeping. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    size_t bytes = 64ul << 20;
    int ready[2];
    if (pipe(ready) != 0) return 2;
    printf("PIDS %d", (int)getpid());
    fflush(stdout);  /* not in every child's copy of the buffer */
    for (int i = 1; i < n; i++) {
        pid_t child = fork();
        if (child == 0) {
            volatile char *memory = malloc(bytes);  /* volatile: the compiler may not drop it */
            for (size_t k = 0; k < bytes; k += 4096) memory[k] = (char)i;
            write(ready[1], "x", 1);
            for (;;) pause();
        }
        printf(" %d", (int)child);
    }
    volatile char *memory = malloc(bytes);
    for (size_t k = 0; k < bytes; k += 4096) memory[k] = 0x5a;
    for (int i = 1; i < n; i++) { char c; if (read(ready[0], &c, 1) != 1) return 3; }
    printf("\nREADY\n");
    fflush(stdout);
    for (;;) pause();
}
C
cc -O2 -o "$WORK/tree" "$WORK/tree.c"
printf "%-10s %12s %12s %12s %12s %14s %12s %12s\n" processes freeze_med_ms freeze_max_ms pause_med_ms pause_max_ms checkpoint_med_ms restart_med_ms pause_ratio
BASE_PAUSE=""
for N in "${COUNTS[@]}"; do
    "$BIN/stasis" run --dir "$WORK" -- "$WORK/tree" "$N" > "$WORK/out" 2>&1 &
    RUN=$!
    until grep -q READY "$WORK/out" 2>/dev/null; do sleep 0.05; done
    grep PIDS "$WORK/out" | cut -d' ' -f2- > "$WORK/pids"
    : > "$WORK/times"
    LAST=""
    for _ in $(seq 10); do
        [ -n "$LAST" ] && rm -rf "$LAST"
        JSON=$("$BIN/stasis" checkpoint --json "$RUN")
        LAST=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["image"])' "$JSON")
        python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["freeze_ns"], d["pause_ns"], d["total_ns"])' "$JSON" >> "$WORK/times"
    done
    kill_tree
    wait "$RUN" 2>/dev/null || true
    RUN=""
    # Restart: until every PID of the tree is back (original PIDs), three times.
    : > "$WORK/restarts"
    for _ in 1 2 3; do
        # Killed orphans stay zombies until init reaps them (a second or more here): the PIDs must be free.
        for p in $(cat "$WORK/pids"); do
            for _ in $(seq 1000); do [ -e "/proc/$p" ] || break; sleep 0.01; done
        done
        rm -f "$WORK/restored.pid"
        START=$(date +%s%N)
        "$BIN/stasis" restart --pid-file "$WORK/restored.pid" "$LAST" > "$WORK/restart.log" 2>&1 &
        RESTART=$!
        ok=1
        until [ -s "$WORK/restored.pid" ]; do
            if ! kill -0 "$RESTART" 2>/dev/null; then ok=0; break; fi
            sleep 0.002
        done
        for p in $(cat "$WORK/pids"); do until [ -e "/proc/$p" ] || [ $ok = 0 ]; do sleep 0.002; done; done
        END=$(date +%s%N)
        if [ $ok = 1 ]; then echo $(( (END - START) / 1000 )) >> "$WORK/restarts"; else echo "restart failed: $(cat "$WORK/restart.log")" >&2; fi
        [ $ok = 1 ] && kill_tree
        wait "$RESTART" 2>/dev/null || true
        RESTART=""
    done
    ROW=$(python3 - "$WORK/times" "$WORK/restarts" "$N" "${BASE_PAUSE:-0}" <<'PY'
import statistics, sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
restarts = [int(l) / 1000 for l in open(sys.argv[2]) if l.strip()]
f = [r[0] / 1e6 for r in rows]; p = [r[1] / 1e6 for r in rows]; t = [r[2] / 1e6 for r in rows]
base = float(sys.argv[4]) or statistics.median(p)
restart = f"{statistics.median(restarts):12.1f}" if restarts else f"{'failed':>12}"
print(f"{sys.argv[3]:<10} {statistics.median(f):12.1f} {max(f):12.1f} {statistics.median(p):12.1f} {max(p):12.1f} "
      f"{statistics.median(t):14.1f} {restart} {statistics.median(p) / base:12.2f}|{statistics.median(p)}")
PY
)
    echo "${ROW%|*}"
    [ -z "$BASE_PAUSE" ] && BASE_PAUSE=${ROW##*|}
    rm -rf "$LAST"
done
