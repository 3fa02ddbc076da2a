#!/usr/bin/env bash
# The durable write at the storage limit (issue 16, part 3): how long a checkpoint takes until the image
# is durable (`stasis checkpoint` wall time: fsync'd and renamed) against `dd` of the same bytes with
# conv=fsync into the same directory, in one run. Per round, for each directory, size and load, in an
# order that rotates from round to round: dd, then for each build a copy-on-write checkpoint (the
# default) and an in-place one (--no-fork) of a program holding SIZE MiB of non-zero memory (one
# program per build and size, checkpointed once unmeasured, then again each round; the image is
# removed after each).
# Before each measurement, --settle (see settle below). "busy": two CPU hogs (`yes > /dev/null`,
# started and killed by PID) run on the 2 cores meanwhile.
# Prints one line per measurement, then the medians (ms) and each one's ratio to dd (dd_ms / ms:
# 1.0 = as fast as dd, 0.5 = twice as long).
#   [STASIS_BIN=DIR] [STASIS_OLD_BIN=DIR] Benchmarks/durable.sh [--runs N] [--sizes "1024 2048"]
#       [--dirs "/dev/shm /var/tmp"] [--loads "quiet busy"] [--settle warm|cold|none]
# STASIS_OLD_BIN: another build's bin dir (stasis, libStasisAgent.so, stasis-restorer), measured as
# "old" interleaved with this build ("new"); STASIS_BUILDS="NAME=DIR ..." adds more. Defaults: 5 runs,
# 1024 and 2048 MiB, /dev/shm (tmpfs) and /var/tmp (the root file system's disk), quiet and busy.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=5; SIZES="1024 2048"; DIRS="/dev/shm /var/tmp"; LOADS="quiet busy"; SETTLE=warm
while [ $# -gt 0 ]; do
    case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --sizes) SIZES=$2; shift 2 ;;
    --dirs) DIRS=$2; shift 2 ;;
    --loads) LOADS=$2; shift 2 ;;
    --settle) SETTLE=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--sizes \"MiB...\"] [--dirs \"DIR...\"] [--loads \"quiet busy\"] [--settle warm|cold|none]" >&2; exit 2 ;;
    esac
done
if [ -z "${STASIS_BIN:-}" ]; then swift build -c release >/dev/null; fi
NEW=${STASIS_BIN:-$(swift build -c release --show-bin-path)}
declare -A BIN_OF=([new]=$NEW)
BUILDS="new"
if [ -n "${STASIS_OLD_BIN:-}" ]; then BIN_OF[old]=$STASIS_OLD_BIN; BUILDS="new old"; fi
for pair in ${STASIS_BUILDS:-}; do BIN_OF[${pair%%=*}]=${pair#*=}; BUILDS="$BUILDS ${pair%%=*}"; done
bin() { echo "${BIN_OF[$1]}"; }
FIX=$(mktemp -d /tmp/stasis-durable-XXXXXX)
declare -A PROG=()
HOGS=()
cleanup() {
    for p in "${PROG[@]}" "${HOGS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$FIX"
    for d in $DIRS; do rm -rf "$d"/stasis-durable-* 2>/dev/null || true; done
}
trap cleanup EXIT
cat > "$FIX/memhog.c" <<'C'
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
int main(int argc, char **argv) {  /* SIZE MiB of non-zero words, then sleep */
    (void)argc;
    size_t bytes = (size_t)atol(argv[1]) << 20;
    uint64_t *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (size_t i = 0; i < bytes / 8; i++) p[i] = i * 0x9e3779b97f4a7c15ull + 1;
    printf("READY\n"); fflush(stdout);
    for (;;) pause();
}
C
cc -O2 -o "$FIX/memhog" "$FIX/memhog.c"
json() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
for B in $BUILDS; do  # one program per build and size
    for S in $SIZES; do
        "$(bin "$B")/stasis" run --dir "$FIX" -- "$FIX/memhog" "$S" > "$FIX/out-$B-$S" 2>&1 &
        PROG[$B-$S]=$!
        until grep -q READY "$FIX/out-$B-$S" 2>/dev/null; do sleep 0.05; done
        # Not measured: a program's first checkpoint also touches the agent's arena for the first time.
        "$(bin "$B")/stasis" checkpoint --dir "$FIX/warm-up" "${PROG[$B-$S]}" > /dev/null
        rm -rf "$FIX/warm-up"
    done
done
busy() {
    for _ in 1 2; do yes > /dev/null & HOGS+=($!); done
    sleep 0.5
}
quiet() {
    for p in "${HOGS[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    HOGS=()
}
# Every measurement starts from the same state of the guest's free memory. This VM hands freed memory
# back to the host (virtio-balloon free page reporting, /sys/module/page_reporting): memory freed
# seconds ago costs a fault in the host at its next first touch, ~2 us a page, which more than doubled
# a 1 GiB write into tmpfs (forkwrite test, Docs/PERFORMANCE.md "Durable write"). warm: write and
# remove SIZE MiB in /dev/shm just before (the image's page cache then reuses memory the host backs);
# cold: sleep 4 s (what was freed has been reported); none: as it comes.
settle() {
    case "$SETTLE" in
    warm) dd if=/dev/zero of=/dev/shm/stasis-durable-warm bs=1M count="$1" status=none; rm -f /dev/shm/stasis-durable-warm ;;
    cold) sleep 4 ;;
    esac
}
measure() {  # VARIANT DIR SIZE: ms in MS
    local v=$1 d=$2 s=$3 t0 t1 out
    local work; work=$(mktemp -d "$d/stasis-durable-XXXXXX")
    sync
    settle "$s"
    case "$v" in
    dd)
        t0=$(date +%s%N)
        dd if=/dev/zero of="$work/dd.bin" bs=1M count="$s" conv=fsync status=none
        t1=$(date +%s%N) ;;
    *)
        local build=${v#*:} mode=${v%%:*} flag=()
        [ "$mode" = place ] && flag=(--no-fork)
        t0=$(date +%s%N)
        out=$("$(bin "$build")/stasis" checkpoint --json --dir "$work" "${flag[@]}" "${PROG[$build-$s]}")
        t1=$(date +%s%N)
        [ -f "$(json "$out" image)" ] || { echo "no image: $out" >&2; exit 1; } ;;
    esac
    rm -rf "$work"
    MS=$(( (t1 - t0) / 1000000 ))
}
VARIANTS=(dd)
for B in $BUILDS; do VARIANTS+=("cow:$B" "place:$B"); done
RAW="$FIX/raw"
printf "%-4s %-6s %-9s %6s %-10s %8s\n" run load dir MiB variant ms
for r in $(seq "$RUNS"); do
    for L in $LOADS; do
        [ "$L" = busy ] && busy
        for d in $DIRS; do
            for s in $SIZES; do
                n=${#VARIANTS[@]}
                for i in $(seq 0 $((n - 1))); do
                    v=${VARIANTS[$(( (i + r) % n ))]}
                    measure "$v" "$d" "$s"
                    printf "%-4s %-6s %-9s %6s %-10s %8s\n" "$r" "$L" "$d" "$s" "$v" "$MS"
                    echo "$L $d $s $v $MS" >> "$RAW"
                done
            done
        done
        quiet
    done
done
echo
echo "medians of $RUNS (ms; x dd = dd's median / this median)"
python3 - "$RAW" <<'PY'
import statistics, sys
rows = {}
order = []
for line in open(sys.argv[1]):
    load, d, s, v, ms = line.split()
    key = (load, d, int(s))
    if key not in order: order.append(key)
    rows.setdefault(key, {}).setdefault(v, []).append(int(ms))
variants = sorted({v for k in rows for v in rows[k]}, key=lambda v: (v != "dd", v.split(":")[-1] != "new", v.split(":")[-1], v))
print("| load | dir | MiB | " + " | ".join(variants) + " |")
print("|---|---|---|" + "---|" * len(variants))
for key in order:
    dd = statistics.median(rows[key]["dd"])
    cells = []
    for v in variants:
        m = statistics.median(rows[key][v])
        cells.append(f"{m:.0f}" if v == "dd" else f"{m:.0f} ({dd / m:.2f}x)")
    print(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
PY
