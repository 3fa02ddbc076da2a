#!/usr/bin/env bash
# Agent overhead: added startup cost per exec (the agent is preloaded into every child too), measured
# as the mean over N runs of /bin/true and `python3 -c pass`, with and without LD_PRELOAD, in one run.
#   Benchmarks/overhead.sh [N]      default 200
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
swift build -c release >/dev/null
AGENT=$(swift build -c release --show-bin-path)/libStasisAgent.so
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
measure() {  # prints mean microseconds per run of "$@"
    local t0 t1
    t0=$(date +%s%N)
    for _ in $(seq "$N"); do "$@" >/dev/null 2>&1; done
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / N / 1000 ))
}
# The interpreter itself, not a version manager's shim script (which would exec several programs).
PYTHON=$(python3 -c 'import sys; print(sys.executable)')
printf "%-22s %12s %12s %12s\n" program plain_us agent_us added_us
for cmd in "/bin/true" "$PYTHON -c pass"; do
    plain=$(measure env STASIS_DIR="$WORK" $cmd)
    with=$(measure env LD_PRELOAD="$AGENT" STASIS_DIR="$WORK" $cmd)
    printf "%-22s %12s %12s %12s\n" "$cmd" "$plain" "$with" "$((with - plain))"
done
