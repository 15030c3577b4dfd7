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

mod connection;
mod dead_letter;
mod earlier;
mod errors;
mod notification_listener;
mod options;
mod publish;
mod pull;
mod reply;
mod rpc_listener;
mod subject;
mod topology;

use std::sync::Arc;

use async_trait::async_trait;
use msg_core::codec::{EnvelopeVersion, RpcRequest};
use msg_core::{
    Capabilities, Capability, Context, Driver, DriverFactory, Error, ListenOptions, Notification,
    NotificationListener, Priority, Result, Retry, RpcListener, SendOptions, Target, TransportUrl,
};
use serde_json::Value;
use tokio::sync::OnceCell;

pub use connection::{MIN_SERVER_VERSION, NatsStats};
pub use options::{NatsOptions, StreamRetention, StreamStorage};
pub use subject::{Layout, decode_name, decode_token, encode_name, encode_token};

use connection::Conn;
use publish::NotifyPaths;
use reply::ReplyInbox;
use topology::{ConsumerSpec, Topology};

/// The driver's name, as its metrics are labelled.
pub(crate) const DRIVER_NAME: &str = "nats";

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

    fn check_option(&self, key: &str, value: &str) -> msg_core::OptionCheck {
        NatsOptions::check_option(key, value)
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
        self.publish_call(target, context, request, options).await
    }

    async fn cast(
        &self,
        target: &Target,
        context: &Context,
        request: &RpcRequest,
        options: &SendOptions,
    ) -> Result<()> {
        self.publish_cast(target, context, request, options).await
    }

    async fn send_notification(
        &self,
        target: &Target,
        context: &Context,
        notification: &Notification,
        version: EnvelopeVersion,
        retry: Retry,
    ) -> Result<()> {
        self.publish_notification(target, context, notification, version, retry)
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
        rpc_listener::listen(self.conn.clone(), subjects).await
    }

    async fn listen_for_notifications(
        &self,
        subscriptions: &[(Target, Priority)],
        pool: Option<&str>,
        options: &ListenOptions,
    ) -> Result<NotificationListener> {
        self.require_jetstream().await?;
        let mut sources: Vec<notification_listener::SourceInfo> = Vec::new();
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
            sources.push(notification_listener::SourceInfo {
                spec,
                exchange,
                topic: topic.to_string(),
                priority: *priority,
            });
        }
        notification_listener::listen(self.topo.clone(), sources, options.prefetch).await
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
