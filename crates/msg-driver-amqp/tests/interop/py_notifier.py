"""A Python oslo.messaging notifier for the interop tests.

Sends --count notifications through --driver (messaging | messagingv2) to --topic, at
--priority (or cycling through --priorities a,b,c), event type --event-type, payload
{"i": n, "driver": ...}, publisher --publisher. With --request-context the context is an
oslo.context RequestContext (user u1, project p1, request id req-<n>, auth_token SECRET);
otherwise a plain dict (which Python's notifier sends as an empty context).
Prints {"event": "sent", "i": n} per notification, then {"event": "done"}.
"""

import oslo_messaging

import _oslo


def main():
    p = _oslo.parser(__doc__)
    p.add_argument("--topic", required=True)
    p.add_argument("--driver", default="messagingv2", choices=["messaging", "messagingv2"])
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--priority", default="info")
    p.add_argument("--priorities", default=None)
    p.add_argument("--event-type", default="interop.event")
    p.add_argument("--publisher", default="python.host1")
    p.add_argument("--request-context", action="store_true")
    args = p.parse_args()
    conf = _oslo.setup(args)
    transport = _oslo.notification_transport(conf, args)
    notifier = oslo_messaging.Notifier(transport, publisher_id=args.publisher,
                                       driver=args.driver, topics=[args.topic])
    priorities = (args.priorities or args.priority).split(",")
    for i in range(args.count):
        if args.request_context:
            from oslo_context import context
            ctxt = context.RequestContext(user_id="u1", project_id="p1",
                                          request_id="req-%d" % i, auth_token="SECRET")
        else:
            ctxt = {"user": "alice"}
        priority = priorities[i % len(priorities)]
        payload = {"i": i, "driver": args.driver}
        getattr(notifier, priority)(ctxt, args.event_type, payload)
        _oslo.emit({"event": "sent", "i": i, "priority": priority})
    _oslo.emit({"event": "done"})
    try:
        transport.cleanup()
    except Exception:
        pass


if __name__ == "__main__":
    main()
