//! Consumers that survive reconnects and broker cancellations, and the listener streams over
//! them.

mod recovery;
mod stream;

pub(crate) use stream::StreamCursor;
use stream::StreamMark;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use futures::future::BoxFuture;
use lapin::Channel;
use lapin::message::{Delivery, DeliveryResult};
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::AMQPValue;
use msg_core::codec::{WireNotification, WireReply, WireRequest};
use msg_core::feed::{Feed, Intake, feed, log_rejected};
use msg_core::{
    Acknowledger, Error, IncomingNotification, IncomingRequest, Listener, ReplyWaiters, Responder,
    Result, Retry,
};
use tokio::sync::oneshot;

use crate::acks::Acks;
use crate::body;
use crate::obsolete::ObsoleteReplyQueues;
use crate::queue_manager::QueueNumber;
use crate::supervisor::{
    Bound, Conn, Decl, Outgoing, Resumable, Supervisor, open_channel, queue_args,
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A consumer channel; closed when the last delivery taken from it is settled and the
/// listener let go of it.
pub(crate) struct ChannelGuard {
    pub(crate) channel: Channel,
    pub(crate) generation: u64,
    pub(crate) acks: Arc<Acks>,
    /// The state of the connection the channel is on: a consumer that ends while it is
    /// still connected was cancelled by the broker, or lost its channel.
    connection: lapin::ConnectionStatus,
    /// Set once a recovery from this channel started (its consumers end one by one).
    recovering: AtomicBool,
    /// Where the close runs: the last holder may be a lapin delegate, outside the runtime.
    runtime: tokio::runtime::Handle,
}

impl Drop for ChannelGuard {
    fn drop(&mut self) {
        let channel = self.channel.clone();
        let acks = self.acks.clone();
        self.runtime.spawn(async move {
            let _ = acks.flush().await;
            let _ = channel.close(200, "OK".into()).await;
        });
    }
}

/// One delivery, with the channel (and connection generation) it came on.
pub(crate) struct Received {
    pub(crate) delivery: Delivery,
    pub(crate) channel: Arc<ChannelGuard>,
    pub(crate) queue: Arc<str>,
    /// The decompressed body of a compressed delivery (or why it can't be had).
    pub(crate) decompressed: Option<Result<Vec<u8>>>,
    /// A stream delivery's offset, in flight until this is dropped.
    _stream: Option<StreamMark>,
}

impl Received {
    /// The body to decode: the decompressed one when kombu compressed it.
    fn body(&self) -> Result<&[u8]> {
        match &self.decompressed {
            None => Ok(&self.delivery.data),
            Some(Ok(body)) => Ok(body),
            Some(Err(e)) => Err(Error::malformed(e.to_string())),
        }
    }
}

/// A listener's feed, whatever the listener yields.
pub(crate) trait Pusher: Send + Sync {
    /// Queues a delivery (given back at once when the listener stopped).
    fn push(&self, r: Received);
    /// Queues the place of a delivery being decompressed; `false` when the listener stopped.
    fn push_later(&self, prepared: oneshot::Receiver<Received>) -> bool;
}

impl<M: Send + 'static> Pusher for Feed<AmqpIntake<M>> {
    fn push(&self, r: Received) {
        Feed::push(self, r);
    }
    fn push_later(&self, prepared: oneshot::Receiver<Received>) -> bool {
        Feed::push_later(self, prepared)
    }
}

/// Where a consumer's deliveries go.
pub(crate) enum Sink {
    /// A listener's feed; emptied at stop (the feed's intake holds the consumer).
    Stream(parking_lot::Mutex<Option<Arc<dyn Pusher>>>),
    /// A reply queue: decoded at once and handed to the waiting calls.
    Replies(Arc<ReplyWaiters>),
}

/// Consumes some queues on a channel of its own, and again on every new connection.
pub(crate) struct ConsumerCore {
    sup: Arc<Supervisor>,
    queues: Vec<String>,
    prefetch: u16,
    no_ack: bool,
    /// The ceiling on a decompressed body.
    max_body: usize,
    sink: Sink,
    /// The fanout stream among `queues` (`rabbit_stream_fanout`), and where it reads from.
    stream: Option<Arc<StreamCursor>>,
    state: Mutex<CoreState>,
    stopped: AtomicBool,
}

#[derive(Default)]
struct CoreState {
    channel: Option<Arc<ChannelGuard>>,
    tags: Vec<String>,
    /// The acks of the current channel, kept after a stop (handlers still settle).
    acks: Option<Arc<Acks>>,
}

impl fmt::Debug for ConsumerCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerCore")
            .field("queues", &self.queues)
            .field("prefetch", &self.prefetch)
            .finish()
    }
}

impl ConsumerCore {
    pub(crate) fn new(
        sup: Arc<Supervisor>,
        queues: Vec<String>,
        prefetch: u16,
        no_ack: bool,
        max_body: usize,
        sink: Sink,
        stream: Option<Arc<StreamCursor>>,
    ) -> Arc<Self> {
        Arc::new(ConsumerCore {
            sup,
            queues,
            prefetch,
            no_ack,
            max_body,
            sink,
            stream,
            state: Mutex::default(),
            stopped: AtomicBool::new(false),
        })
    }

    /// Stops consuming: consumers cancelled (messages already delivered stay ours to
    /// settle), the listener's feed let go.
    pub(crate) fn stop(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let (channel, tags) = {
            let mut st = lock(&self.state);
            (st.channel.take(), std::mem::take(&mut st.tags))
        };
        if let Some(guard) = channel {
            cancel_later(guard, tags);
        }
        if let Sink::Stream(feed) = &self.sink {
            feed.lock().take();
        }
    }

    /// The cursor of `queue` when it is the fanout stream.
    fn stream_of(&self, queue: &str) -> Option<&Arc<StreamCursor>> {
        self.stream.as_ref().filter(|s| s.queue() == queue)
    }

    fn deliver(&self, delivery: Delivery, channel: &Arc<ChannelGuard>, queue: &Arc<str>) {
        let mark = self.stream_of(queue).and_then(|s| s.delivered(&delivery));
        let received = Received {
            delivery,
            channel: channel.clone(),
            queue: queue.clone(),
            decompressed: None,
            _stream: mark,
        };
        match body::compression(&received.delivery.properties) {
            None => self.take(received),
            Some(kind) => {
                // decompression is CPU work bounded only by the ceiling: off the async workers,
                // and off lapin's I/O thread (it calls consumer delegates there, outside the
                // runtime), or every channel of the connection would wait for it
                let limit = self.max_body;
                let decompress = move |mut received: Received| {
                    let data = &received.delivery.data;
                    received.decompressed = Some(kind.and_then(|k| k.decompress(data, limit)));
                    received
                };
                match &self.sink {
                    Sink::Stream(feed) => {
                        // the listener takes it in its place: what follows waits for it
                        let (done, pending) = oneshot::channel();
                        let queued = feed
                            .lock()
                            .as_ref()
                            .is_some_and(|feed| feed.push_later(pending));
                        if !queued {
                            reject_later(&self.sup, received, true);
                            return;
                        }
                        let sup = self.sup.clone();
                        drop(self.sup.runtime.spawn_blocking(move || {
                            if let Err(r) = done.send(decompress(received)) {
                                // the listener is gone: back to the broker
                                reject_later(&sup, r, true);
                            }
                        }));
                    }
                    Sink::Replies(waiters) => {
                        let waiters = waiters.clone();
                        drop(
                            self.sup.runtime.spawn_blocking(move || {
                                deliver_reply(&waiters, decompress(received))
                            }),
                        );
                    }
                }
            }
        }
    }
}

impl ConsumerCore {
    /// Hands a delivery on: to the listener's feed (back to the broker once it stopped), or
    /// decoded to the waiting call.
    fn take(&self, received: Received) {
        match &self.sink {
            Sink::Stream(feed) => {
                let feed = feed.lock().clone();
                match feed {
                    Some(feed) => feed.push(received),
                    None => reject_later(&self.sup, received, true),
                }
            }
            Sink::Replies(waiters) => deliver_reply(waiters, received),
        }
    }
}

/// Decodes a reply and hands it to its call.
fn deliver_reply(waiters: &ReplyWaiters, received: Received) {
    match received.body().and_then(WireReply::decode) {
        Ok(reply) => {
            if !waiters.deliver(reply) {
                tracing::debug!("a reply for a call nobody waits for was dropped");
            }
        }
        Err(e) => {
            tracing::warn!(queue = &*received.queue, error = %e, "a reply that can't be decoded was dropped")
        }
    }
}

impl ConsumerCore {
    /// Opens a channel on `conn` and consumes every queue on it; returns the channel and
    /// the consumer tags.
    async fn consume_on(self: &Arc<Self>, conn: &Conn) -> Result<(Arc<ChannelGuard>, Vec<String>)> {
        let channel = open_channel(conn).await?;
        let consumed = self.consume_all(conn, &channel).await;
        if consumed.is_err() {
            // consumers already started on it end with it (not the current channel: ignored)
            let _ = channel.close(200, "OK".into()).await;
        }
        consumed
    }

    async fn consume_all(
        self: &Arc<Self>,
        conn: &Conn,
        channel: &Channel,
    ) -> Result<(Arc<ChannelGuard>, Vec<String>)> {
        if self.prefetch > 0 {
            channel
                .basic_qos(self.prefetch, BasicQosOptions::default())
                .await
                .map_err(|e| Error::driver("amqp", "setting the prefetch", e))?;
        }
        let guard = Arc::new(ChannelGuard {
            channel: channel.clone(),
            generation: conn.generation,
            acks: Arc::new(Acks::new(channel.clone(), self.prefetch)),
            connection: conn.connection.status().clone(),
            recovering: AtomicBool::new(false),
            runtime: self.sup.runtime.clone(),
        });
        let mut tags = Vec::with_capacity(self.queues.len());
        for queue in &self.queues {
            let consumer = channel
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions {
                        no_ack: self.no_ack,
                        ..BasicConsumeOptions::default()
                    },
                    // a stream says where to start reading
                    self.stream_of(queue)
                        .map(|s| s.consume_arguments())
                        .unwrap_or_default(),
                )
                .await
                .map_err(|e| Error::driver("amqp", format!("consuming queue `{queue}`"), e))?;
            tags.push(consumer.tag().to_string());
            let core = Arc::downgrade(self);
            let guard = guard.clone();
            let queue: Arc<str> = Arc::from(queue.as_str());
            consumer.set_delegate(move |delivery: DeliveryResult| {
                if let Some(core) = core.upgrade() {
                    match delivery {
                        Ok(Some(d)) => core.deliver(d, &guard, &queue),
                        // lapin ends a consumer with `None` for a broker's `basic.cancel`
                        // and when its channel or connection closes
                        Ok(None) => core.consumer_ended(&guard, &queue),
                        Err(e) => {
                            tracing::debug!(queue = &*queue, error = %e, "consumer error")
                        }
                    }
                }
                std::future::ready(())
            });
        }
        Ok((guard, tags))
    }

    /// Makes `guard` the channel consumed from, unless the consumer stopped or already
    /// consumes on a newer connection (then its consumers are cancelled). Returns the
    /// channel and tags it replaced.
    fn install(
        &self,
        guard: Arc<ChannelGuard>,
        tags: Vec<String>,
    ) -> Option<(Arc<ChannelGuard>, Vec<String>)> {
        let mut st = lock(&self.state);
        let newer = st
            .channel
            .as_ref()
            .is_some_and(|c| c.generation > guard.generation);
        if self.stopped.load(Ordering::Acquire) || newer {
            drop(st);
            cancel_later(guard, tags);
            return None;
        }
        st.acks = Some(guard.acks.clone());
        let old_tags = std::mem::replace(&mut st.tags, tags);
        st.channel
            .replace(guard)
            .map(|old_guard| (old_guard, old_tags))
    }

    /// Whether `guard` is the channel consumed from now.
    fn is_current(&self, guard: &Arc<ChannelGuard>) -> bool {
        lock(&self.state)
            .channel
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, guard))
    }
}

/// Cancels consumers (in the background); the channel closes once the deliveries taken
/// from it are settled.
fn cancel_later(guard: Arc<ChannelGuard>, tags: Vec<String>) {
    let runtime = guard.runtime.clone();
    runtime.spawn(async move {
        for tag in tags {
            let _ = guard
                .channel
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await;
        }
        drop(guard);
    });
}

impl Resumable for ConsumerCore {
    fn resume(self: Arc<Self>, conn: Arc<Conn>) -> BoxFuture<'static, Result<()>> {
        async move {
            if self.stopped.load(Ordering::Acquire) {
                return Ok(());
            }
            // already consuming there: the supervisor's restore and a set-up retried after a
            // lost connection may both resume it on the same new connection
            let consuming = lock(&self.state)
                .channel
                .as_ref()
                .is_some_and(|c| c.generation >= conn.generation);
            if consuming {
                return Ok(());
            }
            let (guard, tags) = self.consume_on(&conn).await?;
            // what it replaces was on a connection that is gone
            drop(self.install(guard, tags));
            Ok(())
        }
        .boxed()
    }

    fn flush_acks(self: Arc<Self>) -> BoxFuture<'static, ()> {
        let acks = lock(&self.state).acks.clone();
        async move {
            if let Some(acks) = acks {
                let _ = acks.flush().await;
            }
        }
        .boxed()
    }
}

/// Turns a delivery into what the listener yields; `None` when it was rejected.
pub(crate) type Decode<M> = fn(&Arc<Shared>, Received) -> Option<M>;

/// What decoded messages need: the supervisor, the redelivery counts, the reply queues
/// given up on.
pub(crate) struct Shared {
    pub(crate) sup: Arc<Supervisor>,
    /// How often this process saw a notification requeued, by message id.
    requeues: Mutex<HashMap<String, u32>>,
    obsolete: ObsoleteReplyQueues,
}

impl Shared {
    pub(crate) fn new(sup: Arc<Supervisor>) -> Arc<Self> {
        Arc::new(Shared {
            sup,
            requeues: Mutex::default(),
            obsolete: ObsoleteReplyQueues::default(),
        })
    }
}

/// An AMQP listener's intake: decodes deliveries as they are yielded, gives back by
/// rejecting with requeue, and stops by cancelling the consumers.
pub(crate) struct AmqpIntake<M> {
    core: Arc<ConsumerCore>,
    shared: Arc<Shared>,
    decode: Decode<M>,
    /// Our own fanout queue, deleted on a clean stop (as oslo; not with
    /// `use_queue_manager`, whose names outlive a restart, nor a fanout stream, which every
    /// server of the topic reads).
    owned_queue: Option<String>,
    /// With `use_queue_manager`, the number in the fanout queue's name, held until the
    /// listener stops.
    number: Mutex<Option<QueueNumber>>,
}

impl<M: Send + 'static> Intake for AmqpIntake<M> {
    type Raw = Received;
    type Item = M;

    fn decode(&self, r: Received) -> Option<M> {
        (self.decode)(&self.shared, r)
    }

    fn give_back(&self, raws: Vec<Received>) {
        for r in raws {
            reject_later(&self.shared.sup, r, true);
        }
    }

    fn stop(&self) {
        self.core.stop();
        // the name is free for the next listener (a restart takes it again)
        drop(lock(&self.number).take());
        if let Some(q) = self.owned_queue.clone() {
            self.shared.sup.delete_when_stopped(q);
        }
    }
}

/// A listener over `core`, whose consumers hand it their deliveries from now on.
pub(crate) fn listener<M: Send + 'static>(
    core: &Arc<ConsumerCore>,
    shared: &Arc<Shared>,
    owned_queue: Option<String>,
    number: Option<QueueNumber>,
    decode: Decode<M>,
) -> Listener<M> {
    let (feed, listener) = feed(AmqpIntake {
        core: core.clone(),
        shared: shared.clone(),
        decode,
        owned_queue,
        number: Mutex::new(number),
    });
    if let Sink::Stream(slot) = &core.sink {
        *slot.lock() = Some(Arc::new(feed));
    }
    listener
}

/// A delivery from a connection that is gone (a newer one was opened since): nothing to
/// settle, the broker takes it back. Consumers resume on a new connection before it becomes
/// the current one, so this compares with the newest connection, not the current one.
fn is_stale(sup: &Supervisor, r: &Received) -> bool {
    r.channel.generation != sup.newest_generation()
}

/// Rejects a delivery (in the background); a delivery from a connection that is gone needs
/// nothing: the broker already took it back.
fn reject_later(sup: &Arc<Supervisor>, r: Received, requeue: bool) {
    if is_stale(sup, &r) {
        return;
    }
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            let _ = r
                .channel
                .acks
                .reject(r.delivery.delivery_tag, requeue)
                .await;
        });
    }
}

async fn ack(sup: &Supervisor, r: &Received) -> Result<()> {
    if is_stale(sup, r) {
        tracing::debug!("ack of a delivery from a lost connection skipped: it will be redelivered");
        return Ok(());
    }
    r.channel.acks.ack(r.delivery.delivery_tag).await
}

fn reject_malformed(shared: &Arc<Shared>, r: Received, what: &str, e: &Error) {
    log_rejected(what, &r.queue, e);
    reject_later(&shared.sup, r, false);
}

/// Decodes an RPC request.
pub(crate) fn decode_request(shared: &Arc<Shared>, r: Received) -> Option<IncomingRequest> {
    let decoded = r.body().and_then(WireRequest::decode);
    match decoded {
        Ok(req) => {
            let responder = Arc::new(AmqpResponder {
                shared: shared.clone(),
                reply_q: req.call.as_ref().map(|c| c.reply_q.clone()),
                reply_within: expiration(&r.delivery),
                received: Mutex::new(Some(r)),
            });
            Some(IncomingRequest::from_wire(req, responder))
        }
        Err(e) => {
            reject_malformed(shared, r, "request", &e);
            None
        }
    }
}

/// The caller's timeout, which it sends as the request's `expiration` (milliseconds; oslo
/// does too): a reply later than that is waited for by nobody. At most a day.
fn expiration(d: &Delivery) -> Option<Duration> {
    let ms: u64 = d.properties.expiration().as_ref()?.as_str().parse().ok()?;
    Some(Duration::from_millis(ms.min(86_400_000)))
}

struct AmqpResponder {
    shared: Arc<Shared>,
    reply_q: Option<String>,
    /// How long a reply may wait for RabbitMQ (blocking publishers): the caller's timeout.
    reply_within: Option<Duration>,
    /// Until acknowledged.
    received: Mutex<Option<Received>>,
}

impl fmt::Debug for AmqpResponder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpResponder")
            .field("reply_q", &self.reply_q)
            .finish_non_exhaustive()
    }
}

impl Drop for AmqpResponder {
    fn drop(&mut self) {
        if let Some(r) = lock(&self.received).take() {
            reject_later(&self.shared.sup, r, true);
        }
    }
}

/// How often a reply to a missing reply queue is published again (oslo's pace).
const MISSING_QUEUE_RETRY_EVERY: Duration = Duration::from_millis(250);

impl AmqpResponder {
    /// Publishes a reply or heartbeat to the caller's reply queue, confirmed, and mandatory
    /// (with `direct_mandatory_flag`) so that a missing reply queue is known: the broker
    /// returns the message. A returned reply is published again every 0.25 s for
    /// `kombu_missing_consumer_retry_timeout` (the caller may be reconnecting, its queue
    /// about to be declared again), then given up: logged as an error (never the body) and
    /// the queue marked obsolete, so later replies to it are dropped at once, as oslo does. A
    /// returned heartbeat is logged and dropped.
    async fn publish_reply(&self, reply: WireReply) -> Result<()> {
        let Some(reply_q) = &self.reply_q else {
            return Ok(());
        };
        let what = if reply.ending { "reply" } else { "heartbeat" };
        let msg_id = reply.msg_id.clone();
        if self.shared.obsolete.contains(reply_q) {
            tracing::warn!(
                msg_id,
                reply_queue = reply_q.as_str(),
                "the {what}'s reply queue is missing (given up on earlier); dropped"
            );
            return Ok(());
        }
        let sup = &self.shared.sup;
        let compression = sup.options.kombu_compression.as_deref();
        let body = body::compress(reply.encode()?, compression)?;
        let props = body::properties(None, compression);
        let patience = sup.options.missing_consumer_retry_timeout();
        let start = tokio::time::Instant::now();
        loop {
            let routed = sup
                .publish(Outgoing {
                    exchange: "",
                    key: reply_q,
                    body: &body,
                    properties: &props,
                    mandatory: sup.options.direct_mandatory_flag,
                    // a reply waits for a blocked connection no longer than its caller waits
                    bound: Bound::new(Retry::Attempts(1), self.reply_within),
                })
                .await?;
            if routed {
                return Ok(());
            }
            if !reply.ending {
                tracing::warn!(
                    msg_id,
                    reply_queue = reply_q.as_str(),
                    bytes = body.len(),
                    "the broker returned a heartbeat: its reply queue is missing; dropped"
                );
                return Ok(());
            }
            if start.elapsed() >= patience {
                self.shared.obsolete.add(reply_q);
                tracing::error!(
                    msg_id,
                    reply_queue = reply_q.as_str(),
                    bytes = body.len(),
                    after = ?patience,
                    "a reply could not be sent: its reply queue is missing (the caller is \
                     gone, or the queue was deleted); given up, and later replies to that \
                     queue are dropped"
                );
                return Ok(());
            }
            tracing::debug!(
                msg_id,
                reply_queue = reply_q.as_str(),
                "the reply queue is missing; publishing the reply again"
            );
            tokio::time::sleep(MISSING_QUEUE_RETRY_EVERY).await;
        }
    }
}

#[async_trait]
impl Responder for AmqpResponder {
    async fn ack(&self) -> Result<()> {
        let r = lock(&self.received).take();
        match r {
            Some(r) => ack(&self.shared.sup, &r).await,
            None => Ok(()),
        }
    }

    async fn send(&self, reply: WireReply) -> Result<()> {
        self.publish_reply(reply).await
    }
}

/// Decodes a notification.
pub(crate) fn decode_notification(
    shared: &Arc<Shared>,
    r: Received,
) -> Option<IncomingNotification> {
    let decoded = r.body().and_then(WireNotification::decode);
    match decoded {
        Ok(n) => {
            let key = if n.unique_id.is_empty() {
                n.notification.message_id.clone()
            } else {
                n.unique_id.clone()
            };
            Some(IncomingNotification::new(
                n.context,
                n.notification,
                n.unique_id,
                Box::new(AmqpAcker {
                    shared: shared.clone(),
                    received: Some(r),
                    key,
                }),
            ))
        }
        Err(e) => {
            reject_malformed(shared, r, "notification", &e);
            None
        }
    }
}

struct AmqpAcker {
    shared: Arc<Shared>,
    received: Option<Received>,
    /// What redeliveries are counted by.
    key: String,
}

impl fmt::Debug for AmqpAcker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpAcker").field("key", &self.key).finish()
    }
}

impl Drop for AmqpAcker {
    fn drop(&mut self) {
        if let Some(r) = self.received.take() {
            reject_later(&self.shared.sup, r, true);
        }
    }
}

/// How often the broker says this message was delivered before (quorum queues count).
fn broker_delivery_count(d: &Delivery) -> Option<u32> {
    let headers = d.properties.headers().as_ref()?;
    match headers.inner().get("x-delivery-count")? {
        AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::ShortInt(n) => u32::try_from(*n).ok(),
        _ => None,
    }
}

#[async_trait]
impl Acknowledger for AmqpAcker {
    async fn ack(mut self: Box<Self>) -> Result<()> {
        let r = self.received.take();
        if let Some(r) = r {
            lock(&self.shared.requeues).remove(&self.key);
            ack(&self.shared.sup, &r).await?;
        }
        Ok(())
    }

    async fn requeue(mut self: Box<Self>, delay: Option<Duration>) -> Result<()> {
        let Some(r) = self.received.take() else {
            return Ok(());
        };
        if let Some(d) = delay.filter(|d| !d.is_zero()) {
            tokio::time::sleep(d).await;
        }
        let sup = &self.shared.sup;
        let max = sup.options.max_redeliveries;
        let count = {
            let mut counts = lock(&self.shared.requeues);
            if counts.len() > 10_000 {
                counts.clear();
            }
            let c = counts.entry(self.key.clone()).or_insert(0);
            *c += 1;
            (*c).max(broker_delivery_count(&r.delivery).unwrap_or(0))
        };
        if max > 0 && count > max {
            // past the cap: to the dead-letter queue instead of spinning forever
            let dlq = format!("{}.dead-letter", r.queue);
            tracing::warn!(
                queue = &*r.queue,
                dead_letter = dlq,
                requeues = count,
                "notification requeued too often: dead-lettered"
            );
            sup.declare(
                vec![Decl::Queue {
                    name: dlq.clone(),
                    durable: true,
                    auto_delete: false,
                    args: queue_args(&sup.options, false),
                }],
                Bound::setup(),
            )
            .await?;
            sup.publish(Outgoing {
                exchange: "",
                key: &dlq,
                body: &r.delivery.data,
                properties: &r.delivery.properties,
                mandatory: false,
                bound: Bound::new(Retry::Attempts(2), None),
            })
            .await?;
            lock(&self.shared.requeues).remove(&self.key);
            return ack(sup, &r).await;
        }
        if is_stale(sup, &r) {
            return Ok(());
        }
        r.channel.acks.reject(r.delivery.delivery_tag, true).await
    }
}
