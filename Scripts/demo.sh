#!/usr/bin/env bash
# Demo: start a counter under `stasis run`, checkpoint it, SIGKILL it, restart it, watch the count go on.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release >/dev/null
BIN=$(swift build -c release --show-bin-path)
WORK=$(mktemp -d /tmp/stasis-demo-XXXXXX)
trap 'kill -9 ${RUN_PID:-} ${RESTART_PID:-} 2>/dev/null || true; rm -rf "$WORK"' EXIT

cat > "$WORK/count.c" <<'C'
#include <stdio.h>
#include <unistd.h>
int main(void) { for (long i = 0;; i++) { printf("count %ld\n", i); fflush(stdout); usleep(200000); } }
C
cc -O1 -o "$WORK/count" "$WORK/count.c"

echo "== stasis run -- count"
"$BIN/stasis" run --dir "$WORK" -- "$WORK/count" > "$WORK/out.txt" &
RUN_PID=$!
sleep 1.5
echo "== stasis checkpoint $RUN_PID"
IMAGE=$("$BIN/stasis" checkpoint "$RUN_PID")
echo "image: $IMAGE ($(stat -c %s "$IMAGE") bytes)"
sleep 0.5
echo "== kill -9 $RUN_PID"
kill -9 "$RUN_PID"; wait "$RUN_PID" 2>/dev/null || true
echo "last line before the kill: $(tail -n 1 "$WORK/out.txt")"
echo "== stasis restart $(basename "$IMAGE")"
"$BIN/stasis" restart --pid-file "$WORK/restored.pid" "$IMAGE" &
RESTART_PID=$!
sleep 1.5
echo "output after restart (the count continues from the checkpoint):"
tail -n 4 "$WORK/out.txt"
kill -TERM "$(cat "$WORK/restored.pid")"
wait "$RESTART_PID" 2>/dev/null || true
echo "== done"
