use std::sync::{Arc, Mutex};

use futures::executor::block_on;
use msg_core::{Context, Notification};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::{
    BatchResult, NotificationFilter, NotificationResult::Handled, NotificationResult::Requeue,
};

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
fn a_requeue_sends_back_the_batch_the_handler_got() {
    let log = Log::default();
    let d = NotificationDispatcher::new(vec![
        NotificationEndpoint::new().on_batch(Priority::Warn, batch(&log, "warn", Handled)),
        NotificationEndpoint::new()
            .filter(NotificationFilter::new().event_type("keep").unwrap())
            .on_batch(Priority::Info, batch(&log, "picky", Requeue)),
        NotificationEndpoint::new()
            .on_batch(Priority::Info, batch(&log, "rest", Handled))
            .on_batch(Priority::Warn, batch(&log, "warn 2", Handled)),
    ]);
    let msgs = vec![
        msg(Priority::Info, "keep.1"),
        msg(Priority::Warn, "w"),
        msg(Priority::Info, "drop.1"),
        msg(Priority::Info, "keep.2"),
    ];
    // the filtered-out info message is not the picky handler's to send back: it goes on
    assert_eq!(
        block_on(d.dispatch_batch(msgs)),
        vec![true, false, false, true]
    );
    assert_eq!(
        log.take(),
        vec![
            ("picky".to_string(), strings(&["keep.1", "keep.2"])),
            ("rest".to_string(), strings(&["drop.1"])),
            ("warn".to_string(), strings(&["w"])),
            ("warn 2".to_string(), strings(&["w"])),
        ]
    );
}

#[test]
fn a_handler_can_name_the_messages_to_requeue() {
    let log = Log::default();
    let d = NotificationDispatcher::new(vec![
        NotificationEndpoint::new().on_batch(Priority::Info, {
            let log = log.clone();
            move |ms: Vec<NotificationMessage>| {
                log.record("namer", &ms);
                // position 7 is past the batch's end: ignored
                let mut answer = BatchResult::requeue_matching(&ms, |m| m.event_type == "bad");
                if let BatchResult::RequeueOnly(positions) = &mut answer {
                    positions.push(7);
                }
                futures::future::ready(answer)
            }
        }),
        NotificationEndpoint::new().on_batch(Priority::Info, batch(&log, "next", Handled)),
    ]);
    let msgs = vec![
        msg(Priority::Info, "ok.1"),
        msg(Priority::Info, "bad"),
        msg(Priority::Warn, "w"),
        msg(Priority::Info, "ok.2"),
    ];
    assert_eq!(
        block_on(d.dispatch_batch(msgs.clone())),
        vec![false, true, false, false]
    );
    // a message sent back skips the endpoints after the one that sent it back
    assert_eq!(
        log.take(),
        vec![
            ("namer".to_string(), strings(&["ok.1", "bad", "ok.2"])),
            ("next".to_string(), strings(&["ok.1", "ok.2"])),
        ]
    );
    // naming every message is the handler's own answer for each: nothing to split
    assert_eq!(
        block_on(d.dispatch_batch_halving(vec![msg(Priority::Info, "bad"); 3])),
        vec![true; 3]
    );
    assert_eq!(log.who(), strings(&["namer"]));
}

/// A batch handler that logs and requeues the whole batch when it holds a `bad` message.
fn refuses_bad(
    log: &Log,
    who: &'static str,
) -> impl Fn(Vec<NotificationMessage>) -> futures::future::Ready<NotificationResult>
+ Send
+ Sync
+ 'static {
    let log = log.clone();
    move |ms| {
        log.record(who, &ms);
        let bad = ms.iter().any(|m| m.event_type.starts_with("bad"));
        futures::future::ready(if bad { Requeue } else { Handled })
    }
}

#[test]
fn halving_isolates_a_bad_message_in_log_steps() {
    let log = Log::default();
    let d = NotificationDispatcher::new(vec![
        NotificationEndpoint::new().on_batch(Priority::Info, refuses_bad(&log, "info")),
    ]);
    let events = ["a", "b", "c", "bad", "e", "f", "g", "h"];
    let msgs: Vec<_> = events.iter().map(|e| msg(Priority::Info, e)).collect();
    let mut expected = vec![false; 8];
    expected[3] = true;
    assert_eq!(block_on(d.dispatch_batch_halving(msgs)), expected);
    let batches: Vec<Vec<String>> = log.take().into_iter().map(|(_, b)| b).collect();
    assert_eq!(
        batches,
        vec![
            strings(&events),
            strings(&["a", "b", "c", "bad"]),
            strings(&["e", "f", "g", "h"]),
            strings(&["a", "b"]),
            strings(&["c", "bad"]),
            strings(&["c"]),
            strings(&["bad"]),
        ]
    );
    // a batch of one that fails is its message's own failure
    assert_eq!(
        block_on(d.dispatch_batch_halving(vec![msg(Priority::Info, "bad")])),
        vec![true]
    );
    assert_eq!(log.take().len(), 1);
}

#[test]
fn halving_finds_every_bad_message_across_priorities_and_errors() {
    let log = Log::default();
    let d = NotificationDispatcher::new(vec![
        NotificationEndpoint::new()
            .on_batch(Priority::Info, refuses_bad(&log, "info"))
            .on_batch(Priority::Warn, |ms: Vec<NotificationMessage>| async move {
                if ms.iter().any(|m| m.event_type.starts_with("bad")) {
                    panic!("a bad warning");
                }
                Ok::<_, String>(BatchResult::Handled)
            }),
    ]);
    let msgs = vec![
        msg(Priority::Warn, "bad.w"),
        msg(Priority::Info, "a"),
        msg(Priority::Info, "bad.1"),
        msg(Priority::Warn, "w"),
        msg(Priority::Info, "b"),
        msg(Priority::Info, "bad.2"),
        msg(Priority::Debug, "nobody's"),
    ];
    assert_eq!(
        block_on(d.dispatch_batch_halving(msgs)),
        vec![true, false, true, false, false, true, false]
    );
}

#[test]
fn halving_a_batch_that_always_fails_calls_2n_minus_1_times() {
    let log = Log::default();
    let d = NotificationDispatcher::new(vec![
        NotificationEndpoint::new().on_batch(Priority::Info, batch(&log, "down", Requeue)),
    ]);
    let msgs: Vec<_> = (0..5)
        .map(|i| msg(Priority::Info, &i.to_string()))
        .collect();
    assert_eq!(block_on(d.dispatch_batch_halving(msgs)), vec![true; 5]);
    assert_eq!(log.take().len(), 9);
    assert!(block_on(d.dispatch_batch_halving(Vec::new())).is_empty());
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
    fn batches_requeue_only_what_a_handler_sent_back(
        msgs in prop::collection::vec((priority(), "[ab][0-9]", any::<bool>()), 0..16),
        specs in prop::collection::vec(endpoint_spec(), 0..4),
    ) {
        // a batch handler requeues its whole batch when it holds a message whose payload is
        // "bad"
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
            m.payload = if *bad { json!("bad") } else { Value::Null }.into();
            m
        }).collect();
        let once = block_on(d.dispatch_batch(batch.clone()));
        let halving = block_on(d.dispatch_batch_halving(batch));
        prop_assert_eq!(once.len(), msgs.len());
        prop_assert_eq!(halving.len(), msgs.len());
        // whether an endpoint batching p lets this message through its filter
        let sees = |p: &Priority, event: &str| -> Vec<Option<&str>> {
            specs.iter()
                .filter(|(prefix, priorities)| {
                    priorities.contains(p) && prefix.is_none_or(|pre| event.starts_with(pre))
                })
                .map(|(prefix, _)| *prefix)
                .collect()
        };
        for (i, (p, event, bad)) in msgs.iter().enumerate() {
            let seen_by = sees(p, event);
            // once: requeued only by an endpoint that got it, with a bad message of its
            // priority through the same filter; a bad message some endpoint gets, always
            let could = seen_by.iter().any(|prefix| msgs.iter().any(|(q, e, b)| {
                q == p && *b && prefix.is_none_or(|pre| e.starts_with(pre))
            }));
            if once[i] {
                prop_assert!(could, "message {} requeued by no endpoint's bad batch", i);
            }
            if *bad && !seen_by.is_empty() {
                prop_assert!(once[i], "bad message {} not requeued", i);
            }
            // halving: exactly the bad messages some endpoint gets
            prop_assert_eq!(halving[i], *bad && !seen_by.is_empty(), "message {}", i);
        }
    }
}
