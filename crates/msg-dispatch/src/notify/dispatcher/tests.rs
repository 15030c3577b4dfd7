use std::sync::{Arc, Mutex};

use futures::executor::block_on;
use msg_core::{Context, Notification};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::{NotificationFilter, NotificationResult::Handled, NotificationResult::Requeue};

fn msg(priority: Priority, event_type: &str) -> NotificationMessage {
    let n = Notification::new("compute.host1", event_type, priority, json!({}));
    NotificationMessage::new(Context::new(), n)
}

/// Which handler saw which event types.
type Entry = (String, Vec<String>);

/// A log of which handler saw which event types, in order.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Entry>>>);

impl Log {
    fn record(&self, who: &str, msgs: &[NotificationMessage]) {
        let events = msgs.iter().map(|m| m.event_type.clone()).collect();
        self.0.lock().unwrap().push((who.to_string(), events));
    }
    fn take(&self) -> Vec<Entry> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    fn who(&self) -> Vec<String> {
        self.take().into_iter().map(|(w, _)| w).collect()
    }
}

/// A one-by-one handler that logs and answers `answer`.
fn single(
    log: &Log,
    who: &'static str,
    answer: NotificationResult,
) -> impl Fn(NotificationMessage) -> futures::future::Ready<NotificationResult> + Send + Sync + 'static
{
    let log = log.clone();
    move |m| {
        log.record(who, std::slice::from_ref(&m));
        futures::future::ready(answer)
    }
}

/// A batch handler that logs and answers `answer`.
fn batch(
    log: &Log,
    who: &'static str,
    answer: NotificationResult,
) -> impl Fn(Vec<NotificationMessage>) -> futures::future::Ready<NotificationResult>
+ Send
+ Sync
+ 'static {
    let log = log.clone();
    move |ms| {
        log.record(who, &ms);
        futures::future::ready(answer)
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn priorities_are_reported_sorted_and_deduplicated() {
    let log = Log::default();
    let d = NotificationDispatcher::new(vec![
        NotificationEndpoint::new()
            .on(Priority::Warn, single(&log, "a", Handled))
            .on(Priority::Audit, single(&log, "a", Handled)),
        NotificationEndpoint::new()
            .on(Priority::Warn, single(&log, "b", Handled))
            .on_batch(Priority::Sample, batch(&log, "b", Handled))
            .on_batch(Priority::Warn, batch(&log, "b", Handled)),
        NotificationEndpoint::new(),
    ]);
    assert_eq!(
        d.supported_priorities(),
        vec![Priority::Audit, Priority::Warn, Priority::Sample]
    );
    assert_eq!(d.single_priorities(), vec![Priority::Audit, Priority::Warn]);
    assert_eq!(d.batch_priorities(), vec![Priority::Warn, Priority::Sample]);
    assert!(
        NotificationDispatcher::new(Vec::new())
            .supported_priorities()
            .is_empty()
    );
    let all = NotificationDispatcher::new(vec![NotificationEndpoint::new().on_all(|_m| async {})]);
    assert_eq!(all.supported_priorities(), Priority::ALL.to_vec());
}

#[test]
fn dispatch_runs_matching_endpoints_in_order() {
    let log = Log::default();
    let d = NotificationDispatcher::new(vec![
        NotificationEndpoint::new().on(Priority::Info, single(&log, "first", Handled)),
        NotificationEndpoint::new().on(Priority::Warn, single(&log, "warn only", Handled)),
        NotificationEndpoint::new()
            .filter(NotificationFilter::new().event_type("network").unwrap())
            .on(Priority::Info, single(&log, "network only", Handled)),
        NotificationEndpoint::new().on_batch(Priority::Info, batch(&log, "batch", Requeue)),
        NotificationEndpoint::new().on(Priority::Info, single(&log, "last", Handled)),
    ]);
    assert_eq!(
        block_on(d.dispatch(msg(Priority::Info, "compute.x"))),
        Handled
    );
    assert_eq!(log.who(), strings(&["first", "last"]));
    assert_eq!(
        block_on(d.dispatch(msg(Priority::Info, "network.x"))),
        Handled
    );
    assert_eq!(log.who(), strings(&["first", "network only", "last"]));
    // nobody wants it: handled
    assert_eq!(
        block_on(d.dispatch(msg(Priority::Debug, "compute.x"))),
        Handled
    );
    assert!(log.take().is_empty());
}

#[test]
fn requeue_short_circuits() {
    let log = Log::default();
    let d = NotificationDispatcher::new(vec![
        NotificationEndpoint::new().on(Priority::Info, single(&log, "a", Handled)),
        NotificationEndpoint::new().on(Priority::Info, single(&log, "b", Requeue)),
        NotificationEndpoint::new().on(Priority::Info, single(&log, "c", Handled)),
    ]);
    assert_eq!(block_on(d.dispatch(msg(Priority::Info, "e"))), Requeue);
    assert_eq!(log.who(), strings(&["a", "b"]));
}

#[test]
fn errors_and_panics_requeue() {
    let log = Log::default();
    let failing = NotificationDispatcher::new(vec![
        NotificationEndpoint::new().on(Priority::Info, |_m| async { Err::<(), _>("db down") }),
        NotificationEndpoint::new().on(Priority::Info, single(&log, "after", Handled)),
    ]);
    assert_eq!(
        block_on(failing.dispatch(msg(Priority::Info, "e"))),
        Requeue
    );
    let panicking = NotificationDispatcher::new(vec![
        NotificationEndpoint::new().on(Priority::Info, |m: NotificationMessage| async move {
            if m.payload.is_object() {
                panic!("bad payload {}", m.payload)
            }
        }),
        NotificationEndpoint::new().on(Priority::Warn, |_m| -> futures::future::Ready<()> {
            panic!("before the future")
        }),
        NotificationEndpoint::new().on(Priority::Info, single(&log, "after", Handled)),
    ]);
    assert_eq!(
        block_on(panicking.dispatch(msg(Priority::Info, "e"))),
        Requeue
    );
    assert_eq!(
        block_on(panicking.dispatch(msg(Priority::Warn, "e"))),
        Requeue
    );
    assert!(log.take().is_empty());
}

#[test]
fn handler_answers_convert() {
    let d = NotificationDispatcher::new(vec![
        NotificationEndpoint::new()
            .on(Priority::Audit, |_m| async {})
            .on(Priority::Debug, |_m| async { Ok::<_, String>(()) })
            .on(Priority::Info, |_m| async {
                Ok::<_, std::io::Error>(NotificationResult::Requeue)
            })
            .on(Priority::Warn, |_m| async { crate::Handled })
            .on(Priority::Error, |_m| async { crate::Requeue }),
    ]);
    let run = |p| block_on(d.dispatch(msg(p, "e")));
    assert_eq!(run(Priority::Audit), Handled);
    assert_eq!(run(Priority::Debug), Handled);
    assert_eq!(run(Priority::Info), Requeue);
    assert_eq!(run(Priority::Warn), Handled);
    assert_eq!(run(Priority::Error), Requeue);
}

#[test]
fn batches_group_by_priority_keeping_order() {
    let log = Log::default();
    let d = NotificationDispatcher::new(vec![
        NotificationEndpoint::new()
            .on_batch(Priority::Info, batch(&log, "info", Handled))
            .on_batch(Priority::Warn, batch(&log, "warn", Handled))
            .on(Priority::Info, single(&log, "single", Requeue)),
    ]);
    let msgs = vec![
        msg(Priority::Info, "i1"),
        msg(Priority::Warn, "w1"),
        msg(Priority::Info, "i2"),
    ];
    assert_eq!(block_on(d.dispatch_batch(msgs)), vec![false; 3]);
    assert_eq!(
        log.take(),
        vec![
            ("info".to_string(), strings(&["i1", "i2"])),
            ("warn".to_string(), strings(&["w1"])),
        ]
    );
    assert!(block_on(d.dispatch_batch(Vec::new())).is_empty());
}

#[test]
fn a_requeue_sends_the_whole_group_back() {
    let log = Log::default();
    let d = NotificationDispatcher::new(vec![
        NotificationEndpoint::new().on_batch(Priority::Warn, batch(&log, "warn", Handled)),
        NotificationEndpoint::new()
            .filter(NotificationFilter::new().event_type("keep").unwrap())
            .on_batch(Priority::Info, batch(&log, "picky", Requeue)),
        NotificationEndpoint::new()
            .on_batch(Priority::Info, batch(&log, "skipped", Handled))
            .on_batch(Priority::Warn, batch(&log, "warn 2", Handled)),
    ]);
    let msgs = vec![
        msg(Priority::Info, "keep.1"),
        msg(Priority::Warn, "w"),
        msg(Priority::Info, "drop.1"),
        msg(Priority::Info, "keep.2"),
    ];
    // the filtered-out info message goes back with its group
    assert_eq!(
        block_on(d.dispatch_batch(msgs)),
        vec![true, false, true, true]
    );
    assert_eq!(
        log.take(),
        vec![
            ("picky".to_string(), strings(&["keep.1", "keep.2"])),
            ("warn".to_string(), strings(&["w"])),
            ("warn 2".to_string(), strings(&["w"])),
        ]
    );
}

#[test]
fn an_empty_filtered_batch_is_skipped() {
    let log = Log::default();
    let d = NotificationDispatcher::new(vec![
        NotificationEndpoint::new()
            .filter(NotificationFilter::new().publisher_id("network").unwrap())
            .on_batch(Priority::Info, batch(&log, "network", Requeue)),
        NotificationEndpoint::new().on_batch(Priority::Info, batch(&log, "all", Handled)),
    ]);
    let out = block_on(d.dispatch_batch(vec![msg(Priority::Info, "a"), msg(Priority::Info, "b")]));
    assert_eq!(out, vec![false, false]);
    assert_eq!(log.who(), strings(&["all"]));
}

#[test]
fn batch_errors_and_panics_requeue_the_group() {
    let d = NotificationDispatcher::new(vec![
        NotificationEndpoint::new()
            .on_batch(Priority::Info, |_ms| async { Err::<(), _>("broken") })
            .on_batch(Priority::Error, |ms: Vec<NotificationMessage>| async move {
                if !ms.is_empty() {
                    panic!("{} messages", ms.len())
                }
            }),
    ]);
    let msgs = vec![
        msg(Priority::Info, "a"),
        msg(Priority::Error, "b"),
        msg(Priority::Warn, "c"),
        msg(Priority::Error, "d"),
    ];
    assert_eq!(
        block_on(d.dispatch_batch(msgs)),
        vec![true, true, false, true]
    );
}

fn priority() -> impl Strategy<Value = Priority> {
    prop::sample::select(Priority::ALL.to_vec())
}

/// An endpoint: its event-type filter prefix (if any), and the priorities it batches.
fn endpoint_spec() -> impl Strategy<Value = (Option<&'static str>, Vec<Priority>)> {
    (
        prop_oneof![Just(None), Just(Some("a")), Just(Some("b"))],
        prop::collection::vec(priority(), 0..4),
    )
}

proptest! {
    #[test]
    fn batches_requeue_whole_groups_only(
        msgs in prop::collection::vec((priority(), "[ab][0-9]", any::<bool>()), 0..16),
        specs in prop::collection::vec(endpoint_spec(), 0..4),
    ) {
        // a batch handler requeues when its batch holds a message whose payload is "bad"
        let endpoints = specs.iter().map(|(prefix, priorities)| {
            let mut ep = NotificationEndpoint::new();
            if let Some(p) = prefix {
                ep = ep.filter(NotificationFilter::new().event_type(p).unwrap());
            }
            for &p in priorities {
                ep = ep.on_batch(p, |ms: Vec<NotificationMessage>| async move {
                    if ms.iter().any(|m| m.payload == json!("bad")) { Requeue } else { Handled }
                });
            }
            ep
        }).collect();
        let d = NotificationDispatcher::new(endpoints);
        let batch: Vec<NotificationMessage> = msgs.iter().map(|(p, event, bad)| {
            let mut m = msg(*p, event);
            m.payload = if *bad { json!("bad") } else { Value::Null };
            m
        }).collect();
        let out = block_on(d.dispatch_batch(batch));
        prop_assert_eq!(out.len(), msgs.len());
        for (i, (p, _, _)) in msgs.iter().enumerate() {
            for (j, (q, _, _)) in msgs.iter().enumerate() {
                if p == q {
                    prop_assert_eq!(out[i], out[j], "one group, one answer");
                }
            }
            // the model: some endpoint batching p sees a bad message of p through its filter
            let expected = specs.iter().any(|(prefix, priorities)| {
                priorities.contains(p) && msgs.iter().any(|(q, event, bad)| {
                    q == p && *bad && prefix.is_none_or(|pre| event.starts_with(pre))
                })
            });
            prop_assert_eq!(out[i], expected);
        }
    }
}
