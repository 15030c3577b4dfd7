//! A listener facing a backlog: it must hold no more than its prefetch, however long the
//! backlog, and then drain all of it.
//!
//! [`backlog_within_prefetch`] sends the backlog, starts a [`NotificationListener`] whose
//! handlers wait on a gate, and watches what the listener holds two ways: the handlers
//! waiting (the process's own count of received, unsettled messages) and what the broker
//! says it delivered and awaits an ack for (a probe each driver's test writes: RabbitMQ's
//! queue depth, JetStream's `num_ack_pending`). Then it opens the gate and waits for every
//! message. The listener's executor has room for four times the prefetch, so the bound
//! shows the prefetch at work, not the executor.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use msg_client::Notifier;
use msg_core::{Context, Priority, Target, Transport};
use msg_dispatch::{NotificationEndpoint, NotificationResult};
use msg_server::{Executor, NotificationListener};
use serde_json::json;
use tokio::sync::watch;

/// How many sends are awaiting the broker's confirm at once while the backlog is sent.
const SEND_WINDOW: usize = 1000;
/// How long the listener watched with its gate shut (after it took its fill) is sampled.
const SHUT_WINDOW: Duration = Duration::from_millis(1500);
/// How often the broker is asked while the gate is shut.
const PROBE_EVERY: Duration = Duration::from_millis(100);

/// A backlog run: what to send, where, and how the broker counts what a listener holds.
#[derive(Debug, Clone)]
pub struct Backlog {
    /// The transport the notifications are sent on.
    pub sender: Transport,
    /// The transport the listener listens on.
    pub listener: Transport,
    /// The topic (a queue or consumer of its own: nothing else may listen to it).
    pub topic: String,
    /// How many notifications make the backlog.
    pub count: u64,
    /// The listener's prefetch.
    pub prefetch: u32,
    /// The longest each of sending, the listener's filling and draining may take.
    pub limit: Duration,
}

/// What a backlog run saw.
#[derive(Debug, Clone, PartialEq)]
pub struct BacklogReport {
    /// The most the broker counted as delivered to the listener and unacknowledged while the
    /// gate was shut.
    pub most_held_by_broker: u64,
    /// The most handlers waiting at once (received, not settled).
    pub most_in_handlers: u64,
    /// How many broker samples were taken while the gate was shut.
    pub probes: u64,
    /// How long sending the backlog took.
    pub send_seconds: f64,
    /// From opening the gate to the last notification handled.
    pub drain_seconds: f64,
}

/// Runs a backlog: sends `count` notifications (`{"i": i}`) to `topic`, starts a listener
/// with `prefetch` whose handlers wait on a gate, samples what it holds, opens the gate and
/// waits for all of them. `held` asks the broker how many of the topic's notifications it
/// delivered and awaits acks for (`None`: it couldn't tell this time). Panics, naming the
/// figure, when the listener held more than its prefetch (by either count), when the broker
/// never saw it hold its prefetch (the probe or the prefetch is not working), or when a
/// notification is missing or came twice.
///
/// ```no_run
/// # async fn run(transport: msg_core::Transport) {
/// let report = msg_testkit::backlog_within_prefetch(
///     msg_testkit::Backlog {
///         sender: transport.clone(),
///         listener: transport,
///         topic: "backlog-topic".into(),
///         count: 20_000,
///         prefetch: 50,
///         limit: std::time::Duration::from_secs(30),
///     },
///     || async { Some(0) }, // the broker's count of unacked deliveries to the topic's queue
/// )
/// .await;
/// assert!(report.most_held_by_broker <= 50);
/// # }
/// ```
pub async fn backlog_within_prefetch<F, Fut>(run: Backlog, mut held: F) -> BacklogReport
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<u64>>,
{
    let prefetch = u64::from(run.prefetch);
    assert!(
        prefetch > 0 && prefetch < run.count,
        "a backlog past the prefetch"
    );
    let send_seconds = send(&run).await;

    let (gate, gated) = watch::channel(false);
    let waiting = Arc::new(AtomicU64::new(0));
    let most_waiting = Arc::new(AtomicU64::new(0));
    let handled = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Seen::new(run.count));
    let endpoint = {
        let (waiting, most_waiting, handled, seen) = (
            waiting.clone(),
            most_waiting.clone(),
            handled.clone(),
            seen.clone(),
        );
        NotificationEndpoint::new().on(Priority::Info, move |n| {
            let (waiting, most_waiting, handled, seen) = (
                waiting.clone(),
                most_waiting.clone(),
                handled.clone(),
                seen.clone(),
            );
            let mut gated = gated.clone();
            async move {
                let now = waiting.fetch_add(1, Ordering::SeqCst) + 1;
                most_waiting.fetch_max(now, Ordering::SeqCst);
                let _ = gated.wait_for(|open| *open).await;
                seen.mark(n.payload.get("i").and_then(|v| v.as_u64()));
                waiting.fetch_sub(1, Ordering::SeqCst);
                handled.fetch_add(1, Ordering::SeqCst);
                NotificationResult::Handled
            }
        })
    };
    let executor_room = usize::try_from(prefetch.saturating_mul(4)).unwrap_or(usize::MAX);
    let listener = NotificationListener::builder(run.listener.clone(), [Target::topic(&run.topic)])
        .executor(Executor::Pool(executor_room))
        .prefetch(run.prefetch)
        .endpoint(endpoint)
        .start()
        .await
        .expect("the listener starts");

    // the listener takes its fill
    let filled = Instant::now() + run.limit;
    while waiting.load(Ordering::SeqCst) < prefetch {
        assert!(
            Instant::now() < filled,
            "the listener took {} of its prefetch {prefetch} in {:?}",
            waiting.load(Ordering::SeqCst),
            run.limit
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // and no more, by the broker's count and its own
    let mut most_held = 0;
    let mut probes = 0;
    let shut_until = Instant::now() + SHUT_WINDOW;
    while Instant::now() < shut_until {
        if let Some(h) = held().await {
            most_held = most_held.max(h);
            probes += 1;
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    let most_in_handlers = most_waiting.load(Ordering::SeqCst);
    assert!(
        probes > 0,
        "the broker was never asked what the listener holds"
    );
    assert!(
        most_held <= prefetch,
        "the broker delivered {most_held} unacknowledged notifications to a listener with \
         prefetch {prefetch}"
    );
    assert_eq!(
        most_held, prefetch,
        "the broker never counted the prefetch's {prefetch} held (most {most_held}): the probe \
         or the listener's prefetch doesn't work"
    );
    assert!(
        most_in_handlers <= prefetch,
        "{most_in_handlers} handlers waited at once with prefetch {prefetch}"
    );

    // open: every notification comes, once
    let opened = Instant::now();
    let _ = gate.send(true);
    let drained = opened + run.limit;
    while handled.load(Ordering::SeqCst) < run.count {
        assert!(
            Instant::now() < drained,
            "{} of {} notifications handled in {:?} after the gate opened",
            handled.load(Ordering::SeqCst),
            run.count,
            run.limit
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_seconds = opened.elapsed().as_secs_f64();
    listener
        .shutdown(Duration::from_secs(10))
        .await
        .expect("the listener stops");
    let (distinct, odd) = seen.tally();
    assert_eq!(
        odd, 0,
        "{odd} notifications came twice or without their index"
    );
    assert_eq!(distinct, run.count, "notifications missing");
    assert!(
        most_waiting.load(Ordering::SeqCst) <= prefetch,
        "{} handlers waited at once with prefetch {prefetch}",
        most_waiting.load(Ordering::SeqCst)
    );
    BacklogReport {
        most_held_by_broker: most_held,
        most_in_handlers,
        probes,
        send_seconds,
        drain_seconds,
    }
}

/// Sends the backlog, `SEND_WINDOW` awaiting confirms at once; returns the seconds taken.
async fn send(run: &Backlog) -> f64 {
    let notifier = Notifier::new(run.sender.clone()).topics([run.topic.as_str()]);
    let context = Context::new();
    let started = Instant::now();
    let sending = futures::stream::iter(0..run.count)
        .map(|i| {
            let (notifier, context) = (&notifier, &context);
            async move {
                notifier
                    .info(context, "backlog.test", json!({ "i": i }))
                    .await
            }
        })
        .buffer_unordered(SEND_WINDOW)
        .fold(
            0u64,
            |failed, r| async move { failed + u64::from(r.is_err()) },
        );
    let failed = tokio::time::timeout(run.limit, sending)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "sending {} notifications took over {:?}",
                run.count, run.limit
            )
        });
    assert_eq!(failed, 0, "{failed} of {} sends failed", run.count);
    started.elapsed().as_secs_f64()
}

/// Which indices came, and how many came twice or without one.
#[derive(Debug)]
struct Seen(Mutex<(Vec<bool>, u64)>);

impl Seen {
    fn new(count: u64) -> Self {
        let slots = usize::try_from(count).expect("a backlog that fits in memory");
        Seen(Mutex::new((vec![false; slots], 0)))
    }

    fn mark(&self, i: Option<u64>) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (slots, odd) = &mut *g;
        match i
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| slots.get_mut(i))
        {
            Some(slot) if !*slot => *slot = true,
            _ => *odd += 1,
        }
    }

    /// (distinct indices seen, odd ones).
    fn tally(&self) -> (u64, u64) {
        let g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (g.0.iter().filter(|s| **s).count() as u64, g.1)
    }
}
