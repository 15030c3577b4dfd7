"""oslo.metrics's side of the sink test: receives datagrams on a unix socket, hands each to
oslo.metrics's own MessageRouter (as its collector does), then prints what its Prometheus
registry holds.

Prints `ready` once bound; reads stdin until `done` (or its lifetime ends), keeps receiving
until the socket is idle for a second, then prints one JSON object:
{"received": N, "errors": [...], "metrics": "<Prometheus text>"}.
"""
import json
import logging
import socket
import sys
import threading
import time

import prometheus_client
from oslo_metrics import message_router

path, lifetime = sys.argv[1], float(sys.argv[2])
errors = []


class Errors(logging.Handler):
    def emit(self, record):
        errors.append(record.getMessage())


logging.getLogger("oslo_metrics").addHandler(Errors(level=logging.ERROR))

sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
sock.settimeout(0.2)
router = message_router.MessageRouter()
done = threading.Event()


def wait_done():
    for line in sys.stdin:
        if line.strip() == "done":
            break
    done.set()


threading.Thread(target=wait_done, daemon=True).start()
print("ready", flush=True)

received = 0
deadline = time.monotonic() + lifetime
last = time.monotonic()
while time.monotonic() < deadline:
    try:
        raw = sock.recv(65565)
    except socket.timeout:
        if done.is_set() and time.monotonic() - last > 1.0:
            break
        continue
    received += 1
    last = time.monotonic()
    router.process(raw)

text = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
print(json.dumps({"received": received, "errors": errors, "metrics": text}), flush=True)
