//! Dispatch for msg: deciding which handler gets an RPC request or a notification, and
//! running it, with oslo.messaging's rules (versioned RPC endpoints and access policies;
//! notification filters, priorities and batches).
//!
//! This crate is pure logic over messages: it opens no connection, owns no executor and
//! knows no driver. A server (`msg-server`) feeds it what a listener receives and sends back
//! or acknowledges what it answers; an application uses it through the `msg` facade.
//!
//! - RPC: an [`Endpoint`] holds typed async (or blocking) methods under an optional namespace
//!   and a version; an [`RpcDispatcher`] routes a request as oslo's `rpc/dispatcher.py`
//!   and turns every failure into the [`Failure`](msg_core::Failure) the caller receives
//!   ([`HandlerError`] for handlers' own errors).
//! - Notifications: a [`NotificationEndpoint`] holds handlers per priority behind a
//!   [`NotificationFilter`]; a [`NotificationDispatcher`] hands notifications (one by one or
//!   in batches) to the endpoints that want them and says what to requeue; a batch handler
//!   may name the messages to requeue ([`BatchResult`]).
//!
//! ```
//! use msg_core::{Context, RpcRequest};
//! use msg_dispatch::{Endpoint, HandlerError, RpcDispatcher};
//!
//! #[derive(serde::Deserialize)]
//! struct Echo { text: String }
//!
//! let dispatcher = RpcDispatcher::new(vec![Endpoint::new().method(
//!     "echo",
//!     |_ctx: Context, args: Echo| async move { Ok::<_, HandlerError>(args.text) },
//! )])?;
//! let mut args = serde_json::Map::new();
//! args.insert("text".into(), "hi".into());
//! let reply = futures::executor::block_on(
//!     dispatcher.dispatch(Context::new(), RpcRequest::new("echo", args)),
//! );
//! assert_eq!(reply, Ok(serde_json::json!("hi")));
//! # Ok::<(), msg_core::Error>(())
//! ```
#![warn(missing_docs)]

mod handler_error;
mod notify;
mod rpc;

pub use handler_error::HandlerError;
pub use notify::NotificationResult::{Handled, Requeue};
pub use notify::{
    BatchResult, IntoBatchResult, IntoNotificationResult, NotificationDispatcher,
    NotificationEndpoint, NotificationFilter, NotificationMessage, NotificationResult,
};
pub use rpc::{
    AccessPolicy, BlockingRpcHandler, Endpoint, PING_METHOD, Route, RpcDispatcher, RpcHandler,
};
