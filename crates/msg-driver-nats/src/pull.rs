//! The pull engine of a notification listener: pull requests on its durable JetStream
//! consumers, bounded by the listener's prefetch.
//!
//! A listener pulls from its consumers (one per (topic, priority), or per (pool, topic,
//! priority)) with its own inbox `<inbox>.<source>.<pull>`. It never asks for more than
//! its free slots (prefetch less what it holds and what it already asked for), spreads them
//! over its consumers, and asks again as slots free up. On stop it drains its inbox (nats-
//! server drops pull requests whose reply subject lost its interest) and then NAKs what it
//! held back. A consumer that vanished is made again where the listener is.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::{Message, StatusCode, Subscriber};
use bytes::Bytes;
use futures::StreamExt;
use msg_core::Error;
use msg_core::feed::Feed;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::dead_letter::{abandoned, dead_letter};
use crate::notification_listener::{JsIntake, ListenerState, SourceInfo};
use crate::subject::{ack_consumer, delivered_count, stream_sequence};
use crate::topology::ConsumerSpec;

/// A listener's slots: its prefetch, less what it holds and what its pulls ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slots {
    cap: u32,
    free: u32,
}

impl Slots {
    fn new(cap: u32) -> Self {
        Slots { cap, free: cap }
    }

    /// Takes `n` free slots (a pull asks for them), no more than are free.
    fn take(&mut self, n: u32) {
        self.free = self.free.saturating_sub(n);
    }

    /// Takes one free slot for a message that came without one (late for its pull):
    /// whether there was one.
    fn take_one(&mut self) -> bool {
        if self.free == 0 {
            return false;
        }
        self.free -= 1;
        true
    }

    /// Gives `n` slots back (a pull ended, a message settled), never past the prefetch.
    fn give(&mut self, n: u32) {
        self.free = self.free.saturating_add(n).min(self.cap);
    }
}

/// How many messages the next pull asks one consumer for, of `sources` sharing `slots`:
/// its share of the prefetch (at least one), no more than the free slots. `None` when that
/// is less than a pull is worth: one message when the listener waits (`hungry`), else half
/// a share (fewer, larger pulls while the listener has work).
fn batch(slots: Slots, sources: usize, hungry: bool) -> Option<u32> {
    if sources == 0 {
        return None;
    }
    let share = (slots.cap / u32::try_from(sources).unwrap_or(u32::MAX)).max(1);
    let min_batch = if hungry { 1 } else { (share / 2).max(1) };
    let want = slots.free.min(share);
    (want >= min_batch).then_some(want)
}

/// How long a pull request waits at the server: `configured`, or at most a second when
/// there are fewer slots than consumers (pulls rotate over the consumers faster).
fn pull_expires(configured: Duration, cap: u32, sources: usize) -> Duration {
    if cap as usize >= sources {
        configured
    } else {
        configured.min(Duration::from_secs(1))
    }
}

/// The body of a pull request.
fn pull_request(batch: u32, expires: Duration) -> String {
    format!("{{\"batch\":{batch},\"expires\":{}}}", expires.as_nanos())
}

/// How long a consumer waits before it is pulled from again after `failures` failures in a
/// row: 500 ms doubling to 5 s.
fn backoff_delay(failures: u32) -> Duration {
    let ms = 250u64.saturating_mul(1 << failures.min(5)).min(5_000);
    Duration::from_millis(ms)
}

/// How often a held message is reported in progress: every third of the ack wait (at
/// least every 50 ms), so JetStream doesn't redeliver what a handler still works on.
fn progress_every(ack_wait: Duration) -> Duration {
    (ack_wait / 3).max(Duration::from_millis(50))
}

/// Where a consumer made again starts: the lowest stream sequence the listener holds
/// unsettled from it (its ack floor as the listener knows it: what it held comes again),
/// else the one after the highest it saw (nothing after it is skipped); `None` when it saw
/// nothing (it starts as a new consumer does).
fn restart_point(held: impl IntoIterator<Item = u64>, max_seen: u64) -> Option<u64> {
    held.into_iter()
        .min()
        .or_else(|| (max_seen > 0).then(|| max_seen.saturating_add(1)))
}

/// Which source and pull a message on `<inbox>.<source>.<pull>` answers.
fn route(inbox: &str, subject: &str, sources: usize) -> Option<(usize, u64)> {
    let rest = subject.strip_prefix(inbox)?.strip_prefix('.')?;
    let (idx, seq) = rest.split_once('.')?;
    let idx: usize = idx.parse().ok()?;
    (idx < sources).then_some(())?;
    Some((idx, seq.parse().ok()?))
}

/// Where pull requests for a consumer go: `<api>.CONSUMER.MSG.NEXT.<stream>.<consumer>`.
fn next_subject(api: &str, spec: &ConsumerSpec) -> String {
    format!("{api}.CONSUMER.MSG.NEXT.{}.{}", spec.stream, spec.name)
}

/// One pull request in flight.
#[derive(Debug)]
struct Pull {
    seq: u64,
    remaining: u32,
    deadline: Instant,
}

/// The slot of a message that came from a consumer: its pull's (which ends with its last
/// message), or a free one for a message late for its pull. Whether it got one.
fn slot_for_delivery(pull: &mut Option<Pull>, slots: &mut Slots) -> bool {
    match pull.as_mut() {
        Some(p) if p.remaining > 0 => {
            p.remaining -= 1;
            if p.remaining == 0 {
                *pull = None;
            }
            true
        }
        _ => slots.take_one(),
    }
}

struct Source {
    info: Arc<SourceInfo>,
    /// `<api>.CONSUMER.MSG.NEXT.<stream>.<consumer>`
    next_subject: String,
    pull: Option<Pull>,
    retry_at: Option<Instant>,
    failures: u32,
    /// The consumer (or its stream) is gone: made again before the next pull.
    needs_ensure: bool,
    /// When the stream pulled from was made (`None`: not known), to tell a stream made
    /// again (its sequence numbers start over) from the one the listener knows.
    stream_created: Option<i128>,
    /// The highest stream sequence delivered from this consumer so far.
    max_seen: u64,
}

impl Source {
    fn backoff(&mut self) {
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(Instant::now() + backoff_delay(self.failures));
    }
}

/// Where a listener is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Pulling.
    Running,
    /// Stopped: no new pulls; waiting for the outstanding ones to end.
    Stopping,
    /// No pull left: the inbox drains.
    Draining,
    /// The inbox is gone; NAKs go out at once; waiting for what handlers hold.
    Drained,
}

/// Pulls for one listener.
pub(crate) struct Engine {
    feed: Feed<JsIntake>,
    state: Arc<ListenerState>,
    sources: Vec<Source>,
    inbox: String,
    slots: Slots,
    next_seq: u64,
    rr: usize,
}

impl Engine {
    /// The engine of a listener fed through `feed`, pulling from `sources` (ensured) with
    /// replies to `inbox` (subscribed), holding at most `prefetch` messages (0: as many as
    /// the consumers let it).
    pub(crate) fn new(
        feed: Feed<JsIntake>,
        sources: Vec<SourceInfo>,
        inbox: String,
        prefetch: u32,
    ) -> Self {
        let state = feed.intake().0.clone();
        let topo = &state.topo;
        let cap = if prefetch == 0 {
            topo.conn.options.unlimited_prefetch()
        } else {
            prefetch
        };
        let api = &topo.conn.api_prefix;
        let sources = sources
            .into_iter()
            .map(|info| Source {
                next_subject: next_subject(api, &info.spec),
                stream_created: topo.stream_created(&info.spec.stream),
                max_seen: 0,
                info: Arc::new(info),
                pull: None,
                retry_at: None,
                failures: 0,
                needs_ensure: false,
            })
            .collect();
        Engine {
            feed,
            state,
            sources,
            inbox,
            slots: Slots::new(cap),
            next_seq: 0,
            rr: 0,
        }
    }

    fn expires(&self) -> Duration {
        pull_expires(
            self.state.topo.conn.options.pull_expires,
            self.slots.cap,
            self.sources.len(),
        )
    }

    pub(crate) async fn run(
        mut self,
        mut sub: Subscriber,
        mut settled_rx: mpsc::UnboundedReceiver<()>,
    ) {
        let conn = self.state.topo.conn.clone();
        let mut generations = conn.generations();
        generations.borrow_and_update();
        // progress acks every third of the ack wait; pull deadlines checked every second
        let progress_every = progress_every(conn.options.ack_wait);
        let tick_every = progress_every.min(Duration::from_secs(1));
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut subscribed = true;
        let mut phase = Phase::Running;
        self.schedule().await;
        loop {
            if conn.is_closed() {
                self.feed.stop();
                self.state.release_deferred().await;
                break;
            }
            if phase == Phase::Running && self.feed.is_stopped() {
                // no new pulls; NAKs wait until our pull requests are over (see `deferred`)
                tracing::debug!(
                    inbox = self.inbox,
                    "listener stopped: waiting for its pulls to end"
                );
                phase = Phase::Stopping;
            }
            if phase == Phase::Stopping && self.sources.iter().all(|s| s.pull.is_none()) {
                tracing::debug!(inbox = self.inbox, "listener stopped: draining its inbox");
                phase = Phase::Draining;
                if sub.drain().await.is_err() {
                    subscribed = false;
                }
            }
            if phase == Phase::Draining && !subscribed {
                self.state.release_deferred().await;
                phase = Phase::Drained;
            }
            if phase == Phase::Drained && self.state.held.lock().is_empty() {
                break;
            }
            tokio::select! {
                m = sub.next(), if subscribed => match m {
                    Some(m) => self.on_message(m).await,
                    None => {
                        tracing::debug!(inbox = self.inbox, "inbox drained");
                        subscribed = false;
                        if phase == Phase::Running {
                            // the connection is gone for good
                            self.feed.stop();
                        }
                        for s in &mut self.sources {
                            s.pull = None;
                        }
                    }
                },
                s = settled_rx.recv() => {
                    if s.is_some() {
                        self.slots.give(1);
                        while settled_rx.try_recv().is_ok() {
                            self.slots.give(1);
                        }
                        self.schedule().await;
                    }
                }
                () = self.state.wake.notified() => self.schedule().await,
                _ = tick.tick() => {
                    self.progress(progress_every).await;
                    self.expire();
                    self.schedule().await;
                }
                r = generations.changed() => {
                    if r.is_ok() {
                        // reconnected: the server forgot our pull requests
                        for s in &mut self.sources {
                            if let Some(p) = s.pull.take() {
                                self.slots.give(p.remaining);
                            }
                            s.retry_at = None;
                        }
                        self.schedule().await;
                    }
                }
            }
        }
    }

    /// Progress acks for what is held past `every`, so JetStream doesn't redeliver what a
    /// handler still works on.
    async fn progress(&self, every: Duration) {
        let due: Vec<String> = {
            let mut held = self.state.held.lock();
            let now = Instant::now();
            held.values_mut()
                .filter(|h| now.duration_since(h.since) >= every)
                .map(|h| {
                    h.since = now;
                    h.ack.clone()
                })
                .collect()
        };
        for ack in due {
            let _ = self.state.send_ack(&ack, b"+WPI").await;
        }
    }

    /// Pulls past their deadline (their 408 never came) give their slots back.
    fn expire(&mut self) {
        let now = Instant::now();
        for s in &mut self.sources {
            if s.pull.as_ref().is_some_and(|p| p.deadline <= now)
                && let Some(p) = s.pull.take()
            {
                self.slots.give(p.remaining);
            }
        }
    }

    /// Asks for as many messages as there are free slots, spread over the consumers.
    async fn schedule(&mut self) {
        if self.feed.is_stopped() || self.slots.free == 0 {
            return;
        }
        let n = self.sources.len();
        if n == 0 {
            return;
        }
        let hungry = self.state.hungry.swap(false, Ordering::AcqRel) || self.feed.queued() == 0;
        let expires = self.expires();
        let now = Instant::now();
        let start = self.rr;
        self.rr = (self.rr + 1) % n;
        for k in 0..n {
            let idx = (start + k) % n;
            if self.sources[idx].pull.is_some()
                || self.sources[idx].retry_at.is_some_and(|t| t > now)
            {
                continue;
            }
            let Some(want) = batch(self.slots, n, hungry) else {
                break;
            };
            if self.sources[idx].needs_ensure && !self.remake(idx).await {
                self.sources[idx].backoff();
                continue;
            }
            self.next_seq += 1;
            let seq = self.next_seq;
            let reply = format!("{}.{idx}.{seq}", self.inbox);
            let sent = self
                .state
                .topo
                .conn
                .client
                .publish_with_reply(
                    self.sources[idx].next_subject.clone(),
                    reply,
                    Bytes::from(pull_request(want, expires)),
                )
                .await;
            match sent {
                Ok(()) => {
                    self.slots.take(want);
                    self.sources[idx].pull = Some(Pull {
                        seq,
                        remaining: want,
                        deadline: now + expires + Duration::from_secs(2),
                    });
                }
                Err(e) => {
                    tracing::debug!(error = %e, "sending a pull request failed");
                    self.sources[idx].backoff();
                }
            }
        }
    }
    /// Makes a vanished consumer (and its stream) again from what the listener recorded: the
    /// same name, filter and settings, on the exchange's stream. On the same stream it starts
    /// where this listener is (the first sequence it holds unsettled, or the one after the
    /// last it saw), so what it held comes again and nothing after it is skipped; on a stream
    /// made again it starts as a new consumer does. Whether it worked.
    async fn remake(&mut self, idx: usize) -> bool {
        let restart = self.restart_point(idx);
        let s = &self.sources[idx];
        let (old, known_created) = (s.info.spec.clone(), s.stream_created);
        let topo = self.state.topo.clone();
        let exchange = s.info.exchange.clone();
        let remade = async {
            // the stream in use may have changed (an earlier release's one deleted)
            let stream = topo.notify_stream_now(&exchange).await?;
            let created = topo.stream_created(&stream);
            let same_stream = stream == old.stream && created.is_some() && created == known_created;
            let spec = ConsumerSpec {
                stream,
                ..old.clone()
            };
            topo.ensure_consumer_from(&spec, restart.filter(|_| same_stream))
                .await?;
            Ok::<_, Error>((spec, created, same_stream))
        }
        .await;
        let s = &mut self.sources[idx];
        match remade {
            Ok((spec, created, same_stream)) => {
                msg_core::metrics::consumer_restarted(crate::DRIVER_NAME);
                tracing::info!(
                    consumer = spec.name,
                    stream = spec.stream,
                    start_sequence = restart.filter(|_| same_stream),
                    "made the consumer again; the listener resumes"
                );
                if spec.stream != s.info.spec.stream {
                    s.next_subject = next_subject(&topo.conn.api_prefix, &spec);
                    s.info = Arc::new(SourceInfo {
                        spec,
                        exchange: s.info.exchange.clone(),
                        topic: s.info.topic.clone(),
                        priority: s.info.priority,
                    });
                }
                if !same_stream {
                    s.max_seen = 0;
                }
                s.stream_created = created;
                s.needs_ensure = false;
                true
            }
            Err(e) => {
                tracing::debug!(consumer = s.info.spec.name, error = %e, "making a consumer again failed; will retry");
                false
            }
        }
    }

    /// Where a consumer made again for source `idx` starts: the lowest stream sequence the
    /// listener holds unsettled from it, else the one after the highest it saw (`None`: it
    /// saw nothing).
    fn restart_point(&self, idx: usize) -> Option<u64> {
        let spec = &self.sources[idx].info.spec;
        let held = self.state.held.lock();
        let seqs = held
            .values()
            .filter(|h| {
                ack_consumer(&h.ack).is_some_and(|(st, c)| st == spec.stream && c == spec.name)
            })
            .filter_map(|h| stream_sequence(&h.ack));
        restart_point(seqs, self.sources[idx].max_seen)
    }

    /// The consumer of source `idx` is gone (deleted, or its stream deleted): one warning,
    /// then it is made again before the next pull, with back-off while that fails.
    fn consumer_gone(&mut self, idx: usize, why: &str) {
        let stopped = self.feed.is_stopped();
        let s = &mut self.sources[idx];
        if stopped {
            // a stopped listener makes nothing again (its streams may be deleted on purpose)
            tracing::debug!(
                consumer = s.info.spec.name,
                why,
                "a stopped listener's consumer is gone"
            );
        } else if !s.needs_ensure {
            tracing::warn!(
                consumer = s.info.spec.name,
                stream = s.info.spec.stream,
                why,
                "the JetStream consumer of a listener is gone; making it again"
            );
        }
        s.needs_ensure = true;
    }

    /// Ends a pull (a status says the server forgot it): its slots are free again.
    fn end_pull(&mut self, idx: usize, seq: u64) {
        let s = &mut self.sources[idx];
        if s.pull.as_ref().is_some_and(|p| p.seq == seq)
            && let Some(p) = s.pull.take()
        {
            self.slots.give(p.remaining);
        }
    }

    async fn on_message(&mut self, m: Message) {
        if let Some(status) = m.status {
            // statuses come on the pull's own reply subject
            if let Some((idx, seq)) = route(&self.inbox, m.subject.as_str(), self.sources.len()) {
                self.on_status(idx, seq, status, m.description.as_deref())
                    .await;
            }
            return;
        }
        // a message keeps its stream subject; its ack subject names the consumer
        let Some(ack) = m.reply.as_ref().map(|r| r.to_string()) else {
            return;
        };
        let Some(idx) = ack_consumer(&ack).and_then(|(stream, consumer)| {
            self.sources
                .iter()
                .position(|s| s.info.spec.stream == stream && s.info.spec.name == consumer)
        }) else {
            tracing::debug!(ack, "a message for no consumer of this listener");
            return;
        };
        self.on_delivery(idx, ack, m).await;
    }

    async fn on_status(&mut self, idx: usize, seq: u64, status: StatusCode, why: Option<&str>) {
        match status {
            StatusCode::IDLE_HEARTBEAT => return,
            StatusCode::NO_RESPONDERS => {
                // no consumer (or no stream) behind the subject: make them again
                self.end_pull(idx, seq);
                self.consumer_gone(idx, "no consumer answers pull requests");
                self.sources[idx].backoff();
            }
            StatusCode::TIMEOUT | StatusCode::NOT_FOUND => {
                self.end_pull(idx, seq);
                self.sources[idx].failures = 0;
            }
            _ => {
                self.end_pull(idx, seq);
                let why = why.unwrap_or("");
                if why.to_ascii_lowercase().contains("deleted") {
                    // `409 Consumer Deleted`: made again at once, backing off only on failures
                    self.consumer_gone(idx, "the server deleted the consumer");
                } else {
                    let s = &mut self.sources[idx];
                    tracing::debug!(consumer = s.info.spec.name, status = %status, why, "a pull request ended");
                    s.backoff();
                }
            }
        }
        self.schedule().await;
    }

    async fn on_delivery(&mut self, idx: usize, ack: String, m: Message) {
        let s = &mut self.sources[idx];
        if !slot_for_delivery(&mut s.pull, &mut self.slots) {
            self.state.give_back(ack);
            return;
        }
        s.failures = 0;
        if let Some(seq) = stream_sequence(&ack) {
            s.max_seen = s.max_seen.max(seq);
        }
        let info = s.info.clone();
        if self.feed.is_stopped() {
            self.state.give_back(ack);
            self.slots.give(1);
            return;
        }
        let delivered = delivered_count(&ack).unwrap_or(1);
        if abandoned(delivered, self.state.topo.conn.options.max_deliveries) {
            self.slots.give(1);
            let state = self.state.clone();
            tokio::spawn(async move {
                if let Err(e) = dead_letter(&state, &info, &ack, delivered, m.payload).await {
                    tracing::warn!(error = %e, "dead-lettering a notification failed");
                }
            });
            return;
        }
        // decoded as the listener yields it; given back (NAK'd) if it never does
        self.feed
            .push(self.state.hold(info, ack, delivered, m.payload));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(cap: u32, free: u32) -> Slots {
        Slots { cap, free }
    }

    #[test]
    fn a_pull_asks_for_its_share_of_the_free_slots() {
        // one consumer: the whole prefetch
        assert_eq!(batch(slots(10, 10), 1, false), Some(10));
        // three consumers share 10: 3 each
        assert_eq!(batch(slots(10, 10), 3, false), Some(3));
        // never more than is free
        assert_eq!(batch(slots(10, 2), 1, true), Some(2));
        // more consumers than slots: one each
        assert_eq!(batch(slots(2, 2), 5, false), Some(1));
        // nothing free, no consumer: no pull
        assert_eq!(batch(slots(10, 0), 1, true), None);
        assert_eq!(batch(slots(10, 10), 0, true), None);
    }

    #[test]
    fn a_busy_listener_waits_for_half_a_share_a_hungry_one_does_not() {
        // share 10: a busy listener asks once 5 slots are free
        assert_eq!(batch(slots(10, 4), 1, false), None);
        assert_eq!(batch(slots(10, 5), 1, false), Some(5));
        // a listener that waits asks for what there is
        assert_eq!(batch(slots(10, 1), 1, true), Some(1));
        // prefetch 1: one is always worth a pull
        assert_eq!(batch(slots(1, 1), 1, false), Some(1));
    }

    #[test]
    fn slots_never_go_past_the_prefetch_nor_below_zero() {
        let mut s = Slots::new(3);
        s.take(2);
        assert_eq!(s.free, 1);
        assert!(s.take_one());
        assert!(!s.take_one(), "no slot for a late message");
        s.take(5);
        assert_eq!(s.free, 0);
        s.give(2);
        s.give(u32::MAX);
        assert_eq!(s.free, 3);
    }

    #[test]
    fn a_delivery_takes_its_pulls_slot_or_a_free_one() {
        let mut s = slots(4, 1);
        let mut pull = Some(Pull {
            seq: 1,
            remaining: 2,
            deadline: Instant::now(),
        });
        assert!(slot_for_delivery(&mut pull, &mut s));
        assert_eq!(pull.as_ref().map(|p| p.remaining), Some(1));
        assert!(slot_for_delivery(&mut pull, &mut s));
        assert!(pull.is_none(), "the pull ends with its last message");
        assert_eq!(s.free, 1, "the pull's slots were taken when it was sent");
        // late for its pull: a free slot, then none
        assert!(slot_for_delivery(&mut pull, &mut s));
        assert_eq!(s.free, 0);
        assert!(!slot_for_delivery(&mut pull, &mut s));
    }

    #[test]
    fn back_off_doubles_from_half_a_second_to_five() {
        let ms: Vec<u128> = (1..=7).map(|f| backoff_delay(f).as_millis()).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 5000, 5000, 5000]);
        assert_eq!(backoff_delay(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn a_vanished_consumer_restarts_at_the_listeners_ack_floor() {
        // the lowest sequence held unsettled comes again
        assert_eq!(restart_point([9, 7, 12], 15), Some(7));
        // nothing held: the one after the last seen
        assert_eq!(restart_point([], 15), Some(16));
        // nothing seen: as a new consumer
        assert_eq!(restart_point([], 0), None);
        assert_eq!(restart_point([], u64::MAX), Some(u64::MAX));
    }

    #[test]
    fn pulls_rotate_faster_with_fewer_slots_than_consumers() {
        let d = Duration::from_secs(30);
        assert_eq!(pull_expires(d, 10, 3), d);
        assert_eq!(pull_expires(d, 3, 3), d);
        assert_eq!(pull_expires(d, 2, 3), Duration::from_secs(1));
        assert_eq!(
            pull_expires(Duration::from_millis(300), 1, 3),
            Duration::from_millis(300)
        );
        assert_eq!(
            pull_request(5, Duration::from_secs(1)),
            r#"{"batch":5,"expires":1000000000}"#
        );
    }

    #[test]
    fn progress_acks_come_every_third_of_the_ack_wait() {
        assert_eq!(
            progress_every(Duration::from_secs(30)),
            Duration::from_secs(10)
        );
        assert_eq!(
            progress_every(Duration::from_millis(60)),
            Duration::from_millis(50)
        );
    }

    #[test]
    fn replies_are_routed_to_their_source_and_pull() {
        let inbox = "_INBOX.abc";
        assert_eq!(route(inbox, "_INBOX.abc.1.42", 2), Some((1, 42)));
        assert_eq!(route(inbox, "_INBOX.abc.2.42", 2), None, "no such source");
        assert_eq!(route(inbox, "_INBOX.abcd.0.1", 2), None);
        assert_eq!(route(inbox, "_INBOX.abc.0", 2), None);
        assert_eq!(route(inbox, "_INBOX.abc.x.1", 2), None);
        assert_eq!(route(inbox, "other.0.1", 2), None);
    }
}
