#!/usr/bin/env bash
# --compress against plain images of the same program in the same run (issue 16): a program holding
# MIB of memory shaped like real data (Benchmarks/codec.c's heap: a quarter each of JSON-like text
# records, small integers in 64-bit words, a smooth double field, pointer-like words) or random bytes,
# checkpointed plain and compressed, copy-on-write (default) and in place (--no-fork), ROUNDS rounds
# interleaved; medians. Per row: the pause, the checkpoint until the image is durable (fsync'd and
# renamed: `stasis checkpoint` returns then), the image size, and restarts from a cold page cache
# (eager: every page read and decoded; lazy: until the program runs again, and until every page is in).
# `dd` writes the plain image's bytes with fsync into the same directory in every round: the storage's own speed.
#   Benchmarks/compress.sh [DIR] [MIB] [ROUNDS]      default: /tmp 1024 5  (/dev/shm: tmpfs)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-/tmp}; MIB=${2:-1024}; ROUNDS=${3:-5}
swift build -c release >/dev/null
BIN=$(swift build -c release --show-bin-path)
WORK=$(mktemp -d "$DIR/stasis-compress-XXXXXX")
RUN=; RESTART=
cleanup() {
    [ -n "$RUN" ] && kill -9 "$RUN" 2>/dev/null || true
    { [ -s "$WORK/restored.pid" ] && kill -9 "$(cat "$WORK/restored.pid")" 2>/dev/null; } || true
    [ -n "$RESTART" ] && wait "$RESTART" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cat > "$WORK/holder.c" <<'C'
#define main codec_main
#include "codec.c"
#undef main
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>
int main(int argc, char **argv) {
    size_t bytes = (size_t)atol(argv[1]) << 20;
    uint8_t *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (argv[2][0] == 'r') for (size_t i = 0; i < bytes; i += 8) { uint64_t v = next(); memcpy(p + i, &v, 8); }
    else make_heap(p, bytes);
    printf("READY\n"); fflush(stdout);
    for (;;) pause();
}
C
${CC:-clang} -O2 -I Sources/CStasisABI/include -I Benchmarks -o "$WORK/holder" "$WORK/holder.c" -lm
ms() { echo $(( ($2 - $1) / 1000000 )); }
json() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
pager_running() { ps -eo stat=,comm= | grep -v '^Z' | grep -q stasis-pager; }
restart_ms() {  # IMAGE [OPTIONS]: ms until the program runs again, in LAST_MS; R0: when it started
    rm -f "$WORK/restored.pid"
    drop_caches
    local r0 r1; r0=$(date +%s%N)
    "$BIN/stasis" restart --pid-file "$WORK/restored.pid" "${@:2}" "$1" > /dev/null 2>&1 &
    RESTART=$!
    until [ -s "$WORK/restored.pid" ]; do sleep 0.001; done
    r1=$(date +%s%N); R0=$r0; LAST_MS=$(( (r1 - r0) / 1000000 ))
}
stop_restored() { kill -9 "$(cat "$WORK/restored.pid")" 2>/dev/null || true; wait "$RESTART" 2>/dev/null || true; RESTART=; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
RESULTS="$WORK/results"; : > "$RESULTS"
for ROUND in $(seq "$ROUNDS"); do
    for DATA in heap random; do
        "$BIN/stasis" run --dir "$WORK" -- "$WORK/holder" "$MIB" "$DATA" > "$WORK/out" 2>&1 &
        RUN=$!
        until grep -q READY "$WORK/out" 2>/dev/null; do sleep 0.05; done
        PLAIN_SIZE=0
        for WRITER in cow in-place; do
            for KIND in plain compressed; do
                FLAGS=(); [ "$WRITER" = in-place ] && FLAGS+=(--no-fork); [ "$KIND" = compressed ] && FLAGS+=(--compress)
                drop_caches
                t0=$(date +%s%N); JSON=$("$BIN/stasis" checkpoint --json "${FLAGS[@]}" "$RUN"); t1=$(date +%s%N)
                IMAGE=$(json "$JSON" image); PAUSE=$(( $(json "$JSON" pause_ns) / 1000000 ))
                SIZE=$(stat -c %s "$IMAGE")
                [ "$KIND" = plain ] && PLAIN_SIZE=$SIZE
                echo "$DATA $WRITER $KIND checkpoint $(ms "$t0" "$t1")" >> "$RESULTS"
                echo "$DATA $WRITER $KIND pause $PAUSE" >> "$RESULTS"
                echo "$DATA $WRITER $KIND size $SIZE" >> "$RESULTS"
                if [ "$WRITER" = cow ]; then  # restarts do not depend on the writer
                    restart_ms "$IMAGE" --eager; echo "$DATA $WRITER $KIND eager $LAST_MS" >> "$RESULTS"; stop_restored
                    restart_ms "$IMAGE"; LAZY=$LAST_MS
                    while pager_running; do sleep 0.005; done
                    echo "$DATA $WRITER $KIND lazy $LAZY" >> "$RESULTS"
                    echo "$DATA $WRITER $KIND paged_in $(( ($(date +%s%N) - R0) / 1000000 ))" >> "$RESULTS"
                    stop_restored
                fi
                rm -f "$IMAGE"
            done
        done
        kill -9 "$RUN"; wait "$RUN" 2>/dev/null || true; RUN=
        drop_caches
        d0=$(date +%s%N); dd if=/dev/zero of="$WORK/dd.bin" bs=1M count=$(( PLAIN_SIZE >> 20 )) conv=fsync status=none; d1=$(date +%s%N)
        rm -f "$WORK/dd.bin"
        echo "$DATA dd - dd $(ms "$d0" "$d1")" >> "$RESULTS"
    done
done
get() { awk -v d="$1" -v w="$2" -v k="$3" -v m="$4" '$1 == d && $2 == w && $3 == k && $4 == m { print $5 }' "$RESULTS" | median; }
echo "$MIB MiB in $DIR ($(df -T "$DIR" | awk 'NR == 2 { print $2 }')), medians of $ROUNDS rounds, $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
printf "%-7s %-9s %-11s %9s %14s %9s %13s %7s %9s %8s %12s %6s\n" data writer image pause_ms checkpoint_ms vs_plain image_bytes ratio eager_ms lazy_ms paged_in_ms dd_ms
for DATA in heap random; do
    DD=$(get "$DATA" dd - dd)
    for WRITER in cow in-place; do
        BASE=$(get "$DATA" "$WRITER" plain checkpoint); BASE_SIZE=$(get "$DATA" "$WRITER" plain size)
        for KIND in plain compressed; do
            CK=$(get "$DATA" "$WRITER" "$KIND" checkpoint); SIZE=$(get "$DATA" "$WRITER" "$KIND" size)
            EAGER=-; LAZY=-; PAGED=-
            if [ "$WRITER" = cow ]; then EAGER=$(get "$DATA" cow "$KIND" eager); LAZY=$(get "$DATA" cow "$KIND" lazy); PAGED=$(get "$DATA" cow "$KIND" paged_in); fi
            printf "%-7s %-9s %-11s %9s %14s %8.2fx %13s %6.1f%% %9s %8s %12s %6s\n" "$DATA" "$WRITER" "$KIND" \
                "$(get "$DATA" "$WRITER" "$KIND" pause)" "$CK" "$(echo "$CK $BASE" | awk '{ print $1 / ($2 > 0 ? $2 : 1) }')" \
                "$SIZE" "$(echo "$SIZE $BASE_SIZE" | awk '{ print 100 * $1 / $2 }')" "$EAGER" "$LAZY" "$PAGED" "$DD"
        done
    done
done
