//! msg: OpenStack oslo.messaging's model in Rust. RPC (call, cast, fanout, server-directed,
//! versioned endpoints) and notifications (notifier, listeners, pools, filters, batches,
//! requeue) over RabbitMQ, NATS, or the in-process broker that is the embedded default.
//!
//! This is the facade an application depends on: it re-exports the vocabulary of
//! [`msg_core`] and opens a [`Transport`] for a URL with the drivers compiled in. Each driver
//! sits behind a feature: `memory` (on by default), `amqp` (RabbitMQ), `nats` (NATS),
//! `full` (all).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let transport = msg::Transport::open("memory://").await.unwrap();
//! assert_eq!(transport.driver().name(), "memory");
//! let err = msg::Transport::open("kafka://localhost").await.unwrap_err();
//! assert!(err.to_string().contains("memory://"));
//! # });
//! ```
#![warn(missing_docs)]

use std::ops::Deref;
use std::sync::Arc;

pub use msg_core::{
    Batched, Capabilities, Capability, Context, Driver, DriverFactory, DriverRegistry,
    EnvelopeVersion, Error, ErrorKind, Failure, IncomingNotification, IncomingRequest,
    JsonSerializer, ListenOptions, NoOpSerializer, Notification, Priority, Refusal, RemoteError,
    Result, Retry, Role, RpcRequest, SendOptions, Serializer, Target, TransportUrl, Version, codec,
};

pub use msg_client::RpcClient;
pub use msg_dispatch::{AccessPolicy, Endpoint, HandlerError, PING_METHOD, RpcDispatcher};
pub use msg_server::{Executor, RpcServer, RpcServerBuilder, ServerState};

/// Notifications: the notifier, its drivers, listeners, endpoints, filters and results.
pub mod notify {
    pub use msg_client::{
        Captured, LogDriver, MessagingDriver, NoopDriver, Notifier, NotifyDriver, RoutingConfig,
        RoutingDriver, TestNotifications,
    };
    pub use msg_dispatch::{
        BatchResult, Handled, IntoBatchResult, IntoNotificationResult, NotificationDispatcher,
        NotificationEndpoint, NotificationFilter, NotificationMessage, NotificationResult, Requeue,
    };
    pub use msg_server::{
        BatchNotificationListener, BatchNotificationListenerBuilder, NotificationListener,
        NotificationListenerBuilder,
    };
}

/// The RabbitMQ driver (`rabbit://`, `amqp://`, `amqps://`).
#[cfg(feature = "amqp")]
pub use msg_driver_amqp as amqp;

/// The NATS driver (`nats://`, `tls://`).
#[cfg(feature = "nats")]
pub use msg_driver_nats as nats;

/// The in-process broker driver (`memory://`).
#[cfg(feature = "memory")]
pub use msg_driver_memory as memory;

/// A connected transport: cheap to clone, shared by clients, notifiers, servers and
/// listeners. Dereferences to [`msg_core::Transport`].
#[derive(Clone, Debug)]
pub struct Transport {
    inner: msg_core::Transport,
}

impl Transport {
    /// Opens a transport for a URL with the drivers compiled into this build
    /// (`memory://` unless the `memory` feature is off).
    pub async fn open(url: &str) -> Result<Self> {
        Self::builder().open(url).await
    }

    /// A builder that also accepts third-party [`DriverFactory`]s.
    pub fn builder() -> TransportBuilder {
        TransportBuilder {
            registry: builtin_registry(),
        }
    }
}

/// The registry of the drivers compiled into this build, with hints for the missing ones.
pub fn builtin_registry() -> DriverRegistry {
    #[allow(unused_mut)]
    let mut registry = DriverRegistry::new();
    #[cfg(feature = "memory")]
    registry.register(msg_driver_memory::factory());
    #[cfg(not(feature = "memory"))]
    {
        registry = registry.with_hint("memory", "enable the `memory` feature of the `msg` crate");
    }
    #[cfg(feature = "amqp")]
    registry.register(msg_driver_amqp::factory());
    #[cfg(not(feature = "amqp"))]
    for scheme in ["rabbit", "amqp", "amqps"] {
        registry = registry.with_hint(
            scheme,
            "enable the `amqp` feature of the `msg` crate (the RabbitMQ driver)",
        );
    }
    #[cfg(feature = "nats")]
    registry.register(msg_driver_nats::factory());
    #[cfg(not(feature = "nats"))]
    for scheme in ["nats", "tls"] {
        registry = registry.with_hint(
            scheme,
            "enable the `nats` feature of the `msg` crate (the NATS driver)",
        );
    }
    registry
}

/// Opens transports with the built-in drivers plus any added here.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let t = msg::Transport::builder()
///     .driver(msg::memory::factory()) // a third-party factory goes here the same way
///     .open("memory://builder-doc")
///     .await
///     .unwrap();
/// assert!(t.capabilities().contains(msg::Capability::Requeue));
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct TransportBuilder {
    registry: DriverRegistry,
}

impl TransportBuilder {
    /// Adds a driver factory; for a scheme already served, it takes its place.
    pub fn driver(mut self, factory: Arc<dyn DriverFactory>) -> Self {
        self.registry.register(factory);
        self
    }

    /// Opens the transport.
    pub async fn open(self, url: &str) -> Result<Transport> {
        Ok(Transport {
            inner: self.registry.open(url).await?,
        })
    }
}

impl Deref for Transport {
    type Target = msg_core::Transport;
    fn deref(&self) -> &msg_core::Transport {
        &self.inner
    }
}

impl From<Transport> for msg_core::Transport {
    fn from(t: Transport) -> Self {
        t.inner
    }
}

impl From<&Transport> for msg_core::Transport {
    fn from(t: &Transport) -> Self {
        t.inner.clone()
    }
}

impl From<msg_core::Transport> for Transport {
    fn from(inner: msg_core::Transport) -> Self {
        Transport { inner }
    }
}
