//! What the sending side records: oslo's RPC client metrics and the notifications sent (names
//! in [`msg_core::metrics`]).

use std::time::Instant;

use ::metrics::{Label, SharedString, counter, histogram};
use msg_core::metrics::{
    NONE, NOTIFICATIONS_SEND_FAILED_TOTAL, NOTIFICATIONS_SENT_TOTAL, RPC_CLIENT_EXCEPTION_TOTAL,
    RPC_CLIENT_INVOCATION_END_TOTAL, RPC_CLIENT_INVOCATION_START_TOTAL, RPC_CLIENT_LABELS,
    RPC_CLIENT_PROCESSING_SECONDS,
};
use msg_core::{Error, Priority, Target};

/// oslo's `call_type` of a call.
pub(crate) const CALL: &str = "call";
/// oslo's `call_type` of a cast.
pub(crate) const CAST: &str = "cast";

/// One call or cast being measured, as oslo's `measure_metrics`: started when made; on
/// success its duration and an end are recorded, on failure an exception.
pub(crate) struct Invocation {
    labels: [Label; 9],
    started: Instant,
}

impl Invocation {
    /// Counts the start of a call or cast of `method` on `target`.
    pub(crate) fn start(call_type: &'static str, target: &Target, method: &str) -> Self {
        let owned = |v: Option<&String>| -> SharedString {
            match v {
                Some(v) => v.clone().into(),
                None => NONE.into(),
            }
        };
        let [
            call_type_l,
            exchange,
            topic,
            namespace,
            version,
            server,
            fanout,
            method_l,
            timeout,
        ] = RPC_CLIENT_LABELS;
        let labels = [
            Label::from_static_parts(call_type_l, call_type),
            Label::new(exchange, owned(target.exchange.as_ref())),
            Label::new(topic, owned(target.topic.as_ref())),
            Label::new(namespace, owned(target.namespace.as_ref())),
            Label::new(version, owned(target.version.as_ref())),
            Label::new(server, owned(target.server.as_ref())),
            // oslo's Target leaves fanout at None unless it is asked for
            Label::from_static_parts(fanout, if target.fanout { "True" } else { NONE }),
            Label::new(method_l, method.to_owned()),
            // oslo's measure_metrics never passes the timeout
            Label::from_static_parts(timeout, NONE),
        ];
        counter!(RPC_CLIENT_INVOCATION_START_TOTAL, labels.iter()).increment(1);
        Invocation {
            labels,
            started: Instant::now(),
        }
    }

    /// Records how the call or cast ended.
    pub(crate) fn finish<T>(self, result: &Result<T, Error>) {
        match result {
            Ok(_) => {
                histogram!(RPC_CLIENT_PROCESSING_SECONDS, self.labels.iter())
                    .record(self.started.elapsed());
                counter!(RPC_CLIENT_INVOCATION_END_TOTAL, self.labels.iter()).increment(1);
            }
            Err(e) => {
                let exception = Label::from_static_parts("exception", exception_name(e));
                counter!(
                    RPC_CLIENT_EXCEPTION_TOTAL,
                    self.labels
                        .iter()
                        .cloned()
                        .chain([exception])
                        .collect::<Vec<_>>()
                )
                .increment(1);
            }
        }
    }
}

/// The oslo.messaging exception class a Python client would have raised for this error
/// (msg's own name where oslo has none), so the `exception` label means the same on both.
pub(crate) fn exception_name(e: &Error) -> &'static str {
    match e {
        Error::Timeout { .. } => "MessagingTimeout",
        Error::Remote(_) => "RemoteError",
        Error::NoSuchMethod { .. } => "NoSuchMethod",
        Error::UnsupportedVersion { .. } => "UnsupportedVersion",
        Error::VersionCapExceeded { .. } => "RPCVersionCapError",
        Error::InvalidTarget { .. } => "InvalidTarget",
        Error::Undeliverable { .. } => "MessageUndeliverable",
        Error::NoResponders { .. } => "NoResponders",
        Error::Unavailable { .. }
        | Error::Refused { .. }
        | Error::ConnectionLost { .. }
        | Error::Closed(_)
        | Error::Driver { .. } => "MessageDeliveryFailure",
        Error::NotSupported { .. } => "NotImplementedError",
        Error::Malformed { .. } | Error::Serialization(_) => "SerializationError",
        _ => "MessagingException",
    }
}

/// Counts one notification a notify driver sent, or failed to send.
pub(crate) fn notification_sent(priority: Priority, ok: bool) {
    let name = if ok {
        NOTIFICATIONS_SENT_TOTAL
    } else {
        NOTIFICATIONS_SEND_FAILED_TOTAL
    };
    counter!(name, "priority" => priority.routing_name()).increment(1);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    fn labels_of(key: &metrics::Key) -> Vec<(String, String)> {
        key.labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect()
    }

    #[test]
    fn a_call_is_measured_with_oslos_labels() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let target = Target::topic("calc").with_server("host-1");
            Invocation::start(CALL, &target, "add").finish(&Ok::<_, Error>(()));
            Invocation::start(CAST, &target, "add").finish::<()>(&Err(Error::Timeout {
                what: "a call".into(),
                after: Duration::from_secs(1),
            }));
        });
        let snapshot = snapshotter.snapshot().into_vec();
        let find = |name: &str, call_type: &str| {
            snapshot
                .iter()
                .find(|(k, _, _, _)| {
                    k.key().name() == name
                        && k.key()
                            .labels()
                            .any(|l| l.key() == "call_type" && l.value() == call_type)
                })
                .map(|(k, _, _, v)| (labels_of(k.key()), v))
        };
        let (labels, value) = find(RPC_CLIENT_INVOCATION_END_TOTAL, CALL).unwrap();
        assert!(matches!(value, DebugValue::Counter(1)));
        let expect = [
            ("call_type", "call"),
            ("exchange", "None"),
            ("topic", "calc"),
            ("namespace", "None"),
            ("version", "None"),
            ("server", "host-1"),
            ("fanout", "None"),
            ("method", "add"),
            ("timeout", "None"),
        ];
        let expect: Vec<_> = expect
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(labels, expect);
        assert!(matches!(
            find(RPC_CLIENT_PROCESSING_SECONDS, CALL),
            Some((_, DebugValue::Histogram(v))) if v.len() == 1
        ));
        assert!(matches!(
            find(RPC_CLIENT_INVOCATION_START_TOTAL, CAST).unwrap().1,
            DebugValue::Counter(1)
        ));
        assert!(find(RPC_CLIENT_INVOCATION_END_TOTAL, CAST).is_none());
        let (labels, value) = find(RPC_CLIENT_EXCEPTION_TOTAL, CAST).unwrap();
        assert!(matches!(value, DebugValue::Counter(1)));
        assert_eq!(
            labels.last().unwrap(),
            &("exception".to_string(), "MessagingTimeout".to_string())
        );
    }
}
