# python-state: a self-verifying fixture. Builds a dict, a bytearray and a counter; on SIGTERM checks them,
# grows the heap (brk must be right after restart) and prints PASS or FAIL.
import signal, sys, time
data = {i: str(i) * 3 for i in range(200000)}
big = bytearray(range(256)) * 40000
count = 0
stop = False
def on_term(s, f):
    global stop; stop = True
signal.signal(signal.SIGTERM, on_term)
print("READY", flush=True)
while not stop:
    count += 1
    if count % 1000 == 0:
        data[-count] = "x"
        time.sleep(0.001)
ok = all(data[i] == str(i) * 3 for i in range(200000)) and big == bytearray(range(256)) * 40000
more = [list(range(1000)) for _ in range(2000)]
print("PASS" if ok and count > 0 else "FAIL", count, flush=True)
