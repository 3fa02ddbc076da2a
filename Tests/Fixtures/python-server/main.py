# python-server: a TCP listener plus a connection to itself. After a restart the listener must accept
# new clients, and the old connection must fail like a reset one (its peer is gone).
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
print("PASS" if got == b"ping" and old != "old connection still works" else f"FAIL {got!r} {old}", old, flush=True)
