//! Broker events over a real RabbitMQ: the broker cancels our consumers (their queue deleted
//! from another connection) and msg consumes again; a lost connection is logged as one, not
//! as a cancel; a reply to a missing reply queue is published again until the queue appears,
//! or given up after `kombu_missing_consumer_retry_timeout` with one error, without its body;
//! while RabbitMQ blocks publishing (flow control), sends fail within their timeout, saying so.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};
use msg_client::{Notifier, RpcClient};
use msg_core::{Context, Priority, Target};
use msg_dispatch::{Endpoint, HandlerError, NotificationEndpoint, NotificationResult};
use msg_server::{NotificationListener, RpcServer};
use msg_testkit::CapturedLogs;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::faults::{open, rabbitmqctl, unique};
use crate::proxy::{self, Proxy};
use crate::rabbit_url;
use crate::raw_connection;

/// How long recovery may take (it starts at once; back-off only after a failure).
const RECOVERY: Duration = Duration::from_secs(20);

/// The process's captured warnings (shared by every test of this binary: look only for
/// lines naming this test's own queues, ids or ports).
fn logs() -> CapturedLogs {
    msg_testkit::capture_logs().expect("this test binary's global subscriber is the capture")
}

/// The captured lines that contain every one of `parts`.
fn lines_with(logs: &CapturedLogs, parts: &[&str]) -> Vec<String> {
    logs.lines_containing(parts[0])
        .into_iter()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .collect()
}

/// Waits (bounded) for a captured line that contains every one of `parts`.
async fn wait_for_line(logs: &CapturedLogs, parts: &[&str], within: Duration) -> Option<String> {
    let start = Instant::now();
    loop {
        if let Some(l) = lines_with(logs, parts).into_iter().next() {
            return Some(l);
        }
        if start.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes a queue from a connection of its own, as an operator would.
async fn delete_queue(conn: &Connection, queue: &str) {
    let ch = conn.create_channel().await.unwrap();
    ch.queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let _ = ch.close(200, "OK".into()).await;
}

/// The consumers of `queue` (0 while it doesn't exist).
async fn consumers(conn: &Connection, queue: &str) -> u32 {
    let ch = conn.create_channel().await.unwrap();
    let declared = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    let _ = ch.close(200, "OK".into()).await;
    declared.map(|q| q.consumer_count()).unwrap_or(0)
}

/// Waits (bounded) until every queue exists again and has a consumer.
async fn wait_consumed(conn: &Connection, queues: &[String]) {
    let start = Instant::now();
    for queue in queues {
        loop {
            if consumers(conn, queue).await >= 1 {
                break;
            }
            if start.elapsed() > RECOVERY {
                for line in logs().lines_containing(queue) {
                    eprintln!("{line}");
                }
                panic!("queue `{queue}` has no consumer {RECOVERY:?} after the broker deleted it");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!("consumed again after {:?}", start.elapsed());
}

/// The queue whose name starts with `prefix`, by rabbitmqctl; `None` when it isn't usable.
fn queue_named_like(prefix: &str) -> Option<String> {
    rabbitmqctl(&["-q", "list_queues", "name", "--no-table-headers"])?
        .lines()
        .map(str::trim)
        .find(|n| n.starts_with(prefix))
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpc_server_whose_queues_the_broker_deletes_keeps_serving() {
    let Some(url) = rabbit_url("amqp: broker cancels an RPC server's consumers") else {
        return;
    };
    let _logs = logs();
    let topic = unique("cancel-rpc");
    let transport = open(&url).await;
    let (noted_tx, mut noted) = mpsc::unbounded_channel::<Value>();
    let noted_tx = Arc::new(Mutex::new(noted_tx));
    let server = RpcServer::builder(transport.clone(), Target::server(&topic, "s1"))
        .endpoint(
            Endpoint::new()
                .method("echo", |_c: Context, a: Value| async move {
                    Ok::<_, HandlerError>(a)
                })
                .method("note", move |_c: Context, a: Value| {
                    let tx = noted_tx.clone();
                    async move {
                        let _ = tx.lock().unwrap().send(a);
                        Ok::<_, HandlerError>(Value::Null)
                    }
                }),
        )
        .start()
        .await
        .unwrap();
    let client =
        RpcClient::new(transport.clone(), Target::topic(&topic)).timeout(Duration::from_secs(5));
    let direct = client.clone().server("s1");
    let fanout = client.clone().fanout(true);
    let _: Value = client
        .call(&Context::new(), "echo", json!({"i": 0}))
        .await
        .unwrap();

    let mut queues = vec![topic.clone(), format!("{topic}.s1")];
    match queue_named_like(&format!("{topic}_fanout_")) {
        Some(q) => queues.push(q),
        None => eprintln!("rabbitmqctl can't list queues: the fanout queue is not deleted"),
    }
    let raw = raw_connection(&url).await;
    for q in &queues {
        delete_queue(&raw, q).await;
    }
    wait_consumed(&raw, &queues).await;

    for i in 1..=3 {
        let v: Value = client
            .call(&Context::new(), "echo", json!({ "i": i }))
            .await
            .unwrap();
        assert_eq!(v, json!({ "i": i }));
        let v: Value = direct
            .call(&Context::new(), "echo", json!({ "i": i }))
            .await
            .unwrap();
        assert_eq!(v, json!({ "i": i }));
    }
    if queues.len() == 3 {
        fanout
            .cast(&Context::new(), "note", json!({"when": "after"}))
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), noted.recv())
            .await
            .expect("a fanout cast after the deletion reached the server");
        assert_eq!(got, Some(json!({"when": "after"})));
    }
    // a second deletion is recovered as well
    delete_queue(&raw, &topic).await;
    wait_consumed(&raw, std::slice::from_ref(&topic)).await;
    let v: Value = client
        .call(&Context::new(), "echo", json!({"i": 9}))
        .await
        .unwrap();
    assert_eq!(v, json!({"i": 9}));

    let _ = raw.close(200, "OK".into()).await;
    server.shutdown(Duration::from_secs(5)).await.unwrap();
    transport.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_listeners_whose_queues_the_broker_deletes_keep_receiving() {
    let Some(url) = rabbit_url("amqp: broker cancels a notification listener's consumer") else {
        return;
    };
    let _logs = logs();
    let topic = unique("cancel-notify");
    let pool = unique("cancel-pool");
    let transport = open(&url).await;
    let listener_for = |pool: Option<&str>| {
        let (tx, rx) = mpsc::unbounded_channel::<u64>();
        let builder = NotificationListener::builder(transport.clone(), [Target::topic(&topic)])
            .endpoint(NotificationEndpoint::new().on(Priority::Info, move |m| {
                let tx = tx.clone();
                async move {
                    if let Some(i) = m.payload.get("i").and_then(|v| v.as_u64()) {
                        let _ = tx.send(i);
                    }
                    NotificationResult::Handled
                }
            }));
        let builder = match pool {
            Some(p) => builder.pool(p),
            None => builder,
        };
        (builder, rx)
    };
    let (plain, mut plain_rx) = listener_for(None);
    let plain = plain.start().await.unwrap();
    let (pooled, mut pooled_rx) = listener_for(Some(&pool));
    let pooled = pooled.start().await.unwrap();
    let notifier = Notifier::new(transport.clone()).topics([topic.as_str()]);

    let queues = vec![format!("{topic}.info"), pool.clone()];
    let raw = raw_connection(&url).await;
    for q in &queues {
        delete_queue(&raw, q).await;
    }
    wait_consumed(&raw, &queues).await;

    for i in 0..5u64 {
        notifier
            .info(&Context::new(), "cancel.test", json!({ "i": i }))
            .await
            .unwrap();
    }
    for (name, rx) in [("plain", &mut plain_rx), ("pool", &mut pooled_rx)] {
        let mut got = Vec::new();
        while got.len() < 5 {
            match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                Ok(Some(i)) => got.push(i),
                _ => {
                    panic!("the {name} listener received {got:?} of 5 after its queue was deleted")
                }
            }
        }
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 2, 3, 4], "{name}");
    }

    let _ = raw.close(200, "OK".into()).await;
    plain.shutdown(Duration::from_secs(5)).await.unwrap();
    pooled.shutdown(Duration::from_secs(5)).await.unwrap();
    transport.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_logged_as_one_not_as_a_cancel() {
    let Some(url) = rabbit_url("amqp: a lost connection is not a cancel") else {
        return;
    };
    let logs = logs();
    let upstream: SocketAddr = "127.0.0.1:5672".parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    let proxied = format!(
        "rabbit://guest:guest@127.0.0.1:{}/?rabbit_retry_interval=0.2&kombu_reconnect_delay=0.1",
        proxy.port
    );
    let topic = unique("cut-notify");
    let queue = format!("{topic}.info");
    let transport = open(&proxied).await;
    let (received_tx, mut received) = mpsc::unbounded_channel::<()>();
    let listener = NotificationListener::builder(transport.clone(), [Target::topic(&topic)])
        .endpoint(NotificationEndpoint::new().on(Priority::Info, move |_m| {
            let tx = received_tx.clone();
            async move {
                let _ = tx.send(());
                NotificationResult::Handled
            }
        }))
        .start()
        .await
        .unwrap();

    proxy.cut();
    // the supervisor says the connection (through this test's proxy port) failed
    let port = format!("127.0.0.1:{}", proxy.port);
    let failed = wait_for_line(
        &logs,
        &[&port, "the RabbitMQ connection failed"],
        Duration::from_secs(10),
    )
    .await;
    assert!(failed.is_some(), "the lost connection wasn't logged as one");
    // once the listener receives again, whatever its consumers' ends logged is in
    let direct = open(&url).await;
    let notifier = Notifier::new(direct.clone()).topics([topic.as_str()]);
    let start = Instant::now();
    loop {
        notifier
            .info(&Context::new(), "cut.test", json!({}))
            .await
            .unwrap();
        if tokio::time::timeout(Duration::from_millis(500), received.recv())
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            start.elapsed() < RECOVERY,
            "the listener didn't receive again after the cut"
        );
    }
    assert_eq!(
        lines_with(&logs, &[&queue, "cancel"]),
        Vec::<String>::new(),
        "a lost connection was logged as a cancel"
    );

    direct.cleanup().await.unwrap();
    listener.shutdown(Duration::from_secs(5)).await.unwrap();
    transport.cleanup().await.unwrap();
}

/// An echo server that says on `answered` each time it handled a request.
async fn signalling_echo(
    transport: &msg_core::Transport,
    topic: &str,
) -> (RpcServer, mpsc::UnboundedReceiver<()>) {
    let (answered_tx, answered) = mpsc::unbounded_channel::<()>();
    let answered_tx = Arc::new(Mutex::new(answered_tx));
    let server = RpcServer::builder(transport.clone(), Target::server(topic, "s1"))
        .endpoint(
            Endpoint::new().method("echo", move |_c: Context, a: Value| {
                let tx = answered_tx.clone();
                async move {
                    let _ = tx.lock().unwrap().send(());
                    Ok::<_, HandlerError>(a)
                }
            }),
        )
        .start()
        .await
        .unwrap();
    (server, answered)
}

/// Sends a call raw, as a caller whose reply queue is `reply_q` (which may not exist).
async fn raw_call(raw: &Connection, topic: &str, msg_id: &str, reply_q: &str, args: Value) {
    let inner = json!({
        "method": "echo",
        "args": args,
        "_msg_id": msg_id,
        "_reply_q": reply_q,
        "_unique_id": uuid::Uuid::new_v4().simple().to_string(),
    });
    let body = json!({ "oslo.version": "2.0", "oslo.message": inner.to_string() }).to_string();
    let ch = raw.create_channel().await.unwrap();
    ch.basic_publish(
        "openstack".into(),
        topic.into(),
        BasicPublishOptions::default(),
        body.as_bytes(),
        BasicProperties::default().with_content_type("application/json".into()),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let _ = ch.close(200, "OK".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_a_reply_queue_that_never_appears_is_given_up_after_the_timeout() {
    let Some(url) = rabbit_url("amqp: a reply queue that never appears") else {
        return;
    };
    let logs = logs();
    let topic = unique("reply-never");
    let patience = Duration::from_secs(2);
    let transport = open(&format!("{url}?kombu_missing_consumer_retry_timeout=2")).await;
    let (server, mut answered) = signalling_echo(&transport, &topic).await;

    // a call from a caller whose reply queue doesn't exist (any more), sent raw
    let msg_id = uuid::Uuid::new_v4().simple().to_string();
    let reply_q = unique("reply_gone");
    let secret = unique("SECRET-BODY");
    let raw = raw_connection(&url).await;
    raw_call(&raw, &topic, &msg_id, &reply_q, json!({ "s": secret })).await;
    tokio::time::timeout(Duration::from_secs(10), answered.recv())
        .await
        .expect("the server handled the call");
    let handled = Instant::now();

    let error = wait_for_line(
        &logs,
        &[&msg_id, &reply_q, "ERROR", "given up", "bytes="],
        patience + Duration::from_secs(10),
    )
    .await;
    let waited = handled.elapsed();
    eprintln!("{} (after {waited:?})", error.clone().unwrap_or_default());
    assert!(
        error.is_some(),
        "no error names the reply given up on, its msg id and queue"
    );
    assert!(
        waited >= patience - Duration::from_millis(300),
        "the reply was given up after {waited:?}, before kombu_missing_consumer_retry_timeout"
    );
    assert_eq!(
        logs.lines_containing(&msg_id).len(),
        1,
        "one error per reply given up on, nothing else"
    );
    assert_eq!(
        logs.lines_containing(&secret),
        Vec::<String>::new(),
        "a reply's body reached the log"
    );

    // the queue is obsolete now: a later reply to it is dropped at once, not retried
    let later = uuid::Uuid::new_v4().simple().to_string();
    raw_call(&raw, &topic, &later, &reply_q, json!({})).await;
    tokio::time::timeout(Duration::from_secs(10), answered.recv())
        .await
        .expect("the server handled the second call");
    let dropped = wait_for_line(
        &logs,
        &[&later, &reply_q, "dropped"],
        Duration::from_secs(1),
    )
    .await;
    assert!(
        dropped.is_some(),
        "a later reply to an obsolete reply queue wasn't dropped at once"
    );
    assert_eq!(
        lines_with(&logs, &[&reply_q, "ERROR"]).len(),
        1,
        "only the first reply is retried and given up on"
    );

    let _ = raw.close(200, "OK".into()).await;
    server.shutdown(Duration::from_secs(5)).await.unwrap();
    transport.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_a_reply_queue_that_appears_a_second_later_is_delivered() {
    let Some(url) = rabbit_url("amqp: a reply queue that appears late") else {
        return;
    };
    let topic = unique("reply-late");
    let transport = open(&url).await;
    let (server, mut answered) = signalling_echo(&transport, &topic).await;

    let msg_id = uuid::Uuid::new_v4().simple().to_string();
    let reply_q = unique("reply_late");
    let raw = raw_connection(&url).await;
    raw_call(&raw, &topic, &msg_id, &reply_q, json!({ "late": true })).await;
    tokio::time::timeout(Duration::from_secs(10), answered.recv())
        .await
        .expect("the server handled the call");
    // the caller's reply queue comes back a second later (a caller reconnecting)
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ch = raw.create_channel().await.unwrap();
    ch.queue_declare(
        reply_q.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let start = Instant::now();
    let reply = loop {
        let got = ch
            .basic_get(
                reply_q.as_str().into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap();
        if let Some(m) = got {
            break m;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the reply never reached the reply queue that appeared late"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let body: Value = serde_json::from_slice(&reply.delivery.data).unwrap();
    let inner: Value = serde_json::from_str(body["oslo.message"].as_str().unwrap()).unwrap();
    assert_eq!(inner["_msg_id"], json!(msg_id));
    assert_eq!(inner["result"], json!({ "late": true }));

    let _ = ch
        .queue_delete(reply_q.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = raw.close(200, "OK".into()).await;
    server.shutdown(Duration::from_secs(5)).await.unwrap();
    transport.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_fail_within_their_timeout_while_rabbitmq_blocks_publishing() {
    let Some(url) = rabbit_url("amqp: flow control") else {
        return;
    };
    let logs = logs();
    let topic = unique("blocked");
    let server_side = open(&url).await;
    let server = RpcServer::builder(server_side.clone(), Target::server(&topic, "s1"))
        .endpoint(
            Endpoint::new().method("echo", |_c: Context, a: Value| async move {
                Ok::<_, HandlerError>(a)
            }),
        )
        .start()
        .await
        .unwrap();
    // the client reaches RabbitMQ through a proxy that tells it the broker blocks it (no
    // alarm on the broker other tests share)
    let upstream: SocketAddr = "127.0.0.1:5672".parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    let proxied = format!("rabbit://guest:guest@127.0.0.1:{}/", proxy.port);
    let client_side = open(&proxied).await;
    let timeout = Duration::from_secs(2);
    let client = RpcClient::new(client_side.clone(), Target::topic(&topic)).timeout(timeout);
    let _: Value = client
        .call(&Context::new(), "echo", json!({"i": 0}))
        .await
        .unwrap();

    let reason = unique("low on memory, test alarm");
    proxy.inject_to_clients(&proxy::connection_blocked(&reason));
    let warned = wait_for_line(
        &logs,
        // the publishing connection's line: the consuming one may be told first
        &[
            &reason,
            "blocks our publishing",
            "connection=\"publishing\"",
        ],
        Duration::from_secs(5),
    )
    .await;
    assert!(
        warned.is_some(),
        "no warning that RabbitMQ blocks publishing"
    );

    let start = Instant::now();
    let call = tokio::time::timeout(
        Duration::from_secs(10),
        client.call::<Value>(&Context::new(), "echo", json!({"i": 1})),
    )
    .await
    .expect("a call while blocked returns");
    let took = start.elapsed();
    let e = call.expect_err("a call while RabbitMQ blocks publishing fails");
    eprintln!("call while blocked: {e} (after {took:?})");
    assert!(
        e.to_string().contains("blocking publishers") && e.to_string().contains(&reason),
        "{e}"
    );
    assert!(took < timeout + Duration::from_secs(1), "{took:?}");

    let start = Instant::now();
    let cast = tokio::time::timeout(
        Duration::from_secs(10),
        client.cast(&Context::new(), "echo", json!({"i": 2})),
    )
    .await
    .expect("a cast while blocked returns");
    let took = start.elapsed();
    let e = cast.expect_err("a cast while RabbitMQ blocks publishing fails");
    eprintln!("cast while blocked: {e} (after {took:?})");
    assert!(e.to_string().contains("blocking publishers"), "{e}");
    assert!(took < timeout + Duration::from_secs(1), "{took:?}");

    proxy.inject_to_clients(&proxy::connection_unblocked());
    let start = Instant::now();
    loop {
        match client
            .call::<Value>(&Context::new(), "echo", json!({"i": 3}))
            .await
        {
            Ok(v) => {
                assert_eq!(v, json!({"i": 3}));
                break;
            }
            Err(e) => {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "calls fail after RabbitMQ unblocked publishing: {e}"
                );
            }
        }
    }

    server.shutdown(Duration::from_secs(5)).await.unwrap();
    client_side.cleanup().await.unwrap();
    server_side.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_keeps_consuming_while_rabbitmq_blocks_its_publishing() {
    let Some(url) = rabbit_url("amqp: consuming under flow control") else {
        return;
    };
    let logs = logs();
    let topic = unique("alarm");
    // the server reaches RabbitMQ through a proxy that plays a broker in alarm: a connection
    // that published is told it is blocked (and lapin then writes nothing more on it)
    let upstream: SocketAddr = "127.0.0.1:5672".parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    let proxied = format!(
        "rabbit://guest:guest@127.0.0.1:{}/?rabbit_qos_prefetch_count=1",
        proxy.port
    );
    let server_side = open(&proxied).await;
    let (noted_tx, mut noted) = mpsc::unbounded_channel::<Value>();
    let noted_tx = Arc::new(Mutex::new(noted_tx));
    let server = RpcServer::builder(server_side.clone(), Target::server(&topic, "s1"))
        .endpoint(
            Endpoint::new()
                .method("echo", |_c: Context, a: Value| async move {
                    Ok::<_, HandlerError>(a)
                })
                .method("note", move |_c: Context, a: Value| {
                    let tx = noted_tx.clone();
                    async move {
                        let _ = tx.lock().unwrap().send(a);
                        Ok::<_, HandlerError>(Value::Null)
                    }
                }),
        )
        .start()
        .await
        .unwrap();
    let client_side = open(&url).await;
    let client =
        RpcClient::new(client_side.clone(), Target::topic(&topic)).timeout(Duration::from_secs(5));
    // a reply: the server's publishing connection has published
    let _: Value = client
        .call(&Context::new(), "echo", json!({"i": 0}))
        .await
        .unwrap();

    let reason = unique("memory alarm played");
    proxy.alarm(&reason);
    let warned = wait_for_line(
        &logs,
        // the publishing connection's line: the consuming one may be told first
        &[
            &reason,
            "blocks our publishing",
            "connection=\"publishing\"",
        ],
        Duration::from_secs(5),
    )
    .await;
    assert!(
        warned.is_some(),
        "no warning that RabbitMQ blocks publishing"
    );

    // requests still come in and are acknowledged (one unacknowledged at a time)
    for i in 1..=5 {
        client
            .cast(&Context::new(), "note", json!({ "i": i }))
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 5 {
        match tokio::time::timeout(Duration::from_secs(10), noted.recv()).await {
            Ok(Some(v)) => got.push(v),
            _ => panic!("the server handled {got:?} of 5 casts while its publishing was blocked"),
        }
    }

    // a call while blocked: the server's reply waits for RabbitMQ no longer than the
    // caller's timeout (its request's expiration), then fails saying why
    let late = client
        .clone()
        .timeout(Duration::from_secs(2))
        .call::<Value>(&Context::new(), "echo", json!({"i": 8}))
        .await;
    assert!(late.is_err(), "{late:?}");
    let failed = wait_for_line(
        &logs,
        &[&reason, "blocking publishers", "reply"],
        Duration::from_secs(10),
    )
    .await;
    assert!(
        failed.is_some(),
        "the server's reply waited past the caller's timeout without a word"
    );

    proxy.clear_alarm();
    let start = Instant::now();
    loop {
        match client
            .call::<Value>(&Context::new(), "echo", json!({"i": 9}))
            .await
        {
            Ok(v) => {
                assert_eq!(v, json!({"i": 9}));
                break;
            }
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(15),
                "no reply after the alarm ended: {e}"
            ),
        }
    }

    server.shutdown(Duration::from_secs(5)).await.unwrap();
    server_side.cleanup().await.unwrap();
    client_side.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_body_is_decompressed_off_the_connections_io_thread() {
    let Some(url) = rabbit_url("amqp: decompression off lapin's I/O thread") else {
        return;
    };
    let bombed = unique("bombed");
    let other = unique("other");
    let transport = open(&url).await;
    let echo = || {
        Endpoint::new().method("echo", |_c: Context, a: Value| async move {
            Ok::<_, HandlerError>(a)
        })
    };
    // two servers on one transport: their consumers share a connection and its I/O thread
    let bombed_server = RpcServer::builder(transport.clone(), Target::server(&bombed, "s1"))
        .endpoint(echo())
        .start()
        .await
        .unwrap();
    let other_server = RpcServer::builder(transport.clone(), Target::server(&other, "s1"))
        .endpoint(echo())
        .start()
        .await
        .unwrap();
    let client_side = open(&url).await;
    let client =
        RpcClient::new(client_side.clone(), Target::topic(&other)).timeout(Duration::from_secs(60));
    let _: Value = client
        .call(&Context::new(), "echo", json!({"i": 0}))
        .await
        .unwrap();

    // how long one bomb takes to decompress up to the ceiling, here
    let bomb = msg_testkit::zlib_bomb(256 << 20);
    let one = {
        let bomb = bomb.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let start = Instant::now();
            let mut sink = Vec::new();
            let _ = flate2::read::ZlibDecoder::new(&bomb[..])
                .take(64 << 20)
                .read_to_end(&mut sink);
            start.elapsed()
        })
        .await
        .unwrap()
    };
    let raw = raw_connection(&url).await;
    let ch = raw.create_channel().await.unwrap();
    let mut headers = FieldTable::default();
    headers.insert(
        "compression".into(),
        lapin::types::AMQPValue::LongString("application/x-gzip".into()),
    );
    for _ in 0..4 {
        ch.basic_publish(
            "openstack".into(),
            bombed.as_str().into(),
            BasicPublishOptions::default(),
            &bomb,
            BasicProperties::default()
                .with_content_type("application/json".into())
                .with_headers(headers.clone()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    // a call to the other server while the bombs are decompressed
    let start = Instant::now();
    let v: Value = client
        .call(&Context::new(), "echo", json!({"i": 1}))
        .await
        .unwrap();
    let took = start.elapsed();
    assert_eq!(v, json!({"i": 1}));
    eprintln!("one bomb decompresses in {one:?}; a call beside four took {took:?}");
    assert!(
        took < one,
        "a call waited {took:?} beside four bombs (one decompresses in {one:?})"
    );

    let _ = raw.close(200, "OK".into()).await;
    bombed_server
        .shutdown(Duration::from_secs(10))
        .await
        .unwrap();
    other_server
        .shutdown(Duration::from_secs(10))
        .await
        .unwrap();
    client_side.cleanup().await.unwrap();
    transport.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declaration_the_broker_refuses_does_not_cost_the_connection() {
    let Some(url) = rabbit_url("amqp: a refused declaration is not a lost connection") else {
        return;
    };
    let _logs = logs();
    let topic = unique("refused");
    let exchange = unique("refused-ex");
    // the exchange exists durable; msg declares it non-durable, RabbitMQ refuses that (406,
    // closing the declaring channel) and msg takes the exchange as it is
    let raw = raw_connection(&url).await;
    let ch = raw.create_channel().await.unwrap();
    ch.exchange_declare(
        exchange.as_str().into(),
        lapin::ExchangeKind::Topic,
        lapin::options::ExchangeDeclareOptions {
            durable: true,
            ..lapin::options::ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let upstream: SocketAddr = "127.0.0.1:5672".parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    let proxied = format!(
        "rabbit://guest:guest@127.0.0.1:{}/?kombu_reconnect_delay=0.1",
        proxy.port
    );
    let transport = open(&proxied).await;
    let made = proxy.connections_made();
    let server = RpcServer::builder(
        transport.clone(),
        Target::server(&topic, "s1").with_exchange(&exchange),
    )
    .endpoint(
        Endpoint::new().method("echo", |_c: Context, a: Value| async move {
            Ok::<_, HandlerError>(a)
        }),
    )
    .start()
    .await
    .unwrap();
    let client = RpcClient::new(transport.clone(), Target::topic(&topic))
        .exchange(&exchange)
        .timeout(Duration::from_secs(5));
    let v: Value = client
        .call(&Context::new(), "echo", json!({"i": 1}))
        .await
        .unwrap();
    assert_eq!(v, json!({"i": 1}));
    // a reconnect (after 0.1 s) would open new connections through the proxy
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        assert_eq!(
            proxy.connections_made(),
            made,
            "a refused declaration made the transport reconnect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    server.shutdown(Duration::from_secs(5)).await.unwrap();
    transport.cleanup().await.unwrap();
    let _ = ch
        .exchange_delete(
            exchange.as_str().into(),
            lapin::options::ExchangeDeleteOptions::default(),
        )
        .await;
    let _ = raw.close(200, "OK".into()).await;
}
