//! Consumers that survive reconnects and broker cancellations, and the listener streams over
//! them.

mod recovery;
mod stream;

pub(crate) use stream::StreamCursor;
use stream::StreamMark;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::FutureExt;
use futures::future::BoxFuture;
use lapin::Channel;
use lapin::message::{Delivery, DeliveryResult};
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use msg_core::codec::WireReply;
use msg_core::feed::{Feed, Intake, feed, log_rejected};
use msg_core::metrics::{InUse, PrefetchInUse};
use msg_core::{Error, Listener, ReplyWaiters, Result};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::acks::Acks;
use crate::body;
use crate::connection::{Conn, Resumable, Supervisor, open_channel};
use crate::dead_letter::RequeueCounts;
use crate::obsolete::ObsoleteReplyQueues;
use crate::queue_manager::QueueNumber;

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
    /// Counted in the prefetch in use until this is dropped (not on a no-ack consumer).
    _in_use: Option<InUse>,
}

impl Received {
    /// The body to decode: the decompressed one when kombu compressed it.
    pub(crate) fn body(&self) -> Result<&[u8]> {
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
    Stream(Mutex<Option<Arc<dyn Pusher>>>),
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
    /// The prefetch-in-use gauge (`None` on a no-ack consumer: nothing to settle).
    in_use: Option<PrefetchInUse>,
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
            in_use: (!no_ack).then(|| PrefetchInUse::new(crate::DRIVER_NAME)),
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
            let mut st = self.state.lock();
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
            _in_use: self.in_use.as_ref().map(PrefetchInUse::hold),
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
        let mut st = self.state.lock();
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
        self.state
            .lock()
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
            let consuming = self
                .state
                .lock()
                .channel
                .as_ref()
                .is_some_and(|c| c.generation >= conn.generation);
            if consuming {
                return Ok(());
            }
            let (guard, tags) = self.consume_on(&conn).await?;
            // what it replaces was on a connection that is gone
            if self.install(guard, tags).is_some() {
                msg_core::metrics::consumer_restarted(crate::DRIVER_NAME);
            }
            Ok(())
        }
        .boxed()
    }

    fn flush_acks(self: Arc<Self>) -> BoxFuture<'static, ()> {
        let acks = self.state.lock().acks.clone();
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
    pub(crate) requeues: RequeueCounts,
    pub(crate) obsolete: ObsoleteReplyQueues,
}

impl Shared {
    pub(crate) fn new(sup: Arc<Supervisor>) -> Arc<Self> {
        Arc::new(Shared {
            sup,
            requeues: RequeueCounts::default(),
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
        drop(self.number.lock().take());
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
pub(crate) fn is_stale(sup: &Supervisor, r: &Received) -> bool {
    r.channel.generation != sup.newest_generation()
}

/// Rejects a delivery (in the background); a delivery from a connection that is gone needs
/// nothing: the broker already took it back.
pub(crate) fn reject_later(sup: &Arc<Supervisor>, r: Received, requeue: bool) {
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

pub(crate) async fn ack(sup: &Supervisor, r: &Received) -> Result<()> {
    if is_stale(sup, r) {
        tracing::debug!("ack of a delivery from a lost connection skipped: it will be redelivered");
        return Ok(());
    }
    r.channel.acks.ack(r.delivery.delivery_tag).await
}

pub(crate) fn reject_malformed(shared: &Arc<Shared>, r: Received, what: &str, e: &Error) {
    log_rejected(what, &r.queue, e);
    reject_later(&shared.sup, r, false);
}
