//! Notification listeners: pull requests on durable JetStream consumers, bounded by the
//! listener's prefetch; acks after handling, progress acks while a message is held, NAK
//! (optionally delayed) for requeue, dead-lettering past `max_deliveries`.
//!
//! A listener pulls from its consumers (one per (topic, priority), or per (pool, topic,
//! priority)) with its own inbox `<inbox>.<source>.<pull>`. It never asks for more than
//! its free slots (prefetch less what it holds and what it already asked for), spreads them
//! over its consumers, and asks again as slots free up. On stop it drains its inbox (nats-
//! server drops pull requests whose reply subject lost its interest) and NAKs everything
//! it holds but has not yielded, so nothing waits for the ack wait to come back.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use async_nats::{HeaderMap, Message, StatusCode, Subscriber};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use msg_core::codec::WireNotification;
use msg_core::{Acknowledger, Error, IncomingNotification, Priority, Result, Retry, StopListening};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::errors;
use crate::subject::{ack_consumer, delivered_count, stream_sequence};
use crate::topology::{ConsumerSpec, Topology};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The headers a dead-lettered notification carries.
pub(crate) const DEAD_LETTER_SUBJECT: &str = "Msg-Dead-Letter-Subject";
/// The consumer that gave up on it.
pub(crate) const DEAD_LETTER_CONSUMER: &str = "Msg-Dead-Letter-Consumer";
/// How often it was delivered.
pub(crate) const DEAD_LETTER_DELIVERIES: &str = "Msg-Dead-Letter-Deliveries";

/// One consumer a listener pulls from.
#[derive(Debug)]
pub(crate) struct SourceInfo {
    pub(crate) spec: ConsumerSpec,
    pub(crate) exchange: String,
    pub(crate) topic: String,
    pub(crate) priority: Priority,
}

/// A message held by the listener (in its backlog, or yielded and not settled).
struct HeldEntry {
    ack: String,
    since: Instant,
}

/// What the engine, the stream, the stop switch and the ackers share.
pub(crate) struct ListenerState {
    topo: Arc<Topology>,
    tx: Mutex<Option<mpsc::UnboundedSender<IncomingNotification>>>,
    stopped: AtomicBool,
    wake: Notify,
    /// Delivered to the stream, not yet yielded.
    unyielded: AtomicUsize,
    /// The stream waits for a message.
    hungry: AtomicBool,
    held: Mutex<HashMap<u64, HeldEntry>>,
    next_key: AtomicU64,
    settled_tx: mpsc::UnboundedSender<()>,
    /// NAKs held back while a stopped listener's pull requests may still be waiting at the
    /// server (`None` once they are over). nats-server 2.9 loses a redelivery it hands to a
    /// pull request whose inbox has no interest any more (the message then waits for the ack
    /// wait), so a stopped listener NAKs only after its own pull requests ended.
    deferred: Mutex<Option<Vec<String>>>,
}

impl fmt::Debug for ListenerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerState")
            .field("held", &lock(&self.held).len())
            .field("stopped", &self.stopped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl ListenerState {
    fn stop(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        lock(&self.tx).take();
        self.wake.notify_one();
    }

    async fn send_ack(&self, subject: &str, body: &'static [u8]) -> Result<()> {
        self.send_ack_to(subject.to_string(), body).await
    }

    /// [`Self::send_ack`] with the subject moved in (a message's last settlement).
    async fn send_ack_to(&self, subject: String, body: &'static [u8]) -> Result<()> {
        self.topo
            .conn
            .client
            .publish(subject, Bytes::from_static(body))
            .await
            .map_err(|e| errors::unavailable("settling a notification", e))
    }

    /// NAKs a message that goes back unhandled: at once while the listener runs (its pull
    /// requests are live) or once its pull requests are over; held back in between.
    fn give_back(self: &Arc<Self>, ack: String) {
        if self.stopped.load(Ordering::Acquire) {
            let mut deferred = lock(&self.deferred);
            if let Some(list) = deferred.as_mut() {
                list.push(ack);
                return;
            }
        }
        let state = self.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = state.send_ack(&ack, b"-NAK").await;
            });
        }
    }

    /// Sends the held-back NAKs; from now on NAKs go out at once.
    async fn release_deferred(&self) {
        let list = lock(&self.deferred).take().unwrap_or_default();
        if !list.is_empty() {
            tracing::debug!(
                count = list.len(),
                "a stopped listener gives back what it held"
            );
        }
        for ack in list {
            let _ = self.send_ack(&ack, b"-NAK").await;
        }
    }

    fn settled(&self, key: u64) {
        lock(&self.held).remove(&key);
        let _ = self.settled_tx.send(());
    }
}

/// Settles one notification.
struct JsAcker {
    state: Arc<ListenerState>,
    source: Arc<SourceInfo>,
    key: u64,
    ack: String,
    delivered: u64,
    /// The message as stored, for the dead-letter subject.
    payload: Bytes,
    settled: bool,
}

impl fmt::Debug for JsAcker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsAcker")
            .field("consumer", &self.source.spec.name)
            .field("delivered", &self.delivered)
            .finish()
    }
}

impl JsAcker {
    fn finish(&mut self) {
        if !self.settled {
            self.settled = true;
            self.state.settled(self.key);
        }
    }
}

impl Drop for JsAcker {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // dropped unsettled (stop, or never handled): back for redelivery
        let ack = std::mem::take(&mut self.ack);
        self.state.give_back(ack);
        self.finish();
    }
}

/// Publishes a notification to the dead-letter subject of its exchange and terminates it.
async fn dead_letter(
    state: &ListenerState,
    source: &SourceInfo,
    ack: &str,
    delivered: u64,
    payload: Bytes,
) -> Result<()> {
    let topo = &state.topo;
    let subject =
        topo.layout
            .dead_letter_subject(&source.exchange, &source.topic, source.priority)?;
    let mut headers = HeaderMap::new();
    headers.insert(DEAD_LETTER_SUBJECT, source.spec.filter.as_str());
    headers.insert(DEAD_LETTER_CONSUMER, source.spec.name.as_str());
    headers.insert(DEAD_LETTER_DELIVERIES, delivered.to_string().as_str());
    let msg_id = format!(
        "dlq:{}:{}:{}",
        source.spec.stream,
        source.spec.name,
        stream_sequence(ack).unwrap_or(0)
    );
    let exchange = source.exchange.clone();
    topo.publish(
        &subject,
        &msg_id,
        Some(headers),
        payload,
        Retry::Attempts(2),
        || async { topo.dead_letter_stream(&exchange).await.map(|_| ()) },
    )
    .await?;
    tracing::warn!(
        consumer = source.spec.name,
        topic = source.topic,
        dead_letter = subject,
        deliveries = delivered,
        "notification delivered too often: dead-lettered"
    );
    state.send_ack(ack, b"+TERM").await
}

#[async_trait]
impl Acknowledger for JsAcker {
    async fn ack(mut self: Box<Self>) -> Result<()> {
        // settled from here on: the drop gives nothing back
        self.finish();
        let ack = std::mem::take(&mut self.ack);
        self.state.send_ack_to(ack, b"+ACK").await
    }

    async fn requeue(mut self: Box<Self>, delay: Option<Duration>) -> Result<()> {
        let max = self.state.topo.conn.options.max_deliveries;
        let r = if max > 0 && self.delivered > max {
            let payload = std::mem::take(&mut self.payload);
            dead_letter(
                &self.state,
                &self.source,
                &self.ack,
                self.delivered,
                payload,
            )
            .await
        } else {
            match delay.filter(|d| !d.is_zero()) {
                None => self.state.send_ack(&self.ack, b"-NAK").await,
                Some(d) => {
                    let body = format!("-NAK {{\"delay\":{}}}", d.as_nanos());
                    self.state
                        .topo
                        .conn
                        .client
                        .publish(self.ack.clone(), Bytes::from(body))
                        .await
                        .map_err(|e| errors::unavailable("requeueing a notification", e))
                }
            }
        };
        self.finish();
        r
    }
}

/// One pull request in flight.
#[derive(Debug)]
struct Pull {
    seq: u64,
    remaining: u32,
    deadline: Instant,
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

/// Where pull requests for a consumer go: `<api>.CONSUMER.MSG.NEXT.<stream>.<consumer>`.
fn next_subject(api: &str, spec: &ConsumerSpec) -> String {
    format!("{api}.CONSUMER.MSG.NEXT.{}.{}", spec.stream, spec.name)
}

/// Pulls for one listener.
struct Engine {
    state: Arc<ListenerState>,
    sources: Vec<Source>,
    inbox: String,
    cap: u32,
    free: u32,
    next_seq: u64,
    rr: usize,
}

/// Starts a notification listener over the given consumers (ensured by the caller).
pub(crate) async fn listen(
    topo: Arc<Topology>,
    sources: Vec<SourceInfo>,
    prefetch: u32,
) -> Result<(Arc<ListenerState>, JsStream)> {
    let conn = topo.conn.clone();
    let inbox = conn.client.new_inbox();
    let sub = conn
        .client
        .subscribe(format!("{inbox}.*.*"))
        .await
        .map_err(|e| errors::unavailable("subscribing a listener's inbox", e))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (settled_tx, settled_rx) = mpsc::unbounded_channel();
    let state = Arc::new(ListenerState {
        topo: topo.clone(),
        tx: Mutex::new(Some(tx)),
        stopped: AtomicBool::new(false),
        wake: Notify::new(),
        unyielded: AtomicUsize::new(0),
        hungry: AtomicBool::new(true),
        held: Mutex::default(),
        next_key: AtomicU64::new(0),
        settled_tx,
        deferred: Mutex::new(Some(Vec::new())),
    });
    let cap = if prefetch == 0 {
        conn.options.unlimited_prefetch()
    } else {
        prefetch
    };
    let api = conn.api_prefix.clone();
    let engine = Engine {
        state: state.clone(),
        sources: sources
            .into_iter()
            .map(|info| Source {
                next_subject: next_subject(&api, &info.spec),
                stream_created: topo.stream_created(&info.spec.stream),
                max_seen: 0,
                info: Arc::new(info),
                pull: None,
                retry_at: None,
                failures: 0,
                needs_ensure: false,
            })
            .collect(),
        inbox,
        cap,
        free: cap,
        next_seq: 0,
        rr: 0,
    };
    tokio::spawn(engine.run(sub, settled_rx));
    let stream = JsStream {
        rx,
        state: state.clone(),
        ended: false,
    };
    Ok((state, stream))
}

impl Engine {
    fn expires(&self) -> Duration {
        let o = &self.state.topo.conn.options;
        if self.cap as usize >= self.sources.len() {
            o.pull_expires
        } else {
            // fewer slots than consumers: pulls rotate faster
            o.pull_expires.min(Duration::from_secs(1))
        }
    }

    async fn run(mut self, mut sub: Subscriber, mut settled_rx: mpsc::UnboundedReceiver<()>) {
        let conn = self.state.topo.conn.clone();
        let mut generations = conn.generations();
        generations.borrow_and_update();
        // progress acks every third of the ack wait; pull deadlines checked every second
        let progress_every = (conn.options.ack_wait / 3).max(Duration::from_millis(50));
        let tick_every = progress_every.min(Duration::from_secs(1));
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut subscribed = true;
        let mut phase = Phase::Running;
        self.schedule().await;
        loop {
            if conn.is_closed() {
                self.state.stop();
                self.state.release_deferred().await;
                break;
            }
            if phase == Phase::Running && self.state.stopped.load(Ordering::Acquire) {
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
            if phase == Phase::Drained && lock(&self.state.held).is_empty() {
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
                            self.state.stop();
                        }
                        for s in &mut self.sources {
                            s.pull = None;
                        }
                    }
                },
                s = settled_rx.recv() => {
                    if s.is_some() {
                        self.free = (self.free + 1).min(self.cap);
                        while settled_rx.try_recv().is_ok() {
                            self.free = (self.free + 1).min(self.cap);
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
                                self.free += p.remaining;
                            }
                            s.retry_at = None;
                        }
                        self.schedule().await;
                    }
                }
            }
        }
    }

    /// Progress acks for what is held past a third of the ack wait, so JetStream doesn't
    /// redeliver what a handler still works on.
    async fn progress(&self, every: Duration) {
        let due: Vec<String> = {
            let mut held = lock(&self.state.held);
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
                self.free += p.remaining;
            }
        }
    }

    fn backoff(s: &mut Source) {
        s.failures = s.failures.saturating_add(1);
        let ms = 250u64.saturating_mul(1 << s.failures.min(5)).min(5_000);
        s.retry_at = Some(Instant::now() + Duration::from_millis(ms));
    }

    /// Asks for as many messages as there are free slots, spread over the consumers.
    async fn schedule(&mut self) {
        if self.state.stopped.load(Ordering::Acquire) || self.free == 0 {
            return;
        }
        let n = self.sources.len();
        if n == 0 {
            return;
        }
        let share = (self.cap / u32::try_from(n).unwrap_or(u32::MAX)).max(1);
        let hungry = self.state.hungry.swap(false, Ordering::AcqRel)
            || self.state.unyielded.load(Ordering::Acquire) == 0;
        let min_batch = if hungry { 1 } else { (share / 2).max(1) };
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
            let want = self.free.min(share);
            if want < min_batch {
                break;
            }
            if self.sources[idx].needs_ensure && !self.remake(idx).await {
                Self::backoff(&mut self.sources[idx]);
                continue;
            }
            self.next_seq += 1;
            let seq = self.next_seq;
            let reply = format!("{}.{idx}.{seq}", self.inbox);
            let request = format!("{{\"batch\":{want},\"expires\":{}}}", expires.as_nanos());
            let sent = self
                .state
                .topo
                .conn
                .client
                .publish_with_reply(
                    self.sources[idx].next_subject.clone(),
                    reply,
                    Bytes::from(request),
                )
                .await;
            match sent {
                Ok(()) => {
                    self.free -= want;
                    self.sources[idx].pull = Some(Pull {
                        seq,
                        remaining: want,
                        deadline: now + expires + Duration::from_secs(2),
                    });
                }
                Err(e) => {
                    tracing::debug!(error = %e, "sending a pull request failed");
                    Self::backoff(&mut self.sources[idx]);
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
        let held = lock(&self.state.held)
            .values()
            .filter(|h| {
                ack_consumer(&h.ack).is_some_and(|(st, c)| st == spec.stream && c == spec.name)
            })
            .filter_map(|h| stream_sequence(&h.ack))
            .min();
        let max_seen = self.sources[idx].max_seen;
        held.or_else(|| (max_seen > 0).then(|| max_seen.saturating_add(1)))
    }

    /// The consumer of source `idx` is gone (deleted, or its stream deleted): one warning,
    /// then it is made again before the next pull, with back-off while that fails.
    fn consumer_gone(&mut self, idx: usize, why: &str) {
        let stopped = self.state.stopped.load(Ordering::Acquire);
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

    /// Which source and pull a message on `<inbox>.<source>.<pull>` answers.
    fn route(&self, subject: &str) -> Option<(usize, u64)> {
        let rest = subject
            .strip_prefix(self.inbox.as_str())?
            .strip_prefix('.')?;
        let (idx, seq) = rest.split_once('.')?;
        let idx: usize = idx.parse().ok()?;
        (idx < self.sources.len()).then_some(())?;
        Some((idx, seq.parse().ok()?))
    }

    /// Ends a pull (a status says the server forgot it): its slots are free again.
    fn end_pull(&mut self, idx: usize, seq: u64) {
        let s = &mut self.sources[idx];
        if s.pull.as_ref().is_some_and(|p| p.seq == seq)
            && let Some(p) = s.pull.take()
        {
            self.free += p.remaining;
        }
    }

    async fn on_message(&mut self, m: Message) {
        if let Some(status) = m.status {
            // statuses come on the pull's own reply subject
            if let Some((idx, seq)) = self.route(m.subject.as_str()) {
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
                Self::backoff(&mut self.sources[idx]);
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
                    Self::backoff(s);
                }
            }
        }
        self.schedule().await;
    }

    async fn on_delivery(&mut self, idx: usize, ack: String, m: Message) {
        // a slot: the pull's own, or a free one for a late message
        let s = &mut self.sources[idx];
        match s.pull.as_mut() {
            Some(p) if p.remaining > 0 => {
                p.remaining -= 1;
                if p.remaining == 0 {
                    s.pull = None;
                }
            }
            _ => {
                if self.free == 0 {
                    self.state.give_back(ack);
                    return;
                }
                self.free -= 1;
            }
        }
        s.failures = 0;
        if let Some(seq) = stream_sequence(&ack) {
            s.max_seen = s.max_seen.max(seq);
        }
        let info = s.info.clone();
        if self.state.stopped.load(Ordering::Acquire) {
            self.state.give_back(ack);
            self.free += 1;
            return;
        }
        let delivered = delivered_count(&ack).unwrap_or(1);
        let max = self.state.topo.conn.options.max_deliveries;
        if max > 0 && delivered > max.saturating_add(1) {
            // delivered again and again without being settled (a listener that dies on it)
            self.free += 1;
            let state = self.state.clone();
            tokio::spawn(async move {
                if let Err(e) = dead_letter(&state, &info, &ack, delivered, m.payload).await {
                    tracing::warn!(error = %e, "dead-lettering a notification failed");
                }
            });
            return;
        }
        let n = match WireNotification::decode(&m.payload) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(consumer = info.spec.name, topic = info.topic, error = %e, "rejected a notification that can't be decoded (not requeued)");
                let _ = self.state.send_ack(&ack, b"+TERM").await;
                self.free += 1;
                return;
            }
        };
        let key = self.state.next_key.fetch_add(1, Ordering::Relaxed);
        lock(&self.state.held).insert(
            key,
            HeldEntry {
                ack: ack.clone(),
                since: Instant::now(),
            },
        );
        let acker = JsAcker {
            state: self.state.clone(),
            source: info,
            key,
            ack,
            delivered,
            payload: m.payload,
            settled: false,
        };
        let incoming =
            IncomingNotification::new(n.context, n.notification, n.unique_id, Box::new(acker));
        let guard = lock(&self.state.tx);
        if let Some(tx) = &*guard {
            self.state.unyielded.fetch_add(1, Ordering::AcqRel);
            if tx.send(incoming).is_err() {
                // the stream is gone: the acker's drop gives it back
                self.state.unyielded.fetch_sub(1, Ordering::AcqRel);
            }
        }
        // a stopped listener drops it here: the acker NAKs it
    }
}

/// Stops a notification listener.
#[derive(Debug)]
pub(crate) struct JsStop(pub(crate) Arc<ListenerState>);

impl StopListening for JsStop {
    fn stop(&self) {
        self.0.stop();
    }
}

/// The stream of a notification listener.
pub(crate) struct JsStream {
    rx: mpsc::UnboundedReceiver<IncomingNotification>,
    state: Arc<ListenerState>,
    ended: bool,
}

impl JsStream {
    /// What the stream holds goes back (each acker NAKs as it drops).
    fn give_back(&mut self) {
        while let Ok(n) = self.rx.try_recv() {
            self.state.unyielded.fetch_sub(1, Ordering::AcqRel);
            drop(n);
        }
    }
}

impl Stream for JsStream {
    type Item = IncomingNotification;
    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<IncomingNotification>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if self.state.stopped.load(Ordering::Acquire) {
            self.ended = true;
            self.give_back();
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(n)) => {
                self.state.unyielded.fetch_sub(1, Ordering::AcqRel);
                Poll::Ready(Some(n))
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if !self.state.hungry.swap(true, Ordering::AcqRel) {
                    self.state.wake.notify_one();
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for JsStream {
    fn drop(&mut self) {
        self.state.stop();
        self.give_back();
    }
}
