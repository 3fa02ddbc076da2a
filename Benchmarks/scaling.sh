#!/usr/bin/env bash
# Scaling (issue 16): pause, checkpoint time and restart time against the size of one dimension of the
# checkpointed program, the others kept small: written memory (MiB), threads, processes in a tree,
# mappings and descriptors. One C fixture, `scale DIMENSION N`, builds the program; per point and run:
# one copy-on-write checkpoint (pause_ns and total_ns from the agent's clock, `stasis checkpoint --json`),
# then `stasis restart --eager` of that image until the program runs again (its --pid-file, and for a
# tree every original PID back in /proc). Runs are interleaved over a dimension's points; the table
# gives the medians, each cost per unit relative to the dimension's smallest point (1.00 = linear,
# growing = faster than linear; a fixed cost makes it fall), and the local slope of the checkpoint time
# (log-log; 1 = linear, above 1 = super-linear).
#   Benchmarks/scaling.sh [--dims memory,threads,processes,mappings,fds] [--runs N] [--max-mem MIB]
#                         [--memory LIST] [--threads LIST] [--processes LIST] [--mappings LIST]
#                         [--fds LIST] [--dir DIR] [--plot FILE.png] [--raw FILE]
# Defaults: every dimension, 3 runs, memory 64..2048 MiB (--max-mem 8192 adds 4096 and 8192),
# threads 1 4 16 64 256, processes 1 4 16 64 (4 MiB each), mappings 100 1000 10000 60000,
# descriptors 10 100 1000 10000 50000 (capped below the hard RLIMIT_NOFILE). LISTs are comma separated.
# --plot needs gnuplot (apt: gnuplot-nox); it is for this benchmark only. The descriptors' pause grew
# as N squared before the sorted shared-description search (Docs/PERFORMANCE.md, Scaling); now a
# 19,900-descriptor point takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
DIMS=memory,threads,processes,mappings,fds; RUNS=3; MAXMEM=2048; DIR=/tmp; PLOT=""; RAW=""
L_memory=""; L_threads="1,4,16,64,256"; L_processes="1,4,16,64"; L_mappings="100,1000,10000,60000"
L_fds="10,100,1000,10000,50000"
while [ $# -gt 0 ]; do
    case "$1" in
        --dims) DIMS=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --max-mem) MAXMEM=$2; shift 2 ;;
        --memory|--threads|--processes|--mappings|--fds) printf -v "L_${1#--}" %s "$2"; shift 2 ;;
        --dir) DIR=$2; shift 2 ;;
        --plot) PLOT=$2; shift 2 ;;
        --raw) RAW=$2; shift 2 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done
if [ -z "$L_memory" ]; then
    L_memory=""
    for m in 64 256 1024 2048 4096 8192; do [ "$m" -le "$MAXMEM" ] && L_memory="$L_memory${L_memory:+,}$m"; done
fi
if [ -n "$PLOT" ] && ! command -v gnuplot >/dev/null; then echo "--plot needs gnuplot (apt-get install gnuplot-nox)" >&2; exit 2; fi
if [ -z "${STASIS_BIN:-}" ]; then swift build -c release >/dev/null; fi
BIN=${STASIS_BIN:-$(swift build -c release --show-bin-path)}  # STASIS_BIN: another build's bin dir
WORK=$(mktemp -d "$DIR/stasis-scaling-XXXXXX")
RUN=""; RESTART=""
# Ends the fixture's processes, by PID, only while a PID still runs our fixture (a freed PID may be anyone's).
kill_fixture() {
    [ -f "$WORK/pids" ] || return 0
    local p
    for p in $(cat "$WORK/pids"); do
        case "$p" in ''|*[!0-9]*) continue ;; esac
        [ "$p" -gt 1 ] || continue
        if tr "\0" " " 2>/dev/null < "/proc/$p/cmdline" | grep -q "$WORK/scale"; then kill -9 "$p" 2>/dev/null || true; fi
    done
}
cleanup() {
    [ -n "$RUN" ] && kill -9 "$RUN" 2>/dev/null || true
    kill_fixture 2>/dev/null
    [ -n "$RESTART" ] && kill -9 "$RESTART" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cat > "$WORK/scale.c" <<'C'
/* scale DIMENSION N: a sleeping program whose DIMENSION has size N; the others stay small (4 MiB written).
 *   memory N: N MiB written (one byte per page)      threads N: N threads in all (the main one too)
 *   processes N: a root and N-1 children, 4 MiB each  mappings N: N/2 one-page areas between PROT_NONE gaps
 *   fds N: N descriptors in all (0-2 and N-3 opens of /dev/null, the soft limit raised to the hard one)
 * Prints "PIDS pid..." then "READY". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
static void touch(size_t bytes, char value) {
    volatile char *memory = malloc(bytes);  /* volatile: the compiler may not drop it */
    if (!memory) { perror("malloc"); exit(1); }
    for (size_t k = 0; k < bytes; k += 4096) memory[k] = value;
}
static void *sleeper(void *arg) { (void)arg; for (;;) pause(); return NULL; }
int main(int argc, char **argv) {
    if (argc != 3) return 2;
    const char *dim = argv[1];
    long n = atol(argv[2]), page = sysconf(_SC_PAGESIZE);
    printf("PIDS %d", (int)getpid());
    fflush(stdout);  /* not in every child's copy of the buffer */
    if (strcmp(dim, "memory") == 0) {
        touch((size_t)n << 20, 0x5a);
    } else if (strcmp(dim, "threads") == 0) {
        touch(4ul << 20, 0x5a);
        for (long i = 1; i < n; i++) {
            pthread_t t;
            pthread_attr_t attr;
            pthread_attr_init(&attr);
            pthread_attr_setstacksize(&attr, 64 << 10);
            if (pthread_create(&t, &attr, sleeper, NULL) != 0) { perror("pthread_create"); return 1; }
        }
    } else if (strcmp(dim, "processes") == 0) {
        int ready[2];
        if (pipe(ready) != 0) return 2;
        for (long i = 1; i < n; i++) {
            pid_t child = fork();
            if (child == 0) {
                touch(4ul << 20, (char)i);
                if (write(ready[1], "x", 1) != 1) _exit(1);
                for (;;) pause();
            }
            printf(" %d", (int)child);
        }
        touch(4ul << 20, 0x5a);
        for (long i = 1; i < n; i++) { char c; if (read(ready[0], &c, 1) != 1) return 3; }
    } else if (strcmp(dim, "mappings") == 0) {
        long areas = n / 2;
        touch(4ul << 20, 0x5a);
        char *base = mmap(NULL, (size_t)(2 * areas + 1) * page, PROT_NONE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (base == MAP_FAILED) { perror("mmap"); return 1; }
        for (long i = 0; i < areas; i++) {  /* page 2i+1 readable and writable, its neighbours PROT_NONE */
            char *p = base + (2 * i + 1) * page;
            if (mprotect(p, page, PROT_READ | PROT_WRITE) != 0) { perror("mprotect"); return 1; }
            p[0] = (char)(i * 7 + 1);
        }
    } else if (strcmp(dim, "fds") == 0) {
        touch(4ul << 20, 0x5a);
        struct rlimit limit;
        getrlimit(RLIMIT_NOFILE, &limit);
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
        for (long i = 3; i < n; i++)
            if (open("/dev/null", O_RDWR) < 0) { perror("open"); return 1; }
    } else {
        fprintf(stderr, "unknown dimension %s\n", dim);
        return 2;
    }
    printf("\nREADY\n");
    fflush(stdout);
    for (;;) pause();
}
C
cc -O2 -pthread -o "$WORK/scale" "$WORK/scale.c"
# Descriptors: the agent and the launcher hold a few too; stay under the hard limit.
HARD=$(ulimit -Hn); [ "$HARD" = unlimited ] && HARD=1048576
FD_CAP=$(( HARD - 64 ))
json() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(" ".join(str(d[k]) for k in sys.argv[2:]))' "$@"; }
wait_gone() {  # the PIDs in $WORK/pids free again (killed orphans stay zombies until init reaps them)
    local p
    for p in $(cat "$WORK/pids"); do
        for _ in $(seq 2000); do [ -e "/proc/$p" ] || break; sleep 0.005; done
    done
}
# One point: DIM N RUN -> a line "DIM N RUN pause_ns total_ns restart_us" in $WORK/results.
point() {
    local dim=$1 n=$2 run=$3 out image pause total r0 r1 ok p
    rm -f "$WORK/out" "$WORK/pids"
    "$BIN/stasis" run --dir "$WORK/images" -- "$WORK/scale" "$dim" "$n" > "$WORK/out" 2>&1 &
    RUN=$!
    until grep -q READY "$WORK/out" 2>/dev/null; do
        kill -0 "$RUN" 2>/dev/null || { echo "fixture $dim $n failed: $(cat "$WORK/out")" >&2; exit 1; }
        sleep 0.02
    done
    grep PIDS "$WORK/out" | cut -d' ' -f2- > "$WORK/pids"
    out=$("$BIN/stasis" checkpoint --json "$RUN")
    read -r image pause total <<< "$(json "$out" image pause_ns total_ns)"
    kill_fixture 2>/dev/null; wait "$RUN" 2>/dev/null || true; RUN=""
    wait_gone
    rm -f "$WORK/restored.pid"
    r0=$(date +%s%N)
    "$BIN/stasis" restart --eager --pid-file "$WORK/restored.pid" "$image" > "$WORK/restart.out" 2>&1 &
    RESTART=$!
    ok=1
    until [ -s "$WORK/restored.pid" ]; do
        if ! kill -0 "$RESTART" 2>/dev/null; then ok=0; break; fi
        sleep 0.002
    done
    for p in $(cat "$WORK/pids"); do until [ -e "/proc/$p" ] || [ $ok = 0 ]; do sleep 0.002; done; done
    r1=$(date +%s%N)
    if [ $ok = 1 ]; then
        echo "$dim $n $run $pause $total $(( (r1 - r0) / 1000 ))" >> "$WORK/results"
    else
        echo "restart $dim $n failed: $(cat "$WORK/restart.out")" >&2
        echo "$dim $n $run $pause $total -1" >> "$WORK/results"
    fi
    kill_fixture 2>/dev/null
    [ -s "$WORK/restored.pid" ] && kill -9 "$(cat "$WORK/restored.pid")" 2>/dev/null || true
    wait "$RESTART" 2>/dev/null || true; RESTART=""
    wait_gone
    rm -rf "$WORK/images"
}
: > "$WORK/results"
IFS=, read -r -a DIMLIST <<< "$DIMS"
for dim in "${DIMLIST[@]}"; do
    var="L_$dim"
    [ -n "${!var+x}" ] || { echo "unknown dimension: $dim" >&2; exit 2; }
    IFS=, read -r -a VALUES <<< "${!var}"
    for run in $(seq "$RUNS"); do
        for n in "${VALUES[@]}"; do
            if [ "$dim" = fds ] && [ "$n" -gt "$FD_CAP" ]; then
                [ "$run" = 1 ] && echo "fds $n: over the hard descriptor limit ($HARD), using $FD_CAP" >&2
                n=$FD_CAP
            fi
            point "$dim" "$n" "$run"
            echo "$(date -u +%H:%M:%S) $(tail -1 "$WORK/results")" >&2
        done
    done
done
[ -n "$RAW" ] && cp "$WORK/results" "$RAW"
python3 - "$WORK/results" "$WORK/plot.dat" <<'PY'
import math, statistics, sys
rows = {}
order = []
for line in open(sys.argv[1]):
    dim, n, run, pause, total, restart = line.split()
    key = (dim, int(n))
    if key not in rows: rows[key] = []; order.append(key)
    rows[key].append((int(pause) / 1e6, int(total) / 1e6, int(restart) / 1e3 if int(restart) >= 0 else None))
unit = {"memory": "MiB", "threads": "threads", "processes": "procs", "mappings": "maps", "fds": "fds"}
print(f"{'dimension':<10} {'value':>7} {'pause_ms':>9} {'ckpt_ms':>9} {'restart_ms':>10} "
      f"{'pause/u':>8} {'ckpt/u':>7} {'rest/u':>7} {'ckpt_slope':>10}")
plot = open(sys.argv[2], "w")
base = {}; prev = {}
for dim, n in order:
    r = rows[(dim, n)]
    p = statistics.median(x[0] for x in r); t = statistics.median(x[1] for x in r)
    rs = [x[2] for x in r if x[2] is not None]
    rr = statistics.median(rs) if rs else float("nan")
    if dim not in base:
        base[dim] = (n, p, t, rr)
        plot.write(f"\n\n# {dim}\n")
    b = base[dim]
    rel = lambda c, c0: (c / n) / (c0 / b[0]) if c0 > 0 else float("nan")
    slope = "" if dim not in prev else f"{math.log(t / prev[dim][1]) / math.log(n / prev[dim][0]):.2f}"
    prev[dim] = (n, t)
    print(f"{dim:<10} {n:>7} {p:>9.1f} {t:>9.1f} {rr:>10.1f} {rel(p, b[1]):>8.2f} {rel(t, b[2]):>7.2f} "
          f"{rel(rr, b[3]):>7.2f} {slope:>10}")
    plot.write(f"{n} {p} {t} {rr}\n")
PY
if [ -n "$PLOT" ]; then
    {
        echo "set terminal pngcairo size 1600,900 font ',10' noenhanced" 2>/dev/null
        echo "set output '$PLOT'"
        echo "set multiplot layout 2,3 title 'Stasis scaling: medians of $RUNS runs ($(date -u +%F), $(nproc) cores)'"
        echo "set logscale xy; set grid; set key top left; set ylabel 'ms'"
        i=0
        for dim in "${DIMLIST[@]}"; do
            label=$dim; [ "$dim" = memory ] && label='memory (MiB written)'
            echo "set title '$label'; set xlabel '$label'"
            echo "plot '$WORK/plot.dat' index $i using 1:2 with linespoints title 'pause', '' index $i using 1:3 with linespoints title 'checkpoint', '' index $i using 1:4 with linespoints title 'restart (eager)'"
            i=$((i + 1))
        done
        echo "unset multiplot"
    } > "$WORK/plot.gp"
    gnuplot "$WORK/plot.gp" 2>/dev/null || { sed -i 's/pngcairo/png/' "$WORK/plot.gp"; gnuplot "$WORK/plot.gp"; }
    echo "plot: $PLOT" >&2
fi
