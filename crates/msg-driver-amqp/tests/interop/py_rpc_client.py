"""A Python oslo.messaging RPC client for the interop tests.

argv: --topic T and a JSON list of operations, run in order, e.g.
  [{"op": "call", "method": "add", "args": {"a": 2, "b": 3}},
   {"op": "cast", "method": "record", "args": {"value": 1}, "fanout": true},
   {"op": "call", "method": "whoami", "server": "s1", "namespace": "ns", "version": "1.1",
    "timeout": 5, "call_monitor_timeout": 2, "context": {"user": "alice"}}]
Prints one JSON line per operation: {"i", "op", "method", "ok": result, "elapsed"} or
{"i", ..., "error": {"type", "module", "str", and for RemoteError "exc_type", "value",
"traceback"}}, then {"event": "done"}. --allowed-exmods lists modules whose exceptions
Python may rebuild (oslo's allowed_remote_exmods).
"""

import json
import time

import oslo_messaging

import _oslo


def main():
    p = _oslo.parser(__doc__)
    p.add_argument("--topic", required=True)
    p.add_argument("--exchange", default=None)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--allowed-exmods", default="")
    p.add_argument("ops")
    args = p.parse_args()
    conf = _oslo.setup(args)
    exmods = [m for m in args.allowed_exmods.split(",") if m]
    transport = oslo_messaging.get_rpc_transport(conf, url=args.url,
                                                 allowed_remote_exmods=exmods)
    target = oslo_messaging.Target(topic=args.topic, exchange=args.exchange)
    client = oslo_messaging.get_rpc_client(transport, target, timeout=args.timeout)
    for i, op in enumerate(json.loads(args.ops)):
        prepared = {k: op[k] for k in ("server", "namespace", "version", "fanout",
                                       "timeout", "call_monitor_timeout") if k in op}
        c = client.prepare(**prepared) if prepared else client
        ctxt = op.get("context", {})
        kind = op.get("op", "call")
        out = {"i": i, "op": kind, "method": op["method"]}
        start = time.monotonic()
        try:
            if kind == "call":
                out["ok"] = c.call(ctxt, op["method"], **op.get("args", {}))
            else:
                c.cast(ctxt, op["method"], **op.get("args", {}))
                out["ok"] = None
        except Exception as e:  # reported, not raised: the test asserts on it
            out["error"] = _oslo.describe_error(e)
        out["elapsed"] = round(time.monotonic() - start, 3)
        _oslo.emit(out)
    _oslo.emit({"event": "done"})
    try:
        transport.cleanup()
    except Exception:
        pass


if __name__ == "__main__":
    main()
