//! The RabbitMQ driver against a real broker: the conformance suite, options, faults, TLS
//! and interop with Python oslo.messaging.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod backlog;
mod broker_events;
mod call_setup;
mod cluster_options;
mod conformance;
mod faults;
mod hostile;
mod interop;
mod metrics;
mod proxy;
mod queue_manager;
mod stream_fanout;
mod tls;
mod trace_interop;

use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{Connection, ConnectionProperties};
use msg_core::TransportUrl;

/// The broker's URL, or `None` (after a loud SKIPPED line) when no broker is configured;
/// with `MSG_REQUIRE_BROKERS=1` a missing broker fails the test instead.
pub fn rabbit_url(suite: &str) -> Option<String> {
    msg_testkit::broker_url("MSG_RABBIT_URL", suite)
}

/// A raw lapin connection to the broker of `url` (no TLS), for tests that play a peer or
/// inspect the broker.
pub async fn raw_connection(url: &str) -> Connection {
    let u = TransportUrl::parse(url).unwrap();
    let h = u.hosts().first().expect("a host in MSG_RABBIT_URL");
    let tls = u.scheme() == "amqps" || u.query_value("ssl").is_some_and(|v| v == "true");
    assert!(!tls, "the raw inspection connection doesn't do TLS");
    let uri = AMQPUri {
        scheme: AMQPScheme::AMQP,
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo {
                username: h.username.clone().unwrap_or_else(|| "guest".into()),
                password: h.password.clone().unwrap_or_else(|| "guest".into()),
            },
            host: if h.hostname.is_empty() {
                "localhost".into()
            } else {
                h.hostname.clone()
            },
            port: h.port_or(5672),
        },
        vhost: u.virtual_host().unwrap_or("/").to_string(),
        query: AMQPQueryString::default(),
    };
    Connection::connect_uri(uri, ConnectionProperties::default())
        .await
        .unwrap()
}
