//! The vocabulary and contracts of msg, a Rust messaging library in the model of OpenStack's
//! oslo.messaging.
//!
//! This crate is what driver authors and the other msg crates build on: targets, transport
//! URLs, request contexts, priorities, notifications, the one [`Error`] type, the
//! dyn-compatible [`Driver`] contract with its listeners and incoming messages, the generic
//! [`Batched`] stream combinator, the [`DriverFactory`] registry, [`Serializer`] hooks, the
//! oslo envelope [`codec`], and oslo.config files read by oslo.config's rules ([`config`]).
//! It has no broker dependency and starts no executor: an application wants the `msg`
//! facade instead. Its one feature, `otel`, carries the W3C trace context of msg's spans
//! through message contexts with OpenTelemetry ([`trace_context`]).
//!
//! ```
//! use msg_core::{Role, Target, TransportUrl};
//! let url: TransportUrl = "rabbit://guest:s3cret@localhost:5672/".parse().unwrap();
//! assert!(!url.to_string().contains("s3cret"));
//! Target::server("calc", "host-1").validate(Role::RpcServer).unwrap();
//! ```
#![warn(missing_docs)]

mod batch;
mod call_monitor;
mod capabilities;
pub mod codec;
pub mod config;
mod context;
mod driver;
mod error;
pub mod feed;
pub mod metrics;
pub mod naming;
mod notification;
mod payload;
mod priority;
mod registry;
mod remote_error;
mod reply;
mod serializer;
mod target;
pub mod trace_context;
mod url;
mod version;

pub use batch::Batched;
pub use call_monitor::heartbeat_interval;
pub use capabilities::{Capabilities, Capability};
pub use codec::{EnvelopeVersion, Failure, RpcRequest};
pub use context::{Context, TRACEPARENT, TRACESTATE, is_secret_key};
pub use driver::{
    Acknowledger, Driver, IncomingNotification, IncomingRequest, ListenOptions, Listener,
    NotificationListener, ReplyHandle, Responder, Retry, RpcListener, SendOptions, StopListening,
};
pub use error::{BoxError, Error, ErrorKind, MAX_MALFORMED_REASON, Refusal, Result};
#[doc(hidden)]
pub use inventory;
pub use notification::{Notification, format_timestamp, parse_timestamp};
pub use payload::Payload;
pub use priority::{Priority, UnknownPriority};
pub use registry::{
    DEFAULT_RPC_RESPONSE_TIMEOUT, DriverFactory, DriverRegistry, LinkedDriver, OptionCheck,
    Transport, TransportBuilder,
};
pub use remote_error::{RemoteClass, RemoteError};
pub use reply::{PendingReply, ReplyWaiters};
pub use serializer::{JsonSerializer, NoOpSerializer, Serializer};
pub use target::{Role, Target};
pub use url::{TransportHost, TransportUrl};
pub use version::{BadVersion, Version};

pub use async_trait::async_trait;
