"""Shared plumbing of the interop peers: config, transports, output, lifetime bounds.

Every peer talks to the broker named by MSG_RABBIT_URL through oslo.messaging's public
API, prints one JSON object per line on stdout (flushed), logs to stderr, and is bounded:
it exits after --lifetime seconds whatever happens, when its stdin reaches EOF (the Rust
test that spawned it went away or asked it to stop), or on SIGTERM/SIGINT.
"""

import argparse
import json
import logging
import os
import signal
import sys
import threading

import oslo_messaging
from oslo_config import cfg

# the hard bound on any peer's life, whatever --lifetime says
MAX_LIFETIME = 120.0

_stop = threading.Event()
_out_lock = threading.Lock()


def emit(obj):
    """Prints one JSON line on stdout."""
    line = json.dumps(obj, sort_keys=True, default=repr)
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--url", default=os.environ.get("MSG_RABBIT_URL"),
                   help="transport URL (default: $MSG_RABBIT_URL)")
    p.add_argument("--lifetime", type=float, default=60.0,
                   help="seconds before the peer exits on its own (max %d)" % MAX_LIFETIME)
    p.add_argument("--trace", action="store_true",
                   help="turn on oslo's RPC tracing ([oslo_messaging_tracing] "
                        "tracing_enabled) and print each span as it ends: "
                        '{"event": "span", ...}')
    return p


def setup(args):
    """Logging, the lifetime bound and the stop triggers; returns the oslo config."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.url:
        sys.stderr.write("no transport URL: set MSG_RABBIT_URL or pass --url\n")
        sys.exit(2)
    lifetime = min(max(args.lifetime, 1.0), MAX_LIFETIME)

    def expire():
        emit({"event": "expired", "after": lifetime})
        os._exit(3)

    timer = threading.Timer(lifetime, expire)
    timer.daemon = True
    timer.start()

    def on_signal(signum, _frame):
        _stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def watch_stdin():
        try:
            while sys.stdin.read(4096):
                pass
        except Exception:
            pass
        _stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()

    # The global config, as a service uses it: 18.3.1's RPC client and server read their
    # [oslo_messaging_tracing] options from the transport's config, and only cfg.CONF has
    # them registered (a bare cfg.ConfigOpts() fails every call with NoSuchOptError).
    conf = cfg.CONF
    conf([], project="msg-interop")
    if getattr(args, "trace", False):
        trace_to_stdout(conf)
    return conf


def trace_to_stdout(conf):
    """Turns on oslo's tracing with a tracer provider whose spans are printed as they end.

    oslo.messaging reuses a tracer provider that is already set (it makes its own OTLP one
    only when none is), so this one takes the place of the OTLP exporter; everything else
    (span names, attributes, W3C propagation through the message context) is oslo's.
    """
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    class Printer(SpanExporter):
        def export(self, spans):
            for span in spans:
                ctx = span.get_span_context()
                parent = span.parent
                emit({
                    "event": "span",
                    "name": span.name,
                    "kind": span.kind.name,
                    "trace_id": "%032x" % ctx.trace_id,
                    "span_id": "%016x" % ctx.span_id,
                    "parent_span_id": ("%016x" % parent.span_id) if parent else None,
                    "status": span.status.status_code.name,
                    "attributes": dict(span.attributes or {}),
                })
            return SpanExportResult.SUCCESS

        def shutdown(self):
            pass

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Printer()))
    trace.set_tracer_provider(provider)
    conf.set_override("tracing_enabled", True, group="oslo_messaging_tracing")


def wait_for_stop(timeout=None):
    """Blocks until a stop trigger fires (or timeout); True when one fired."""
    return _stop.wait(timeout)


def stopping():
    return _stop.is_set()


def rpc_transport(conf, args):
    return oslo_messaging.get_rpc_transport(conf, url=args.url)


def notification_transport(conf, args):
    return oslo_messaging.get_notification_transport(conf, url=args.url)


def graceful(server, limit=10.0):
    """Stops and waits for a server or listener, with a bound; exits the process."""
    def hard_exit():
        os._exit(4)

    t = threading.Timer(limit, hard_exit)
    t.daemon = True
    t.start()
    try:
        server.stop()
        server.wait()
    finally:
        emit({"event": "stopped"})
    os._exit(0)


def describe_error(e):
    """An exception as JSON: its Python type, and RemoteError's fields when it is one."""
    out = {"type": type(e).__name__, "module": type(e).__module__, "str": str(e)}
    if isinstance(e, oslo_messaging.RemoteError):
        out["exc_type"] = e.exc_type
        out["value"] = e.value
        out["traceback"] = e.traceback
    for attr in ("method", "version"):
        if hasattr(e, attr):
            out[attr] = getattr(e, attr)
    return out
