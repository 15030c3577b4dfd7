//! A Redis Streams driver for msg: `redis://` and `rediss://` (TLS).
//!
//! Built as a third party builds a driver: it depends on msg-core's driver contract only,
//! and an application registers its [`factory`]:
//!
//! ```no_run
//! # async fn example() -> msg_core::Result<()> {
//! use msg_core::DriverRegistry;
//! let registry = DriverRegistry::new().with(msg_driver_redis::factory());
//! let transport = registry.open("redis://127.0.0.1:6379/0").await?;
//! # Ok(()) }
//! ```
//!
//! How oslo.messaging's model maps onto Redis (the key layout is [`Keys`]):
//!
//! - **RPC**: a stream per topic and per `topic.server`, read by the servers in one consumer
//!   group (load balancing, server-directed); a fanout stream per topic that every server
//!   reads whole; replies and call-monitor heartbeats on the caller's reply list, correlated
//!   by `_msg_id`.
//! - **Notifications**: a stream per topic and priority; the group `default` (created by the
//!   notifier too, so notifications sent before any listener are kept) and a group per pool.
//! - **Reliability** without a negative ack: what a listener holds stays in its group's
//!   pending list until acked; crashed listeners' messages are taken over with `XAUTOCLAIM`
//!   after `claim_idle`; requeues, delivery counts and dead-lettering are described in
//!   [`redelivery`](crate::redelivery) terms in the README.
//!
//! Not supported: Redis Cluster and Sentinel (one host per URL), and "no responders" (Redis
//! can't tell whether anyone reads a stream).
#![warn(missing_docs)]

mod connection;
mod dead_letter;
mod delivery;
mod driver;
mod entry;
mod errors;
mod listener;
mod notification_listener;
mod options;
mod publish;
mod reader;
mod redelivery;
mod reply;
mod retention;
mod rpc_listener;
mod topology;

use std::sync::Arc;

use async_trait::async_trait;
use msg_core::{Driver, DriverFactory, Result, TransportUrl};

pub use driver::RedisDriver;
pub use options::{DEFAULT_EXCHANGE, DEFAULT_PORT, Options};
pub use topology::{DEFAULT_GROUP, FANOUT_ANCHOR_GROUP, Keys, RPC_GROUP};

/// The factory for `redis://` and `rediss://`, to register in a
/// [`DriverRegistry`](msg_core::DriverRegistry) (or `msg::Transport::builder().driver(...)`).
pub fn factory() -> Arc<dyn DriverFactory> {
    Arc::new(RedisDriverFactory)
}

// an application that links this crate opens `redis://` with `msg::Transport::open` too
msg_core::submit_driver!(factory);

/// Makes [`RedisDriver`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisDriverFactory;

#[async_trait]
impl DriverFactory for RedisDriverFactory {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn schemes(&self) -> &[&'static str] {
        &["redis", "rediss"]
    }

    async fn connect(&self, url: &TransportUrl) -> Result<Arc<dyn Driver>> {
        Ok(Arc::new(RedisDriver::connect(url).await?))
    }
}

/// The most bytes a message body may have: a larger entry is refused without being decoded
/// (as large as msg-core lets a compressed body grow).
pub const MAX_BODY_BYTES: usize = msg_core::codec::DEFAULT_MAX_DECOMPRESSED_BYTES;

/// A delivery's body, if it has one of a size worth decoding.
fn body(d: &delivery::Delivery) -> msg_core::Result<&[u8]> {
    match d.entry.body.as_deref() {
        None => Err(msg_core::Error::malformed(
            "a stream entry without a `b` field",
        )),
        Some(b) if b.len() > MAX_BODY_BYTES => Err(msg_core::Error::malformed(format!(
            "a body of {} bytes (at most {MAX_BODY_BYTES})",
            b.len()
        ))),
        Some(b) => Ok(b),
    }
}

/// Logs a message that can't be used (once, without its body) and removes it from its
/// stream, so it never comes back.
fn unusable(what: &str, d: delivery::Delivery, error: &msg_core::Error) {
    msg_core::feed::log_rejected(what, &format!("{} {}", d.entry.key, d.entry.id), error);
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            if let Err(e) = d.discard().await {
                tracing::debug!(error = %e, "removing an unusable message failed");
            }
        });
    }
}
