//! msg's in-process broker, the embedded default transport behind `memory://`.
//!
//! It is a real broker with the semantics of the real ones, laid out like oslo's RabbitMQ
//! topology: topic queues shared by the servers of a topic (load-balanced round robin),
//! `topic.server` queues, a fanout queue per server, notification queues `topic.priority`
//! declared by the notifier too (store and forward), pool queues bound per key, requeue,
//! replies correlated by message id, call timeouts and call-monitor heartbeats. Bodies are
//! encoded bytes made by the same envelope codec as the broker drivers, so tests and
//! benchmarks on it exercise the real path.
//!
//! Transports opened on the same `memory://NAME` in one process share one broker; different
//! names are isolated. It is not for talking across processes: use RabbitMQ or NATS for that.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use msg_core::{DriverRegistry, Capability};
//! let registry = DriverRegistry::new().with(msg_driver_memory::factory());
//! let transport = registry.open("memory://doc-example").await.unwrap();
//! assert!(transport.capabilities().contains(Capability::Pools));
//! # });
//! ```
#![warn(missing_docs)]

mod broker;
#[doc(hidden)]
pub mod ceiling;
mod consumer;

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use msg_core::codec::{self, CallInfo, EnvelopeVersion, RpcRequest};
use msg_core::naming;
use msg_core::{
    Capabilities, Context, Driver, DriverFactory, Error, ListenOptions, Notification,
    NotificationListener, Priority, ReplyWaiters, Result, Retry, RpcListener, SendOptions, Target,
    TransportUrl,
};
use serde_json::Value;

use broker::{Broker, Consumer, Message};
use consumer::{notification_listener, request_listener};

/// The exchange used when a target names none, as oslo's `control_exchange`.
pub const DEFAULT_EXCHANGE: &str = "openstack";

/// The factory for `memory://`, to register in a [`msg_core::DriverRegistry`].
pub fn factory() -> Arc<dyn DriverFactory> {
    Arc::new(MemoryDriverFactory)
}

msg_core::submit_driver!(factory);

/// Makes [`MemoryDriver`]s for `memory://NAME[?control_exchange=EX]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryDriverFactory;

#[async_trait]
impl DriverFactory for MemoryDriverFactory {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn schemes(&self) -> &[&'static str] {
        &["memory"]
    }

    async fn connect(&self, url: &TransportUrl) -> Result<Arc<dyn Driver>> {
        Ok(Arc::new(MemoryDriver::from_url(url)?))
    }
}

/// A connection to an in-process broker.
#[derive(Debug)]
pub struct MemoryDriver {
    broker: Arc<Broker>,
    exchange: String,
    reply: OnceLock<(String, Arc<ReplyWaiters>)>,
}

impl MemoryDriver {
    /// Connects to the broker named by the URL's host (`memory://` is the unnamed one).
    ///
    /// The only option is `control_exchange` (default `openstack`); any other is an error.
    pub fn from_url(url: &TransportUrl) -> Result<Self> {
        let mut exchange = DEFAULT_EXCHANGE.to_string();
        for (k, v) in &url.options() {
            match k.as_str() {
                "control_exchange" if !v.is_empty() => exchange = v.clone(),
                _ => {
                    return Err(Error::InvalidUrl {
                        url: url.to_string(),
                        reason: format!(
                            "unknown option `{k}` for memory:// (known: control_exchange)"
                        ),
                    });
                }
            }
        }
        let mut name = url
            .hosts()
            .iter()
            .map(|h| h.hostname.as_str())
            .collect::<Vec<_>>()
            .join(",");
        if let Some(vh) = url.virtual_host() {
            name.push('/');
            name.push_str(vh);
        }
        Ok(MemoryDriver {
            broker: broker::named(&name),
            exchange,
            reply: OnceLock::new(),
        })
    }

    fn exchange<'a>(&'a self, target: &'a Target) -> &'a str {
        target.exchange.as_deref().unwrap_or(&self.exchange)
    }

    fn reply_queue(&self) -> &(String, Arc<ReplyWaiters>) {
        self.reply.get_or_init(|| {
            let name = format!("reply_{}", codec::new_unique_id());
            let waiters = Arc::new(ReplyWaiters::default());
            self.broker.add_reply_queue(&name, &waiters);
            (name, waiters)
        })
    }

    /// Where an RPC message goes: (exchange, routing key).
    fn rpc_route(&self, target: &Target) -> Result<(String, String)> {
        let topic = target.require_topic()?;
        Ok(if target.fanout {
            (naming::fanout_exchange(topic), String::new())
        } else if let Some(server) = &target.server {
            (
                self.exchange(target).to_string(),
                naming::server_key(topic, server),
            )
        } else {
            (self.exchange(target).to_string(), topic.to_string())
        })
    }
}

impl Drop for MemoryDriver {
    fn drop(&mut self) {
        if let Some((name, waiters)) = self.reply.get() {
            self.broker.remove_reply_queue(name);
            waiters.fail_all(|| Error::Closed("the transport was closed".into()));
        }
    }
}

#[async_trait]
impl Driver for MemoryDriver {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    async fn call(
        &self,
        target: &Target,
        context: &Context,
        request: &RpcRequest,
        options: &SendOptions,
    ) -> Result<Value> {
        let (exchange, key) = self.rpc_route(target)?;
        let queues = self.broker.route(&exchange, &key);
        if queues.is_empty() && options.at_least_once {
            return Err(Error::Undeliverable {
                destination: format!("{exchange}/{key}"),
            });
        }
        if !queues.iter().any(|q| q.has_consumers()) {
            return Err(Error::NoResponders {
                destination: format!("{exchange}/{key}"),
            });
        }
        let (reply_q, waiters) = self.reply_queue();
        let call = CallInfo {
            msg_id: codec::new_unique_id(),
            reply_q: reply_q.clone(),
            call_monitor_timeout: options.call_monitor_timeout,
        };
        let pending = waiters.register(call.msg_id.clone());
        let body = Bytes::from(codec::encode_request(
            context,
            request,
            &codec::new_unique_id(),
            Some(&call),
        )?);
        for q in &queues {
            q.push(Message {
                body: body.clone(),
                redelivered: false,
            });
        }
        pending
            .wait(request, options.timeout, options.call_monitor_timeout)
            .await
    }

    async fn cast(
        &self,
        target: &Target,
        context: &Context,
        request: &RpcRequest,
        options: &SendOptions,
    ) -> Result<()> {
        let (exchange, key) = self.rpc_route(target)?;
        let queues = self.broker.route(&exchange, &key);
        if queues.is_empty() {
            if options.at_least_once {
                return Err(Error::Undeliverable {
                    destination: format!("{exchange}/{key}"),
                });
            }
            tracing::debug!(exchange, key, "cast to a destination with no queue dropped");
            return Ok(());
        }
        let body = Bytes::from(codec::encode_request(
            context,
            request,
            &codec::new_unique_id(),
            None,
        )?);
        for q in &queues {
            q.push(Message {
                body: body.clone(),
                redelivered: false,
            });
        }
        Ok(())
    }

    async fn send_notification(
        &self,
        target: &Target,
        context: &Context,
        notification: &Notification,
        version: EnvelopeVersion,
        _retry: Retry,
    ) -> Result<()> {
        let topic = target.require_topic()?;
        let exchange = self.exchange(target);
        let key = naming::notification_key(topic, notification.priority);
        // the notifier declares the default queue itself: store and forward
        let default_queue = self.broker.declare_queue(&key);
        self.broker.bind(exchange, &key, &default_queue);
        let body = Bytes::from(codec::encode_notification(
            context,
            notification,
            &codec::new_unique_id(),
            version,
        )?);
        for q in self.broker.route(exchange, &key) {
            q.push(Message {
                body: body.clone(),
                redelivered: false,
            });
        }
        Ok(())
    }

    async fn listen(&self, target: &Target, options: &ListenOptions) -> Result<RpcListener> {
        let topic = target.require_topic()?;
        let server = target.server.as_deref().ok_or(Error::InvalidTarget {
            field: "server",
            reason: "an RPC server needs a server name".into(),
        })?;
        let exchange = self.exchange(target);
        let consumer = Consumer::new(self.broker.clone(), options.prefetch);
        let listener = request_listener(&self.broker, &consumer);
        let shared = self.broker.declare_queue(topic);
        self.broker.bind(exchange, topic, &shared);
        let direct_key = naming::server_key(topic, server);
        let direct = self.broker.declare_queue(&direct_key);
        self.broker.bind(exchange, &direct_key, &direct);
        let fanout_name = format!("{topic}_fanout_{}", codec::new_unique_id());
        let fanout = self.broker.declare_queue(&fanout_name);
        self.broker
            .bind(&naming::fanout_exchange(topic), "", &fanout);
        consumer.consume(shared, false);
        consumer.consume(direct, false);
        consumer.consume(fanout, true);
        Ok(listener)
    }

    async fn listen_for_notifications(
        &self,
        subscriptions: &[(Target, Priority)],
        pool: Option<&str>,
        options: &ListenOptions,
    ) -> Result<NotificationListener> {
        let consumer = Consumer::new(self.broker.clone(), options.prefetch);
        let listener = notification_listener(&self.broker, &consumer);
        let mut consumed: Vec<String> = Vec::new();
        for (target, priority) in subscriptions {
            let topic = target.require_topic()?;
            let exchange = self.exchange(target);
            let key = naming::notification_key(topic, *priority);
            let queue_name = pool.unwrap_or(&key);
            let queue = self.broker.declare_queue(queue_name);
            self.broker.bind(exchange, &key, &queue);
            if !consumed.iter().any(|q| q == queue_name) {
                consumed.push(queue_name.to_string());
                consumer.consume(queue, false);
            }
        }
        Ok(listener)
    }

    async fn cleanup(&self) -> Result<()> {
        if let Some((name, waiters)) = self.reply.get() {
            self.broker.remove_reply_queue(name);
            waiters.fail_all(|| Error::Closed("the transport was closed".into()));
        }
        Ok(())
    }
}
