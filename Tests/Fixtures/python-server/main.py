# python-server: a TCP listener plus a connection to itself. After a restart the listener must accept
# new clients, and the old connection must fail like a reset one (its peer is gone).
# Also a socketpair with bytes queued in both directions, which must come back connected, bytes and all.
# Prints "READY PORT"; on SIGTERM accepts the client the test queued, expects "ping", prints PASS.
import signal
import socket
import time

stop = False
signal.signal(signal.SIGTERM, lambda *a: globals().update(stop=True))
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(8)
port = server.getsockname()[1]
client = socket.create_connection(("127.0.0.1", port))
accepted, _ = server.accept()
left, right = socket.socketpair()
left.sendall(b"to-right")
right.sendall(b"to-left")
print("READY", port, flush=True)
while not stop:
    time.sleep(0.01)
try:
    client.sendall(b"x")
    data = client.recv(1)
    old = "old connection still works" if data else "old connection ended"
except OSError as error:
    old = "reset: " + type(error).__name__
server.settimeout(5)
fresh, _ = server.accept()
fresh.settimeout(5)
got = fresh.recv(4)
left.settimeout(5)
right.settimeout(5)
pair_ok = right.recv(8) == b"to-right" and left.recv(7) == b"to-left"
left.sendall(b"again")
pair_ok = pair_ok and right.recv(5) == b"again"
ok = got == b"ping" and old != "old connection still works" and pair_ok
print("PASS" if ok else f"FAIL {got!r} pair {pair_ok}", old, flush=True)
