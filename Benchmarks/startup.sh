#!/usr/bin/env bash
# Launcher start-up: wall time from posix_spawn to waitpid of `stasis --help`, `stasis --version` and
# `stasis run -- /bin/true`, beside /bin/true itself and /bin/true with the agent preloaded as `stasis
# run` preloads it (the agent's own cost, which `run` includes). Median, 10th and 90th percentile of
# N interleaved rounds (one of each command per round, after N/10 warm-up rounds), of the launcher as
# Scripts/install.sh installs it (release build, in a temporary prefix).
#   Benchmarks/startup.sh [N] [DIR]      default: 1000; DIR: measure DIR/stasis instead (e.g. .build/debug)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
WORK=$(mktemp -d /tmp/stasis-startup-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
if [ -n "${2:-}" ]; then
    STASIS=$(cd "$2" && pwd)/stasis
else
    Scripts/install.sh --prefix "$WORK/prefix" > "$WORK/install.log" 2>&1 || { cat "$WORK/install.log" >&2; exit 1; }
    STASIS=$WORK/prefix/bin/stasis
fi
AGENT=$("$STASIS" run -- /bin/sh -c 'printf %s "$LD_PRELOAD"')  # where this stasis finds its agent
cat > "$WORK/spawnbench.c" <<'C'
/* spawnbench ROUNDS CMD [CMD]...: each CMD is one argument, split at spaces; leading NAME=VALUE
   words go into its environment. Prints per command: median p10 p90 (microseconds) and the CMD. */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
extern char **environ;
static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}
int main(int argc, char **argv) {
    int rounds = atoi(argv[1]), n = argc - 2;
    char ***words = calloc(n, sizeof *words), ***envs = calloc(n, sizeof *envs);
    for (int c = 0; c < n; c++) {
        char *copy = strdup(argv[c + 2]), *save = NULL;
        int w = 0, e = 0;
        words[c] = calloc(256, sizeof(char *));
        envs[c] = calloc(1024, sizeof(char *));
        for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
            if (w == 0 && t[0] != '/' && t[0] != '.' && strchr(t, '=')) envs[c][e++] = t;
            else words[c][w++] = t;
        }
        for (char **p = environ; *p && e < 1022; p++) envs[c][e++] = *p;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    double *times = calloc((size_t)n * rounds, sizeof *times);
    for (int r = -rounds / 10; r < rounds; r++)
        for (int c = 0; c < n; c++) {
            pid_t pid;
            int status;
            double start = now_us();
            if (posix_spawn(&pid, words[c][0], &actions, NULL, words[c], envs[c]) != 0) { perror(words[c][0]); return 1; }
            waitpid(pid, &status, 0);
            double elapsed = now_us() - start;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { fprintf(stderr, "failed: %s\n", argv[c + 2]); return 1; }
            if (r >= 0) times[(size_t)c * rounds + r] = elapsed;
        }
    for (int c = 0; c < n; c++) {
        double *t = times + (size_t)c * rounds;
        qsort(t, rounds, sizeof *t, compare);
        printf("%.0f %.0f %.0f %s\n", t[rounds / 2], t[rounds / 10], t[rounds * 9 / 10], argv[c + 2]);
    }
    return 0;
}
C
cc -O2 -o "$WORK/spawnbench" "$WORK/spawnbench.c"
cd "$WORK"  # `stasis run` takes the current directory as its image directory
AGENT_ONLY="LD_PRELOAD=$AGENT STASIS_DIR=$WORK STASIS_SIGNAL=12 /bin/true"
"$WORK/spawnbench" "$N" /bin/true "$AGENT_ONLY" "$STASIS --help" "$STASIS --version" "$STASIS run -- /bin/true" > "$WORK/times"
echo "$N rounds; microseconds; added = median minus /bin/true's"
printf "%-34s %8s %8s %8s %8s\n" command median p10 p90 added
BASE=$(head -n 1 "$WORK/times" | cut -d' ' -f1)
while read -r median p10 p90 command; do
    case "$command" in
        "$AGENT_ONLY") label="/bin/true, agent preloaded" ;;
        "$STASIS "*) label="stasis ${command#"$STASIS "}" ;;
        *) label=$command ;;
    esac
    printf "%-34s %8s %8s %8s %8s\n" "$label" "$median" "$p10" "$p90" "$((median - BASE))"
done < "$WORK/times"
AGENT_MEDIAN=$(sed -n 2p "$WORK/times" | cut -d' ' -f1)
RUN_MEDIAN=$(sed -n 5p "$WORK/times" | cut -d' ' -f1)
echo "stasis run's own share (run minus /bin/true with the agent): $((RUN_MEDIAN - AGENT_MEDIAN)) us"
