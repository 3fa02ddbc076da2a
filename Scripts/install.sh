#!/usr/bin/env bash
# Installs Stasis in one step: builds the release products and copies them to
#   PREFIX/bin/stasis                     the launcher (Swift runtime linked in; needs only libc, libm)
#   PREFIX/lib/stasis/libStasisAgent.so   the agent `stasis run` preloads (needs only libc, libm)
#   PREFIX/lib/stasis/stasis-restorer     the restorer `stasis restart` execs (static, no libc)
# `stasis` finds the other two from its own path (Sources/StasisLauncher/Support/Installation.swift),
# so the tree works wherever it is copied; nothing in it needs the Swift toolchain.
#   Scripts/install.sh [--prefix DIR] [--from BUILD_DIR]
#     --prefix DIR      where to install (default /usr/local); no spaces or colons: the agent's path
#                       goes into LD_PRELOAD, which splits at both
#     --from BUILD_DIR  install the products already built there (e.g. .build/debug) instead of
#                       building release
# Prints the installed launcher's path (last line).
set -euo pipefail
PREFIX=/usr/local
FROM=
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
        --prefix=*) PREFIX=${1#--prefix=}; shift ;;
        --from) FROM=${2:?--from needs a build directory}; shift 2 ;;
        --from=*) FROM=${1#--from=}; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument '$1'; see --help" >&2; exit 2 ;;
    esac
done
case "$PREFIX" in
    *[[:space:]:]*) echo "install.sh: '$PREFIX' has a space or a colon: LD_PRELOAD could not name the agent there" >&2; exit 2 ;;
esac
[ "$(uname -m)" = x86_64 ] || { echo "install.sh: Stasis runs on x86-64 only, this is $(uname -m)" >&2; exit 1; }
cd "$(dirname "$0")/.."
if [ -z "$FROM" ]; then
    # No RUNPATH=$ORIGIN: an installed stasis loads libc and libm from the system only, without first
    # trying a dozen names in its own directory.
    swift build -c release --disable-local-rpath >&2
    FROM=$(swift build -c release --disable-local-rpath --show-bin-path)
fi
for product in stasis libStasisAgent.so stasis-restorer; do
    [ -f "$FROM/$product" ] || { echo "install.sh: $FROM/$product is missing; build first (swift build)" >&2; exit 1; }
done
mkdir -p "$PREFIX"
PREFIX=$(cd "$PREFIX" && pwd -P)
install -d -m 0755 "$PREFIX/bin" "$PREFIX/lib/stasis"
# Symbols are not needed to run; strip when binutils is there (the launcher shrinks to about a third).
STRIP=(-s)
command -v strip >/dev/null 2>&1 || STRIP=()
install -m 0755 "${STRIP[@]}" "$FROM/stasis" "$PREFIX/bin/stasis"
install -m 0755 "${STRIP[@]}" "$FROM/libStasisAgent.so" "$PREFIX/lib/stasis/libStasisAgent.so"
install -m 0755 "${STRIP[@]}" "$FROM/stasis-restorer" "$PREFIX/lib/stasis/stasis-restorer"
"$PREFIX/bin/stasis" --version >&2
echo "$PREFIX/bin/stasis"
