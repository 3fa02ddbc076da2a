# tree-bash: a shell with a background job, a background pipeline with data in flight, and `wait %1`.
#
#   job %1  sleep 100000
#   job %2  seq 1 200000 | CONSUMER: a subshell that sleeps in a loop; on SIGUSR1 it reads the whole pipe
#           through md5sum and exits 4 if the bytes are exactly seq's (5 if not). Until then seq blocks
#           on the full pipe: 64 KiB in flight at every checkpoint.
#
# Prints "READY SLEEP SEQ CONSUMER". SIGTERM to the shell (the root): `wait %1` returns for the trap; the
# shell ends job %1 with SIGTERM and waits for it (143), tells the consumer (SIGUSR1) and waits for job
# %2 (4), prints "statuses 143 4" and "PASS bash", else "FAIL bash ..." and exit 1.
set -u
expected=$(seq 1 200000 | md5sum | cut -d' ' -f1)
verify=
trap 'verify=1' TERM
sleep 100000 &
job1=$!
seq 1 200000 | (
    trap 'sum=$(md5sum | cut -d" " -f1); echo "sum $sum"; if [ "$sum" = "$expected" ]; then exit 4; else exit 5; fi' USR1
    while :; do sleep 0.2; done
) &
consumer=$!
producer=$(jobs -p %2)
echo "READY $job1 $producer $consumer"
until [ -n "$verify" ]; do wait %1; done
kill -TERM "$job1"
# By PID: a non-interactive bash drops a finished job from its table as soon as it has reaped it, so
# `wait %1` after the kill races with SIGCHLD (127 "no such job" even without Stasis, when the shell is
# slow); bash keeps a reaped background PID's status for `wait PID`.
wait "$job1"
status1=$?
kill -USR1 "$consumer"
wait %2
status2=$?
echo "statuses $status1 $status2"
if [ "$status1" = 143 ] && [ "$status2" = 4 ]; then
    echo "PASS bash"
    exit 0
fi
echo "FAIL bash: statuses $status1 $status2 (143 4 expected)"
exit 1
