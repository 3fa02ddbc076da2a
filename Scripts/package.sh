#!/usr/bin/env bash
# Makes a relocatable release tarball, stasis-VERSION-linux-x86_64.tar.gz, holding
#   stasis-VERSION-linux-x86_64/bin/stasis
#   stasis-VERSION-linux-x86_64/lib/stasis/libStasisAgent.so
#   stasis-VERSION-linux-x86_64/lib/stasis/stasis-restorer
#   stasis-VERSION-linux-x86_64/README.md
# (Scripts/install.sh's layout): unpacked anywhere (a path without spaces or colons), bin/stasis
# works as it is, without the Swift toolchain. VERSION is what the packaged `stasis --version` says
# (Sources/StasisLauncher/Support/Version.swift, the one place it is written).
#   Scripts/package.sh [--from BUILD_DIR] [--output DIR]
#     --from BUILD_DIR  package the products already built there instead of building release
#     --output DIR      where the tarball goes (default: .build)
# Prints the tarball's path (last line).
set -euo pipefail
FROM=
OUTPUT=
while [ $# -gt 0 ]; do
    case "$1" in
        --from) FROM=${2:?--from needs a build directory}; shift 2 ;;
        --from=*) FROM=${1#--from=}; shift ;;
        --output) OUTPUT=${2:?--output needs a directory}; shift 2 ;;
        --output=*) OUTPUT=${1#--output=}; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "package.sh: unknown argument '$1'; see --help" >&2; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."
ROOT=$(pwd -P)
OUTPUT=${OUTPUT:-$ROOT/.build}
mkdir -p "$OUTPUT"
OUTPUT=$(cd "$OUTPUT" && pwd -P)
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/stasis-package-XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
"$ROOT/Scripts/install.sh" --prefix "$STAGE/tree" ${FROM:+--from "$FROM"} >/dev/null
VERSION=$("$STAGE/tree/bin/stasis" --version | awk '{ print $2 }')
[ -n "$VERSION" ] || { echo "package.sh: the packaged stasis printed no version" >&2; exit 1; }
NAME=stasis-$VERSION-linux-x86_64
mv "$STAGE/tree" "$STAGE/$NAME"
install -m 0644 "$ROOT/README.md" "$STAGE/$NAME/README.md"
# Same bytes for the same products: names sorted, no owner, times from the last commit when there is one.
MTIME=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)
tar -C "$STAGE" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$MTIME" -cf - "$NAME" \
    | gzip -n > "$OUTPUT/$NAME.tar.gz.tmp"
mv "$OUTPUT/$NAME.tar.gz.tmp" "$OUTPUT/$NAME.tar.gz"
echo "$OUTPUT/$NAME.tar.gz"
