//! RPC: endpoints, typed handlers, access policies and the dispatcher.

mod dispatcher;
mod endpoint;
mod handler;
mod policy;

pub(crate) use dispatcher::panic_message;
pub use dispatcher::{PING_METHOD, Route, RpcDispatcher};
pub use endpoint::Endpoint;
pub use handler::{BlockingRpcHandler, RpcHandler};
pub use policy::AccessPolicy;
