//! Python oslo.messaging 18.3.1 and msg sharing quorum queues on the RabbitMQ cluster, both
//! ways (`rabbit_quorum_queue=true` on both sides; oslo reads the option from the URL's
//! query as msg does): a Python RPC server beside a msg one on one topic, called by msg and
//! by Python; notifications from Python to a msg listener and from msg to a Python listener.
//! The peers are the AMQP driver's interop scripts, run through `msg_testkit::PythonPeer`
//! (`MSG_PYTHON`; without it a SKIPPED line, with `MSG_REQUIRE_BROKERS=1` a failure).

use std::time::{Duration, Instant};

use msg_client::{Notifier, RpcClient};
use msg_cluster_tests::{RabbitCluster, with_option};
use msg_core::{Context, DriverRegistry, Priority, Target, Transport};
use msg_dispatch::{Endpoint, HandlerError, NotificationEndpoint, NotificationResult};
use msg_server::{NotificationListener, RpcServer};
use msg_testkit::{PythonEnv, PythonPeer};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::fault::unique;

/// The AMQP driver's Python peers.
const PEERS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../msg-driver-amqp/tests/interop"
);
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
const ARRIVE_WITHIN: Duration = Duration::from_secs(30);
/// Notifications sent each way.
const NOTIFICATIONS: usize = 20;

/// The cluster and the Python peers' environment, on the cluster URL with quorum queues.
fn setup(suite: &str) -> Option<(RabbitCluster, PythonEnv)> {
    let _ = msg_testkit::capture_logs();
    let cluster = RabbitCluster::from_env(suite)?;
    let url = with_option(cluster.url(), "rabbit_quorum_queue=true");
    let env = PythonEnv::from_env(suite, &url, PEERS)?;
    Some((cluster, env))
}

async fn open(url: &str) -> Transport {
    DriverRegistry::new()
        .with(msg_driver_amqp::factory())
        .open(url)
        .await
        .unwrap()
}

/// Asserts that `queue` is a quorum queue with a leader (`rabbitmq-queues quorum_status`
/// answers only for quorum queues).
async fn assert_quorum(cluster: &RabbitCluster, queue: &str) {
    let leader = cluster
        .quorum_leader(queue)
        .await
        .unwrap_or_else(|e| panic!("`{queue}` is not a quorum queue with a leader: {e:#}"));
    eprintln!("quorum queue {queue} is led by {}", leader.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_msg_servers_share_quorum_queues_and_call_each_other() {
    let Some((cluster, env)) = setup("rabbit cluster: python RPC interop") else {
        return;
    };
    let topic = unique("cluster-py-rpc");
    let mut py_server = PythonPeer::spawn(
        &env,
        "py_rpc_server.py",
        &["--url", &env.url, "--topic", &topic, "--server", "py-1"],
    );
    py_server.ready().await;

    // a msg server on the same topic: it declares the queues Python declared (RabbitMQ
    // refuses a declaration whose arguments differ, 406)
    let t = open(&env.url).await;
    let rust = RpcServer::builder(t.clone(), Target::server(&topic, "rust-1"))
        .endpoint(
            Endpoint::new()
                .method("echo", |_c: Context, a: Value| async move {
                    Ok::<_, HandlerError>(a["value"].clone())
                })
                .method("whoami", |_c: Context, _: Value| async move {
                    Ok::<_, HandlerError>("rust-1")
                }),
        )
        .start()
        .await
        .unwrap_or_else(|e| panic!("msg can't share python's quorum queues: {e}\n{py_server}"));
    for queue in [
        topic.clone(),
        format!("{topic}.py-1"),
        format!("{topic}.rust-1"),
    ] {
        assert_quorum(&cluster, &queue).await;
    }

    // msg calls the Python server (directed) and the topic (either server answers)
    let client = RpcClient::new(t.clone(), Target::topic(&topic)).timeout(CALL_TIMEOUT);
    let who: String = client
        .prepare()
        .server("py-1")
        .call(&Context::new(), "whoami", json!({}))
        .await
        .unwrap_or_else(|e| panic!("msg calling python: {e}\n{py_server}"));
    assert_eq!(who, "py-1");
    for i in 0..5 {
        let got: Value = client
            .call(&Context::new(), "echo", json!({"value": {"i": i}}))
            .await
            .unwrap_or_else(|e| panic!("msg calling the shared topic: {e}\n{py_server}"));
        assert_eq!(got, json!({"i": i}));
    }

    // Python calls the msg server (directed) and the topic
    let ops = json!([
        {"op": "call", "method": "whoami", "server": "rust-1"},
        {"op": "call", "method": "echo", "args": {"value": "from python"}, "server": "rust-1"},
        {"op": "call", "method": "echo", "args": {"value": 7}},
    ])
    .to_string();
    let mut py_client = PythonPeer::spawn(
        &env,
        "py_rpc_client.py",
        &[
            "--url",
            &env.url,
            "--topic",
            &topic,
            "--timeout",
            "20",
            &ops,
        ],
    );
    let results = py_client.client_results(3).await;
    assert_eq!(results[0]["ok"], json!("rust-1"), "{py_client}");
    assert_eq!(results[1]["ok"], json!("from python"), "{py_client}");
    assert_eq!(results[2]["ok"], json!(7), "{py_client}");

    py_client.stop().await;
    py_server.stop().await;
    rust.shutdown(Duration::from_secs(5)).await.unwrap();
    t.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_go_both_ways_through_a_quorum_queue() {
    let Some((cluster, env)) = setup("rabbit cluster: python notification interop") else {
        return;
    };
    let topic = unique("cluster-py-notify");

    // Python notifies, msg listens
    let t = open(&env.url).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener = NotificationListener::builder(t.clone(), [Target::topic(&topic)])
        .endpoint(NotificationEndpoint::new().on(Priority::Info, move |m| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(m.payload);
                NotificationResult::Handled
            }
        }))
        .start()
        .await
        .unwrap();
    assert_quorum(&cluster, &format!("{topic}.info")).await;
    let count = NOTIFICATIONS.to_string();
    let mut py_notifier = PythonPeer::spawn(
        &env,
        "py_notifier.py",
        &["--url", &env.url, "--topic", &topic, "--count", &count],
    );
    py_notifier.event("done", Duration::from_secs(90)).await;
    let deadline = Instant::now() + ARRIVE_WITHIN;
    let mut seen = Vec::new();
    while seen.len() < NOTIFICATIONS {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(payload)) => seen.push(
                payload
                    .get("i")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(u64::MAX),
            ),
            _ => panic!(
                "msg received {} of {NOTIFICATIONS} python notifications: {seen:?}\n{py_notifier}",
                seen.len()
            ),
        }
    }
    seen.sort_unstable();
    let expected: Vec<u64> = (0..NOTIFICATIONS as u64).collect();
    assert_eq!(seen, expected, "each python notification once");
    py_notifier.stop().await;
    listener.shutdown(Duration::from_secs(5)).await.unwrap();

    // msg notifies, Python listens on the same quorum queue
    let mut py_listener = PythonPeer::spawn(
        &env,
        "py_listener.py",
        &["--url", &env.url, "--topic", &topic, "--count", &count],
    );
    py_listener.ready().await;
    let notifier = Notifier::new(t.clone())
        .topics([topic.as_str()])
        .publisher_id("msg.cluster");
    for i in 0..NOTIFICATIONS {
        notifier
            .info(&Context::new(), "cluster.interop", json!({"i": i}))
            .await
            .unwrap();
    }
    let got = py_listener
        .notifications(NOTIFICATIONS, ARRIVE_WITHIN)
        .await;
    let mut seen: Vec<u64> = got
        .iter()
        .map(|n| n["payload"]["i"].as_u64().unwrap_or(u64::MAX))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, expected, "each msg notification once\n{py_listener}");
    assert!(
        got.iter()
            .all(|n| n["publisher_id"] == "msg.cluster" && n["priority"] == "info"),
        "{got:?}"
    );
    py_listener.stop().await;
    assert_quorum(&cluster, &format!("{topic}.info")).await;
    t.cleanup().await.unwrap();
}

/// oslo's options for fanout through a stream (it requires the last two along).
/// The value of the casts that find out whether a Python server consumes yet.
const PROBE: &str = "probe";

const STREAM_FANOUT: &str =
    "rabbit_stream_fanout=true&rabbit_qos_prefetch_count=10&rabbit_transient_quorum_queue=true";

/// `rabbit_stream_fanout` on the cluster: a msg server and a Python server share the topic's
/// one stream (`<topic>_fanout`, replicated over the nodes), and a fanout cast from either
/// side reaches both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_msg_servers_share_a_fanout_stream() {
    let Some((_cluster, quorum_env)) = setup("rabbit cluster: python stream fanout interop") else {
        return;
    };
    let env = PythonEnv {
        url: with_option(&quorum_env.url, STREAM_FANOUT),
        ..quorum_env
    };
    let topic = unique("cluster-py-stream");
    let t = open(&env.url).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let rust = RpcServer::builder(t.clone(), Target::server(&topic, "rust-1"))
        .endpoint(
            Endpoint::new().method("record", move |_c: Context, a: Value| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(a["value"].as_str().unwrap_or_default().to_string());
                    Ok::<_, HandlerError>(Value::Null)
                }
            }),
        )
        .start()
        .await
        .unwrap();
    let mut py_server = PythonPeer::spawn(
        &env,
        "py_rpc_server.py",
        &["--url", &env.url, "--topic", &topic, "--server", "py-1"],
    );
    py_server.ready().await;
    // oslo attaches the stream consumer (at `last`) after its `ready` line
    let fanout = RpcClient::new(t.clone(), Target::topic(&topic))
        .timeout(CALL_TIMEOUT)
        .prepare()
        .fanout(true);
    py_server
        .await_consuming("record", ARRIVE_WITHIN, async || {
            fanout
                .cast(&Context::new(), "record", json!({"value": PROBE}))
                .await
                .unwrap();
        })
        .await;

    let ops = json!([
        {"op": "cast", "method": "record", "args": {"value": "from-python"}, "fanout": true},
    ])
    .to_string();
    let mut py_client = PythonPeer::spawn(
        &env,
        "py_rpc_client.py",
        &["--url", &env.url, "--topic", &topic, &ops],
    );
    fanout
        .cast(&Context::new(), "record", json!({"value": "from-rust"}))
        .await
        .unwrap();
    let r = py_client.client_results(1).await;
    assert_eq!(r[0]["ok"], Value::Null, "{py_client}");

    let deadline = Instant::now() + ARRIVE_WITHIN;
    let mut at_rust = std::collections::BTreeSet::new();
    while at_rust.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(v)) if v == PROBE => {}
            Ok(Some(v)) => {
                at_rust.insert(v);
            }
            _ => panic!("the msg server got {at_rust:?} of both fanout casts\n{py_server}"),
        }
    }
    // the probes' records may come first
    let at_python = py_server
        .distinct_values("record", 2, PROBE, ARRIVE_WITHIN)
        .await;
    let both: std::collections::BTreeSet<String> =
        ["from-python", "from-rust"].map(String::from).into();
    assert_eq!(at_rust, both);
    assert_eq!(at_python, both, "{py_server}");

    py_client.stop().await;
    py_server.stop().await;
    rust.shutdown(Duration::from_secs(5)).await.unwrap();
    t.cleanup().await.unwrap();
}
