"""A Python oslo.messaging service configured by oslo.config files only, for msg's config
tests: what a Rust service pointed at the same files must reach.

Reads --config-file (several) and --config-dir as a Python service does, then serves RPC on
--topic/--server: echo(value) -> {"value", "exchange"}; sleep(seconds) -> seconds. Listens
for notifications on every configured [oslo_messaging_notifications] topic. Prints
{"event": "ready", ...} with the values oslo.config read, then one line per notification
({"event": "notification", ...}). Exits on stdin EOF, SIGTERM or after --lifetime seconds.
"""

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time

import oslo_messaging
import oslo_messaging.opts
from oslo_config import cfg

_stop = threading.Event()
_lock = threading.Lock()


def emit(obj):
    with _lock:
        sys.stdout.write(json.dumps(obj, sort_keys=True, default=repr) + "\n")
        sys.stdout.flush()


class Endpoint:
    def __init__(self, conf):
        self.conf = conf

    def echo(self, ctxt, value):
        return {"value": value, "exchange": self.conf.control_exchange}

    def sleep(self, ctxt, seconds):
        time.sleep(min(float(seconds), 30.0))
        return seconds


class Notifications:
    def _record(self, priority, ctxt, publisher_id, event_type, payload, metadata):
        emit({"event": "notification", "priority": priority, "publisher_id": publisher_id,
              "event_type": event_type, "payload": payload})
        return oslo_messaging.NotificationResult.HANDLED

    def info(self, *args):
        return self._record("info", *args)

    def error(self, *args):
        return self._record("error", *args)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--topic", required=True)
    p.add_argument("--server", required=True)
    p.add_argument("--lifetime", type=float, default=60.0)
    p.add_argument("--url", default=None, help="ignored: the files name the broker")
    args, oslo_args = p.parse_known_args()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)

    timer = threading.Timer(min(max(args.lifetime, 1.0), 120.0), lambda: os._exit(3))
    timer.daemon = True
    timer.start()
    signal.signal(signal.SIGTERM, lambda *_: _stop.set())

    def watch_stdin():
        try:
            while sys.stdin.read(4096):
                pass
        except Exception:
            pass
        _stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()

    conf = cfg.CONF
    conf(oslo_args, project="msg-config-test")
    # every option oslo.messaging has, as a service that used them all would have them
    for group, opts in oslo_messaging.opts.list_opts():
        conf.register_opts(opts, group=group)
    transport = oslo_messaging.get_rpc_transport(conf)
    server = oslo_messaging.get_rpc_server(
        transport, oslo_messaging.Target(topic=args.topic, server=args.server),
        [Endpoint(conf)], executor="threading")
    server.start()
    ntransport = oslo_messaging.get_notification_transport(conf)
    notifications = conf.oslo_messaging_notifications
    listener = oslo_messaging.get_notification_listener(
        ntransport, [oslo_messaging.Target(topic=t) for t in notifications.topics],
        [Notifications()], executor="threading")
    listener.start()
    rabbit = conf.oslo_messaging_rabbit
    emit({"event": "ready",
          "control_exchange": conf.control_exchange,
          "rpc_response_timeout": conf.rpc_response_timeout,
          "executor_thread_pool_size": conf.executor_thread_pool_size,
          "driver": list(notifications.driver),
          "topics": list(notifications.topics),
          "retry": notifications.retry,
          "heartbeat_timeout_threshold": rabbit.heartbeat_timeout_threshold,
          "rabbit_qos_prefetch_count": rabbit.rabbit_qos_prefetch_count})
    _stop.wait()
    stopper = threading.Timer(10.0, lambda: os._exit(4))
    stopper.daemon = True
    stopper.start()
    for s in (server, listener):
        s.stop()
    for s in (server, listener):
        s.wait()
    os._exit(0)


if __name__ == "__main__":
    main()
