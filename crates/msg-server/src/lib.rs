//! msg's servers: the executors and the message-handling server, with the [`RpcServer`],
//! the [`NotificationListener`] and the [`BatchNotificationListener`] built on it.
//!
//! A server opens a listener on a transport, takes a message only when an executor slot is
//! free (so the broker holds the rest: prefetch defaults to the executor's capacity), and
//! hands it to a dispatcher from `msg-dispatch`. RPC requests are acknowledged on receipt
//! (at-most-once, as oslo) and answered with a result or a failure, with call-monitor
//! heartbeats while a handler runs; notifications are acknowledged only after they were
//! handled. `stop()` ends consumption (what was received is still handled), `wait()`
//! returns when every handler is done and the listener is released, and `start()` after
//! `stop()` works. This crate sends nothing of its own: clients live in `msg-client`.
#![warn(missing_docs)]

mod dedup;
mod executor;
mod metrics;
mod notify;
mod rpc;
mod server;
mod tracing_spans;

pub use executor::Executor;
pub use notify::{
    BatchNotificationListener, BatchNotificationListenerBuilder, NotificationListener,
    NotificationListenerBuilder,
};
pub use rpc::{RpcServer, RpcServerBuilder};
pub use server::ServerState;
