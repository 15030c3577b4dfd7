//! What the sending side records: oslo's RPC client metrics and the notifications sent (names
//! in [`msg_core::metrics`]).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};
use std::time::Instant;

use ::foldhash::fast::FixedState;
use ::metrics::{Counter, Histogram, Label, SharedString, counter, histogram};
use msg_core::metrics::{
    NONE, NOTIFICATIONS_SEND_FAILED_TOTAL, NOTIFICATIONS_SENT_TOTAL, RPC_CLIENT_EXCEPTION_TOTAL,
    RPC_CLIENT_INVOCATION_END_TOTAL, RPC_CLIENT_INVOCATION_START_TOTAL, RPC_CLIENT_LABELS,
    RPC_CLIENT_PROCESSING_SECONDS, recorder_epoch,
};
use msg_core::{Error, Priority, Target};

/// oslo's `call_type` of a call.
pub(crate) const CALL: &str = "call";
/// oslo's `call_type` of a cast.
pub(crate) const CAST: &str = "cast";

/// The handles of one series of client metrics (a call type, target and method), with
/// what it was registered for.
struct Series {
    call_type: &'static str,
    target: Target,
    method: String,
    labels: [Label; 9],
    start: Counter,
    end: Counter,
    seconds: Histogram,
}

impl Series {
    fn new(call_type: &'static str, target: &Target, method: &str) -> Self {
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
        Series {
            call_type,
            target: target.clone(),
            method: method.to_owned(),
            start: counter!(RPC_CLIENT_INVOCATION_START_TOTAL, labels.iter()),
            end: counter!(RPC_CLIENT_INVOCATION_END_TOTAL, labels.iter()),
            seconds: histogram!(RPC_CLIENT_PROCESSING_SECONDS, labels.iter()),
            labels,
        }
    }

    fn is_for(&self, call_type: &str, target: &Target, method: &str) -> bool {
        self.call_type == call_type && self.method == method && self.target == *target
    }
}

/// The series registered so far, by a hash of what they are for, so that a call or cast
/// looks its handles up instead of building labels (a few allocations each) every time.
/// Dropped when the recorder in effect is another one, when an application says it installed
/// one ([`msg_core::metrics::describe`]), and when it grows past [`MAX_SERIES`] (a program
/// making up topics or methods).
struct Cache {
    /// The recorder the handles came from (its address) and the [`recorder_epoch`].
    recorder: (usize, u64),
    series: HashMap<u64, Vec<Arc<Series>>>,
    len: usize,
}

/// How many series the cache keeps at most before it starts over.
const MAX_SERIES: usize = 10_000;

static CACHE: LazyLock<RwLock<Cache>> = LazyLock::new(|| {
    RwLock::new(Cache {
        recorder: (0, 0),
        series: HashMap::new(),
        len: 0,
    })
});

fn series(call_type: &'static str, target: &Target, method: &str) -> Arc<Series> {
    // a fast hash: the key is the application's own targets and methods, never the wire's
    let hash = FixedState::default().hash_one((call_type, target, method));
    let recorder = recorder_key();
    {
        let cache = CACHE.read().unwrap_or_else(PoisonError::into_inner);
        if cache.recorder == recorder
            && let Some(found) = cache
                .series
                .get(&hash)
                .and_then(|v| v.iter().find(|s| s.is_for(call_type, target, method)))
        {
            return found.clone();
        }
    }
    let made = Arc::new(Series::new(call_type, target, method));
    let mut cache = CACHE.write().unwrap_or_else(PoisonError::into_inner);
    if cache.recorder != recorder || cache.len >= MAX_SERIES {
        cache.series.clear();
        cache.len = 0;
        cache.recorder = recorder;
    }
    cache.series.entry(hash).or_default().push(made.clone());
    cache.len += 1;
    made
}

/// One call or cast being measured, as oslo's `measure_metrics`: started when made; on
/// success its duration and an end are recorded, on failure an exception.
pub(crate) struct Invocation {
    series: Arc<Series>,
    started: Instant,
}

impl Invocation {
    /// Counts the start of a call or cast of `method` on `target`.
    pub(crate) fn start(call_type: &'static str, target: &Target, method: &str) -> Self {
        let series = series(call_type, target, method);
        series.start.increment(1);
        Invocation {
            series,
            started: Instant::now(),
        }
    }

    /// Records how the call or cast ended.
    pub(crate) fn finish<T>(self, result: &Result<T, Error>) {
        match result {
            Ok(_) => {
                self.series.seconds.record(self.started.elapsed());
                self.series.end.increment(1);
            }
            Err(e) => {
                let exception = Label::from_static_parts("exception", exception_name(e));
                counter!(
                    RPC_CLIENT_EXCEPTION_TOTAL,
                    self.series
                        .labels
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

/// The recorder in effect, as the caches here know it: its address and the
/// [`recorder_epoch`].
fn recorder_key() -> (usize, u64) {
    (
        ::metrics::with_recorder(|r| std::ptr::from_ref(r).cast::<()>() as usize),
        recorder_epoch(),
    )
}

/// The notification counters, sent and failed by priority, of one recorder.
struct NotifyCounters {
    recorder: (usize, u64),
    sent: [Counter; 7],
    failed: [Counter; 7],
}

static NOTIFY: RwLock<Option<NotifyCounters>> = RwLock::new(None);

/// Counts one notification a notify driver sent, or failed to send.
pub(crate) fn notification_sent(priority: Priority, ok: bool) {
    let count = |c: &NotifyCounters| {
        let counters = if ok { &c.sent } else { &c.failed };
        if let Some(counter) = counters.get(priority as usize) {
            counter.increment(1);
        }
    };
    let recorder = recorder_key();
    if let Some(c) = NOTIFY
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .filter(|c| c.recorder == recorder)
    {
        count(c);
        return;
    }
    let by_priority =
        |name: &'static str| Priority::ALL.map(|p| counter!(name, "priority" => p.routing_name()));
    let made = NotifyCounters {
        recorder,
        sent: by_priority(NOTIFICATIONS_SENT_TOTAL),
        failed: by_priority(NOTIFICATIONS_SEND_FAILED_TOTAL),
    };
    count(&made);
    *NOTIFY.write().unwrap_or_else(PoisonError::into_inner) = Some(made);
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
        assert!(matches!(
            find(RPC_CLIENT_INVOCATION_END_TOTAL, CAST).unwrap().1,
            DebugValue::Counter(0)
        ));
        let (labels, value) = find(RPC_CLIENT_EXCEPTION_TOTAL, CAST).unwrap();
        assert!(matches!(value, DebugValue::Counter(1)));
        assert_eq!(
            labels.last().unwrap(),
            &("exception".to_string(), "MessagingTimeout".to_string())
        );
    }
}
