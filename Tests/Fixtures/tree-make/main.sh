# tree-make DIR [FILES]: `make -j2` building a generated C project in DIR, slow enough to be checkpointed
# in the middle (every compile goes through DIR/slowcc, which sleeps 0.4 s first).
#
# Generates DIR/f1.c .. fFILES.c (default 30; each fI returns I*I+1 through a little loop), main.c (prints
# "sum S", S their sum), a Makefile and slowcc; starts `make -j2` in the background and prints
# "READY MAKE". When make is done: make's status must be 0, DIR/prog must print the expected sum:
# "PASS make FILES", else "FAIL make ..." and exit 1. There is nothing to tell: the test waits for the end.
set -u
dir=$1
files=${2:-30}
mkdir -p "$dir" || exit 1
cd "$dir" || exit 1
expected=0
objects=
declarations=
calls=
for i in $(seq 1 "$files"); do
    cat > "f$i.c" <<SOURCE
int f$i(void) {
    volatile int total = 1;
    for (int k = 0; k < $i; k++) total += $i;
    return total;
}
SOURCE
    expected=$((expected + i * i + 1))
    objects="$objects f$i.o"
    declarations="$declarations int f$i(void);"
    calls="$calls sum += f$i();"
done
cat > main.c <<SOURCE
#include <stdio.h>
$declarations
int main(void) {
    long sum = 0;
    $calls
    printf("sum %ld\n", sum);
    return 0;
}
SOURCE
# -pipe: cc1 and as talk through a pipe instead of a /tmp/cc*.s file that the driver deletes when the
# compile ends; a checkpoint that caught `as` reading such a file could not be restarted once the job,
# running on after the checkpoint, had deleted it (files are not saved: Docs/ARCHITECTURE.md 4).
printf '#!/bin/sh\nsleep 0.4\nexec cc -pipe "$@"\n' > slowcc
chmod +x slowcc
printf 'CC = ./slowcc\nprog: main.o%s\n\t$(CC) -o $@ $^\n%%.o: %%.c\n\t$(CC) -O1 -c -o $@ $<\n' "$objects" > Makefile
make -j2 > make.log 2>&1 &
make_pid=$!
echo "READY $make_pid"
wait "$make_pid"
status=$?
if [ "$status" != 0 ]; then
    echo "FAIL make: make exited $status: $(tail -3 make.log)"
    exit 1
fi
result=$(./prog)
if [ "$result" != "sum $expected" ]; then
    echo "FAIL make: prog printed '$result', expected 'sum $expected'"
    exit 1
fi
echo "PASS make $files"
