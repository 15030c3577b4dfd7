//! msg: OpenStack oslo.messaging's model in Rust. RPC (call, cast, fanout, server-directed,
//! versioned endpoints) and notifications (notifier, listeners, pools, filters, batches,
//! requeue) over RabbitMQ, NATS, or the in-process broker that is the embedded default.
//!
//! This is the facade an application depends on: it re-exports the vocabulary of
//! [`msg_core`] and opens a [`Transport`] for a URL with the drivers compiled in. Each driver
//! sits behind a feature: `memory` (on by default), `amqp` (RabbitMQ), `nats` (NATS),
//! `full` (all). Clients and servers make `tracing` spans named as oslo.messaging's; the
//! `otel` feature carries them across the broker as W3C trace context and exports them over
//! OTLP ([`TracingOptions`], `msg::otel`).
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

mod tracing_options;

pub use tracing_options::{OtlpProtocol, TRACING_OPTION_KEYS, TracingOptions};

#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
pub mod otel;

pub use msg_core::{
    Capabilities, Capability, Context, DEFAULT_RPC_RESPONSE_TIMEOUT, EnvelopeVersion, Error,
    ErrorKind, Failure, JsonSerializer, NoOpSerializer, Notification, Payload, Priority, Refusal,
    RemoteClass, RemoteError, Result, Retry, Role, RpcRequest, SendOptions, Serializer, Target,
    TransportUrl, Version,
};

/// What a driver author uses: the [`Driver`](driver::Driver) contract, its listeners and
/// incoming messages, the channel-fed listener ([`feed`](driver::feed)), reply waiting,
/// the registry, and the oslo envelope [`codec`](driver::codec). An application needs none
/// of it; see `docs/driver-guide.md`.
///
/// ```
/// use msg::driver::{Capabilities, Capability, Driver, DriverFactory};
/// fn declares(d: &dyn Driver) -> bool {
///     d.capabilities().contains(Capability::Replies)
/// }
/// # let _ = declares;
/// ```
pub mod driver {
    pub use msg_core::feed::{self, Feed, Intake};
    pub use msg_core::{
        Acknowledger, Batched, Capabilities, Capability, Driver, DriverFactory, DriverRegistry,
        IncomingNotification, IncomingRequest, ListenOptions, Listener, NotificationListener,
        OptionCheck, PendingReply, ReplyHandle, ReplyWaiters, Responder, RpcListener,
        StopListening, async_trait, codec, heartbeat_interval, naming,
    };
}

pub mod metrics;

pub use msg_client::RpcClient;
pub use msg_dispatch::{AccessPolicy, Endpoint, HandlerError, PING_METHOD, RpcDispatcher};
pub use msg_server::{Executor, RpcServer, RpcServerBuilder, ServerState};

/// Notifications: the notifier, its drivers, listeners, endpoints, filters and results.
pub mod notify {
    pub use msg_client::{
        Captured, LOGGER_BASE, LogDriver, MessagingDriver, NoopDriver, NotificationLayer, Notifier,
        NotifyDriver, RoutingConfig, RoutingDriver, TestNotifications, mask_password, mask_value,
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

pub use msg_core::{Transport, TransportBuilder};

pub mod config;
pub use config::Config;

/// The drivers of this build: those of the features turned on (and any other driver crate
/// linked in that submits itself), with hints for msg's drivers that are off.
pub fn builtin_registry() -> msg_core::DriverRegistry {
    // naming the driver crates keeps them (and their submissions) in the program
    #[cfg(feature = "memory")]
    let _ = msg_driver_memory::factory as fn() -> _;
    #[cfg(feature = "amqp")]
    let _ = msg_driver_amqp::factory as fn() -> _;
    #[cfg(feature = "nats")]
    let _ = msg_driver_nats::factory as fn() -> _;
    msg_core::DriverRegistry::linked()
}

/// docs/porting.md, whose Rust snippets run as documentation tests so the guide cannot rot.
#[doc = include_str!("../../../docs/porting.md")]
#[cfg(doctest)]
pub struct PortingGuide;
