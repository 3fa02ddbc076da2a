# python-threads: workers with their own counters and thread-local data, a queue consumer, a lock-protected
# dict; on SIGTERM everything is checked and PASS or FAIL printed.
import queue
import signal
import threading
import time

stop = threading.Event()
local = threading.local()
counts = [0] * 6
shared = {}
lock = threading.Lock()
jobs = queue.Queue()
consumed = []


def worker(index):
    local.name = f"worker-{index}"
    while not stop.is_set():
        counts[index] += 1
        if counts[index] % 1000 == 0:
            with lock:
                shared[(index, counts[index])] = local.name
            time.sleep(0.0005)
    assert local.name == f"worker-{index}"


def consumer():
    while True:
        item = jobs.get()
        if item is None:
            return
        consumed.append(item)


terminate = threading.Event()
signal.signal(signal.SIGTERM, lambda s, f: terminate.set())
threads = [threading.Thread(target=worker, args=(i,), name=f"w{i}") for i in range(6)]
threads.append(threading.Thread(target=consumer, name="consumer"))
for t in threads:
    t.start()
for i in range(100):
    jobs.put(i)
print("READY", flush=True)
while not terminate.wait(0.05):
    pass
for i in range(100, 200):
    jobs.put(i)
jobs.put(None)
stop.set()
for t in threads:
    t.join()
ok = all(c > 0 for c in counts) and consumed == list(range(200))
ok = ok and all(v == f"worker-{k[0]}" for k, v in shared.items())
print("PASS" if ok else f"FAIL counts={counts} consumed={len(consumed)}", flush=True)
