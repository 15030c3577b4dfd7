//! The sending side of msg: [`RpcClient`] (call, cast, `prepare()`) and [`Notifier`] (one
//! method per priority, notify drivers).
//!
//! It depends on `msg-core` only: it works over any driver, given a
//! [`msg_core::Transport`] (the `msg` facade's `Transport` converts into one). It does not
//! serve: servers and listeners live in `msg-server`.
#![warn(missing_docs)]

mod error_notifications;
mod event_loggers;
mod log_driver;
mod mask;
mod metrics;
mod notifier;
mod rpc;
mod tracing_spans;

pub use error_notifications::NotificationLayer;
pub use event_loggers::LOGGER_BASE;
pub use log_driver::LogDriver;
pub use mask::{MASK, is_secret_name, mask_password, mask_value};
pub use notifier::{
    Captured, DEFAULT_SEND_TIMEOUT, MessagingDriver, NoopDriver, Notifier, NotifyDriver,
    RoutingConfig, RoutingDriver, TestNotifications,
};
pub use rpc::RpcClient;
