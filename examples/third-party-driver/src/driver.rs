//! The driver: msg-core's [`Driver`] contract over Redis Streams.

use std::sync::Arc;

use async_trait::async_trait;
use msg_core::codec::{self, CallInfo, EnvelopeVersion, RpcRequest};
use msg_core::{
    Capabilities, Capability, Context, Driver, Error, ListenOptions, Notification,
    NotificationListener, Priority, Result, Retry, RpcListener, SendOptions, Target, TransportUrl,
};
use redis::aio::ConnectionManager;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::connection::{self, DRIVER};
use crate::options::Options;
use crate::reply::ReplyQueue;
use crate::topology::{DEFAULT_GROUP, Keys};
use crate::{notification_listener, publish, rpc_listener};

/// What the driver's parts share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) opts: Arc<Options>,
    pub(crate) keys: Keys,
    pub(crate) client: redis::Client,
    /// The shared connection (everything that doesn't block).
    pub(crate) conn: ConnectionManager,
}

impl Shared {
    pub(crate) fn exchange<'a>(&'a self, target: &'a Target) -> &'a str {
        target
            .exchange
            .as_deref()
            .unwrap_or(&self.opts.control_exchange)
    }

    /// A consumer name no other listener has (the process id, for operators).
    pub(crate) fn consumer_name(&self) -> String {
        format!("{}-{}", std::process::id(), &codec::new_unique_id()[..12])
    }
}

/// A connection to Redis, speaking oslo.messaging's model over streams.
///
/// ```no_run
/// # async fn example() -> msg_core::Result<()> {
/// use msg_core::{Driver, TransportUrl};
/// let url = TransportUrl::parse("redis://127.0.0.1:6379/0")?;
/// let driver = msg_driver_redis::RedisDriver::connect(&url).await?;
/// assert_eq!(driver.name(), "redis");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisDriver {
    shared: Shared,
    reply: OnceCell<ReplyQueue>,
}

impl RedisDriver {
    /// Connects to the server the URL names (see [`Options`] for the URL's form).
    pub async fn connect(url: &TransportUrl) -> Result<Self> {
        let opts = Options::from_url(url)?;
        let client = connection::client(&opts)?;
        let conn = connection::shared(&client).await?;
        Ok(RedisDriver {
            shared: Shared {
                keys: Keys::new(&opts.prefix),
                opts: Arc::new(opts),
                client,
                conn,
            },
            reply: OnceCell::new(),
        })
    }

    /// The options read from the URL.
    pub fn options(&self) -> &Options {
        &self.shared.opts
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.shared.keys
    }

    async fn reply_queue(&self) -> Result<&ReplyQueue> {
        self.reply
            .get_or_try_init(|| ReplyQueue::start(&self.shared.client, &self.shared.keys))
            .await
    }

    /// Where an RPC message goes: the stream, and its length bound (0: none).
    fn rpc_route(&self, target: &Target) -> Result<(String, u32)> {
        let topic = target.require_topic()?;
        let exchange = self.shared.exchange(target);
        Ok(if target.fanout {
            (
                self.shared.keys.fanout(topic),
                self.shared.opts.fanout_max_len,
            )
        } else if let Some(server) = &target.server {
            (self.shared.keys.rpc_server(exchange, topic, server), 0)
        } else {
            (self.shared.keys.rpc_topic(exchange, topic), 0)
        })
    }
}

#[async_trait]
impl Driver for RedisDriver {
    fn name(&self) -> &'static str {
        DRIVER
    }

    /// Everything but "no responders": Redis can't tell whether anyone reads a stream (a
    /// call to a topic nobody serves times out, as on RabbitMQ).
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
        let (key, max_len) = self.rpc_route(target)?;
        let replies = self.reply_queue().await?;
        let call = CallInfo {
            msg_id: codec::new_unique_id(),
            reply_q: replies.name.clone(),
            call_monitor_timeout: options.call_monitor_timeout,
        };
        let pending = replies.waiters.register(call.msg_id.clone());
        let body = codec::encode_request(context, request, &codec::new_unique_id(), Some(&call))?;
        let sent =
            publish::add_if_exists(&self.shared.conn, &key, &body, max_len, options.retry).await?;
        if !sent {
            if options.at_least_once {
                return Err(Error::Undeliverable { destination: key });
            }
            tracing::debug!(
                stream = key,
                "a call to a stream no server made: it will time out"
            );
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
        let (key, max_len) = self.rpc_route(target)?;
        let body = codec::encode_request(context, request, &codec::new_unique_id(), None)?;
        let sent =
            publish::add_if_exists(&self.shared.conn, &key, &body, max_len, options.retry).await?;
        if !sent {
            if options.at_least_once {
                return Err(Error::Undeliverable { destination: key });
            }
            tracing::debug!(stream = key, "a cast to a stream no server made: dropped");
        }
        Ok(())
    }

    async fn send_notification(
        &self,
        target: &Target,
        context: &Context,
        notification: &Notification,
        version: EnvelopeVersion,
        retry: Retry,
    ) -> Result<()> {
        let topic = target.require_topic()?;
        let key =
            self.shared
                .keys
                .notify(self.shared.exchange(target), topic, notification.priority);
        let body =
            codec::encode_notification(context, notification, &codec::new_unique_id(), version)?;
        publish::add_with_group(&self.shared.conn, &key, DEFAULT_GROUP, &body, retry).await
    }

    async fn listen(&self, target: &Target, options: &ListenOptions) -> Result<RpcListener> {
        rpc_listener::listen(&self.shared, target, options).await
    }

    async fn listen_for_notifications(
        &self,
        subscriptions: &[(Target, Priority)],
        pool: Option<&str>,
        options: &ListenOptions,
    ) -> Result<NotificationListener> {
        notification_listener::listen(&self.shared, subscriptions, pool, options).await
    }

    async fn cleanup(&self) -> Result<()> {
        if let Some(replies) = self.reply.get() {
            let mut conn = self.shared.conn.clone();
            replies.close(&mut conn).await;
        }
        Ok(())
    }
}
