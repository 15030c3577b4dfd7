//! msg's RabbitMQ driver, on `lapin`, serving `rabbit://`, `amqp://` and `amqps://`.
//!
//! Its default wire format is oslo.messaging's rabbit driver, byte for byte where it
//! matters: exchanges, queues, bindings, queue arguments, message properties and bodies (see
//! `docs/wire-format.md`). A Python service using oslo.messaging and a Rust service using msg
//! share one RabbitMQ and talk to each other: RPC both ways, notifications both ways, pools
//! shared between Python and Rust listeners.
//!
//! It supervises its own connections (lapin's recovery knows one URI and gives up): the URL's
//! hosts in rotation, reconnection with back-off, every exchange, queue and binding
//! re-declared from its own record, every consumer resumed; a consumer the broker cancels
//! (its queue deleted, its node failed) is declared again and resumed alone. It consumes and
//! publishes on two connections: under a memory or disk alarm RabbitMQ blocks only the
//! publishing one, so consumption and acknowledgements go on, and a send fails within its
//! timeout saying that the broker blocks publishers. Options are oslo's
//! `[oslo_messaging_rabbit]` names, read from the URL's query ([`RabbitOptions`]).
//!
//! ```no_run
//! # async fn example() -> msg_core::Result<()> {
//! let registry = msg_core::DriverRegistry::new().with(msg_driver_amqp::factory());
//! let transport = registry.open("rabbit://guest:guest@127.0.0.1:5672/?rabbit_qos_prefetch_count=10").await?;
//! assert_eq!(transport.driver().name(), "amqp");
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod acks;
mod body;
mod connection;
mod consumer;
mod dead_letter;
mod errors;
mod names;
mod notification_listener;
mod obsolete;
mod options;
mod publish;
mod queue_manager;
mod reply;
mod rpc_listener;
mod topology;

use std::sync::Arc;

use async_trait::async_trait;
use msg_core::codec::{self, EnvelopeVersion, RpcRequest};
use msg_core::naming;
use msg_core::{
    Capabilities, Capability, Context, Driver, DriverFactory, Error, ListenOptions, Notification,
    NotificationListener, Priority, Result, Retry, RpcListener, SendOptions, Target, TransportUrl,
};
use serde_json::Value;
use tokio::sync::OnceCell;

/// The driver's name, as its metrics are labelled.
pub(crate) const DRIVER_NAME: &str = "amqp";

use consumer::{ConsumerCore, Shared, Sink, StreamCursor};
use notification_listener::decode_notification;
pub use options::RabbitOptions;
use queue_manager::{QueueManager, QueueNumber};
use reply::ReplyQueue;
use rpc_listener::decode_request;

/// A `tracing` filter directive that silences lapin's own line for a message the broker
/// returned. lapin logs every returned message whole, body included (as decimal bytes), at
/// `warn` under `lapin::returned_messages`, before the driver sees it, and offers no way to
/// turn that off; the driver logs its own warning instead (message id, queue, size, never the
/// body). Add this to a subscriber's filter, after the directives it reads from the
/// environment (msgctl does):
///
/// ```
/// let filter = tracing_subscriber::EnvFilter::new("warn")
///     .add_directive(msg_driver_amqp::SILENCE_LAPIN_RETURNS.parse().unwrap());
/// # drop(filter);
/// ```
pub const SILENCE_LAPIN_RETURNS: &str = "lapin::returned_messages=off";
use connection::{Bound, Supervisor};

/// How many queue manager names consumed by others a new queue passes over before giving up.
const MAX_PASSED_OVER: usize = 64;

/// The factory for `rabbit://` (and its alias `kombu://`), `amqp://` and `amqps://`.
pub fn factory() -> Arc<dyn DriverFactory> {
    Arc::new(AmqpDriverFactory::default())
}

msg_core::submit_driver!(factory);

/// Makes [`AmqpDriver`]s, with options from a typed [`RabbitOptions`] (the URL's query
/// overrides them by the same names).
///
/// ```
/// let mut options = msg_driver_amqp::RabbitOptions::default();
/// options.amqp_durable_queues = true;
/// let registry = msg_core::DriverRegistry::new()
///     .with(std::sync::Arc::new(msg_driver_amqp::AmqpDriverFactory::with_options(options)));
/// assert_eq!(registry.schemes(), vec!["amqp", "amqps", "kombu", "rabbit"]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct AmqpDriverFactory {
    options: RabbitOptions,
}

impl AmqpDriverFactory {
    /// A factory whose drivers start from these options.
    pub fn with_options(options: RabbitOptions) -> Self {
        AmqpDriverFactory { options }
    }
}

#[async_trait]
impl DriverFactory for AmqpDriverFactory {
    fn name(&self) -> &'static str {
        "amqp"
    }

    fn schemes(&self) -> &[&'static str] {
        // `kombu` is oslo's alias of `rabbit`
        &["rabbit", "kombu", "amqp", "amqps"]
    }

    async fn connect(&self, url: &TransportUrl) -> Result<Arc<dyn Driver>> {
        Ok(Arc::new(
            AmqpDriver::connect_with(url, self.options.clone()).await?,
        ))
    }

    fn check_option(&self, key: &str, value: &str) -> msg_core::OptionCheck {
        RabbitOptions::check_option(key, value)
    }
}

/// A connection to RabbitMQ.
pub struct AmqpDriver {
    sup: Arc<Supervisor>,
    shared: Arc<Shared>,
    reply: OnceCell<ReplyQueue>,
    /// With `use_queue_manager`: where the numbers of queue names come from.
    queue_manager: Option<QueueManager>,
    /// Send paths whose exchange (and default queue) were declared: a send checks here
    /// instead of building declarations every time.
    declared_paths: parking_lot::RwLock<std::collections::HashSet<String>>,
    /// One declaration at a time: a burst of first sends declares once, not once per send.
    declaring: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for AmqpDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpDriver")
            .field("supervisor", &self.sup)
            .finish()
    }
}

impl AmqpDriver {
    /// Connects to the first of the URL's hosts that answers.
    pub async fn connect(url: &TransportUrl) -> Result<Self> {
        Self::connect_with(url, RabbitOptions::default()).await
    }

    /// Connects with options (the URL's query overrides them).
    pub async fn connect_with(url: &TransportUrl, options: RabbitOptions) -> Result<Self> {
        let sup = Supervisor::connect(url, options).await?;
        let queue_manager = sup.options.use_queue_manager.then(|| {
            QueueManager::new(
                &sup.options.queue_manager_hostname(),
                &sup.options.queue_manager_processname(),
            )
        });
        Ok(AmqpDriver {
            shared: Shared::new(sup.clone()),
            sup,
            reply: OnceCell::new(),
            queue_manager,
            declared_paths: Default::default(),
            declaring: tokio::sync::Mutex::new(()),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &RabbitOptions {
        &self.sup.options
    }

    fn exchange<'a>(&'a self, target: &'a Target) -> &'a str {
        target
            .exchange
            .as_deref()
            .unwrap_or(&self.sup.options.control_exchange)
    }

    /// A name for one of our transient queues: `prefix_<uuid hex>`, or with
    /// `use_queue_manager` `prefix_<hostname>:<processname>:<n>` with the number it holds
    /// (the blocking file lock runs off the async workers). A number whose queue someone
    /// consumes already is passed over: a process elsewhere with the same names (a Python
    /// service, which counts in a file of its own, or another host given the same
    /// `hostname`) holds it.
    async fn transient_name(&self, prefix: &str) -> Result<(String, Option<QueueNumber>)> {
        let Some(qm) = &self.queue_manager else {
            return Ok((format!("{prefix}_{}", codec::new_unique_id()), None));
        };
        // held while looking further, so the next take passes over them
        let mut passed_over = Vec::new();
        let label = qm.label();
        loop {
            let qm = qm.clone();
            let number = tokio::task::spawn_blocking(move || qm.take())
                .await
                .map_err(|e| Error::driver("amqp", "leasing a queue number", e))??;
            let name = format!("{prefix}_{}", number.name());
            match self.sup.consumers_of(&name).await {
                Some(consumers) if consumers > 0 => {
                    tracing::warn!(
                        queue = name.as_str(),
                        consumers,
                        "use_queue_manager: another process consumes this queue (the same \
                         hostname and processname elsewhere, or a Python service); taking the \
                         next number"
                    );
                    passed_over.push(number);
                    if passed_over.len() >= MAX_PASSED_OVER {
                        return Err(Error::Config(format!(
                            "use_queue_manager: the first {MAX_PASSED_OVER} queue names \
                             `{prefix}_{label}:<n>` are consumed by other processes; give \
                             this service a processname of its own"
                        )));
                    }
                }
                _ => return Ok((name, Some(number))),
            }
        }
    }
}

#[async_trait]
impl Driver for AmqpDriver {
    fn name(&self) -> &'static str {
        "amqp"
    }

    fn messaging_system(&self) -> &'static str {
        "rabbitmq"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all().without(Capability::NoResponders)
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

    async fn listen(&self, target: &Target, options: &ListenOptions) -> Result<RpcListener> {
        let topic = target.require_topic()?;
        let server = target.server.as_deref().ok_or(Error::InvalidTarget {
            field: "server",
            reason: "an RPC server needs a server name".into(),
        })?;
        let exchange = self.exchange(target);
        names::check(target, exchange, None)?;
        let direct = naming::server_key(topic, server);
        let fanout_exchange = naming::fanout_exchange(topic);
        // with stream fanout, one stream per topic shared by every server (oslo names it as
        // the exchange); else a queue of this server's own
        let (fanout_queue, number, fanout_decl, stream) = if self.sup.options.rabbit_stream_fanout {
            let decl = self.stream_queue(&fanout_exchange);
            let cursor = StreamCursor::new(&fanout_exchange);
            (fanout_exchange.clone(), None, decl, Some(cursor))
        } else {
            let (name, number) = self.transient_name(&fanout_exchange).await?;
            let decl = self.transient_queue(&name);
            (name, number, decl, None)
        };
        self.sup
            .declare(
                vec![
                    self.topic_exchange(exchange),
                    self.queue(topic),
                    Self::bind(topic, exchange, topic),
                    self.queue(&direct),
                    Self::bind(&direct, exchange, &direct),
                    self.fanout_exchange(topic),
                    fanout_decl,
                    Self::bind(&fanout_queue, &fanout_exchange, topic),
                ],
                Bound::setup(),
            )
            .await?;
        let core = ConsumerCore::new(
            self.sup.clone(),
            vec![topic.to_string(), direct, fanout_queue.clone()],
            self.prefetch(options),
            false,
            self.max_body(),
            Sink::Stream(Default::default()),
            stream,
        );
        // oslo keeps a queue manager's fanout queue (its name comes back after a restart)
        // and the stream (every server of the topic reads it)
        let keep = self.sup.options.use_queue_manager || self.sup.options.rabbit_stream_fanout;
        let owned = (!keep).then_some(fanout_queue);
        let listener = consumer::listener(&core, &self.shared, owned, number, decode_request);
        self.sup.add_consumer(core, Bound::setup()).await?;
        Ok(listener)
    }

    async fn listen_for_notifications(
        &self,
        subscriptions: &[(Target, Priority)],
        pool: Option<&str>,
        options: &ListenOptions,
    ) -> Result<NotificationListener> {
        let mut decls = Vec::new();
        let mut queues: Vec<String> = Vec::new();
        for (target, priority) in subscriptions {
            let topic = target.require_topic()?;
            let exchange = self.exchange(target);
            names::check(target, exchange, pool)?;
            let key = naming::notification_key(topic, *priority);
            let queue = pool.unwrap_or(&key).to_string();
            decls.push(self.topic_exchange(exchange));
            decls.push(self.queue(&queue));
            decls.push(Self::bind(&queue, exchange, &key));
            if !queues.contains(&queue) {
                queues.push(queue);
            }
        }
        self.sup.declare(decls, Bound::setup()).await?;
        let core = ConsumerCore::new(
            self.sup.clone(),
            queues,
            self.prefetch(options),
            false,
            self.max_body(),
            Sink::Stream(Default::default()),
            None,
        );
        let listener = consumer::listener(&core, &self.shared, None, None, decode_notification);
        self.sup.add_consumer(core, Bound::setup()).await?;
        Ok(listener)
    }

    async fn cleanup(&self) -> Result<()> {
        if self.sup.is_closed() {
            return Ok(());
        }
        if let Some(reply) = self.reply.get() {
            reply.close(&self.sup).await;
        }
        self.sup.close().await;
        Ok(())
    }
}

impl AmqpDriver {
    /// `rabbit_qos_prefetch_count` when the URL sets it, else what the listener asks for.
    fn prefetch(&self, options: &ListenOptions) -> u16 {
        self.sup
            .options
            .rabbit_qos_prefetch_count
            .unwrap_or_else(|| u16::try_from(options.prefetch).unwrap_or(u16::MAX))
    }

    /// The ceiling on a decompressed body (`max_decompressed_bytes`).
    fn max_body(&self) -> usize {
        self.sup.options.max_decompressed_bytes
    }
}
