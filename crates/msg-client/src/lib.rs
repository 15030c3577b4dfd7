//! The sending side of msg: [`RpcClient`] (call, cast, `prepare()`) and [`Notifier`] (one
//! method per priority, notify drivers).
//!
//! It depends on `msg-core` only: it works over any driver, given a
//! [`msg_core::Transport`] (the `msg` facade's `Transport` converts into one). It does not
//! serve: servers and listeners live in `msg-server`.
#![warn(missing_docs)]

mod notifier;
mod rpc;

pub use notifier::{
    Captured, DEFAULT_SEND_TIMEOUT, LogDriver, MessagingDriver, NoopDriver, Notifier, NotifyDriver,
    RoutingConfig, RoutingDriver, TestNotifications,
};
pub use rpc::RpcClient;
