#!/usr/bin/env bash
# Fuzzes both image readers with libFuzzer and AddressSanitizer: the Swift one (StasisImage, what
# `stasis restart`/`verify`/`inspect` run first) and the restorer's own (rst_image.c), SECONDS each;
# then the block codec's decoder (stasis_lz.h, with a round trip of every input), SECONDS as well.
#   Fuzz/run.sh [SECONDS]        default 60; CI runs a short round
# Seeds: images written by a real checkpoint (if `stasis` is built) and the unit tests' encoder.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
OUT=.build/fuzz
mkdir -p "$OUT/corpus"
clang -fsanitize=address -O1 -c -I Sources/CStasisABI/include Sources/CStasisABI/sha256.c -o "$OUT/sha256.o"
swiftc -sanitize=fuzzer,address -parse-as-library -O -module-name StasisImage \
    -I Sources/CStasisABI/include \
    Sources/StasisImage/*.swift Sources/StasisImage/Records/*.swift Sources/StasisImage/Records/Descriptors/*.swift Fuzz/ImageFuzz.swift "$OUT/sha256.o" \
    -o "$OUT/image-fuzzer" > "$OUT/build.log" 2>&1 || { cat "$OUT/build.log"; exit 1; }
# A small real image as a seed, when the launcher is built.
if [ -x .build/debug/stasis ] && [ -z "$(ls -A "$OUT/corpus")" ]; then
    WORK=$(mktemp -d)
    # Signals queued while blocked (PENDING_SIGNAL records), a memfd mapped shared
    # (STASIS_AREA_FILE_OBJECT, MEMFD), a pipe and a pty with queued bytes, and one descriptor of
    # every other kind that has a payload: eventfd, signalfd, timerfd, epoll, inotify (binary
    # watches), a UNIX socketpair with queued bytes, a UNIX datagram pair, a TCP listener.
    cat > "$WORK/spin.c" <<'SEED'
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>
int main(void) {
    sigset_t s;
    sigfillset(&s);
    sigdelset(&s, SIGUSR2);
    sigprocmask(SIG_BLOCK, &s, 0);
    union sigval v = {7};
    sigqueue(getpid(), SIGRTMIN + 1, v);
    v.sival_int = 8;
    sigqueue(getpid(), SIGRTMIN + 1, v);
    kill(getpid(), SIGUSR1);
    int m = memfd_create("seed", 0), p[2], t = posix_openpt(O_RDWR | O_NOCTTY);
    if (ftruncate(m, 4096) == 0) ((char *)mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0))[0] = 1;
    if (pipe(p) == 0) (void)!write(p[1], "seed", 4);
    if (t >= 0 && grantpt(t) == 0 && unlockpt(t) == 0) {
        int s = open(ptsname(t), O_RDWR | O_NOCTTY);
        (void)!write(t, "typed\n", 6);
        (void)!write(s, "shown", 5);
    }
    int e = eventfd(3, EFD_SEMAPHORE), sf = signalfd(-1, &s, 0), tf = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec its = {{1, 0}, {100, 0}};
    timerfd_settime(tf, 0, &its, 0);
    int ep = epoll_create1(0), in = inotify_init1(0), sp[2], dg[2];
    struct epoll_event ev = {EPOLLIN, {.u64 = 42}};
    epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev);
    inotify_add_watch(in, "/tmp", IN_CREATE);
    inotify_add_watch(in, "/", IN_DELETE);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0) (void)!write(sp[0], "queued", 6);
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) == 0) { (void)!write(dg[0], "one", 3); (void)!write(dg[0], "", 0); }
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(l, (struct sockaddr *)&a, sizeof a) == 0) listen(l, 7);
    for (;;) pause();
}
SEED
    cc -o "$WORK/spin" "$WORK/spin.c"
    .build/debug/stasis run --dir "$WORK" --incremental -- "$WORK/spin" & PID=$!
    sleep 0.3
    IMAGE=$(.build/debug/stasis checkpoint "$PID" 2>/dev/null || true)
    CHILD=$(.build/debug/stasis checkpoint "$PID" 2>/dev/null || true)  # incremental: PARENT, inherited runs
    COMPRESSED=$(.build/debug/stasis checkpoint --full --compress "$PID" 2>/dev/null || true)  # format 4: PAGE_BLOCKS
    COMPRESSED_CHILD=$(.build/debug/stasis checkpoint --compress "$PID" 2>/dev/null || true)  # PAGE_BLOCKS and inherited runs
    kill -9 "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true
    # Keep the seed small: the metadata part (everything but most page data is cut by the fuzzer anyway).
    [ -n "$IMAGE" ] && head -c 65536 "$IMAGE" > "$OUT/corpus/real-prefix" && cp "$IMAGE" "$OUT/corpus/real-full"
    [ -n "$CHILD" ] && cp "$CHILD" "$OUT/corpus/real-incremental"
    [ -n "$COMPRESSED" ] && head -c 262144 "$COMPRESSED" > "$OUT/corpus/real-compressed-prefix"
    [ -n "$COMPRESSED_CHILD" ] && cp "$COMPRESSED_CHILD" "$OUT/corpus/real-compressed-incremental"
    # A tree checkpoint (a shell with a child): its manifest (TREE_PROCESS records) and the child's
    # image (SHARED_DESCRIPTION records for the descriptors it shares with the shell).
    .build/debug/stasis run --dir "$WORK" -- /bin/sh -c "\"$WORK/spin\" & wait" & PID=$!
    sleep 0.5
    TREE=$(.build/debug/stasis checkpoint "$PID" 2>/dev/null || true)
    for KID in $(cat "/proc/$PID/task/$PID/children" 2>/dev/null); do kill -9 "$KID" 2>/dev/null || true; done
    kill -9 "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true
    if [ -n "$TREE" ] && [ -f "$TREE/tree" ]; then
        cp "$TREE/tree" "$OUT/corpus/real-tree-manifest"
        for MEMBER in "$TREE"/*.stasis; do
            [ "$(basename "$MEMBER")" = "$PID.stasis" ] || head -c 65536 "$MEMBER" > "$OUT/corpus/real-tree-member-prefix"
        done
    fi
    rm -rf "$WORK"
fi
clang -fsanitize=fuzzer,address -g -O1 -I Sources/CStasisABI/include -o "$OUT/restorer-reader-fuzzer" \
    Fuzz/restorer_reader_fuzz.c Sources/stasis-restorer/rst_image.c > "$OUT/build-restorer.log" 2>&1 \
    || { cat "$OUT/build-restorer.log"; exit 1; }
clang -fsanitize=fuzzer,address -g -O1 -I Sources/CStasisABI/include -o "$OUT/lz-decode-fuzzer" \
    Fuzz/lz_decode_fuzz.c > "$OUT/build-lz.log" 2>&1 || { cat "$OUT/build-lz.log"; exit 1; }
# The codec's own corpus: compressed blocks of page-like data (2 bytes of length, then the block)
# and raw page-like data, made by the fuzzer's companion seed writer below.
mkdir -p "$OUT/corpus-lz"
if [ -z "$(ls -A "$OUT/corpus-lz")" ]; then
    clang -O1 -I Sources/CStasisABI/include -x c -o "$OUT/lz-seeds" - <<'SEED'
#include <stdio.h>
#include <string.h>
#include "stasis_lz.h"
int main(int argc, char **argv) {
    static uint8_t data[4][16384], out[16386];
    static uint32_t scratch[STASIS_LZ_SCRATCH_BYTES / 4];
    for (int i = 0; i < 16384; i++) {
        data[0][i] = "{\"id\":12,\"name\":\"alice\",\"ok\":true}\n"[i % 36];
        data[1][i] = (i % 8) ? 0 : (uint8_t)(i * 7 % 251);
        data[2][i] = (uint8_t)((i % 8 == 5) ? 0x7f : (i % 8 > 5) ? 0 : (i * 131) >> 3);
        data[3][i] = i < 8192 ? 0 : (uint8_t)i;
    }
    for (int k = 0; k < 4; k++) {
        size_t n = stasis_lz_compress(data[k], sizeof data[k], out + 2, sizeof data[k], scratch);
        out[0] = 0x00; out[1] = 0x40;   /* 16384 */
        char path[4096];
        snprintf(path, sizeof path, "%s/block-%d", argv[1], k);
        FILE *f = fopen(path, "wb"); fwrite(out, 1, n + 2, f); fclose(f);
        snprintf(path, sizeof path, "%s/data-%d", argv[1], k);
        f = fopen(path, "wb"); fwrite(data[k], 1, 4096, f); fclose(f);
    }
    (void)argc;
    return 0;
}
SEED
    "$OUT/lz-seeds" "$OUT/corpus-lz"
fi
for FUZZER in image-fuzzer restorer-reader-fuzzer lz-decode-fuzzer; do
    echo "== $FUZZER"
    CORPUS="$OUT/corpus"; [ "$FUZZER" = lz-decode-fuzzer ] && CORPUS="$OUT/corpus-lz"
    "$OUT/$FUZZER" -max_total_time="$SECONDS_TO_RUN" -max_len=262144 -print_final_stats=1 \
        -artifact_prefix="$OUT/" "$CORPUS" 2>&1 \
        | grep -E "stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY|crash-|Done" || true
done
ls "$OUT"/crash-* 2>/dev/null && { echo "fuzzer found crashes"; exit 1; } || echo "no crashes"
