//! oslo's options that cluster deployments set, done as oslo does them.

use std::time::Duration;

use msg_client::RpcClient;
use msg_core::{Context, DriverRegistry, Target, TransportUrl};
use msg_dispatch::{Endpoint, HandlerError};
use msg_driver_amqp::RabbitOptions;
use msg_server::RpcServer;
use serde_json::{Value, json};

use crate::rabbit_url;

fn with_option(url: &str, option: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{option}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_queue_ttl_of_zero_means_no_expiry() {
    let Some(url) = rabbit_url("amqp rabbit_transient_queues_ttl=0") else {
        return;
    };
    let url = with_option(&url, "rabbit_transient_queues_ttl=0");
    let transport = DriverRegistry::new()
        .with(msg_driver_amqp::factory())
        .open(&url)
        .await
        .unwrap();
    let topic = format!("ttl0-{}", uuid::Uuid::new_v4().simple());
    // the server declares its fanout queue and the client its reply queue: both transient
    let echo = Endpoint::new().method("echo", |_ctx: Context, v: Value| async move {
        Ok::<_, HandlerError>(v)
    });
    let server = RpcServer::builder(transport.clone(), Target::server(&topic, "s1"))
        .endpoint(echo)
        .start()
        .await
        .unwrap_or_else(|e| panic!("a server with rabbit_transient_queues_ttl=0: {e}"));
    let client = RpcClient::new(transport, Target::topic(&topic)).timeout(Duration::from_secs(10));
    let got: Value = client
        .call(&Context::new(), "echo", json!({"x": 1}))
        .await
        .unwrap_or_else(|e| panic!("a call with rabbit_transient_queues_ttl=0: {e}"));
    assert_eq!(got, json!({"x": 1}));
    server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[test]
fn quorum_and_ha_queues_together_are_a_configuration_error() {
    let url =
        TransportUrl::parse("rabbit://h/?rabbit_quorum_queue=true&rabbit_ha_queues=true").unwrap();
    let e = RabbitOptions::from_url(&url).unwrap_err().to_string();
    assert!(
        e.contains("rabbit_quorum_queue") && e.contains("rabbit_ha_queues"),
        "{e}"
    );
}
