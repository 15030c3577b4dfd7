//! Fault tests: the broker closes our connections, a frozen then cut TCP path, a first host
//! that is down. No confirmed notification may be lost; calls succeed or fail clearly; serving
//! resumes within seconds without a restart.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use msg_client::{Notifier, RpcClient};
use msg_core::{Context, DriverRegistry, Error, Priority, Retry, Target, Transport};
use msg_dispatch::{Endpoint, HandlerError, NotificationEndpoint, NotificationResult};
use msg_server::{NotificationListener, RpcServer};
use serde_json::{Value, json};

use crate::proxy::Proxy;
use crate::rabbit_url;

pub(crate) async fn open(url: &str) -> Transport {
    DriverRegistry::new()
        .with(msg_driver_amqp::factory())
        .open(url)
        .await
        .unwrap()
}

pub(crate) fn unique(base: &str) -> String {
    format!(
        "{base}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// Runs rabbitmqctl (bounded); `None` when it isn't installed or can't talk to the node.
pub(crate) fn rabbitmqctl(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("timeout")
        .arg("60")
        .arg("rabbitmqctl")
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if err.contains("already exists") {
            return Some(err);
        }
        eprintln!("rabbitmqctl {args:?} failed: {err}");
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A vhost of its own, so closing "all connections" closes only this test's.
fn fault_vhost(url: &str) -> Option<String> {
    let vhost = "msg-faults";
    rabbitmqctl(&["add_vhost", vhost])?;
    rabbitmqctl(&["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"])?;
    let base = url.trim_end_matches('/');
    let base = base.split('?').next().unwrap_or(base);
    let base = match base.rsplit_once('/') {
        Some((head, tail))
            if !head.ends_with('/') && !tail.contains(':') && !tail.contains('@') =>
        {
            head.to_string()
        }
        _ => base.to_string(),
    };
    Some(format!("{base}/{vhost}"))
}

fn require_rabbitmqctl(suite: &str) {
    assert!(
        std::env::var("MSG_REQUIRE_BROKERS").as_deref() != Ok("1"),
        "{suite}: rabbitmqctl is needed and didn't work"
    );
    eprintln!("SKIPPED: {suite}: rabbitmqctl is not usable here");
}

/// Counts deliveries by index: what a listener saw.
#[derive(Default, Clone)]
struct Seen(Arc<Mutex<HashMap<u64, u32>>>);

impl Seen {
    fn record(&self, i: u64) {
        *self.0.lock().unwrap().entry(i).or_insert(0) += 1;
    }
    fn unique(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn lost_and_duplicates(&self, confirmed: &BTreeSet<u64>) -> (usize, usize) {
        let seen = self.0.lock().unwrap();
        let lost = confirmed.iter().filter(|i| !seen.contains_key(i)).count();
        let dups = seen.values().map(|n| (*n as usize).saturating_sub(1)).sum();
        (lost, dups)
    }
}

async fn counting_listener(
    transport: &Transport,
    topic: &str,
    seen: &Seen,
) -> NotificationListener {
    let seen = seen.clone();
    NotificationListener::builder(transport.clone(), [Target::topic(topic)])
        .endpoint(NotificationEndpoint::new().on(Priority::Info, move |m| {
            let seen = seen.clone();
            async move {
                if let Some(i) = m.payload.get("i").and_then(|v| v.as_u64()) {
                    seen.record(i);
                }
                NotificationResult::Handled
            }
        }))
        .start()
        .await
        .unwrap()
}

/// Sends `count` notifications one after the other; records each confirmed index; calls
/// `at(i)` before sending index `i` (to inject faults mid-stream).
async fn notify_stream(
    notifier: &Notifier,
    count: u64,
    mut at: impl FnMut(u64),
) -> (BTreeSet<u64>, usize) {
    let mut confirmed = BTreeSet::new();
    let mut failed = 0;
    for i in 0..count {
        at(i);
        match notifier
            .info(&Context::new(), "fault.test", json!({ "i": i }))
            .await
        {
            Ok(()) => {
                confirmed.insert(i);
            }
            Err(e) => {
                failed += 1;
                eprintln!("notification {i} not confirmed: {e}");
            }
        }
    }
    (confirmed, failed)
}

async fn wait_all_seen(seen: &Seen, confirmed: &BTreeSet<u64>, within: Duration) {
    let start = Instant::now();
    while start.elapsed() < within {
        if seen.lost_and_duplicates(confirmed).0 == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn echo_server(transport: &Transport, topic: &str) -> RpcServer {
    RpcServer::builder(transport.clone(), Target::server(topic, "fault-server"))
        .endpoint(
            Endpoint::new().method("echo", |_c: Context, a: Value| async move {
                Ok::<_, HandlerError>(a)
            }),
        )
        .start()
        .await
        .unwrap()
}

/// Calls in a loop while `faulty` runs: every call succeeds or fails with a clear error;
/// after the fault, calls succeed again within `recovery`.
async fn calls_survive(client: &RpcClient, during: Duration, recovery: Duration) {
    let start = Instant::now();
    let (mut ok, mut failed) = (0, 0);
    while start.elapsed() < during {
        match client
            .call::<Value>(&Context::new(), "echo", json!({"x": 1}))
            .await
        {
            Ok(v) => {
                assert_eq!(v, json!({"x": 1}));
                ok += 1;
            }
            Err(
                e @ (Error::Timeout { .. }
                | Error::Unavailable { .. }
                | Error::Refused { .. }
                | Error::ConnectionLost { .. }
                | Error::Closed(_)
                | Error::Driver { .. }),
            ) => {
                failed += 1;
                eprintln!("call failed clearly: {e}");
            }
            Err(other) => panic!("a call failed with an unexpected error: {other:?}"),
        }
    }
    let resumed = Instant::now();
    loop {
        match client
            .call::<Value>(&Context::new(), "echo", json!({"x": 2}))
            .await
        {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    resumed.elapsed() < recovery,
                    "serving didn't resume within {recovery:?}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    eprintln!(
        "calls during the fault: {ok} ok, {failed} failed clearly; resumed after {:?}",
        resumed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_closing_our_connections_loses_no_confirmed_notification() {
    let Some(url) = rabbit_url("amqp fault: close_all_connections") else {
        return;
    };
    let Some(url) = fault_vhost(&url) else {
        return require_rabbitmqctl("amqp fault: close_all_connections");
    };
    let url = format!(
        "{url}?heartbeat_timeout_threshold=5&rabbit_retry_interval=0.2&rabbit_retry_backoff=0.2&kombu_reconnect_delay=0.1"
    );
    let topic = unique("fault-close");
    let server_side = open(&url).await;
    let client_side = open(&url).await;
    let seen = Seen::default();
    let listener = counting_listener(&server_side, &topic, &seen).await;
    let rpc_topic = unique("fault-close-rpc");
    let server = echo_server(&server_side, &rpc_topic).await;
    let client = RpcClient::new(client_side.clone(), Target::topic(&rpc_topic))
        .timeout(Duration::from_secs(3));
    let notifier = Notifier::new(client_side.clone())
        .topics([topic.as_str()])
        .retry(Retry::Forever);

    let calls = {
        let client = client.clone();
        tokio::spawn(async move {
            calls_survive(&client, Duration::from_secs(6), Duration::from_secs(15)).await;
        })
    };
    let (confirmed, failed) = notify_stream(&notifier, 1500, |i| {
        if i == 500 || i == 1000 {
            let out = rabbitmqctl(&[
                "close_all_connections",
                "--vhost",
                "msg-faults",
                "msg fault test",
            ]);
            assert!(out.is_some(), "close_all_connections failed");
        }
    })
    .await;
    calls.await.unwrap();
    wait_all_seen(&seen, &confirmed, Duration::from_secs(30)).await;
    let (lost, dups) = seen.lost_and_duplicates(&confirmed);
    eprintln!(
        "close_all_connections: sent 1500, confirmed {}, failed {failed}, received {} distinct; lost {lost}, duplicates {dups}",
        confirmed.len(),
        seen.unique()
    );
    assert_eq!(lost, 0, "confirmed notifications were lost");
    listener.shutdown(Duration::from_secs(5)).await.unwrap();
    server.shutdown(Duration::from_secs(5)).await.unwrap();
    client_side.cleanup().await.unwrap();
    server_side.cleanup().await.unwrap();
}

/// Every connection freezes (bytes stop, sockets stay open: only heartbeats can tell), then is
/// cut, while a notifier retrying forever streams 1200 notifications and calls go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_then_cut_connection_loses_no_confirmed_notification() {
    // bounded: a send that waits forever is the failure this test exists to catch
    tokio::time::timeout(Duration::from_secs(240), frozen_then_cut())
        .await
        .expect("the frozen-then-cut run did not finish within 240 s");
}

async fn frozen_then_cut() {
    let Some(url) = rabbit_url("amqp fault: frozen and cut proxy") else {
        return;
    };
    let upstream: SocketAddr = "127.0.0.1:5672".parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    let proxied = format!(
        "rabbit://guest:guest@127.0.0.1:{}/?heartbeat_timeout_threshold=2&connection_timeout=3&rabbit_retry_interval=0.2&rabbit_retry_backoff=0.2&kombu_reconnect_delay=0.1",
        proxy.port
    );
    let _ = url;
    let topic = unique("fault-freeze");
    let server_side = open(&proxied).await;
    let client_side = open(&proxied).await;
    let seen = Seen::default();
    let listener = counting_listener(&server_side, &topic, &seen).await;
    let rpc_topic = unique("fault-freeze-rpc");
    let server = echo_server(&server_side, &rpc_topic).await;
    let client = RpcClient::new(client_side.clone(), Target::topic(&rpc_topic))
        .timeout(Duration::from_secs(3));
    let notifier = Notifier::new(client_side.clone())
        .topics([topic.as_str()])
        .retry(Retry::Forever);

    let proxy = Arc::new(proxy);
    let calls = {
        let client = client.clone();
        tokio::spawn(async move {
            calls_survive(&client, Duration::from_secs(8), Duration::from_secs(20)).await;
        })
    };
    let p = proxy.clone();
    let start = Instant::now();
    let (confirmed, failed) = notify_stream(&notifier, 1200, move |i| {
        if i == 300 {
            eprintln!(
                "freezing {} connections at notification {i}",
                p.open_connections()
            );
            p.freeze();
        }
        if i == 800 {
            eprintln!(
                "cutting {} connections at notification {i}",
                p.open_connections()
            );
            p.cut();
        }
    })
    .await;
    eprintln!("the stream took {:?}", start.elapsed());
    calls.await.unwrap();
    wait_all_seen(&seen, &confirmed, Duration::from_secs(30)).await;
    let (lost, dups) = seen.lost_and_duplicates(&confirmed);
    eprintln!(
        "frozen then cut: sent 1200, confirmed {}, failed {failed}, received {} distinct; lost {lost}, duplicates {dups}",
        confirmed.len(),
        seen.unique()
    );
    assert_eq!(lost, 0, "confirmed notifications were lost");
    assert_eq!(
        failed, 0,
        "with retry forever every notification must end confirmed"
    );
    listener.shutdown(Duration::from_secs(5)).await.unwrap();
    server.shutdown(Duration::from_secs(5)).await.unwrap();
    client_side.cleanup().await.unwrap();
    server_side.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_url_whose_first_host_is_down_connects_to_the_second() {
    let Some(_) = rabbit_url("amqp fault: first host down") else {
        return;
    };
    // port 1 on loopback: nothing listens there
    let url = "rabbit://guest:guest@127.0.0.1:1,guest:guest@127.0.0.1:5672/?connection_timeout=2";
    let transport = open(url).await;
    let topic = unique("failover");
    let seen = Seen::default();
    let listener = counting_listener(&transport, &topic, &seen).await;
    Notifier::new(transport.clone())
        .topics([topic.as_str()])
        .info(&Context::new(), "e", json!({"i": 1}))
        .await
        .unwrap();
    wait_all_seen(&seen, &BTreeSet::from([1]), Duration::from_secs(10)).await;
    assert_eq!(seen.unique(), 1);
    listener.shutdown(Duration::from_secs(5)).await.unwrap();
    transport.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_broker_that_is_down_is_a_clear_error() {
    let err = DriverRegistry::new()
        .with(msg_driver_amqp::factory())
        .open("rabbit://guest:s3cret@127.0.0.1:1/?connection_timeout=2")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(!text.contains("s3cret"), "the password leaked: {text}");
}

#[tokio::test]
async fn a_port_that_is_not_amqp_is_a_clear_error() {
    // a server that answers as an HTTP server does to AMQP's protocol header
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut header = [0u8; 8];
            let _ = socket.read_exact(&mut header).await;
            let _ = socket
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let err = DriverRegistry::new()
        .with(msg_driver_amqp::factory())
        .open(&format!(
            "rabbit://guest:s3cret@127.0.0.1:{port}/?connection_timeout=5"
        ))
        .await
        .unwrap_err();
    let text = err.to_string();
    eprintln!("{text}");
    assert!(
        text.contains(&format!("not an AMQP server at 127.0.0.1:{port}?")),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "the password leaked: {text}");
    server.abort();
}

#[tokio::test]
async fn a_refused_login_is_a_clear_error_without_the_password() {
    let Some(_) = rabbit_url("amqp: refused login") else {
        return;
    };
    let err = DriverRegistry::new()
        .with(msg_driver_amqp::factory())
        .open("rabbit://guest:not-the-Password-42@127.0.0.1:5672/?connection_timeout=5")
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains("not-the-Password-42"),
        "the password leaked: {text}"
    );
    assert!(text.contains("127.0.0.1:5672"), "{text}");
}

/// A publish waits for its confirm on the publishing connection, which has gone silent (frozen:
/// no heartbeat can tell within the test, the threshold is 60 s), when the consuming
/// connection of the same pair fails. The supervisor gives the pair up and closes it; the
/// close never completes on the silent connection, and lapin resolves nothing more there. The
/// publish must not wait for that confirm forever: it goes again on the next pair and is
/// confirmed (it hung here before the fix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_waiting_on_a_connection_given_up_goes_again_on_the_next() {
    let Some(url) = rabbit_url("amqp fault: publish on a given-up connection") else {
        return;
    };
    let upstream: SocketAddr = "127.0.0.1:5672".parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    let proxied = format!(
        "rabbit://guest:guest@127.0.0.1:{}/?heartbeat_timeout_threshold=60&connection_timeout=3&kombu_reconnect_delay=0.1",
        proxy.port
    );
    let topic = unique("fault-given-up");
    // the listener does not go through the proxy
    let direct = open(&url).await;
    let seen = Seen::default();
    let listener = counting_listener(&direct, &topic, &seen).await;
    let sending = open(&proxied).await;
    // the sender's pair: the consuming connection first, then the publishing one
    assert_eq!(proxy.connections_made(), 2);
    let notifier = Notifier::new(sending.clone())
        .topics([topic.as_str()])
        .retry(Retry::Forever);
    notifier
        .info(&Context::new(), "fault.test", json!({ "i": 0 }))
        .await
        .unwrap();
    proxy.freeze();
    let waiting = {
        let notifier = notifier.clone();
        tokio::spawn(async move {
            notifier
                .info(&Context::new(), "fault.test", json!({ "i": 1 }))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a frozen connection confirmed a publish"
    );
    proxy.cut_one(0);
    let sent = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the publish still waits for a confirm on the connection given up")
        .unwrap();
    sent.unwrap();
    let confirmed: BTreeSet<u64> = [0, 1].into();
    wait_all_seen(&seen, &confirmed, Duration::from_secs(10)).await;
    assert_eq!(
        seen.lost_and_duplicates(&confirmed).0,
        0,
        "a confirmed notification was lost"
    );
    listener.shutdown(Duration::from_secs(5)).await.unwrap();
    sending.cleanup().await.unwrap();
    direct.cleanup().await.unwrap();
}
