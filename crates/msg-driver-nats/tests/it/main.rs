//! The NATS driver against a real nats-server: the conformance suite on the broker of
//! `MSG_NATS_URL`, and behaviour under a server restart, a lost connection or a node's death on
//! nats-servers of its own (one, or a 3-node cluster).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod backlog;
mod cluster;
mod conformance;
mod driver;
mod failures;
mod hostile;
mod hosts;
mod lost_connection;
mod names;
mod recovery;
mod restart;
mod server;
mod stream_settings;

/// The broker's URL, or `None` (after a loud SKIPPED line) when no broker is configured;
/// with `MSG_REQUIRE_BROKERS=1` a missing broker fails the test instead.
pub fn nats_url(suite: &str) -> Option<String> {
    msg_testkit::broker_url("MSG_NATS_URL", suite)
}

/// `url` with one more query option.
pub fn with_option(url: &str, option: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{option}")
}
