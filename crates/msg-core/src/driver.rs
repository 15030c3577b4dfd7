//! The driver contract: what a transport driver (RabbitMQ, NATS, in-process, or a
//! third-party crate) implements. Dyn-compatible, so a transport holds `Arc<dyn Driver>`.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures::Stream;
use futures::stream::BoxStream;
use serde_json::Value;

use crate::codec::{EnvelopeVersion, Failure, RpcRequest, WireReply, WireRequest};
use crate::{Capabilities, Context, Notification, Priority, Result, Target};

/// How often a send is retried when the connection fails (oslo's `retry`).
///
/// ```
/// use msg_core::Retry;
/// assert_eq!(Retry::from_oslo(None), Retry::Forever);
/// assert_eq!(Retry::from_oslo(Some(-1)), Retry::Forever);
/// assert_eq!(Retry::from_oslo(Some(0)), Retry::Attempts(0));
/// assert_eq!(Retry::Attempts(2).max_attempts(), Some(3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retry {
    /// Retry until it works (oslo's `None` or `-1`).
    #[default]
    Forever,
    /// Retry this many times after the first attempt (`0`: no retry).
    Attempts(u32),
}

impl Retry {
    /// oslo's integer form: `None` or negative is forever, `n` is `n` retries.
    pub fn from_oslo(retry: Option<i64>) -> Self {
        match retry {
            None => Retry::Forever,
            Some(n) if n < 0 => Retry::Forever,
            Some(n) => Retry::Attempts(u32::try_from(n).unwrap_or(u32::MAX)),
        }
    }

    /// How many attempts in all, `None` for unbounded.
    pub fn max_attempts(self) -> Option<u32> {
        match self {
            Retry::Forever => None,
            Retry::Attempts(n) => Some(n.saturating_add(1)),
        }
    }
}

/// How an RPC message is sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SendOptions {
    /// How long a call waits for its reply (`None`: forever). Casts ignore it.
    pub timeout: Option<Duration>,
    /// With a call-monitor timeout the server heartbeats every half of it, and the call fails
    /// when no heartbeat (or reply) came for this long.
    pub call_monitor_timeout: Option<Duration>,
    /// Reconnect attempts for the publish.
    pub retry: Retry,
    /// Fail with `Undeliverable` when nothing is bound to the destination (where the driver
    /// can tell).
    pub at_least_once: bool,
}

/// How a listener consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListenOptions {
    /// The most unacknowledged messages held at once (`0`: unlimited, as oslo's default).
    pub prefetch: u32,
}

/// A transport driver. Every method is called with a validated target.
///
/// Drivers encode and decode with [`crate::codec`] when they carry oslo-format JSON, make the
/// `_unique_id` of each send once (a retried publish keeps it), and log and reject without
/// requeue any message they cannot decode.
#[async_trait]
pub trait Driver: Send + Sync + fmt::Debug + 'static {
    /// The driver's name (`memory`, `amqp`, `nats`, ...).
    fn name(&self) -> &'static str;

    /// The broker as OpenTelemetry's messaging conventions name it (`messaging.system` of
    /// msg's spans: `rabbitmq`, `nats`, ...). By default the driver's [`name`](Driver::name).
    fn messaging_system(&self) -> &'static str {
        self.name()
    }

    /// What this driver can do.
    fn capabilities(&self) -> Capabilities;

    /// Sends a call and waits for its reply: the result, or the remote failure as an error
    /// (see [`Failure::into_error`]).
    async fn call(
        &self,
        target: &Target,
        context: &Context,
        request: &RpcRequest,
        options: &SendOptions,
    ) -> Result<Value>;

    /// Sends a cast (fanout when `target.fanout`).
    async fn cast(
        &self,
        target: &Target,
        context: &Context,
        request: &RpcRequest,
        options: &SendOptions,
    ) -> Result<()>;

    /// Sends a notification to `<topic>.<priority>` of the target's exchange and returns when
    /// the broker has it.
    async fn send_notification(
        &self,
        target: &Target,
        context: &Context,
        notification: &Notification,
        version: EnvelopeVersion,
        retry: Retry,
    ) -> Result<()>;

    /// Starts consuming RPC requests for a server target: its topic (shared), its
    /// `topic.server` and its fanout.
    ///
    /// When it returns, the listener is consuming at the broker (consumers confirmed,
    /// subscriptions flushed): a request sent after that reaches it. Callers and the
    /// conformance suite rely on it instead of sleeping.
    async fn listen(&self, target: &Target, options: &ListenOptions) -> Result<RpcListener>;

    /// Starts consuming notifications for each (target, priority); with a pool, as a member
    /// of that pool. When it returns, the listener is consuming at the broker.
    async fn listen_for_notifications(
        &self,
        subscriptions: &[(Target, Priority)],
        pool: Option<&str>,
        options: &ListenOptions,
    ) -> Result<NotificationListener>;

    /// Releases connections (a clean close: the driver's own transient queues go too).
    async fn cleanup(&self) -> Result<()>;
}

/// Stops a listener's consumption.
pub trait StopListening: Send + Sync + fmt::Debug {
    /// Stops taking new messages; the listener's stream ends soon after. Messages the driver
    /// holds but has not yielded go back to the broker, never acked.
    fn stop(&self);
}

/// A stream of incoming messages plus `stop()`.
pub struct Listener<M> {
    stream: BoxStream<'static, M>,
    stopper: Arc<dyn StopListening>,
}

/// A listener of RPC requests.
pub type RpcListener = Listener<IncomingRequest>;
/// A listener of notifications.
pub type NotificationListener = Listener<IncomingNotification>;

impl<M> Listener<M> {
    /// A listener from a driver's stream and its stop switch.
    pub fn new(stream: BoxStream<'static, M>, stopper: Arc<dyn StopListening>) -> Self {
        Listener { stream, stopper }
    }

    /// Stops consumption (see [`StopListening::stop`]).
    pub fn stop(&self) {
        self.stopper.stop();
    }

    /// A handle that stops this listener from elsewhere.
    pub fn stop_handle(&self) -> Arc<dyn StopListening> {
        self.stopper.clone()
    }
}

impl<M> Stream for Listener<M> {
    type Item = M;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<M>> {
        self.stream.as_mut().poll_next(cx)
    }
}

impl<M> fmt::Debug for Listener<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("stopper", &self.stopper)
            .finish_non_exhaustive()
    }
}

/// The driver side of one incoming RPC request: what really differs per driver. Replies and
/// heartbeats are built by [`ReplyHandle`] and handed to [`Responder::send`].
#[async_trait]
pub trait Responder: Send + Sync + fmt::Debug {
    /// Acknowledges the request to the broker (RPC servers do it on receipt).
    async fn ack(&self) -> Result<()>;
    /// Sends a reply (`ending`) or a call-monitor heartbeat (`result` null, not `ending`) to
    /// the caller's reply address, encoded with [`WireReply::encode`].
    async fn send(&self, reply: WireReply) -> Result<()>;
}

/// One incoming RPC request.
#[derive(Debug)]
pub struct IncomingRequest {
    /// The request context.
    pub context: Context,
    /// What is asked.
    pub request: RpcRequest,
    /// `_unique_id` (empty when the sender sent none).
    pub unique_id: String,
    /// `_msg_id` for a call; `None` for a cast.
    pub msg_id: Option<String>,
    /// The call-monitor timeout the caller asked for.
    pub call_monitor_timeout: Option<Duration>,
    responder: Arc<dyn Responder>,
}

impl IncomingRequest {
    /// An incoming request with the driver's responder.
    pub fn new(
        context: Context,
        request: RpcRequest,
        unique_id: String,
        msg_id: Option<String>,
        call_monitor_timeout: Option<Duration>,
        responder: Arc<dyn Responder>,
    ) -> Self {
        IncomingRequest {
            context,
            request,
            unique_id,
            msg_id,
            call_monitor_timeout,
            responder,
        }
    }

    /// An incoming request from what the wire codec decoded: the call's `_msg_id` and
    /// call-monitor timeout come from its `call` part (take the reply address from there
    /// first, for the responder).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use msg_core::codec::{CallInfo, WireReply, WireRequest};
    /// use msg_core::{IncomingRequest, Responder, Result};
    /// #[derive(Debug)]
    /// struct Nowhere;
    /// #[msg_core::async_trait]
    /// impl Responder for Nowhere {
    ///     async fn ack(&self) -> Result<()> { Ok(()) }
    ///     async fn send(&self, _: WireReply) -> Result<()> { Ok(()) }
    /// }
    /// let wire = WireRequest {
    ///     call: Some(CallInfo { msg_id: "m1".into(), reply_q: "reply_1".into(), call_monitor_timeout: None }),
    ///     ..Default::default()
    /// };
    /// let incoming = IncomingRequest::from_wire(wire, Arc::new(Nowhere));
    /// assert!(incoming.is_call());
    /// assert_eq!(incoming.msg_id.as_deref(), Some("m1"));
    /// ```
    pub fn from_wire(wire: WireRequest, responder: Arc<dyn Responder>) -> Self {
        let (msg_id, call_monitor_timeout) = match wire.call {
            Some(c) => (Some(c.msg_id), c.call_monitor_timeout),
            None => (None, None),
        };
        IncomingRequest {
            context: wire.context,
            request: wire.request,
            unique_id: wire.unique_id,
            msg_id,
            call_monitor_timeout,
            responder,
        }
    }

    /// Whether the sender waits for a reply.
    pub fn is_call(&self) -> bool {
        self.msg_id.is_some()
    }

    /// Acknowledges the request to the broker.
    pub async fn ack(&self) -> Result<()> {
        self.responder.ack().await
    }

    /// A handle that replies and heartbeats for this request (a no-op for a cast).
    pub fn reply_handle(&self) -> ReplyHandle {
        ReplyHandle {
            msg_id: self.msg_id.clone(),
            responder: self.responder.clone(),
        }
    }
}

/// Replies and heartbeats for one request; cheap to clone.
#[derive(Debug, Clone)]
pub struct ReplyHandle {
    msg_id: Option<String>,
    responder: Arc<dyn Responder>,
}

impl ReplyHandle {
    /// Sends the final reply (nothing for a cast).
    pub async fn reply(&self, reply: std::result::Result<Value, Failure>) -> Result<()> {
        match &self.msg_id {
            Some(id) => {
                let reply = match reply {
                    Ok(v) => WireReply::result(id.as_str(), v),
                    Err(f) => WireReply::failure(id.as_str(), f),
                };
                self.responder.send(reply).await
            }
            None => Ok(()),
        }
    }

    /// Sends a heartbeat (nothing for a cast).
    pub async fn heartbeat(&self) -> Result<()> {
        match &self.msg_id {
            Some(id) => self.responder.send(WireReply::heartbeat(id.as_str())).await,
            None => Ok(()),
        }
    }
}

/// The driver side of one incoming notification: settle it once.
#[async_trait]
pub trait Acknowledger: Send + Sync + fmt::Debug {
    /// Acknowledges: the broker forgets the message.
    async fn ack(self: Box<Self>) -> Result<()>;
    /// Sends it back for redelivery, after `delay` where the driver supports one.
    async fn requeue(self: Box<Self>, delay: Option<Duration>) -> Result<()>;
}

/// One incoming notification.
#[derive(Debug)]
pub struct IncomingNotification {
    /// The context (as sent: the notifier redacts secrets).
    pub context: Context,
    /// The notification.
    pub notification: Notification,
    /// `_unique_id` (empty when the sender sent none).
    pub unique_id: String,
    acker: Box<dyn Acknowledger>,
}

impl IncomingNotification {
    /// An incoming notification with the driver's acknowledger.
    pub fn new(
        context: Context,
        notification: Notification,
        unique_id: String,
        acker: Box<dyn Acknowledger>,
    ) -> Self {
        IncomingNotification {
            context,
            notification,
            unique_id,
            acker,
        }
    }

    /// Acknowledges it.
    pub async fn ack(self) -> Result<()> {
        self.acker.ack().await
    }

    /// Sends it back for redelivery.
    pub async fn requeue(self, delay: Option<Duration>) -> Result<()> {
        self.acker.requeue(delay).await
    }

    /// Splits it into its parts and its acknowledger.
    pub fn into_parts(self) -> (Context, Notification, String, Box<dyn Acknowledger>) {
        (self.context, self.notification, self.unique_id, self.acker)
    }
}
