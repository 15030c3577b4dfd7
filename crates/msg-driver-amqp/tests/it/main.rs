//! The RabbitMQ driver against a real broker: the conformance suite, options, faults, TLS
//! and interop with Python oslo.messaging.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod conformance;
mod faults;
mod interop;
mod proxy;
mod tls;

/// The broker's URL, or `None` (after a loud SKIPPED line) when no broker is configured;
/// with `MSG_REQUIRE_BROKERS=1` a missing broker fails the test instead.
pub fn rabbit_url(suite: &str) -> Option<String> {
    match std::env::var("MSG_RABBIT_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("MSG_REQUIRE_BROKERS").as_deref() != Ok("1"),
                "MSG_REQUIRE_BROKERS=1 but MSG_RABBIT_URL is not set: run `cargo xtask test`"
            );
            eprintln!(
                "SKIPPED: {suite}: no RabbitMQ (set MSG_RABBIT_URL, or run `cargo xtask test`)"
            );
            None
        }
    }
}
