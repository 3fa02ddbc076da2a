#!/usr/bin/env bash
# The block codec (Sources/CStasisABI/include/stasis_lz.h, issue 16) against `lz4 -1` on the same
# bytes in the same run: a heap shaped as issue 16 says (a quarter each: JSON-like text records, small
# integers in 64-bit words, a smooth double field, pointer-like words), each quarter alone, and
# random bytes. One thread each, best of 3 rounds; blocks of BLOCK_KIB (64, 256 or 1024; lz4 -B4/5/6).
# `stored` counts a block that does not shrink at its raw size, as an image would store it.
#   Benchmarks/codec.sh [HEAP_MIB] [BLOCK_KIB] [DIR]     default: 256 256 /tmp
# Needs clang (the headers use its nullability qualifiers, as the rest of CStasisABI); lz4 (`apt-get install lz4`) for the baseline rows, skipped without it.
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-256}; BLOCK_KIB=${2:-256}; DIR=${3:-/tmp}
case "$BLOCK_KIB" in 64) LZ4_B=4 ;; 256) LZ4_B=5 ;; 1024) LZ4_B=6 ;; *) echo "BLOCK_KIB: 64, 256 or 1024" >&2; exit 2 ;; esac
WORK=$(mktemp -d "$DIR/stasis-codec-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
${CC:-clang} -O2 -I Sources/CStasisABI/include -o "$WORK/codec" Benchmarks/codec.c -lm
echo "heap ${MIB} MiB, blocks of ${BLOCK_KIB} KiB, one core ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
taskset -c 0 "$WORK/codec" "$MIB" "$BLOCK_KIB" "$WORK/data" 2>/dev/null || "$WORK/codec" "$MIB" "$BLOCK_KIB" "$WORK/data"
if ! command -v lz4 >/dev/null; then echo "(lz4 not installed: no baseline)"; exit 0; fi
Q=$(( (MIB << 20) / 4 ))
i=0
for PART in json ints doubles pointers; do
    dd if="$WORK/data.heap" of="$WORK/data.heap:$PART" bs=1M skip=$(( i * Q )) count="$Q" iflag=skip_bytes,count_bytes status=none
    i=$(( i + 1 ))
done
for NAME in heap heap:json heap:ints heap:doubles heap:pointers random; do
    LINE=$(cd "$WORK" && { taskset -c 0 lz4 -b1 -B$LZ4_B -i3 "data.$NAME" 2>&1 || lz4 -b1 -B$LZ4_B -i3 "data.$NAME" 2>&1; } \
        | tr '\r' '\n' | grep -E 'MB/s ,' | tail -1)
    # " |-data.heap : 268435456 -> 152891234 (1.756), 813.5 MB/s ,2929.2 MB/s"
    echo "$LINE" | sed -E 's/.*: *([0-9]+) -> *([0-9]+) \(([0-9.]+)\), *([0-9.]+) MB\/s *, *([0-9.]+) MB\/s.*/\1 \2 \3 \4 \5/' \
        | awk -v name="$NAME" '{ printf "%-12s %-12s %10d %10d %7.3f %6.1f%% %9.0f %9.0f\n", "lz4 -1", name, $1, $2, $3, 100 * $2 / $1, $4, $5 }'
done
