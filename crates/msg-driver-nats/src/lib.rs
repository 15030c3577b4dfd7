//! msg's NATS driver, on `async-nats`, serving `nats://` and `tls://`: RPC on core NATS,
//! notifications on JetStream.
//!
//! - **RPC.** A topic's servers share `<prefix>.rpc.<exchange>.<topic>` through a queue
//!   group (one server gets each message), a server also has
//!   `<prefix>.rpc.<exchange>.<topic>.<server>`, and fanout casts go to
//!   `<prefix>.fanout.<topic>` (every server). A client has one inbox subscription
//!   (`<inbox>.*`); each call replies to `<inbox>.<msg_id>`, so NATS's "no responders"
//!   status reaches the call as [`Error::NoResponders`] at once instead of a timeout.
//!   Call-monitor heartbeats and replies come the same way. A cast nobody listens to is
//!   lost (core NATS keeps nothing): the driver lacks [`Capability::DurableCasts`]; with
//!   `at_least_once` a cast waits for a server's receipt and fails with
//!   [`Error::Undeliverable`] when nobody listens.
//! - **Notifications.** JetStream, on subjects apart from RPC's:
//!   `<prefix>.notify.<exchange>.<topic>.<priority>`, stored by one stream per exchange.
//!   The default group is one durable pull consumer per (topic, priority), created by the
//!   notifier too so notifications are kept from the first send; each pool is one durable
//!   consumer per (pool, topic, priority) that starts with new messages. Listeners pull
//!   (balanced within a consumer), bounded by their prefetch; ack after handling, progress
//!   acks while a handler runs, NAK (optionally delayed) to requeue, dead-lettering past
//!   `max_deliveries`. A publish waits for JetStream's ack and carries `Nats-Msg-Id` =
//!   `_unique_id`, so a retried publish is stored once.
//! - **Connection.** async-nats reconnects across the URL's servers and re-subscribes;
//!   listeners re-issue their pull requests and re-create consumers that vanished. The
//!   server's version is read at connect: nats-server 2.9.0 or newer.
//!
//! The layout (subjects, encoding, streams, consumers, headers, limits) is in `docs/nats.md`
//! and in [`Layout`]; the options in [`NatsOptions`].
//!
//! ```no_run
//! # async fn example() -> msg_core::Result<()> {
//! let registry = msg_core::DriverRegistry::new().with(msg_driver_nats::factory());
//! let transport = registry.open("nats://127.0.0.1:4222?ack_wait=60").await?;
//! assert_eq!(transport.driver().name(), "nats");
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod conn;
mod earlier;
mod errors;
mod inbox;
mod options;
mod pull;
mod rpc_listener;
mod subject;
mod topology;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use msg_core::codec::{self, CallInfo, EnvelopeVersion, RpcRequest};
use msg_core::{
    Capabilities, Capability, Context, Driver, DriverFactory, Error, ListenOptions, Listener,
    Notification, NotificationListener, Priority, Result, Retry, RpcListener, SendOptions, Target,
    TransportUrl,
};
use serde_json::Value;
use tokio::sync::{OnceCell, watch};

pub use conn::{MIN_SERVER_VERSION, NatsStats};
pub use options::{NatsOptions, StreamRetention, StreamStorage};
pub use subject::{Layout, decode_name, decode_token, encode_name, encode_token};

use conn::Conn;
use inbox::{ReplyInbox, Signal};
use topology::{ConsumerSpec, NotifyPath, Topology};

/// The factory for `nats://` and `tls://`.
pub fn factory() -> Arc<dyn DriverFactory> {
    Arc::new(NatsDriverFactory)
}

msg_core::submit_driver!(factory);

/// Makes [`NatsDriver`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct NatsDriverFactory;

#[async_trait]
impl DriverFactory for NatsDriverFactory {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn schemes(&self) -> &[&'static str] {
        &["nats", "tls"]
    }

    async fn connect(&self, url: &TransportUrl) -> Result<Arc<dyn Driver>> {
        Ok(Arc::new(NatsDriver::connect(url).await?))
    }
}

/// A connection to NATS.
#[derive(Debug)]
pub struct NatsDriver {
    conn: Arc<Conn>,
    topo: Arc<Topology>,
    inbox: OnceCell<ReplyInbox>,
    notify_paths: NotifyPaths,
}

/// The send paths worked out so far: exchange, then topic, then priority (looked up with
/// borrowed names, so a send allocates no key).
type NotifyPaths =
    std::sync::Mutex<HashMap<String, HashMap<String, Vec<(Priority, Arc<NotifyPath>)>>>>;

impl NatsDriver {
    /// Connects to the first of the URL's servers that answers, tried in a random order (a
    /// dead one costs its refusal, or `connection_timeout` when nothing answers at all).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] for a bad option, [`Error::Unavailable`] when no server answers,
    /// [`Error::NotSupported`] for a nats-server older than [`MIN_SERVER_VERSION`].
    pub async fn connect(url: &TransportUrl) -> Result<Self> {
        let conn = Conn::connect(url).await?;
        let layout = match Layout::new(&conn.options.subject_prefix) {
            Ok(l) => l,
            Err(e) => {
                conn.close().await;
                return Err(e);
            }
        };
        Ok(NatsDriver {
            topo: Arc::new(Topology::new(conn.clone(), layout)),
            conn,
            inbox: OnceCell::new(),
            notify_paths: NotifyPaths::default(),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &NatsOptions {
        &self.conn.options
    }

    /// The subjects and names this driver uses.
    pub fn layout(&self) -> &Layout {
        &self.topo.layout
    }

    /// The version of the nats-server connected to at first.
    pub fn server_version(&self) -> &str {
        &self.conn.server_version
    }

    /// Whether the server has JetStream (notifications need it), as last seen: while it
    /// seems off, a send or listen for notifications looks again (at most once a second).
    pub fn has_jetstream(&self) -> bool {
        self.conn.has_jetstream()
    }

    /// What happened on the connection: reconnects, slow-consumer events, server errors.
    pub fn stats(&self) -> NatsStats {
        self.conn.stats()
    }

    /// The underlying async-nats client (for what msg doesn't cover).
    pub fn client(&self) -> &async_nats::Client {
        &self.conn.client
    }

    fn exchange<'a>(&'a self, target: &'a Target) -> &'a str {
        match target.exchange.as_deref() {
            Some(e) if !e.is_empty() => e,
            _ => &self.conn.options.control_exchange,
        }
    }

    async fn inbox(&self) -> Result<&ReplyInbox> {
        self.inbox
            .get_or_try_init(|| ReplyInbox::open(&self.conn))
            .await
    }

    /// Where an RPC message goes.
    fn rpc_subject(&self, target: &Target) -> Result<String> {
        let topic = target.require_topic()?;
        let layout = &self.topo.layout;
        if target.fanout {
            layout.rpc_fanout(topic)
        } else if let Some(server) = &target.server {
            layout.rpc_server(self.exchange(target), topic, server)
        } else {
            layout.rpc_topic(self.exchange(target), topic)
        }
    }

    async fn require_jetstream(&self) -> Result<()> {
        // the look at the server is rare: boxed, out of every send's state
        if self.conn.has_jetstream() || Box::pin(self.conn.jetstream_now()).await {
            Ok(())
        } else {
            Err(Error::NotSupported {
                driver: "nats",
                feature: "notifications: JetStream is not enabled on the NATS server (start it \
                          with `-js`), or a cluster's JetStream doesn't answer yet"
                    .into(),
            })
        }
    }

    /// The send path of a notification to `target` at `priority` (worked out on the first
    /// send, then looked up).
    fn notify_path(&self, target: &Target, priority: Priority) -> Result<Arc<NotifyPath>> {
        let topic = target.require_topic()?;
        let exchange = self.exchange(target);
        let lock = || self.notify_paths.lock().unwrap_or_else(|p| p.into_inner());
        let known = lock()
            .get(exchange)
            .and_then(|topics| topics.get(topic))
            .and_then(|ps| ps.iter().find(|(p, _)| *p == priority))
            .map(|(_, path)| path.clone());
        if let Some(path) = known {
            return Ok(path);
        }
        let stream = self.topo.layout.notify_stream(exchange)?;
        // the notifier makes the default group's consumer too: kept from the first send
        let spec = self.consumer_spec(&stream, target, priority, None)?;
        let path = Arc::new(self.topo.notify_path(exchange, spec)?);
        let mut paths = lock();
        let ps = paths
            .entry(exchange.to_string())
            .or_default()
            .entry(topic.to_string())
            .or_default();
        if !ps.iter().any(|(p, _)| *p == priority) {
            ps.push((priority, path.clone()));
        }
        Ok(path)
    }

    fn consumer_spec(
        &self,
        stream: &str,
        target: &Target,
        priority: Priority,
        pool: Option<&str>,
    ) -> Result<ConsumerSpec> {
        let topic = target.require_topic()?;
        let layout = &self.topo.layout;
        Ok(ConsumerSpec {
            stream: stream.to_string(),
            name: match pool {
                Some(p) => layout.pool_consumer(p, topic, priority)?,
                None => layout.default_consumer(topic, priority)?,
            },
            filter: layout.notify_subject(self.exchange(target), topic, priority)?,
            deliver_new: pool.is_some(),
            earlier_name: earlier::consumer(pool, topic, priority),
        })
    }

    /// Sends a request that expects a signal back (a call's "no responders", a cast's
    /// receipt), with `retry` for the connection. Returns a watch that changes when the
    /// connection the request went out on is lost: what comes back for it is lost then too.
    async fn publish_request(
        &self,
        subject: String,
        reply: String,
        body: Vec<u8>,
        retry: Retry,
    ) -> Result<watch::Receiver<u64>> {
        self.conn.check_size("request", body.len())?;
        self.conn.wait_connected(retry).await?;
        let lost = self.conn.losses();
        self.conn
            .client
            .publish_with_reply(subject, reply, Bytes::from(body))
            .await
            .map_err(|e| errors::unavailable("publishing a request to NATS", e))?;
        Ok(lost)
    }

    /// The error of a send whose answer was on its way when the connection was lost.
    fn connection_lost(&self, what: String) -> Error {
        Error::ConnectionLost {
            what: format!(
                "{what}: the connection to NATS at {} was lost (core NATS keeps nothing for a \
                 client that is away; the request may have been handled)",
                self.conn.label()
            ),
        }
    }
}

impl Drop for NatsDriver {
    /// Calls waiting fail; what was published is flushed. Listeners still running keep the
    /// connection (it closes when the last of them is gone); `cleanup` closes it at once.
    fn drop(&mut self) {
        if let Some(inbox) = self.inbox.get() {
            inbox.close();
        }
        let client = self.conn.client.clone();
        if !self.conn.is_closed()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(5), client.flush()).await;
            });
        }
    }
}

#[async_trait]
impl Driver for NatsDriver {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn capabilities(&self) -> Capabilities {
        let caps = Capabilities::all().without(Capability::DurableCasts);
        if self.conn.has_jetstream() {
            caps
        } else {
            caps.without(Capability::Notifications)
                .without(Capability::Pools)
                .without(Capability::StoreAndForward)
                .without(Capability::Requeue)
        }
    }

    async fn call(
        &self,
        target: &Target,
        context: &Context,
        request: &RpcRequest,
        options: &SendOptions,
    ) -> Result<Value> {
        let subject = self.rpc_subject(target)?;
        let inbox = self.inbox().await?;
        let call = CallInfo {
            msg_id: codec::new_unique_id(),
            reply_q: inbox.base.clone(),
            call_monitor_timeout: options.call_monitor_timeout,
        };
        let body = codec::encode_request(context, request, &codec::new_unique_id(), Some(&call))?;
        let reply = inbox.reply_subject(&call.msg_id);
        let pending = inbox.waiters.register(call.msg_id.clone());
        let (_guard, mut signal) = inbox.signal(&call.msg_id);
        let mut lost = self
            .publish_request(subject.clone(), reply, body, options.retry)
            .await?;
        let wait = pending.wait(request, options.timeout, options.call_monitor_timeout);
        tokio::pin!(wait);
        let mut signalled = false;
        loop {
            tokio::select! {
                r = &mut wait => return r,
                // the reply (or a heartbeat) sent while this client is away is lost: waiting
                // longer only makes the caller wait for the timeout
                _ = lost.changed() => {
                    return Err(self.connection_lost(format!(
                        "no reply to `{}` from `{subject}`",
                        request.method
                    )));
                }
                s = &mut signal, if !signalled => {
                    signalled = true;
                    if let Ok(Signal::NoResponders) = s {
                        return Err(if options.at_least_once {
                            Error::Undeliverable { destination: subject }
                        } else {
                            Error::NoResponders { destination: subject }
                        });
                    }
                }
            }
        }
    }

    async fn cast(
        &self,
        target: &Target,
        context: &Context,
        request: &RpcRequest,
        options: &SendOptions,
    ) -> Result<()> {
        let subject = self.rpc_subject(target)?;
        let body = codec::encode_request(context, request, &codec::new_unique_id(), None)?;
        if !options.at_least_once {
            self.conn.check_size("request", body.len())?;
            self.conn.wait_connected(options.retry).await?;
            return self
                .conn
                .client
                .publish(subject, Bytes::from(body))
                .await
                .map_err(|e| errors::unavailable("publishing a cast to NATS", e));
        }
        // at least once: a server that takes it sends a receipt; nobody listening is a
        // "no responders"
        let inbox = self.inbox().await?;
        let id = codec::new_unique_id();
        let (_guard, signal) = inbox.signal(&id);
        let mut lost = self
            .publish_request(
                subject.clone(),
                inbox.reply_subject(&id),
                body,
                options.retry,
            )
            .await?;
        let bound = options
            .timeout
            .unwrap_or(self.conn.options.cast_receipt_timeout);
        let signal = async {
            tokio::select! {
                s = signal => Some(s),
                _ = lost.changed() => None,
            }
        };
        match tokio::time::timeout(bound, signal).await {
            Ok(None) => Err(self.connection_lost(format!("no receipt for a cast to `{subject}`"))),
            Ok(Some(Ok(Signal::Receipt))) => Ok(()),
            Ok(Some(Ok(Signal::NoResponders))) => Err(Error::Undeliverable {
                destination: subject,
            }),
            Ok(Some(Err(_))) => Err(Error::Closed("the transport was closed".into())),
            Err(_) => Err(Error::Timeout {
                what: format!("no server's receipt for a cast to `{subject}`"),
                after: bound,
            }),
        }
    }

    async fn send_notification(
        &self,
        target: &Target,
        context: &Context,
        notification: &Notification,
        version: EnvelopeVersion,
        retry: Retry,
    ) -> Result<()> {
        self.require_jetstream().await?;
        let path = self.notify_path(target, notification.priority)?;
        let unique_id = codec::new_unique_id();
        let body = codec::encode_notification(context, notification, &unique_id, version)?;
        // the body plus the `Nats-Msg-Id` header
        self.conn
            .check_size("notification", body.len() + unique_id.len() + 32)?;
        let topo = &self.topo;
        topo.publish(
            path.subject(),
            &unique_id,
            None,
            Bytes::from(body),
            retry,
            || topo.ensure_notify_path(&path),
        )
        .await
    }

    async fn listen(&self, target: &Target, _options: &ListenOptions) -> Result<RpcListener> {
        let topic = target.require_topic()?;
        let server = target.server.as_deref().ok_or(Error::InvalidTarget {
            field: "server",
            reason: "an RPC server needs a server name".into(),
        })?;
        let exchange = self.exchange(target);
        let layout = &self.topo.layout;
        let subjects = rpc_listener::RpcSubjects {
            topic: layout.rpc_topic(exchange, topic)?,
            direct: layout.rpc_server(exchange, topic, server)?,
            fanout: layout.rpc_fanout(topic)?,
        };
        let (core, stream) = rpc_listener::listen(self.conn.clone(), subjects).await?;
        Ok(Listener::new(
            Box::pin(stream),
            Arc::new(rpc_listener::RpcStop(core)),
        ))
    }

    async fn listen_for_notifications(
        &self,
        subscriptions: &[(Target, Priority)],
        pool: Option<&str>,
        options: &ListenOptions,
    ) -> Result<NotificationListener> {
        self.require_jetstream().await?;
        let mut sources: Vec<pull::SourceInfo> = Vec::new();
        for (target, priority) in subscriptions {
            let topic = target.require_topic()?;
            let exchange = self.exchange(target).to_string();
            let stream = self.topo.notify_stream(&exchange).await?;
            let spec = self.consumer_spec(&stream, target, *priority, pool)?;
            if sources
                .iter()
                .any(|s| s.spec.stream == spec.stream && s.spec.name == spec.name)
            {
                continue;
            }
            self.topo.ensure_consumer(&spec).await?;
            sources.push(pull::SourceInfo {
                spec,
                exchange,
                topic: topic.to_string(),
                priority: *priority,
            });
        }
        let (state, stream) = pull::listen(self.topo.clone(), sources, options.prefetch).await?;
        Ok(Listener::new(
            Box::pin(stream),
            Arc::new(pull::JsStop(state)),
        ))
    }

    async fn cleanup(&self) -> Result<()> {
        if self.conn.is_closed() {
            return Ok(());
        }
        if let Some(inbox) = self.inbox.get() {
            inbox.close();
        }
        self.conn.close().await;
        Ok(())
    }
}
