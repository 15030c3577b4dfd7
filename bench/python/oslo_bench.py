"""oslo.messaging's side of `msgctl bench`: the same patterns through Python's public API.

    python oslo_bench.py --url rabbit://guest:guest@127.0.0.1:5672/ rpc --count 2000
    python oslo_bench.py ... rpc --count 20000 --concurrency 32
    python oslo_bench.py ... cast --count 20000 --concurrency 32
    python oslo_bench.py ... notify --phase publish --count 20000 --concurrency 32
    python oslo_bench.py ... notify --phase consume --count 20000 [--batch-size 100]

- rpc: an RPC server (threading executor) in this process answers `echo(value)`; an
  RPCClient makes --count calls from --concurrency threads; latency per call.
- cast: the same server; --count casts from --concurrency threads; then waits until the
  server handled them all (reported as handled_seconds / handled_rate).
- notify --phase publish: a Notifier (messagingv2) sends --count `info` notifications from
  --concurrency threads.
- notify --phase consume: --count notifications are preloaded (untimed), then a
  notification listener (threading executor; with --batch-size a batch listener) drains
  them; the percentiles are of the interval between notifications handled.

Each message carries a JSON string of --payload-bytes. Names (control exchange, topic) are
unique per run; the queues and the exchange are deleted at the end (through kombu, which
oslo.messaging's rabbit driver is built on: oslo has no API to delete them). Prints one JSON
object like `msgctl bench --json` on stdout. Bounded: fails (exit 3) after --stall-timeout
seconds without progress, and after --deadline seconds whatever happens.
"""

import argparse
import json
import logging
import math
import os
import sys
import threading
import time
import uuid

import oslo_messaging
from oslo_config import cfg
from oslo_messaging import opts as oslo_opts

SERVER = "bench"
EVENT_TYPE = "msgbench.event"
PUBLISHER_ID = "msgbench"


class Progress:
    """A counter of messages done, and the watchdog that ends a stalled run."""

    def __init__(self):
        self.lock = threading.Lock()
        self.done = 0
        self.phase = "starting"
        self.total = 0

    def start(self, phase, total):
        with self.lock:
            self.phase, self.total, self.done = phase, total, 0

    def add(self, n=1):
        with self.lock:
            self.done += n
            return self.done

    def get(self):
        with self.lock:
            return self.done


def fail(message, code=3):
    sys.stderr.write("oslo_bench: %s\n" % message)
    sys.stderr.flush()
    os._exit(code)


def watchdog(progress, stall, deadline):
    started = time.monotonic()
    last, moved = -1, time.monotonic()
    while True:
        time.sleep(0.25)
        now = time.monotonic()
        if now - started > deadline:
            fail("deadline of %.0f s passed (%s: %d of %d done)"
                 % (deadline, progress.phase, progress.get(), progress.total))
        done = progress.get()
        if done != last:
            last, moved = done, now
        elif now - moved > stall:
            fail("stalled: %s: no progress for %.0f s (%d of %d done)"
                 % (progress.phase, stall, done, progress.total))


def percentile(sorted_values, q):
    if not sorted_values:
        return 0.0
    i = max(0, min(len(sorted_values) - 1, int(math.ceil(q * len(sorted_values))) - 1))
    return sorted_values[i]


def run_threads(count, threads, op, progress):
    """Runs op() count times from `threads` threads; returns (seconds, latencies in s)."""
    lock = threading.Lock()
    state = {"next": 0, "error": None}
    latencies = []

    def worker():
        mine = []
        while True:
            with lock:
                if state["next"] >= count or state["error"] is not None:
                    break
                state["next"] += 1
            t = time.perf_counter()
            try:
                op()
            except Exception as e:  # the first failure ends the run
                with lock:
                    if state["error"] is None:
                        state["error"] = e
                break
            mine.append(time.perf_counter() - t)
            progress.add()
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - start
    if state["error"] is not None:
        fail("%s: %r" % (progress.phase, state["error"]), code=1)
    return seconds, latencies


class Counter:
    def __init__(self, progress):
        self.progress = progress
        self.lock = threading.Lock()
        self.last = None
        self.gaps = []

    def completed(self, n):
        now = time.perf_counter()
        with self.lock:
            if self.last is not None:
                self.gaps.extend([(now - self.last) / n] * n)
            self.last = now
        self.progress.add(n)


class EchoEndpoint:
    def __init__(self, handled):
        self.handled = handled

    def echo(self, ctxt, value):
        self.handled.add()
        return value


def wait_until(progress, target):
    while progress.get() < target:
        time.sleep(0.001)


def kombu_url(url):
    for scheme in ("rabbit://", "amqp://"):
        if url.startswith(scheme):
            return "amqp://" + url[len(scheme):]
    return url


def cleanup(url, queues, exchange):
    try:
        import kombu
        with kombu.Connection(kombu_url(url), connect_timeout=5) as conn:
            ch = conn.channel()
            for q in queues:
                try:
                    ch.queue_delete(q)
                except Exception:
                    ch = conn.channel()
            try:
                ch.exchange_delete(exchange)
            except Exception:
                pass
    except Exception as e:
        logging.warning("cleaning up failed: %r", e)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=os.environ.get("MSG_RABBIT_URL"),
                   help="transport URL (default: $MSG_RABBIT_URL)")
    p.add_argument("pattern", choices=["rpc", "cast", "notify"])
    p.add_argument("--phase", choices=["publish", "consume"], default=None)
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--concurrency", type=int, default=1,
                   help="client threads (notify consume: ignored, the listener has "
                        "executor_thread_pool_size threads)")
    p.add_argument("--payload-bytes", type=int, default=100)
    p.add_argument("--prefetch", type=int, default=None,
                   help="rabbit_qos_prefetch_count (default: oslo's, 0 = unlimited)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="notify consume: a batch listener with batches of N")
    p.add_argument("--stall-timeout", type=float, default=60.0)
    p.add_argument("--deadline", type=float, default=600.0)
    args = p.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.ERROR)
    if not args.url:
        fail("no transport URL: pass --url or set MSG_RABBIT_URL", code=2)
    if args.count < 1 or args.concurrency < 1 or args.payload_bytes < 0:
        fail("--count and --concurrency must be at least 1", code=2)
    if args.phase and args.pattern != "notify":
        fail("--phase is for notify", code=2)
    phase = {"rpc": "call", "cast": "cast"}.get(args.pattern, args.phase or "publish")

    progress = Progress()
    threading.Thread(target=watchdog, args=(progress, args.stall_timeout, args.deadline),
                     daemon=True).start()

    run_id = uuid.uuid4().hex[:12]
    exchange = "msgbench_py_%s" % run_id
    topic = "msgbench_py_%s" % run_id
    payload = "x" * args.payload_bytes

    conf = cfg.CONF
    conf([], project="msgbench")
    if args.prefetch is not None:
        # the rabbit driver's options, so that the prefetch is set before the driver loads
        for group, opts in oslo_opts.list_opts():
            if group == "oslo_messaging_rabbit":
                conf.register_opts(opts, group=group)
        conf.set_override("rabbit_qos_prefetch_count", args.prefetch,
                          group="oslo_messaging_rabbit")
    oslo_messaging.set_transport_defaults(control_exchange=exchange)

    result = {"pattern": args.pattern, "phase": phase,
              "url_scheme": args.url.split("://", 1)[0], "raw": False,
              "count": args.count, "concurrency": args.concurrency,
              "payload_bytes": args.payload_bytes,
              "client": "oslo.messaging %s" % oslo_messaging_version()}
    queues = []
    try:
        if args.pattern in ("rpc", "cast"):
            queues = [topic, "%s.%s" % (topic, SERVER)]
            measured = rpc(args, conf, topic, payload, progress)
        else:
            queues = ["%s.info" % topic]
            measured = notify(args, conf, topic, payload, progress, phase)
    finally:
        cleanup(args.url, queues, exchange)
    seconds, latencies = measured[0], sorted(measured[1])
    result.update({
        "seconds": seconds,
        "rate": args.count / seconds if seconds > 0 else 0.0,
        "p50_ms": percentile(latencies, 0.50) * 1000.0,
        "p90_ms": percentile(latencies, 0.90) * 1000.0,
        "p99_ms": percentile(latencies, 0.99) * 1000.0,
        "max_ms": (latencies[-1] if latencies else 0.0) * 1000.0,
    })
    if len(measured) > 2 and measured[2] is not None:
        result["handled_seconds"] = measured[2]
        result["handled_rate"] = args.count / measured[2]
    if args.batch_size:
        result["batch_size"] = args.batch_size
    # the server's or listener's executor threads, and the prefetch in force (0: unlimited)
    for key, get in (("threads", lambda: conf.executor_thread_pool_size),
                     ("prefetch",
                      lambda: conf.oslo_messaging_rabbit.rabbit_qos_prefetch_count)):
        try:
            result[key] = get()
        except Exception:
            pass
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # oslo's threads (heartbeats, executors) don't hold the exit


def oslo_messaging_version():
    try:
        from importlib.metadata import version
        return version("oslo.messaging")
    except Exception:
        return "?"


def rpc(args, conf, topic, payload, progress):
    server_t = oslo_messaging.get_rpc_transport(conf, url=args.url)
    client_t = oslo_messaging.get_rpc_transport(conf, url=args.url)
    handled = Progress()
    handled.start("handled", args.count)
    server = oslo_messaging.get_rpc_server(
        server_t, oslo_messaging.Target(topic=topic, server=SERVER),
        [EchoEndpoint(handled)])
    server.start()
    client = oslo_messaging.get_rpc_client(
        client_t, oslo_messaging.Target(topic=topic), timeout=60)
    if args.pattern == "rpc":
        progress.start("calls", args.count)
        seconds, latencies = run_threads(
            args.count, args.concurrency,
            lambda: client.call({}, "echo", value=payload), progress)
        handled_seconds = None
    else:
        progress.start("casts", args.count)
        start = time.perf_counter()
        seconds, latencies = run_threads(
            args.count, args.concurrency,
            lambda: client.cast({}, "echo", value=payload), progress)
        progress.start("casts handled", args.count)
        while handled.get() < args.count:
            time.sleep(0.001)
            with progress.lock:
                progress.done = handled.get()
        handled_seconds = time.perf_counter() - start
    stopper = threading.Thread(target=lambda: (server.stop(), server.wait()), daemon=True)
    stopper.start()
    stopper.join(5)
    return seconds, latencies, handled_seconds


def notify(args, conf, topic, payload, progress, phase):
    transport = oslo_messaging.get_notification_transport(conf, url=args.url)
    notifier = oslo_messaging.Notifier(transport, publisher_id=PUBLISHER_ID,
                                       driver="messagingv2", topics=[topic])
    send = lambda: notifier.info({}, EVENT_TYPE, payload)  # noqa: E731
    if phase == "publish":
        progress.start("notifications", args.count)
        return run_threads(args.count, args.concurrency, send, progress)

    progress.start("preloading", args.count)
    run_threads(args.count, max(args.concurrency, 8), send, progress)

    listen_t = oslo_messaging.get_notification_transport(conf, url=args.url)
    progress.start("notifications handled", args.count)
    counter = Counter(progress)
    targets = [oslo_messaging.Target(topic=topic)]

    class One:
        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            counter.completed(1)
            return oslo_messaging.NotificationResult.HANDLED

    class Batch:
        def info(self, messages):
            counter.completed(len(messages))
            return oslo_messaging.NotificationResult.HANDLED

    start = time.perf_counter()
    counter.last = start
    if args.batch_size:
        listener = oslo_messaging.get_batch_notification_listener(
            listen_t, targets, [Batch()],
            batch_size=args.batch_size, batch_timeout=1)
    else:
        listener = oslo_messaging.get_notification_listener(
            listen_t, targets, [One()])
    listener.start()
    wait_until(progress, args.count)
    seconds = time.perf_counter() - start
    stopper = threading.Thread(target=lambda: (listener.stop(), listener.wait()), daemon=True)
    stopper.start()
    stopper.join(5)
    return seconds, counter.gaps


if __name__ == "__main__":
    main()
