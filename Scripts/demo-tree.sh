#!/usr/bin/env bash
# Demo of a process tree: a shell pipeline (bash, `seq` blocked on a full pipe, a reading loop) under
# `stasis run`; checkpoint it, SIGKILL every process of it, restart the tree and watch the numbers go
# on from where they were, with the bytes that were in the pipe. The original PIDs
# come back on the host as root, in a PID namespace of their own otherwise (Docs/ARCHITECTURE.md 3.7).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release >/dev/null
BIN=$(swift build -c release --show-bin-path)
WORK=$(mktemp -d /tmp/stasis-demo-tree-XXXXXX)
PIDS=""
# Ends the demo's processes by PID, only while they are still ours (a freed PID may be anyone's).
end_ours() {
    for p in ${RESTART_PID:-} ${RUN_PID:-} $PIDS; do
        if cat "/proc/$p/environ" 2>/dev/null | tr '\0' ' ' | grep -q "STASIS_DIR=$WORK"; then kill -9 "$p" 2>/dev/null || true; fi
    done
    [ -n "${RESTART_PID:-}" ] && { kill -9 "$RESTART_PID"; wait "$RESTART_PID"; } 2>/dev/null || true
}
trap '{ end_ours; wait; } 2>/dev/null; rm -rf "$WORK"' EXIT

echo "== stasis run -- bash -c 'seq 1 1000000 | while read n; do echo \$n; sleep 0.2; done'"
"$BIN/stasis" run --dir "$WORK" -- /bin/bash -c 'seq 1 1000000 | while read n; do echo "n=$n"; sleep 0.2; done' \
    > "$WORK/out.txt" &
RUN_PID=$!
sleep 1.5
echo "== stasis checkpoint $RUN_PID"
IMAGE=$("$BIN/stasis" checkpoint "$RUN_PID")
"$BIN/stasis" inspect "$IMAGE" | sed -n '1,/^$/p' | head -12
PIDS=$("$BIN/stasis" inspect --json "$IMAGE" | python3 -c 'import json,sys; print(" ".join(str(p["pid"]) for p in json.load(sys.stdin)["processes"]))')
sleep 0.5
echo "== kill -9 $PIDS"
{ kill -9 $PIDS; wait "$RUN_PID"; } 2>/dev/null || true
echo "last line before the kill: $(tail -n 1 "$WORK/out.txt")"
# Killed children wait for init to reap them: their PIDs must be free again.
for p in $PIDS; do for _ in $(seq 500); do [ -e "/proc/$p" ] || break; sleep 0.01; done; done
echo "== stasis restart $(basename "$IMAGE")"
"$BIN/stasis" restart --pid-file "$WORK/restored.pid" "$IMAGE" &
RESTART_PID=$!
sleep 2
echo "lines after the restart (the first restored line follows the last one written before the checkpoint):"
tail -n 4 "$WORK/out.txt"
echo "== the tree is back with its PIDs:"
ps -o pid,ppid,pgid,stat,comm -p "$(echo $PIDS | tr ' ' ',')"
