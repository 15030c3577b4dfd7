//! The NATS driver against a real nats-server: the conformance suite on the broker of
//! `MSG_NATS_URL`, and behaviour under a server restart, a lost connection or a node's death on
//! nats-servers of its own (one, or a 3-node cluster).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

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
    match std::env::var("MSG_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("MSG_REQUIRE_BROKERS").as_deref() != Ok("1"),
                "MSG_REQUIRE_BROKERS=1 but MSG_NATS_URL is not set: run `cargo xtask test`"
            );
            eprintln!("SKIPPED: {suite}: no NATS (set MSG_NATS_URL, or run `cargo xtask test`)");
            None
        }
    }
}

/// `url` with one more query option.
pub fn with_option(url: &str, option: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{option}")
}
