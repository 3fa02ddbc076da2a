# tree-python: multiprocessing.Pool and concurrent.futures.ProcessPoolExecutor (fork context, two
# workers each) bumping one shared multiprocessing.Value under its lock.
#
# The Value lives in multiprocessing's shared heap (a deleted file in /dev/shm, mapped MAP_SHARED by the
# root and every worker) and its lock is a POSIX semaphore in shared memory too. The root keeps both
# pools busy: each round maps 8 tasks on the Pool and submits 8 to the executor; every task bumps the
# counter and returns (n, n*n, worker pid). Prints "READY" and the four worker PIDs.
#
# SIGTERM: the round in progress finishes; then every answer must have been right, the counter must
# equal the number of tasks done (no lost or repeated update), the answering PIDs must be the original
# workers (none replaced) and both pools must shut down cleanly. "PASS python TASKS", else "FAIL ...".
import concurrent.futures
import multiprocessing
import os
import signal
import sys
import time

context = multiprocessing.get_context("fork")
counter = context.Value("q", 0)


def bump(n):
    with counter.get_lock():
        counter.value += 1
    return (n, n * n, os.getpid())


stop = False


def on_term(signo, frame):
    global stop
    stop = True


def fail(message):
    print("FAIL python:", message, flush=True)
    os._exit(1)  # the pools' threads and workers would keep sys.exit waiting


def main():
    signal.signal(signal.SIGTERM, on_term)
    pool = context.Pool(2)
    executor = concurrent.futures.ProcessPoolExecutor(2, mp_context=context)
    list(executor.map(bump, range(4)))  # the executor forks its workers at the first submit
    pool.map(bump, range(4))
    tasks = 8
    pool_workers = sorted(p.pid for p in pool._pool)
    executor_workers = sorted(executor._processes)
    if len(pool_workers) != 2 or len(executor_workers) != 2:
        fail(f"workers {pool_workers} {executor_workers}")
    print("READY", *(pool_workers + executor_workers), flush=True)
    seen = set()
    while not stop:
        numbers = range(tasks, tasks + 8)
        try:  # a lost task (a worker gone) would otherwise hang the pool for ever
            answers = pool.map_async(bump, numbers).get(timeout=60)
            answers += [future.result(timeout=60) for future in [executor.submit(bump, n) for n in numbers]]
        except Exception as error:
            fail(f"round at task {tasks}: {error!r}")
        for n, (got, square, pid) in zip(list(numbers) * 2, answers):
            if got != n or square != n * n:
                fail(f"task {n} answered {got}, {square}")
            seen.add(pid)
        tasks += 16
        time.sleep(0.01)
    with counter.get_lock():
        value = counter.value
    if value != tasks:
        fail(f"the shared counter is {value} after {tasks} tasks")
    if not seen <= set(pool_workers + executor_workers):
        fail(f"answers came from {sorted(seen)}, the workers were {pool_workers + executor_workers}")
    if sorted(p.pid for p in pool._pool) != pool_workers:
        fail(f"the pool's workers are now {sorted(p.pid for p in pool._pool)}, were {pool_workers}")
    if sorted(executor._processes) != executor_workers:
        fail(f"the executor's workers are now {sorted(executor._processes)}, were {executor_workers}")
    pool.close()
    pool.join()
    executor.shutdown(wait=True)
    print("PASS python", tasks, flush=True)


if __name__ == "__main__":
    main()
