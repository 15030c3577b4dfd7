//! The conformance suite every msg driver runs against itself: ours (`memory://`,
//! `rabbit://`, `nats://`) and any third-party crate's.
//!
//! The suite is written once, generic over a driver factory and a URL ([`Suite`]): cases at
//! the driver-contract level (`rpc_*`, `notify_*`, `exchanges_*`), then end-to-end cases
//! (`e2e_rpc_*`, `e2e_notify_*`) that run the real client and server stack (msg-client,
//! msg-server, msg-dispatch) over the driver. [`conformance_suite!`] turns them into one
//! `#[test]` per case, named after it, so `cargo test` lists, filters and parallelises them:
//!
//! ```no_run
//! # mod my_driver { pub fn factory() -> std::sync::Arc<dyn msg_core::DriverFactory> { unimplemented!() } }
//! use msg_core::Capability;
//!
//! async fn suite() -> Option<msg_testkit::Suite> {
//!     let url = msg_testkit::broker_url("MYDRIVER_URL", "mydriver conformance")?;
//!     Some(
//!         msg_testkit::Suite::new(my_driver::factory(), url)
//!             .require([Capability::LoadBalancing, Capability::Replies]),
//!     )
//! }
//!
//! mod conformance {
//!     msg_testkit::conformance_suite!(suite: super::suite);
//! }
//! # fn main() {}
//! ```
//!
//! Each case names the capabilities it needs: a case the driver lacks one for prints a
//! `SKIPPED` line naming it and passes, unless the capability is required, which fails it.
//! A case waits for what it can observe (a listener is consuming once `listen` or `start`
//! returns; a message is awaited, with a bound) rather than sleeping; the only fixed waits
//! left are quiet windows proving that nothing (more) arrives.
//!
//! Every name a case makes ([`Env::unique`], [`Env::server`]) holds a dot, a dash, a colon
//! and an underscore, as real topics (`compute.host-1`), servers and pools do.
//!
//! It is a test library: it panics to fail the test that runs it.
#![warn(missing_docs)]

/// Fails the case (returns `Err`) with a message when the condition doesn't hold.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// A [`cases::Case`] from an async fn and the capabilities it needs.
macro_rules! case {
    ($name:ident, [$($cap:ident),*]) => {
        $crate::cases::Case {
            name: stringify!($name),
            needs: &[$(::msg_core::Capability::$cap),*],
            run: |env| Box::pin($name(env)),
        }
    };
}

mod backlog;
mod batch_poison;
mod cases;
mod e2e;
mod env;
mod generate;
mod hostile;
mod log_capture;
mod notify_e2e;
mod python;
mod rpc_e2e;
mod suite;

pub use backlog::{Backlog, BacklogReport, backlog_within_prefetch};
pub use batch_poison::{PoisonAnswer, PoisonOutcome, batch_with_a_poison};
pub use env::Env;
pub use hostile::{
    EXCHANGE as HOSTILE_EXCHANGE, HostileBody, HostileReport, RawPeer, compressed_requests,
    hostile_notifications, hostile_peer_suite, hostile_requests, zlib_bomb,
};
pub use log_capture::{CapturedLogs, capture_logs};
pub use python::{PythonEnv, PythonPeer};
#[doc(hidden)]
pub use suite::run_case as __run_case;
pub use suite::{Suite, broker_url};
