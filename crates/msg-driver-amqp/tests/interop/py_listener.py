"""A Python oslo.messaging notification listener for the interop tests.

Listens on --topic (every priority; optionally in --pool), with the threading executor,
one by one or, with --batch-size/--batch-timeout, as a batch listener. Prints
{"event": "ready"} once it listens, then one JSON line per notification:
{"event": "notification", "priority", "ctxt", "publisher_id", "event_type", "payload",
"metadata"} (batch listeners add "batch" (its number) and "batch_size"). Exits after
--count notifications (then {"event": "done"}), on stdin EOF, SIGTERM or --lifetime.
"""

import threading

import oslo_messaging

import _oslo

PRIORITIES = ["audit", "debug", "info", "warn", "error", "critical", "sample"]


class Counter:
    def __init__(self, limit):
        self.limit = limit
        self.seen = 0
        self.batches = 0
        self.lock = threading.Lock()

    def add(self, n):
        with self.lock:
            self.seen += n
            if self.limit and self.seen >= self.limit:
                _oslo._stop.set()

    def next_batch(self):
        with self.lock:
            self.batches += 1
            return self.batches


def record(priority, ctxt, publisher_id, event_type, payload, metadata, **extra):
    out = {"event": "notification", "priority": priority, "ctxt": ctxt,
           "publisher_id": publisher_id, "event_type": event_type,
           "payload": payload, "metadata": metadata}
    out.update(extra)
    _oslo.emit(out)


def single_endpoint(counter):
    class Endpoint:
        pass

    def handler(priority):
        def handle(self, ctxt, publisher_id, event_type, payload, metadata):
            record(priority, ctxt, publisher_id, event_type, payload, metadata)
            counter.add(1)
            return oslo_messaging.NotificationResult.HANDLED
        return handle

    for prio in PRIORITIES:
        setattr(Endpoint, prio, handler(prio))
    return Endpoint()


def batch_endpoint(counter):
    class Endpoint:
        pass

    def handler(priority):
        def handle(self, messages):
            n = counter.next_batch()
            for m in messages:
                record(priority, m["ctxt"], m["publisher_id"], m["event_type"],
                       m["payload"], m["metadata"], batch=n, batch_size=len(messages))
            counter.add(len(messages))
            return oslo_messaging.NotificationResult.HANDLED
        return handle

    for prio in PRIORITIES:
        setattr(Endpoint, prio, handler(prio))
    return Endpoint()


def main():
    p = _oslo.parser(__doc__)
    p.add_argument("--topic", required=True)
    p.add_argument("--exchange", default=None)
    p.add_argument("--pool", default=None)
    p.add_argument("--count", type=int, default=0, help="exit after this many (0: never)")
    p.add_argument("--batch-size", type=int, default=0)
    p.add_argument("--batch-timeout", type=float, default=1.0)
    args = p.parse_args()
    conf = _oslo.setup(args)
    transport = _oslo.notification_transport(conf, args)
    targets = [oslo_messaging.Target(topic=args.topic, exchange=args.exchange)]
    counter = Counter(args.count)
    if args.batch_size > 0:
        listener = oslo_messaging.get_batch_notification_listener(
            transport, targets, [batch_endpoint(counter)], executor="threading",
            pool=args.pool, batch_size=args.batch_size,
            batch_timeout=args.batch_timeout)
    else:
        listener = oslo_messaging.get_notification_listener(
            transport, targets, [single_endpoint(counter)], executor="threading",
            pool=args.pool)
    listener.start()
    _oslo.emit({"event": "ready", "topic": args.topic, "pool": args.pool})
    _oslo.wait_for_stop()
    if args.count and counter.seen >= args.count:
        _oslo.emit({"event": "done", "seen": counter.seen})
    _oslo.graceful(listener)


if __name__ == "__main__":
    main()
