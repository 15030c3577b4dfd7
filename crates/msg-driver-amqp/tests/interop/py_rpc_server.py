"""A Python oslo.messaging RPC server for the interop tests.

Serves, on --topic/--server (threading executor):
  echo(value) -> value              add(a, b) -> a + b
  fail(message) raises ValueError   sleep(seconds) -> seconds (after sleeping)
  context() -> the request context  whoami() -> --server
  record(value): remembers value and prints {"event": "record", ...}; recorded() -> list
and, with --namespace/--version, one more endpoint in that namespace at that version with
  whoami() -> {"server", "namespace", "version"}; --ping turns on oslo's rpc_ping_enabled
(oslo_rpc_server_ping answers "pong").
Prints {"event": "ready", ...} once it listens; exits on stdin EOF, SIGTERM or --lifetime.
"""

import threading
import time

import oslo_messaging

import _oslo


class Endpoint:
    def __init__(self, server):
        self.server = server
        self.lock = threading.Lock()
        self.records = []

    def echo(self, ctxt, value):
        return value

    def add(self, ctxt, a, b):
        return a + b

    def fail(self, ctxt, message):
        raise ValueError(message)

    def sleep(self, ctxt, seconds):
        time.sleep(min(float(seconds), 30.0))
        return seconds

    def context(self, ctxt):
        return dict(ctxt)

    def whoami(self, ctxt):
        return self.server

    def record(self, ctxt, value):
        with self.lock:
            self.records.append(value)
        _oslo.emit({"event": "record", "server": self.server, "value": value,
                    "ctxt": dict(ctxt)})

    def recorded(self, ctxt):
        with self.lock:
            return list(self.records)


class Versioned:
    def __init__(self, server, namespace, version):
        self.target = oslo_messaging.Target(namespace=namespace, version=version)
        self.info = {"server": server, "namespace": namespace, "version": version}

    def whoami(self, ctxt):
        return self.info


def main():
    p = _oslo.parser(__doc__)
    p.add_argument("--topic", required=True)
    p.add_argument("--server", required=True)
    p.add_argument("--exchange", default=None)
    p.add_argument("--namespace", default=None)
    p.add_argument("--version", default=None)
    p.add_argument("--ping", action="store_true")
    args = p.parse_args()
    conf = _oslo.setup(args)
    if args.ping:
        # registered by the dispatcher itself only as it is made: register oslo's
        # options (its public list, as oslo-config-generator reads it) first
        from oslo_messaging import opts
        for group, options in opts.list_opts():
            conf.register_opts(options, group=group)
        conf.set_override("rpc_ping_enabled", True)
    transport = _oslo.rpc_transport(conf, args)
    target = oslo_messaging.Target(topic=args.topic, server=args.server,
                                   exchange=args.exchange)
    endpoints = [Endpoint(args.server)]
    if args.namespace or args.version:
        endpoints.append(Versioned(args.server, args.namespace, args.version or "1.0"))
    server = oslo_messaging.get_rpc_server(transport, target, endpoints)
    server.start()
    _oslo.emit({"event": "ready", "topic": args.topic, "server": args.server})
    _oslo.wait_for_stop()
    _oslo.graceful(server)


if __name__ == "__main__":
    main()
