//! Notification listeners: one by one, and in batches.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use msg_core::{
    Acknowledger, Batched, Capability, Error, IncomingNotification, ListenOptions, Priority,
    Result, Role, Target, Transport,
};
use msg_dispatch::{
    NotificationDispatcher, NotificationEndpoint, NotificationMessage, NotificationResult,
};
use tracing::Instrument;

use crate::dedup::{Dedup, Id};
use crate::executor::Executor;
use crate::metrics::ListenerMetrics;
use crate::server::{Handle, MessageHandlingServer, Opened, Source};
use crate::tracing_spans;

/// What both listener builders share.
#[derive(Debug)]
struct Common {
    transport: Transport,
    targets: Vec<Target>,
    endpoints: Vec<NotificationEndpoint>,
    pool: Option<String>,
    allow_requeue: bool,
    executor: Executor,
    prefetch: Option<u32>,
}

impl Common {
    fn new(transport: Transport, targets: impl IntoIterator<Item = Target>) -> Self {
        Common {
            transport,
            targets: targets.into_iter().collect(),
            endpoints: Vec::new(),
            pool: None,
            allow_requeue: false,
            executor: Executor::default(),
            prefetch: None,
        }
    }

    /// Checks what can be checked before listening, and makes the dispatcher.
    fn prepare(&mut self) -> Result<Arc<NotificationDispatcher>> {
        if self.targets.is_empty() {
            return Err(Error::InvalidTarget {
                field: "topic",
                reason: "a notification listener needs at least one target".into(),
            });
        }
        for t in &self.targets {
            t.validate(Role::NotificationListener)?;
        }
        let caps = self.transport.capabilities();
        if self.allow_requeue && !caps.contains(Capability::Requeue) {
            return Err(Error::NotSupported {
                driver: self.transport.driver().name(),
                feature: "requeue (allow_requeue)".into(),
            });
        }
        if self.pool.is_some() && !caps.contains(Capability::Pools) {
            return Err(Error::NotSupported {
                driver: self.transport.driver().name(),
                feature: "listener pools".into(),
            });
        }
        Ok(Arc::new(NotificationDispatcher::new(std::mem::take(
            &mut self.endpoints,
        ))))
    }

    fn source(&self, priorities: Vec<Priority>, prefetch: u32) -> NotificationSource {
        let subscriptions = self
            .targets
            .iter()
            .flat_map(|t| priorities.iter().map(move |p| (t.clone(), *p)))
            .collect();
        NotificationSource {
            transport: self.transport.clone(),
            subscriptions,
            pool: self.pool.clone(),
            options: ListenOptions { prefetch },
        }
    }
}

struct NotificationSource {
    transport: Transport,
    subscriptions: Vec<(Target, Priority)>,
    pool: Option<String>,
    options: ListenOptions,
}

impl NotificationSource {
    async fn listen(&self) -> Result<msg_core::NotificationListener> {
        if self.subscriptions.is_empty() {
            return Err(Error::InvalidArgument(
                "no endpoint handles any priority: nothing to listen to".into(),
            ));
        }
        self.transport
            .driver()
            .listen_for_notifications(&self.subscriptions, self.pool.as_deref(), &self.options)
            .await
    }
}

/// The ack side of one notification, and what dedup needs.
struct Settle {
    /// The `_unique_id` as dedup keeps it (`None`: empty, never a duplicate).
    id: Option<Id>,
    priority: Priority,
    acker: Box<dyn Acknowledger>,
}

/// Settles a notification after dispatch: Requeue requeues only with `allow_requeue`,
/// otherwise it is acked (with a warning, as oslo); an ack records the id for dedup.
async fn settle(
    s: Settle,
    requeue: bool,
    allow_requeue: bool,
    dedup: &Dedup,
    metrics: &ListenerMetrics,
) {
    let requeued = requeue && allow_requeue;
    let priority = s.priority;
    let result = if requeued {
        s.acker.requeue(None).await
    } else {
        if requeue {
            tracing::warn!(
                "a handler asked for requeue but the listener doesn't allow it: acknowledged"
            );
        }
        let r = s.acker.ack().await;
        if r.is_ok()
            && let Some(id) = s.id
        {
            dedup.insert_id(id);
        }
        r
    };
    match result {
        Ok(()) => metrics.settled(priority, requeued),
        Err(e) => {
            tracing::warn!(error = %e, "settling a notification failed (the broker will redeliver it)");
        }
    }
}

/// Splits an incoming notification; a duplicate is acked at once and yields `None`.
async fn take(
    incoming: IncomingNotification,
    dedup: &Dedup,
) -> Option<(NotificationMessage, Settle)> {
    let (context, notification, unique_id, acker) = incoming.into_parts();
    let id = Id::of(&unique_id);
    let priority = notification.priority;
    if id.as_ref().is_some_and(|id| dedup.contains(id)) {
        tracing::info!(unique_id, "duplicate notification dropped");
        if let Err(e) = acker.ack().await {
            tracing::warn!(error = %e, "acknowledging a duplicate failed");
        }
        return None;
    }
    Some((
        NotificationMessage::new(context, notification),
        Settle {
            id,
            priority,
            acker,
        },
    ))
}

macro_rules! priorities {
    ($ty:ty) => {
        crate::server::lifecycle!($ty);

        impl $ty {
            /// The priorities it subscribes to: those its endpoints handle.
            pub fn priorities(&self) -> &[Priority] {
                &self.priorities
            }
        }
    };
}

macro_rules! common_setters {
    () => {
        /// Adds an endpoint.
        pub fn endpoint(mut self, endpoint: NotificationEndpoint) -> Self {
            self.common.endpoints.push(endpoint);
            self
        }

        /// Joins a listener pool: each pool gets one copy of every notification, shared
        /// among its listeners.
        pub fn pool(mut self, pool: impl Into<String>) -> Self {
            self.common.pool = Some(pool.into());
            self
        }

        /// Lets a Requeue answer send the notification back (else it is acked, as oslo).
        pub fn allow_requeue(mut self, allow: bool) -> Self {
            self.common.allow_requeue = allow;
            self
        }

        /// The executor (default `Pool(64)`).
        pub fn executor(mut self, executor: Executor) -> Self {
            self.common.executor = executor;
            self
        }

        /// The listener's prefetch (`0`: unlimited); see the builder's docs for the default.
        pub fn prefetch(mut self, prefetch: u32) -> Self {
            self.common.prefetch = Some(prefetch);
            self
        }
    };
}

/// Listens for notifications on several targets and hands each to its endpoints; acks after
/// dispatch.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use msg_core::{Context, DriverRegistry, Priority, Target};
/// use msg_dispatch::{Handled, NotificationEndpoint, NotificationFilter};
/// use msg_server::NotificationListener;
///
/// let transport = DriverRegistry::new().with(msg_driver_memory::factory()).open("memory://listener-doc").await.unwrap();
/// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
/// let listener = NotificationListener::builder(transport.clone(), [Target::topic("notifications")])
///     .pool("listener-workers")
///     .endpoint(NotificationEndpoint::new()
///         .filter(NotificationFilter::new().publisher_id("^compute.*").unwrap())
///         .on(Priority::Warn, move |n| { let tx = tx.clone(); async move { let _ = tx.send(n.event_type); Handled } }))
///     .start()
///     .await
///     .unwrap();
/// let notifier = msg_client::Notifier::new(transport).publisher_id("compute.host1");
/// notifier.warn(&Context::new(), "compute.disk.low", serde_json::json!({})).await.unwrap();
/// assert_eq!(rx.recv().await.unwrap(), "compute.disk.low");
/// listener.shutdown(Duration::from_secs(5)).await.unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct NotificationListener {
    server: MessageHandlingServer<IncomingNotification>,
    priorities: Vec<Priority>,
}

/// Builds a [`NotificationListener`]. Prefetch defaults to the executor's capacity.
#[derive(Debug)]
pub struct NotificationListenerBuilder {
    common: Common,
}

impl NotificationListener {
    /// A builder for a listener on these targets.
    pub fn builder(
        transport: impl Into<Transport>,
        targets: impl IntoIterator<Item = Target>,
    ) -> NotificationListenerBuilder {
        NotificationListenerBuilder {
            common: Common::new(transport.into(), targets),
        }
    }
}

priorities!(NotificationListener);

impl NotificationListenerBuilder {
    common_setters!();

    /// Builds the listener without starting it.
    pub fn build(mut self) -> Result<NotificationListener> {
        let dispatcher = self.common.prepare()?;
        let priorities = dispatcher.single_priorities();
        let capacity = self.common.executor.capacity();
        let prefetch = self
            .common
            .prefetch
            .unwrap_or_else(|| u32::try_from(capacity).unwrap_or(u32::MAX));
        let source = Arc::new(SingleSource(
            self.common.source(priorities.clone(), prefetch),
        ));
        let handler = Arc::new(SingleHandler {
            dispatcher,
            system: self.common.transport.driver().messaging_system(),
            allow_requeue: self.common.allow_requeue,
            dedup: Dedup::new(capacity.max(prefetch as usize) * 2),
            metrics: ListenerMetrics::new(self.common.pool.as_deref()),
        });
        Ok(NotificationListener {
            server: MessageHandlingServer::new(source, handler, self.common.executor),
            priorities,
        })
    }

    /// Builds and starts the listener.
    pub async fn start(self) -> Result<NotificationListener> {
        let l = self.build()?;
        l.start().await?;
        Ok(l)
    }
}

struct SingleSource(NotificationSource);

impl Source<IncomingNotification> for SingleSource {
    fn open(&self) -> BoxFuture<'static, Result<Opened<IncomingNotification>>> {
        let source = NotificationSource {
            transport: self.0.transport.clone(),
            subscriptions: self.0.subscriptions.clone(),
            pool: self.0.pool.clone(),
            options: self.0.options,
        };
        async move {
            let listener = source.listen().await?;
            let stop = listener.stop_handle();
            Ok((listener.boxed(), stop))
        }
        .boxed()
    }
}

struct SingleHandler {
    dispatcher: Arc<NotificationDispatcher>,
    /// `messaging.system`, for the spans.
    system: &'static str,
    allow_requeue: bool,
    dedup: Dedup,
    metrics: ListenerMetrics,
}

impl Handle<IncomingNotification> for SingleHandler {
    fn handle(self: Arc<Self>, incoming: IncomingNotification) -> BoxFuture<'static, ()> {
        async move {
            let Some((message, s)) = take(incoming, &self.dedup).await else {
                return;
            };
            let span = tracing_spans::notification_receive(self.system, &message);
            let result = self.dispatcher.dispatch(message).instrument(span).await;
            let requeue = result == NotificationResult::Requeue;
            settle(s, requeue, self.allow_requeue, &self.dedup, &self.metrics).await;
        }
        .boxed()
    }

    fn reset(&self) {
        self.dedup.clear();
    }
}

/// Listens for notifications and hands them to batch endpoints in batches of up to `size`,
/// each collected for at most `timeout` (one clock from the start of its collection).
///
/// A batch handler answers for its whole batch or names the messages to requeue
/// ([`BatchResult`](msg_dispatch::BatchResult)). Notifications this listener requeued come
/// back in a batch of their own; when that batch is sent back whole again, its messages are
/// retried in halves, down to single messages, so that a bad notification reaches its
/// driver's redelivery cap (and the dead-letter queue) alone, not with its batch-mates.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use msg_core::{Context, DriverRegistry, Priority, Target};
/// use msg_dispatch::{Handled, NotificationEndpoint};
/// use msg_server::BatchNotificationListener;
///
/// let transport = DriverRegistry::new().with(msg_driver_memory::factory()).open("memory://batch-doc").await.unwrap();
/// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
/// let listener = BatchNotificationListener::builder(transport.clone(), [Target::topic("metering")], 10, Duration::from_millis(200))
///     .allow_requeue(true)
///     .endpoint(NotificationEndpoint::new().on_batch(Priority::Sample, move |batch| {
///         let tx = tx.clone();
///         async move { let _ = tx.send(batch.len()); Handled }
///     }))
///     .start()
///     .await
///     .unwrap();
/// let notifier = msg_client::Notifier::new(transport).topics(["metering"]);
/// for i in 0..3 {
///     notifier.sample(&Context::new(), "cpu", i).await.unwrap();
/// }
/// assert_eq!(rx.recv().await.unwrap(), 3); // a partial batch, after the timeout
/// listener.shutdown(Duration::from_secs(5)).await.unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct BatchNotificationListener {
    server: MessageHandlingServer<Vec<IncomingNotification>>,
    priorities: Vec<Priority>,
}

/// Builds a [`BatchNotificationListener`]. Prefetch defaults to batch size x the executor's
/// capacity; only an explicit prefetch caps a batch's size.
#[derive(Debug)]
pub struct BatchNotificationListenerBuilder {
    common: Common,
    size: usize,
    timeout: Duration,
}

impl BatchNotificationListener {
    /// A builder for a batch listener on these targets with a batch size and timeout.
    pub fn builder(
        transport: impl Into<Transport>,
        targets: impl IntoIterator<Item = Target>,
        size: usize,
        timeout: Duration,
    ) -> BatchNotificationListenerBuilder {
        BatchNotificationListenerBuilder {
            common: Common::new(transport.into(), targets),
            size: size.max(1),
            timeout,
        }
    }
}

priorities!(BatchNotificationListener);

impl BatchNotificationListenerBuilder {
    common_setters!();

    /// Builds the listener without starting it.
    pub fn build(mut self) -> Result<BatchNotificationListener> {
        let dispatcher = self.common.prepare()?;
        let priorities = dispatcher.batch_priorities();
        let capacity = self.common.executor.capacity();
        let prefetch = self.common.prefetch.unwrap_or_else(|| {
            u32::try_from(self.size.saturating_mul(capacity)).unwrap_or(u32::MAX)
        });
        let source = Arc::new(BatchSource {
            source: self.common.source(priorities.clone(), prefetch),
            size: self.size,
            timeout: self.timeout,
        });
        let remembered = (prefetch as usize).max(self.size) * 2;
        let handler = Arc::new(BatchHandler {
            dispatcher,
            system: self.common.transport.driver().messaging_system(),
            allow_requeue: self.common.allow_requeue,
            dedup: Dedup::new(remembered),
            requeued: Dedup::new(remembered),
            metrics: ListenerMetrics::new(self.common.pool.as_deref()),
        });
        Ok(BatchNotificationListener {
            server: MessageHandlingServer::new(source, handler, self.common.executor),
            priorities,
        })
    }

    /// Builds and starts the listener.
    pub async fn start(self) -> Result<BatchNotificationListener> {
        let l = self.build()?;
        l.start().await?;
        Ok(l)
    }
}

struct BatchSource {
    source: NotificationSource,
    size: usize,
    timeout: Duration,
}

impl Source<Vec<IncomingNotification>> for BatchSource {
    fn open(&self) -> BoxFuture<'static, Result<Opened<Vec<IncomingNotification>>>> {
        let source = NotificationSource {
            transport: self.source.transport.clone(),
            subscriptions: self.source.subscriptions.clone(),
            pool: self.source.pool.clone(),
            options: self.source.options,
        };
        let (size, timeout) = (self.size, self.timeout);
        async move {
            let listener = source.listen().await?;
            let stop = listener.stop_handle();
            Ok((Batched::new(listener, size, timeout).boxed(), stop))
        }
        .boxed()
    }
}

/// Handles batches. A batch's notifications are split in two: those this listener requeued
/// before make a batch of their own, dispatched with
/// [`dispatch_batch_halving`](NotificationDispatcher::dispatch_batch_halving) (sent back
/// whole again, it is retried in halves down to single messages, so that only a message's
/// own failures requeue it and bring it nearer its driver's dead-letter cap); the others
/// make a batch as they came. This needs nothing from the driver but requeue: no
/// redelivery flag or count. A redelivery that reaches another listener of the pool is new
/// to that one.
struct BatchHandler {
    dispatcher: Arc<NotificationDispatcher>,
    /// `messaging.system`, for the spans.
    system: &'static str,
    allow_requeue: bool,
    dedup: Dedup,
    /// The last notifications this listener requeued (by `_unique_id`, else `message_id`).
    requeued: Dedup,
    metrics: ListenerMetrics,
}

impl BatchHandler {
    /// The id a requeued notification is remembered by (`None`: not remembered, as when
    /// the listener never requeues).
    fn requeue_id(&self, s: &Settle, m: &NotificationMessage) -> Option<Id> {
        if !self.allow_requeue {
            return None;
        }
        s.id.clone().or_else(|| {
            m.metadata
                .get("message_id")
                .and_then(|v| v.as_str())
                .and_then(Id::of)
        })
    }

    /// Dispatches a batch and settles its messages; what is requeued is remembered.
    async fn run(&self, part: Part, back: bool) {
        let Part {
            messages,
            settles,
            ids,
        } = part;
        if messages.is_empty() {
            return;
        }
        let span = tracing_spans::batch_receive(self.system, &messages);
        let requeue = if back {
            self.dispatcher
                .dispatch_batch_halving(messages)
                .instrument(span)
                .await
        } else {
            self.dispatcher
                .dispatch_batch(messages)
                .instrument(span)
                .await
        };
        for ((s, requeue), id) in settles.into_iter().zip(requeue).zip(ids) {
            if requeue
                && self.allow_requeue
                && let Some(id) = id
            {
                self.requeued.insert_id(id);
            }
            settle(s, requeue, self.allow_requeue, &self.dedup, &self.metrics).await;
        }
    }
}

/// Part of a batch: its messages, how each is settled, and the id each is remembered by.
#[derive(Default)]
struct Part {
    messages: Vec<NotificationMessage>,
    settles: Vec<Settle>,
    ids: Vec<Option<Id>>,
}

impl Part {
    fn push(&mut self, m: NotificationMessage, s: Settle, id: Option<Id>) {
        self.messages.push(m);
        self.settles.push(s);
        self.ids.push(id);
    }
}

impl Handle<Vec<IncomingNotification>> for BatchHandler {
    fn handle(self: Arc<Self>, batch: Vec<IncomingNotification>) -> BoxFuture<'static, ()> {
        async move {
            let (mut fresh, mut back) = (Part::default(), Part::default());
            for incoming in batch {
                if let Some((m, s)) = take(incoming, &self.dedup).await {
                    let id = self.requeue_id(&s, &m);
                    let seen = id.as_ref().is_some_and(|id| self.requeued.contains(id));
                    let part = if seen { &mut back } else { &mut fresh };
                    part.push(m, s, id);
                }
            }
            self.run(back, true).await;
            self.run(fresh, false).await;
        }
        .boxed()
    }

    fn reset(&self) {
        self.dedup.clear();
    }
}
