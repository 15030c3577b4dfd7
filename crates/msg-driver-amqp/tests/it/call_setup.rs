//! A call's request reaches the broker or the call keeps trying, within its timeout: the
//! request is confirmed, and one the broker refuses (nack) is published again with the same
//! bytes (the server drops the duplicate by `_unique_id`); a connection reset while the call
//! sets up (channel, declarations, reply queue) costs a reconnect, not the call.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lapin::options::{QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use msg_client::RpcClient;
use msg_core::{Context, Target, Transport};
use msg_dispatch::{Endpoint, HandlerError};
use msg_server::RpcServer;
use serde_json::{Value, json};

use crate::faults::{open, unique};
use crate::proxy::Proxy;
use crate::{rabbit_url, raw_connection};

/// An echo server that counts the requests it handles.
async fn counting_echo(transport: &Transport, topic: &str) -> (RpcServer, Arc<AtomicUsize>) {
    let handled = Arc::new(AtomicUsize::new(0));
    let count = handled.clone();
    let server = RpcServer::builder(transport.clone(), Target::server(topic, "s1"))
        .endpoint(
            Endpoint::new().method("echo", move |_c: Context, a: Value| {
                let count = count.clone();
                async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, HandlerError>(a)
                }
            }),
        )
        .start()
        .await
        .unwrap();
    (server, handled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_request_the_broker_refuses_is_sent_again_and_answered_once() {
    let Some(url) = rabbit_url("amqp: a nacked call request") else {
        return;
    };
    let logs = msg_testkit::capture_logs().expect("the capture is this binary's subscriber");
    let topic = unique("nacked-call");
    let transport = open(&url).await;
    let (server, handled) = counting_echo(&transport, &topic).await;

    // a queue of its own, bound beside the server's, that RabbitMQ nacks every publish to
    let raw = raw_connection(&url).await;
    let ch = raw.create_channel().await.unwrap();
    let blocker = nacking_queue(&ch, &topic).await;

    let client =
        RpcClient::new(transport.clone(), Target::topic(&topic)).timeout(Duration::from_secs(20));
    let call = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .call::<Value>(&Context::new(), "echo", json!({"i": 1}))
                .await
        })
    };
    // the driver says the broker refused the request, and publishes it again
    let start = Instant::now();
    while logs
        .lines_containing(&topic)
        .iter()
        .all(|l| !l.contains("nack"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no nack of the call's request was seen: the request is not confirmed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ch.queue_delete(blocker.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(25), call)
        .await
        .expect("the call returned")
        .unwrap()
        .expect("the call was answered once its request was confirmed");
    assert_eq!(answer, json!({"i": 1}));
    // the queue is FIFO: once a second call is answered, any copy of the first was handled
    let second: Value = client
        .call(&Context::new(), "echo", json!({"i": 2}))
        .await
        .unwrap();
    assert_eq!(second, json!({"i": 2}));
    assert_eq!(
        handled.load(Ordering::SeqCst),
        2,
        "each call is handled once (the copy of a refused request is dropped as a duplicate)"
    );

    let _ = raw.close(200, "OK".into()).await;
    server.shutdown(Duration::from_secs(5)).await.unwrap();
    transport.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_while_the_first_call_sets_up_costs_a_reconnect_not_the_call() {
    let Some(url) = rabbit_url("amqp: a reset during a call's set-up") else {
        return;
    };
    let topic = unique("reset-setup");
    let server_side = open(&url).await;
    let (server, handled) = counting_echo(&server_side, &topic).await;

    let upstream: SocketAddr = "127.0.0.1:5672".parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    // no heartbeats: nothing goes from the client to the broker until the call sets up
    let proxied = format!(
        "rabbit://guest:guest@127.0.0.1:{}/?heartbeat_timeout_threshold=0&rabbit_retry_interval=0.2&rabbit_retry_backoff=0.2&kombu_reconnect_delay=0.1",
        proxy.port
    );
    let client_side = open(&proxied).await;
    let client =
        RpcClient::new(client_side.clone(), Target::topic(&topic)).timeout(Duration::from_secs(20));

    // the first thing the call sends (opening a channel to declare) resets every connection
    proxy.cut_when_a_client_sends();
    let answer: Value = client
        .call(&Context::new(), "echo", json!({"i": 1}))
        .await
        .expect("the call survives a reset during its set-up");
    assert_eq!(answer, json!({"i": 1}));
    assert_eq!(
        proxy.armed_cuts(),
        1,
        "the reset happened during the set-up"
    );
    assert_eq!(handled.load(Ordering::SeqCst), 1);

    server.shutdown(Duration::from_secs(5)).await.unwrap();
    client_side.cleanup().await.unwrap();
    server_side.cleanup().await.unwrap();
}

/// A queue bound to `openstack` with `key` that is always full and rejects what comes:
/// RabbitMQ nacks every publish routed to it (no broker-wide state touched).
async fn nacking_queue(ch: &lapin::Channel, key: &str) -> String {
    let blocker = unique("nack-blocker");
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(0));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    ch.queue_declare(
        blocker.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..QueueDeclareOptions::default()
        },
        args,
    )
    .await
    .unwrap();
    ch.queue_bind(
        blocker.as_str().into(),
        "openstack".into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    blocker
}

/// The number after `field=` in a log line.
fn field(line: &str, field: &str) -> Option<u64> {
    let at = line.find(&format!("{field}="))? + field.len() + 1;
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// RabbitMQ 3.10 keeps a session per channel and quorum queue; one set up while the queue
/// had no leader refuses every later publish on that channel (docs/clusters.md). So a
/// refused message goes out again on a fresh channel each time, and when fresh channels
/// keep being refused the connections move to the next host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_goes_again_on_fresh_channels_then_on_a_new_connection() {
    let Some(url) = rabbit_url("amqp: a message refused again and again") else {
        return;
    };
    let logs = msg_testkit::capture_logs().expect("the capture is this binary's subscriber");
    let topic = unique("nacked-again");
    let url = format!(
        "{url}?rabbit_retry_interval=0.2&rabbit_retry_backoff=0.2&kombu_reconnect_delay=0.1"
    );
    let transport = open(&url).await;
    let (server, handled) = counting_echo(&transport, &topic).await;
    let raw = raw_connection(&url).await;
    let ch = raw.create_channel().await.unwrap();
    let blocker = nacking_queue(&ch, &topic).await;

    let client =
        RpcClient::new(transport.clone(), Target::topic(&topic)).timeout(Duration::from_secs(30));
    let call = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .call::<Value>(&Context::new(), "echo", json!({"i": 1}))
                .await
        })
    };
    // refused on channel after channel, then the connections move
    let start = Instant::now();
    let moved = loop {
        let moved: Vec<String> = logs
            .lines_containing("reconnecting to the next host")
            .into_iter()
            .filter(|l| l.contains(&topic))
            .collect();
        if !moved.is_empty() {
            break moved;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the connections never moved: {:#?}",
            logs.lines_containing(&topic)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let nacks = logs.lines_containing(&topic);
    let first_generation: Vec<&String> = nacks
        .iter()
        .filter(|l| l.contains("(nack)") && field(l, "generation") == Some(1))
        .collect();
    let channels: Vec<Option<u64>> = first_generation
        .iter()
        .map(|l| field(l, "channel"))
        .collect();
    assert!(
        channels.len() >= 4,
        "nacked at least 4 times before moving: {nacks:#?}"
    );
    assert_eq!(
        channels,
        (0..channels.len() as u64).map(Some).collect::<Vec<_>>(),
        "each attempt on a fresh channel: {nacks:#?}"
    );
    assert!(moved[0].contains("generation=1"), "{moved:?}");

    // once the broker takes it, the call is answered, its request handled once
    ch.queue_delete(blocker.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(35), call)
        .await
        .expect("the call returned")
        .unwrap()
        .expect("the call was answered once its request was confirmed");
    assert_eq!(answer, json!({"i": 1}));
    let second: Value = client
        .call(&Context::new(), "echo", json!({"i": 2}))
        .await
        .unwrap();
    assert_eq!(second, json!({"i": 2}));
    assert_eq!(handled.load(Ordering::SeqCst), 2, "each call handled once");

    let _ = raw.close(200, "OK".into()).await;
    server.shutdown(Duration::from_secs(5)).await.unwrap();
    transport.cleanup().await.unwrap();
}
