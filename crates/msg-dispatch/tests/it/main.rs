//! msg-dispatch through its public API, fed with what the oslo codec decodes.

mod notify;
mod rpc;
