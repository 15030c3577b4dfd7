//! Interop with the real Python oslo.messaging 18.3.1 on one RabbitMQ, both ways (issue #5,
//! item 5; the topology is documented in `docs/wire-format.md`).
//!
//! The Python peers are the scripts in `tests/interop/`, run with `MSG_PYTHON` (the venv
//! `cargo xtask test` makes under `target/interop-venv` because that directory exists).
//! Without `MSG_PYTHON` or a broker a test prints a SKIPPED line and passes; with
//! `MSG_REQUIRE_BROKERS=1` it fails instead. Every test uses names of its own, so they run
//! in parallel; every Python peer is bounded (`--lifetime`, and it exits when its stdin
//! closes) and is killed when its handle drops.
//!
//! Two tests need no Python: the live wire of our driver against the golden vectors the
//! Python peer recorded (`rust_wire_matches_python_vectors`), and our topology against the
//! one `rabbitmqctl` listed for Python (`rust_topology_matches_python_topology`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use msg_client::{Notifier, RpcClient};
use msg_core::{Context, DriverRegistry, Error, Priority, Target, Transport, TransportUrl};
use msg_dispatch::{Endpoint, Handled, HandlerError, NotificationEndpoint, NotificationMessage};
use msg_server::{NotificationListener, RpcServer};
use msg_testkit::{PythonEnv, PythonPeer};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::{rabbit_url, raw_connection};

/// Where the Python peers live.
const PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop");
/// What the Python peer put on the broker (a copy of the steering repo's wire vectors).
const VECTORS: &str = include_str!("../interop/python-oslo-18.3.1.jsonl");
/// What `rabbitmqctl` listed while Python peers ran (same source).
const PYTHON_TOPOLOGY: &str = include_str!("../interop/python-oslo-18.3.1-topology.txt");
/// How long anything that has been sent may take to arrive.
const ARRIVE_WITHIN: Duration = Duration::from_secs(30);
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------

type Interop = PythonEnv;
type Peer = PythonPeer;

/// The broker URL and the Python with oslo.messaging, or `None` after a SKIPPED line.
pub(crate) fn interop(suite: &str) -> Option<Interop> {
    let url = rabbit_url(suite)?;
    PythonEnv::from_env(suite, &url, PEERS)
}

/// A name no other test (or run) uses.
pub(crate) fn unique(what: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("interop-{what}-{}", &id[..12])
}

pub(crate) async fn transport(url: &str) -> Transport {
    DriverRegistry::new()
        .with(msg_driver_amqp::factory())
        .open(url)
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Python peers
// ---------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------
// The Rust side: RPC endpoints as the Python server's
// ---------------------------------------------------------------------------------------

/// An error of our own: Python sees class `QuotaExceeded`, module `it.interop`.
#[derive(Debug)]
struct QuotaExceeded(String);

impl fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QuotaExceeded {}

#[derive(Deserialize)]
struct ValueArg {
    value: Value,
}

#[derive(Deserialize)]
struct AddArgs {
    a: i64,
    b: i64,
}

#[derive(Deserialize)]
struct MessageArg {
    message: String,
}

#[derive(Deserialize)]
struct SecondsArg {
    seconds: f64,
}

type Records = mpsc::UnboundedSender<(Context, Value)>;

/// The Rust twin of `py_rpc_server.py`: a default endpoint (echo, add, fail with our own
/// error, value_error, context, whoami, sleep, record) and `whoami` in namespace `calc` at
/// version 1.2.
fn rust_endpoints(server: &str, records: Records) -> Vec<Endpoint> {
    let name = server.to_string();
    let base = Endpoint::new()
        .method("echo", |_c: Context, a: ValueArg| async move {
            Ok::<_, HandlerError>(a.value)
        })
        .method("add", |_c: Context, a: AddArgs| async move {
            Ok::<_, HandlerError>(a.a + a.b)
        })
        .method("fail", |_c: Context, m: MessageArg| async move {
            Err::<(), _>(QuotaExceeded(m.message))
        })
        .method("value_error", |_c: Context, m: MessageArg| async move {
            Err::<(), _>(HandlerError::with_class(
                "ValueError",
                "builtins",
                m.message,
            ))
        })
        .method("context", |c: Context, _: ()| async move {
            Ok::<_, HandlerError>(c)
        })
        .method("whoami", {
            let name = name.clone();
            move |_c: Context, _: ()| {
                let name = name.clone();
                async move { Ok::<_, HandlerError>(name) }
            }
        })
        .method("sleep", |_c: Context, s: SecondsArg| async move {
            tokio::time::sleep(Duration::from_secs_f64(s.seconds.clamp(0.0, 30.0))).await;
            Ok::<_, HandlerError>(s.seconds)
        })
        .method("record", move |c: Context, v: ValueArg| {
            let records = records.clone();
            async move {
                let _ = records.send((c, v.value));
                Ok::<_, HandlerError>(())
            }
        });
    let calc = Endpoint::new()
        .namespace("calc")
        .legacy_namespaces([Some("calculator")])
        .version("1.2")
        .method("whoami", move |_c: Context, _: ()| {
            let info = json!({"server": name, "namespace": "calc", "version": "1.2"});
            async move { Ok::<_, HandlerError>(info) }
        });
    vec![base, calc]
}

/// A call's outcome and how long it took.
async fn timed<F: std::future::Future<Output = Result<f64, Error>>>(
    call: F,
) -> (Result<f64, Error>, Duration) {
    let start = Instant::now();
    let r = call.await;
    (r, start.elapsed())
}

async fn rust_server(url: &str, topic: &str, server: &str, records: Records) -> RpcServer {
    RpcServer::builder(transport(url).await, Target::server(topic, server))
        .endpoints(rust_endpoints(server, records))
        .ping(true)
        .start()
        .await
        .unwrap()
}

/// A listener endpoint that hands every notification (any priority) to a channel.
fn forward_all(tx: mpsc::UnboundedSender<NotificationMessage>) -> NotificationEndpoint {
    NotificationEndpoint::new().on_all(move |m| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(m);
            Handled
        }
    })
}

async fn recv_n<T>(rx: &mut mpsc::UnboundedReceiver<T>, n: usize, what: &str) -> Vec<T> {
    let deadline = Instant::now() + ARRIVE_WITHIN;
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(v)) => got.push(v),
            _ => panic!("{what}: {} of {n} within {ARRIVE_WITHIN:?}", got.len()),
        }
    }
    got
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]`, as Python's `str(datetime)`.
fn is_oslo_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |from: usize, to: usize| (from..to).all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    let base = digits(0, 4)
        && b.get(4) == Some(&b'-')
        && digits(5, 7)
        && b.get(7) == Some(&b'-')
        && digits(8, 10)
        && b.get(10) == Some(&b' ')
        && digits(11, 13)
        && b.get(13) == Some(&b':')
        && digits(14, 16)
        && b.get(16) == Some(&b':')
        && digits(17, 19);
    base && (b.len() == 19 || (b.len() == 26 && b[19] == b'.' && digits(20, 26)))
}

/// A uuid4 with dashes (a notification's `message_id`).
fn is_dashed_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}

/// A `reply_<uuid4 hex>` queue name.
fn is_reply_queue(s: &str) -> bool {
    s.strip_prefix("reply_")
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|c| c.is_ascii_hexdigit()))
}

// ---------------------------------------------------------------------------------------
// Python client -> Rust server
// ---------------------------------------------------------------------------------------

/// A Python RPCClient calls a Rust RpcServer: results, our error class and message in
/// Python's RemoteError, Python rebuilding builtins/dispatcher exceptions from our failures,
/// the context, namespace/version, server-directed calls, Rust call-monitor heartbeats
/// keeping a Python call alive, a cast, and oslo's ping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_calls_rust_server() {
    let Some(env) = interop("interop: python client -> rust server") else {
        return;
    };
    let topic = unique("py2rs");
    let (records_tx, mut records) = mpsc::unbounded_channel();
    let server = rust_server(&env.url, &topic, "rust-1", records_tx).await;

    let payload = json!({"k": "v", "n": 1, "list": [1, 2.5, null, "ü"], "nested": {"t": true}});
    let ops = json!([
        {"method": "echo", "args": {"value": payload}},
        {"method": "add", "args": {"a": 2, "b": 3}},
        {"method": "fail", "args": {"message": "over quota"}},
        {"method": "value_error", "args": {"message": "bad value"}},
        {"method": "context", "context": {"user": "alice", "request_id": "req-py-1"}},
        {"method": "whoami", "namespace": "calc", "version": "1.1"},
        {"method": "whoami", "namespace": "calc", "version": "1.3"},
        {"method": "nope"},
        {"method": "whoami", "server": "rust-1"},
        {"method": "sleep", "args": {"seconds": 2.5}, "timeout": 20, "call_monitor_timeout": 2},
        {"op": "cast", "method": "record", "args": {"value": "cast-1"}, "context": {"user": "bob"}},
        {"method": "oslo_rpc_server_ping"},
        // oslo parity: an endpoint's legacy namespace, and a three-part version
        {"method": "whoami", "namespace": "calculator", "version": "1.1"},
        {"method": "whoami", "namespace": "calc", "version": "1.1.7"},
        {"method": "whoami", "namespace": "calc", "version": "1.2.1"},
    ]);
    let mut client = Peer::spawn(
        &env,
        "py_rpc_client.py",
        &[
            "--topic",
            &topic,
            "--timeout",
            "20",
            "--allowed-exmods",
            "oslo_messaging.rpc.dispatcher",
            &ops.to_string(),
        ],
    );
    let r = PythonPeer::client_results(&mut client, 15).await;
    let ctx = format!("{client}");

    assert_eq!(r[0]["ok"], payload, "echo: {ctx}");
    assert_eq!(r[1]["ok"], 5, "add: {ctx}");
    // our own error type: a RemoteError with our class and message
    let e = &r[2]["error"];
    assert_eq!(e["type"], "RemoteError", "fail: {ctx}");
    assert_eq!(e["exc_type"], "QuotaExceeded", "fail: {ctx}");
    assert_eq!(e["value"], "over quota", "fail: {ctx}");
    // a builtins class is rebuilt by Python as the real exception
    let e = &r[3]["error"];
    assert_eq!(e["type"], "ValueError", "value_error: {ctx}");
    assert_eq!(e["str"].as_str().map(str::trim), Some("bad value"), "{ctx}");
    // the context Python packed as _context_<key>
    assert_eq!(r[4]["ok"]["user"], "alice", "context: {ctx}");
    assert_eq!(r[4]["ok"]["request_id"], "req-py-1", "context: {ctx}");
    // namespace and version: 1.1 is served by calc 1.2, 1.3 is not
    assert_eq!(
        r[5]["ok"],
        json!({"server": "rust-1", "namespace": "calc", "version": "1.2"}),
        "{ctx}"
    );
    // with oslo_messaging.rpc.dispatcher allowed, Python rebuilds our dispatcher failures
    // with their attributes
    let e = &r[6]["error"];
    assert!(
        e["type"]
            .as_str()
            .unwrap_or("")
            .starts_with("UnsupportedVersion"),
        "{ctx}"
    );
    assert_eq!(e["version"], "1.3", "{ctx}");
    assert_eq!(e["method"], "whoami", "{ctx}");
    let e = &r[7]["error"];
    assert!(
        e["type"].as_str().unwrap_or("").starts_with("NoSuchMethod"),
        "{ctx}"
    );
    assert_eq!(e["method"], "nope", "{ctx}");
    assert_eq!(r[8]["ok"], "rust-1", "server-directed: {ctx}");
    // 2.5 s with a 2 s call-monitor timeout: only our heartbeats keep Python waiting
    assert_eq!(r[9]["ok"], 2.5, "heartbeats: {ctx}");
    assert!(r[9]["elapsed"].as_f64().unwrap() >= 2.4, "{ctx}");
    assert_eq!(r[10]["ok"], Value::Null, "cast: {ctx}");
    assert_eq!(r[11]["ok"], "pong", "ping: {ctx}");
    let calc = json!({"server": "rust-1", "namespace": "calc", "version": "1.2"});
    assert_eq!(r[12]["ok"], calc, "legacy namespace: {ctx}");
    assert_eq!(r[13]["ok"], calc, "1.1.7 is served by 1.2: {ctx}");
    // 1.2.1 asks for a revision the 1.2 endpoint (1.2.0) lacks, as oslo compares them
    assert!(
        r[14]["error"]["type"]
            .as_str()
            .unwrap_or("")
            .starts_with("UnsupportedVersion"),
        "1.2.1: {ctx}"
    );

    let got = recv_n(&mut records, 1, "the cast").await;
    assert_eq!(got[0].1, "cast-1");
    assert_eq!(got[0].0.get_str("user"), Some("bob"));

    server.shutdown(Duration::from_secs(5)).await.unwrap();
    cleanup(&env.url, &[topic.clone(), format!("{topic}.rust-1")]).await;
}

// ---------------------------------------------------------------------------------------
// Rust client -> Python server
// ---------------------------------------------------------------------------------------

/// A Rust RpcClient calls a Python RPC server: results, Python's ValueError as our typed
/// remote error, NoSuchMethod/UnsupportedVersion typed, context, namespace/version,
/// server-directed, oslo's ping, a timeout, Python's call-monitor heartbeats, and a cast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_calls_python_server() {
    let Some(env) = interop("interop: rust client -> python server") else {
        return;
    };
    let topic = unique("rs2py");
    let mut server = Peer::spawn(
        &env,
        "py_rpc_server.py",
        &[
            "--topic",
            &topic,
            "--server",
            "py-1",
            "--namespace",
            "calc",
            "--version",
            "1.2",
            "--ping",
        ],
    );
    server.ready().await;
    let client =
        RpcClient::new(transport(&env.url).await, Target::topic(&topic)).timeout(CALL_TIMEOUT);
    let ctx = Context::new()
        .with("user", "alice")
        .with("request_id", "req-rs-1");

    let payload = json!({"k": "v", "n": 1, "list": [1, 2.5, null, "ü"]});
    let echoed: Value = client
        .call(&ctx, "echo", json!({"value": payload}))
        .await
        .unwrap();
    assert_eq!(echoed, payload);
    let sum: i64 = client
        .call(&ctx, "add", json!({"a": 2, "b": 3}))
        .await
        .unwrap();
    assert_eq!(sum, 5);
    let pong: String = client
        .call(&ctx, msg_dispatch::PING_METHOD, json!({}))
        .await
        .unwrap();
    assert_eq!(pong, "pong");

    /// Python's `ValueError`, as a caller matches it.
    struct ValueError;
    impl msg_core::RemoteClass for ValueError {
        const MODULE: &'static str = "builtins";
        const CLASS: &'static str = "ValueError";
    }
    match client
        .call::<Value>(&ctx, "fail", json!({"message": "bad input"}))
        .await
    {
        Err(err @ Error::Remote(_)) if err.remote_is::<ValueError>() => {
            let e = err.remote().unwrap();
            assert_eq!(e.class, "ValueError");
            assert_eq!(e.module, "builtins");
            assert_eq!(e.message, "bad input");
            assert!(
                e.traceback.iter().any(|l| l.contains("ValueError")),
                "{:?}",
                e.traceback
            );
        }
        other => panic!("expected a remote ValueError, got {other:?}\n{server}"),
    }

    let seen: Map<String, Value> = client.call(&ctx, "context", json!({})).await.unwrap();
    assert_eq!(seen["user"], "alice");
    assert_eq!(seen["request_id"], "req-rs-1");

    let who: String = client
        .prepare()
        .server("py-1")
        .call(&ctx, "whoami", json!({}))
        .await
        .unwrap();
    assert_eq!(who, "py-1");

    let info: Value = client
        .prepare()
        .namespace("calc")
        .version("1.1")
        .call(&ctx, "whoami", json!({}))
        .await
        .unwrap();
    assert_eq!(
        info,
        json!({"server": "py-1", "namespace": "calc", "version": "1.2"})
    );
    match client
        .prepare()
        .namespace("calc")
        .version("2.0")
        .call::<Value>(&ctx, "whoami", json!({}))
        .await
    {
        Err(Error::UnsupportedVersion { version, namespace }) => {
            assert_eq!(version, "2.0");
            assert_eq!(namespace.as_deref(), Some("calc"));
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
    match client.call::<Value>(&ctx, "nope", json!({})).await {
        Err(Error::NoSuchMethod { method, .. }) => assert_eq!(method, "nope"),
        other => panic!("expected NoSuchMethod, got {other:?}"),
    }

    // a timeout, and a call kept alive past its call-monitor timeout by Python's heartbeats
    let short = client.prepare().timeout(Duration::from_secs(1));
    let monitored = client
        .prepare()
        .timeout(CALL_TIMEOUT)
        .call_monitor_timeout(Duration::from_secs(2));
    let ((late, late_took), (kept, kept_took)) = tokio::join!(
        timed(short.call::<f64>(&ctx, "sleep", json!({"seconds": 3}))),
        timed(monitored.call::<f64>(&ctx, "sleep", json!({"seconds": 2.5}))),
    );
    assert!(
        matches!(late, Err(Error::Timeout { .. })),
        "expected a timeout, got {late:?}"
    );
    assert!(late_took < Duration::from_millis(2500), "{late_took:?}");
    assert_eq!(kept.unwrap(), 2.5, "heartbeats: {server}");
    assert!(kept_took >= Duration::from_millis(2400), "{kept_took:?}");

    client
        .cast(&ctx, "record", json!({"value": "cast-1"}))
        .await
        .unwrap();
    let rec = server.event("record", ARRIVE_WITHIN).await;
    assert_eq!(rec["value"], "cast-1");
    assert_eq!(rec["ctxt"]["user"], "alice");

    server.stop().await;
    cleanup(&env.url, &[topic.clone(), format!("{topic}.py-1")]).await;
}

// ---------------------------------------------------------------------------------------
// Rust and Python servers on one topic
// ---------------------------------------------------------------------------------------

/// A Rust and a Python server on one topic: a fanout cast from either side reaches both,
/// and server-directed calls from either side reach the named one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_and_server_directed_reach_rust_and_python_servers() {
    let Some(env) = interop("interop: fanout to rust and python servers") else {
        return;
    };
    let topic = unique("fanout");
    let (records_tx, mut records) = mpsc::unbounded_channel();
    let rust = rust_server(&env.url, &topic, "rust-1", records_tx).await;
    let mut py = Peer::spawn(
        &env,
        "py_rpc_server.py",
        &["--topic", &topic, "--server", "py-1"],
    );
    py.ready().await;

    let ops = json!([
        {"op": "cast", "method": "record", "args": {"value": "from-python"}, "fanout": true},
        {"method": "whoami", "server": "rust-1"},
        {"method": "whoami", "server": "py-1"},
    ]);
    let mut py_client = Peer::spawn(
        &env,
        "py_rpc_client.py",
        &["--topic", &topic, &ops.to_string()],
    );

    let client =
        RpcClient::new(transport(&env.url).await, Target::topic(&topic)).timeout(CALL_TIMEOUT);
    let ctx = Context::new().with("user", "rusty");
    client
        .prepare()
        .fanout(true)
        .cast(&ctx, "record", json!({"value": "from-rust"}))
        .await
        .unwrap();
    for name in ["py-1", "rust-1"] {
        let who: String = client
            .prepare()
            .server(name)
            .call(&ctx, "whoami", json!({}))
            .await
            .unwrap();
        assert_eq!(who, name);
    }

    let r = PythonPeer::client_results(&mut py_client, 3).await;
    assert_eq!(r[0]["ok"], Value::Null, "{py_client}");
    assert_eq!(r[1]["ok"], "rust-1", "{py_client}");
    assert_eq!(r[2]["ok"], "py-1", "{py_client}");

    let at_rust: BTreeSet<String> = recv_n(&mut records, 2, "fanout casts at the rust server")
        .await
        .into_iter()
        .map(|(_, v)| v.as_str().unwrap_or_default().to_string())
        .collect();
    let mut at_python = BTreeSet::new();
    for _ in 0..2 {
        let rec = py.event("record", ARRIVE_WITHIN).await;
        at_python.insert(rec["value"].as_str().unwrap_or_default().to_string());
    }
    let both: BTreeSet<String> = ["from-python", "from-rust"].map(String::from).into();
    assert_eq!(at_rust, both);
    assert_eq!(at_python, both);

    rust.shutdown(Duration::from_secs(5)).await.unwrap();
    py.stop().await;
    cleanup(
        &env.url,
        &[
            topic.clone(),
            format!("{topic}.rust-1"),
            format!("{topic}.py-1"),
        ],
    )
    .await;
}

/// The value of the casts that find out whether a Python server consumes yet.
const PROBE: &str = "probe";

/// `rabbit_stream_fanout` (with the two options oslo requires along): a Rust and a Python
/// server share the topic's one stream, and a fanout cast from either side reaches both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_fanout_reaches_rust_and_python_servers() {
    let Some(env) = interop("interop: stream fanout to rust and python servers") else {
        return;
    };
    stream_fanout_interop(&env).await;
}

/// The stream fanout interop case on the broker of `base.url` (a single node or a cluster).
pub(crate) async fn stream_fanout_interop(base: &Interop) {
    let url = base.url.as_str();
    let env = Interop {
        url: crate::stream_fanout::stream_url(url),
        ..base.clone()
    };
    let topic = unique("stream-fanout");
    let (records_tx, mut records) = mpsc::unbounded_channel();
    let rust = rust_server(&env.url, &topic, "rust-1", records_tx).await;
    let mut py = Peer::spawn(
        &env,
        "py_rpc_server.py",
        &["--topic", &topic, "--server", "py-1"],
    );
    py.ready().await;
    // oslo attaches its stream consumer (at `last`) after the `ready` line: a cast sent
    // before would go by unseen
    let client =
        RpcClient::new(transport(&env.url).await, Target::topic(&topic)).timeout(CALL_TIMEOUT);
    let fanout = client.prepare().fanout(true);
    py.await_consuming("record", ARRIVE_WITHIN, async || {
        fanout
            .cast(&Context::new(), "record", json!({"value": PROBE}))
            .await
            .unwrap();
    })
    .await;

    let ops = json!([
        {"op": "cast", "method": "record", "args": {"value": "from-python"}, "fanout": true},
    ]);
    let mut py_client = Peer::spawn(
        &env,
        "py_rpc_client.py",
        &["--topic", &topic, &ops.to_string()],
    );
    fanout
        .cast(&Context::new(), "record", json!({"value": "from-rust"}))
        .await
        .unwrap();
    let r = PythonPeer::client_results(&mut py_client, 1).await;
    assert_eq!(r[0]["ok"], Value::Null, "{py_client}");

    let deadline = Instant::now() + ARRIVE_WITHIN;
    let mut at_rust = BTreeSet::new();
    while at_rust.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, records.recv()).await {
            Ok(Some((_, v))) if v == PROBE => {}
            Ok(Some((_, v))) => {
                at_rust.insert(v.as_str().unwrap_or_default().to_string());
            }
            _ => panic!("the Rust server got {at_rust:?} of both fanout casts"),
        }
    }
    // the probes' records may come first
    let at_python = py.distinct_values("record", 2, PROBE, ARRIVE_WITHIN).await;
    let both: BTreeSet<String> = ["from-python", "from-rust"].map(String::from).into();
    assert_eq!(at_rust, both);
    assert_eq!(at_python, both, "{py}");

    rust.shutdown(Duration::from_secs(5)).await.unwrap();
    py.stop().await;
    cleanup(
        url,
        &[
            topic.clone(),
            format!("{topic}.rust-1"),
            format!("{topic}.py-1"),
            format!("{topic}_fanout"),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Python notifier -> Rust listener
// ---------------------------------------------------------------------------------------

fn priority(name: &str) -> Priority {
    name.parse().unwrap()
}

/// Python notifiers with both drivers (`messaging`: bare; `messagingv2`: enveloped) to a
/// Rust NotificationListener: every field, the priority, a RequestContext (redacted by
/// Python) and a plain dict context (sent empty by Python).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_notifier_to_rust_listener() {
    let Some(env) = interop("interop: python notifier -> rust listener") else {
        return;
    };
    let topic = unique("pynotify");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener =
        NotificationListener::builder(transport(&env.url).await, [Target::topic(&topic)])
            .endpoint(forward_all(tx))
            .start()
            .await
            .unwrap();

    let v1_priorities = ["info", "error", "sample"];
    let v2_priorities = ["info", "warn", "audit"];
    let mut v1 = Peer::spawn(
        &env,
        "py_notifier.py",
        &[
            "--topic",
            &topic,
            "--driver",
            "messaging",
            "--count",
            "3",
            "--priorities",
            &v1_priorities.join(","),
            "--event-type",
            "interop.v1",
            "--publisher",
            "python.v1",
            "--request-context",
        ],
    );
    let mut v2 = Peer::spawn(
        &env,
        "py_notifier.py",
        &[
            "--topic",
            &topic,
            "--driver",
            "messagingv2",
            "--count",
            "3",
            "--priorities",
            &v2_priorities.join(","),
            "--event-type",
            "interop.v2",
            "--publisher",
            "python.v2",
        ],
    );
    v1.event("done", Duration::from_secs(90)).await;
    v2.event("done", Duration::from_secs(90)).await;

    let got = recv_n(&mut rx, 6, "python notifications").await;
    let mut seen = BTreeSet::new();
    for m in &got {
        let i = m.payload.get("i").and_then(|v| v.as_u64()).unwrap() as usize;
        let driver = m
            .payload
            .get("driver")
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap();
        assert!(seen.insert((driver.clone(), i)), "a duplicate: {m:?}");
        assert!(
            is_dashed_uuid(m.metadata["message_id"].as_str().unwrap()),
            "{m:?}"
        );
        assert!(
            is_oslo_timestamp(m.metadata["timestamp"].as_str().unwrap()),
            "{m:?}"
        );
        match driver.as_str() {
            "messaging" => {
                assert_eq!(m.publisher_id, "python.v1");
                assert_eq!(m.event_type, "interop.v1");
                assert_eq!(m.priority, priority(v1_priorities[i]));
                // a RequestContext: sent as its redacted copy
                assert_eq!(m.context.get_str("user"), Some("u1"), "{m:?}");
                assert_eq!(m.context.get_str("project_id"), Some("p1"), "{m:?}");
                assert_eq!(m.context.request_id(), Some(format!("req-{i}").as_str()));
                assert_eq!(m.context.get("auth_token"), Some(&Value::Null), "{m:?}");
            }
            "messagingv2" => {
                assert_eq!(m.publisher_id, "python.v2");
                assert_eq!(m.event_type, "interop.v2");
                assert_eq!(m.priority, priority(v2_priorities[i]));
                // a plain dict: Python's notifier sends no context at all
                assert!(m.context.is_empty(), "{m:?}");
            }
            other => panic!("unexpected driver {other}"),
        }
    }

    listener.shutdown(Duration::from_secs(5)).await.unwrap();
    cleanup(&env.url, &notification_queues(&topic)).await;
}

// ---------------------------------------------------------------------------------------
// Pools shared by a Python and a Rust listener
// ---------------------------------------------------------------------------------------

/// A Python and a Rust listener in one pool share its queue: each notification of a Python
/// notifier goes to exactly one of them, and both get some. A Rust listener in another pool
/// gets them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_shared_by_python_and_rust_listeners() {
    let Some(env) = interop("interop: pool shared by python and rust listeners") else {
        return;
    };
    const N: usize = 20;
    let topic = unique("pool");
    let shared_pool = unique("pool-shared");
    let other_pool = unique("pool-other");
    let mut py = Peer::spawn(
        &env,
        "py_listener.py",
        &["--topic", &topic, "--pool", &shared_pool],
    );
    py.ready().await;
    let t = transport(&env.url).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let shared = NotificationListener::builder(t.clone(), [Target::topic(&topic)])
        .pool(&shared_pool)
        .endpoint(forward_all(tx))
        .start()
        .await
        .unwrap();
    let (tx_other, mut rx_other) = mpsc::unbounded_channel();
    let other = NotificationListener::builder(t.clone(), [Target::topic(&topic)])
        .pool(&other_pool)
        .endpoint(forward_all(tx_other))
        .start()
        .await
        .unwrap();
    // Python consumes from its poll thread, a moment after it said ready
    wait_for_consumers(&env.url, &shared_pool, 2).await;

    let mut notifier = Peer::spawn(
        &env,
        "py_notifier.py",
        &["--topic", &topic, "--count", &N.to_string()],
    );
    notifier.event("done", Duration::from_secs(90)).await;

    let deadline = Instant::now() + ARRIVE_WITHIN;
    let (mut at_rust, mut at_python) = (Vec::new(), Vec::new());
    while at_rust.len() + at_python.len() < N && Instant::now() < deadline {
        while let Ok(m) = rx.try_recv() {
            at_rust.push(m.payload.get("i").and_then(|v| v.as_u64()).unwrap());
        }
        if let Some(v) = py.try_next(Duration::from_millis(200)).await
            && v["event"] == "notification"
        {
            at_python.push(v["payload"]["i"].as_u64().unwrap());
        }
    }
    let mut all: Vec<u64> = at_rust.iter().chain(&at_python).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..N as u64).collect::<Vec<_>>(),
        "each exactly once: rust {at_rust:?}, python {at_python:?}\n{py}"
    );
    assert!(
        !at_rust.is_empty() && !at_python.is_empty(),
        "both members of the pool get some: rust {at_rust:?}, python {at_python:?}"
    );

    let mut in_other: Vec<u64> = recv_n(&mut rx_other, N, "the other pool")
        .await
        .iter()
        .map(|m| m.payload.get("i").and_then(|v| v.as_u64()).unwrap())
        .collect();
    in_other.sort_unstable();
    assert_eq!(in_other, (0..N as u64).collect::<Vec<_>>());

    shared.shutdown(Duration::from_secs(5)).await.unwrap();
    other.shutdown(Duration::from_secs(5)).await.unwrap();
    py.stop().await;
    let mut queues = notification_queues(&topic);
    queues.extend([shared_pool, other_pool]);
    cleanup(&env.url, &queues).await;
}

// ---------------------------------------------------------------------------------------
// Rust notifier -> Python listeners
// ---------------------------------------------------------------------------------------

/// A Rust Notifier to a Python notification listener (`messagingv2`) and to a Python batch
/// listener (`messaging`, sent before the listener started: the notifier's own queue keeps
/// them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_notifier_to_python_listener_and_batch_listener() {
    let Some(env) = interop("interop: rust notifier -> python listeners") else {
        return;
    };
    const BATCHED: usize = 7;
    let single_topic = unique("rsnotify");
    let batch_topic = unique("rsbatch");
    let t = transport(&env.url).await;

    // store and forward: sent before any listener exists
    let bare = Notifier::new(t.clone())
        .publisher_id("rust.batch")
        .topics([&batch_topic])
        .driver_names(["messaging"])
        .unwrap();
    for i in 0..BATCHED {
        bare.sample(&Context::new(), "interop.batch", json!({"i": i}))
            .await
            .unwrap();
    }
    let mut batch = Peer::spawn(
        &env,
        "py_listener.py",
        &[
            "--topic",
            &batch_topic,
            "--batch-size",
            "5",
            "--batch-timeout",
            "1",
            "--count",
            &BATCHED.to_string(),
        ],
    );
    let mut single = Peer::spawn(
        &env,
        "py_listener.py",
        &["--topic", &single_topic, "--count", "3"],
    );
    single.ready().await;

    let notifier = Notifier::new(t.clone())
        .publisher_id("rust.host1")
        .topics([&single_topic]);
    let ctx = Context::new()
        .with("user", "carol")
        .with("request_id", "req-rs-9")
        .with("auth_token", "SECRET");
    notifier
        .info(&ctx, "interop.rust", json!({"n": 0}))
        .await
        .unwrap();
    notifier
        .warn(&ctx, "interop.rust", json!({"n": 1}))
        .await
        .unwrap();
    notifier
        .error(&ctx, "interop.rust", json!({"n": 2}))
        .await
        .unwrap();

    let mut got = single.notifications(3, ARRIVE_WITHIN).await;
    got.sort_by_key(|v| v["payload"]["n"].as_u64());
    for (n, (v, prio)) in got.iter().zip(["info", "warn", "error"]).enumerate() {
        assert_eq!(v["payload"]["n"], n, "{v}");
        assert_eq!(v["priority"], prio, "{v}");
        assert_eq!(v["publisher_id"], "rust.host1", "{v}");
        assert_eq!(v["event_type"], "interop.rust", "{v}");
        assert_eq!(v["ctxt"]["user"], "carol", "{v}");
        assert_eq!(v["ctxt"]["request_id"], "req-rs-9", "{v}");
        assert_eq!(v["ctxt"]["auth_token"], Value::Null, "redacted: {v}");
        assert!(
            is_dashed_uuid(v["metadata"]["message_id"].as_str().unwrap()),
            "{v}"
        );
        assert!(
            is_oslo_timestamp(v["metadata"]["timestamp"].as_str().unwrap()),
            "{v}"
        );
    }

    let got = batch.notifications(BATCHED, ARRIVE_WITHIN).await;
    let mut is: Vec<u64> = got
        .iter()
        .map(|v| v["payload"]["i"].as_u64().unwrap())
        .collect();
    is.sort_unstable();
    assert_eq!(is, (0..BATCHED as u64).collect::<Vec<_>>(), "{batch}");
    let sizes: Vec<u64> = got
        .iter()
        .map(|v| v["batch_size"].as_u64().unwrap())
        .collect();
    assert!(sizes.iter().all(|s| (1..=5).contains(s)), "{sizes:?}");
    assert!(
        sizes.iter().any(|s| *s > 1),
        "some batches hold several: {sizes:?}"
    );
    for v in &got {
        assert_eq!(v["priority"], "sample", "{v}");
        assert_eq!(v["publisher_id"], "rust.batch", "{v}");
        assert_eq!(v["event_type"], "interop.batch", "{v}");
    }

    single.stop().await;
    batch.stop().await;
    let mut queues = notification_queues(&single_topic);
    queues.extend(notification_queues(&batch_topic));
    cleanup(&env.url, &queues).await;
}

// ---------------------------------------------------------------------------------------
// Raw AMQP access (for what the public API can't show)
// ---------------------------------------------------------------------------------------

/// Waits until `queue` has at least `n` consumers.
async fn wait_for_consumers(url: &str, queue: &str, n: u32) {
    let conn = raw_connection(url).await;
    let deadline = Instant::now() + ARRIVE_WITHIN;
    let mut last = 0;
    while Instant::now() < deadline {
        let ch = conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        last = q.consumer_count();
        let _ = ch.close(200, "OK".into()).await;
        if last >= n {
            let _ = conn.close(200, "OK".into()).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("queue `{queue}` has {last} consumers, not {n}, after {ARRIVE_WITHIN:?}");
}

/// The queues a notification topic may have (one per priority).
fn notification_queues(topic: &str) -> Vec<String> {
    Priority::ALL
        .iter()
        .map(|p| format!("{topic}.{}", p.routing_name()))
        .collect()
}

/// Deletes a test's durable-by-name queues (best effort: oslo never deletes them itself).
pub(crate) async fn cleanup(url: &str, queues: &[String]) {
    let conn = raw_connection(url).await;
    for q in queues {
        if let Ok(ch) = conn.create_channel().await {
            let _ = ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
            let _ = ch.close(200, "OK".into()).await;
        }
    }
    let _ = conn.close(200, "OK".into()).await;
}

/// One message from `queue`, waiting for it (bounded).
async fn get_one(ch: &Channel, queue: &str) -> lapin::message::Delivery {
    let deadline = Instant::now() + ARRIVE_WITHIN;
    while Instant::now() < deadline {
        if let Some(m) = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            return m.delivery;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing arrived in `{queue}` within {ARRIVE_WITHIN:?}");
}

/// Declares a queue as Python declares an RPC or reply queue, bound to `exchange` by `key`
/// unless `exchange` is the default one.
async fn declare_raw(ch: &Channel, queue: &str, args: FieldTable, exchange: &str) {
    ch.queue_declare(queue.into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    if !exchange.is_empty() {
        ch.queue_bind(
            queue.into(),
            exchange.into(),
            queue.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
}

fn vectors() -> Vec<Value> {
    VECTORS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The golden vector of a step: the request (`reply = false`) or its reply.
fn vector(step: &str, reply: bool) -> Value {
    vectors()
        .into_iter()
        .find(|v| v["step"] == step && (v["exchange"] == "") == reply)
        .unwrap_or_else(|| panic!("no vector for `{step}`"))
}

/// Properties as the vectors record them: Python's JSON names and values.
fn properties_json(p: &BasicProperties) -> Value {
    let mut out = Map::new();
    let s = |v: &Option<lapin::types::ShortString>| v.as_ref().map(|s| s.as_str().to_string());
    if let Some(v) = s(p.content_type()) {
        out.insert("content_type".into(), v.into());
    }
    if let Some(v) = s(p.content_encoding()) {
        out.insert("content_encoding".into(), v.into());
    }
    if let Some(v) = p.delivery_mode() {
        out.insert("delivery_mode".into(), (*v).into());
    }
    if let Some(v) = p.priority() {
        out.insert("priority".into(), (*v).into());
    }
    if let Some(v) = s(p.expiration()) {
        out.insert("expiration".into(), v.into());
    }
    if let Some(h) = p.headers() {
        let headers: Map<String, Value> = h
            .inner()
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(format!("{v:?}"))))
            .collect();
        out.insert("headers".into(), Value::Object(headers));
    }
    // what the vectors never carry: routing data is in the body
    for (name, present) in [
        ("correlation_id", p.correlation_id().is_some()),
        ("reply_to", p.reply_to().is_some()),
        ("message_id", p.message_id().is_some()),
        ("type", p.kind().is_some()),
        ("app_id", p.app_id().is_some()),
        ("user_id", p.user_id().is_some()),
        ("timestamp", p.timestamp().is_some()),
    ] {
        if present {
            out.insert(name.into(), true.into());
        }
    }
    Value::Object(out)
}

/// The inner object of a body (enveloped or bare), with the keys Python chose by value
/// (ids, context) kept, and `failure` parsed.
fn inner(body: &[u8]) -> Map<String, Value> {
    let outer: Map<String, Value> = serde_json::from_slice(body).unwrap();
    let mut inner: Map<String, Value> = match outer.get("oslo.message") {
        Some(Value::String(s)) => {
            assert_eq!(outer["oslo.version"], "2.0");
            assert_eq!(
                outer.len(),
                2,
                "the envelope has exactly two keys: {outer:?}"
            );
            serde_json::from_str(s).unwrap()
        }
        _ => outer,
    };
    if let Some(Value::String(f)) = inner.get("failure").cloned() {
        inner.insert("failure".into(), serde_json::from_str(&f).unwrap());
    }
    inner
}

/// The keys of an inner object, context entries collapsed to `_context_*`.
fn key_shape(inner: &Map<String, Value>) -> BTreeSet<String> {
    inner
        .keys()
        .map(|k| {
            if k.starts_with("_context_") {
                "_context_*".to_string()
            } else {
                k.clone()
            }
        })
        .collect()
}

fn is_hex_id(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 32 && s.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// The request of a call made through our driver, taken off a queue we declared as Python
/// would (a stand-in server), and answered with the bytes Python's server sent for the
/// same step. Returns the request as it arrived.
async fn call_through_stand_in(
    t: &Transport,
    ch: &Channel,
    topic: &str,
) -> lapin::message::Delivery {
    declare_raw(ch, topic, FieldTable::default(), "openstack").await;
    let client = RpcClient::new(t.clone(), Target::topic(topic)).timeout(Duration::from_secs(10));
    let call = tokio::spawn(async move {
        let ctx = Context::new()
            .with("user", "alice")
            .with("request_id", "req-1");
        client
            .call::<Value>(&ctx, "echo", json!({"value": {"k": "v", "n": 1}}))
            .await
    });
    let request = get_one(ch, topic).await;
    let req = inner(&request.data);
    // Python's reply, byte for byte, to our reply queue and msg id
    let py_reply = vector("call echo", true);
    let py_msg_id = vector("call echo", false)["oslo.message_decoded"]["_msg_id"]
        .as_str()
        .unwrap()
        .to_string();
    let raw = py_reply["body_raw"]
        .as_str()
        .unwrap()
        .replace(&py_msg_id, req["_msg_id"].as_str().unwrap());
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2)
        .with_priority(0)
        .with_headers(FieldTable::default());
    ch.basic_publish(
        "".into(),
        req["_reply_q"].as_str().unwrap().into(),
        BasicPublishOptions::default(),
        raw.as_bytes(),
        props,
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let result = call.await.unwrap().unwrap();
    assert_eq!(
        result,
        json!({"k": "v", "n": 1}),
        "Python's reply bytes, decoded"
    );
    request
}

// ---------------------------------------------------------------------------------------
// The live wire against the golden vectors
// ---------------------------------------------------------------------------------------

/// What our driver puts on the live broker has the properties and body shape of what Python
/// put there for the same step (vectors recorded from oslo.messaging 18.3.1): a call, a
/// cast, a fanout cast, a Rust server's reply to Python's exact request bytes, and a
/// notification of each driver. Our client also decodes Python's exact reply bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_wire_matches_python_vectors() {
    let Some(url) = rabbit_url("interop: rust wire vs python vectors") else {
        return;
    };
    let t = transport(&url).await;
    let conn = raw_connection(&url).await;
    let ch = conn.create_channel().await.unwrap();
    let expect_props = |step: &str, reply: bool, live: &BasicProperties| {
        let mut want = vector(step, reply)["properties"].clone();
        let mut got = properties_json(live);
        // the call's expiration is its timeout: 10 s in both recordings
        if let (Some(w), Some(g)) = (want.get("expiration"), got.get("expiration")) {
            assert_eq!(w, g, "{step}: expiration");
        }
        want.as_object_mut().unwrap().remove("expiration");
        got.as_object_mut().unwrap().remove("expiration");
        assert_eq!(got, want, "{step}: properties");
    };
    let expect_shape = |step: &str, reply: bool, live: &Map<String, Value>| {
        let want = vector(step, reply)["oslo.message_decoded"].clone();
        let want = key_shape(want.as_object().unwrap());
        assert_eq!(key_shape(live), want, "{step}: body keys");
    };

    // a call: properties (expiration = the 10 s timeout), body shape, reply decoding
    let topic = unique("wire");
    let call = call_through_stand_in(&t, &ch, &topic).await;
    expect_props("call echo", false, &call.properties);
    let req = inner(&call.data);
    expect_shape("call echo", false, &req);
    assert_eq!(call.exchange.as_str(), "openstack");
    assert_eq!(call.routing_key.as_str(), topic);
    assert!(is_reply_queue(req["_reply_q"].as_str().unwrap()), "{req:?}");
    assert!(
        is_hex_id(&req["_msg_id"]) && is_hex_id(&req["_unique_id"]),
        "{req:?}"
    );
    assert_eq!(req["_timeout"], Value::Null);
    assert_eq!(req["_context_user"], "alice");

    // a cast (Python's recorded casts carry an empty context)
    let client = RpcClient::new(t.clone(), Target::topic(&topic));
    let ctx = Context::new();
    client
        .cast(&ctx, "record", json!({"value": 1}))
        .await
        .unwrap();
    let cast = get_one(&ch, &topic).await;
    expect_props("cast record", false, &cast.properties);
    expect_shape("cast record", false, &inner(&cast.data));

    // a fanout cast: to `<topic>_fanout` with an empty key
    let fan_q = format!("{topic}_fanout_probe");
    let mut ttl = FieldTable::default();
    ttl.insert("x-expires".into(), AMQPValue::LongInt(60_000));
    ch.exchange_declare(
        format!("{topic}_fanout").as_str().into(),
        lapin::ExchangeKind::Fanout,
        lapin::options::ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_declare(fan_q.as_str().into(), QueueDeclareOptions::default(), ttl)
        .await
        .unwrap();
    ch.queue_bind(
        fan_q.as_str().into(),
        format!("{topic}_fanout").as_str().into(),
        topic.as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    client
        .prepare()
        .fanout(true)
        .cast(&ctx, "record", json!({"value": 2}))
        .await
        .unwrap();
    let fan = get_one(&ch, &fan_q).await;
    let py_fan = vector("fanout cast record", false);
    assert_eq!(fan.exchange.as_str(), format!("{topic}_fanout"));
    assert_eq!(fan.routing_key.as_str(), py_fan["routing_keys"][0]);
    expect_props("fanout cast record", false, &fan.properties);
    expect_shape("fanout cast record", false, &inner(&fan.data));

    // a Rust server's reply to Python's exact request bytes
    let server_topic = unique("wire-server");
    let (records_tx, _records) = mpsc::unbounded_channel();
    let server = rust_server(&url, &server_topic, "server1", records_tx).await;
    let reply_q = format!("reply_{}", uuid::Uuid::new_v4().simple());
    let mut ttl = FieldTable::default();
    ttl.insert("x-expires".into(), AMQPValue::LongInt(1_800_000));
    declare_raw(&ch, &reply_q, ttl, "").await;
    let py_call = vector("call echo", false);
    let py_reply_q = py_call["oslo.message_decoded"]["_reply_q"]
        .as_str()
        .unwrap();
    let raw = py_call["body_raw"]
        .as_str()
        .unwrap()
        .replace(py_reply_q, &reply_q);
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2)
        .with_priority(0)
        .with_expiration("10000".into())
        .with_headers(FieldTable::default());
    ch.basic_publish(
        "openstack".into(),
        server_topic.as_str().into(),
        BasicPublishOptions::default(),
        raw.as_bytes(),
        props,
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let reply = get_one(&ch, &reply_q).await;
    assert_eq!(reply.exchange.as_str(), "");
    assert_eq!(reply.routing_key.as_str(), reply_q);
    expect_props("call echo", true, &reply.properties);
    let got = inner(&reply.data);
    expect_shape("call echo", true, &got);
    let want = &vector("call echo", true)["oslo.message_decoded"];
    for k in ["result", "failure", "ending", "_msg_id"] {
        assert_eq!(got[k], want[k], "reply `{k}`");
    }
    assert!(is_hex_id(&got["_unique_id"]));
    server.shutdown(Duration::from_secs(5)).await.unwrap();

    // notifications, both drivers, to the queue the notifier declares itself
    let ntopic = unique("wire-notify");
    let ctx = Context::new().with("user", "alice");
    for driver in ["messagingv2", "messaging"] {
        let notifier = Notifier::new(t.clone())
            .publisher_id("compute.host1")
            .topics([&ntopic])
            .driver_names([driver])
            .unwrap();
        notifier
            .info(
                &ctx,
                "compute.instance.create.end",
                json!({"instance_id": "abc"}),
            )
            .await
            .unwrap();
        let n = get_one(&ch, &format!("{ntopic}.info")).await;
        assert_eq!(n.exchange.as_str(), "openstack");
        assert_eq!(n.routing_key.as_str(), format!("{ntopic}.info"));
        expect_props("notification info", false, &n.properties);
        let body: Map<String, Value> = serde_json::from_slice(&n.data).unwrap();
        assert_eq!(
            body.contains_key("oslo.message"),
            driver == "messagingv2",
            "{driver}: enveloped only by messagingv2"
        );
        let got = inner(&n.data);
        expect_shape("notification info (RequestContext)", false, &got);
        assert_eq!(got["priority"], "INFO");
        assert!(is_dashed_uuid(got["message_id"].as_str().unwrap()));
        assert!(is_oslo_timestamp(got["timestamp"].as_str().unwrap()));
    }

    let _ = ch.close(200, "OK".into()).await;
    let _ = conn.close(200, "OK".into()).await;
    let mut queues = vec![topic.clone(), fan_q, reply_q, server_topic.clone()];
    queues.push(format!("{server_topic}.server1"));
    queues.extend(notification_queues(&ntopic));
    cleanup(&url, &queues).await;
}

// ---------------------------------------------------------------------------------------
// The topology against Python's, through rabbitmqctl
// ---------------------------------------------------------------------------------------

/// Runs `rabbitmqctl -q --no-table-headers <args>` (bounded); its rows, tab-split.
async fn rabbitmqctl(args: &[&str]) -> Result<Vec<Vec<String>>, String> {
    let run = Command::new("rabbitmqctl")
        .args(["-q", "--no-table-headers"])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(Duration::from_secs(60), run).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(format!("can't run rabbitmqctl: {e}")),
        Err(_) => return Err("rabbitmqctl took over 60 s".into()),
    };
    if !out.status.success() {
        return Err(format!(
            "`rabbitmqctl {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect())
}

/// Whether `rabbitmqctl` works here and lists the broker of `url` (a loopback one).
async fn local_rabbitmqctl(url: &str) -> Result<(), String> {
    let parsed = TransportUrl::parse(url).map_err(|e| e.to_string())?;
    let loopback = parsed
        .hosts()
        .iter()
        .all(|h| matches!(h.hostname.as_str(), "127.0.0.1" | "localhost" | "::1"));
    if !loopback {
        return Err("MSG_RABBIT_URL is not loopback: rabbitmqctl would list another broker".into());
    }
    rabbitmqctl(&["list_exchanges", "name"]).await.map(|_| ())
}

/// The names one side used, to tell the kinds of objects apart.
struct Names {
    control_exchange: String,
    topic: String,
    server: String,
    notifications: String,
    pool: String,
    /// The reply queue, when we know which one is ours; any `reply_<hex>` otherwise.
    reply: Option<String>,
}

impl Names {
    fn hex_suffix(name: &str, prefix: &str) -> bool {
        name.strip_prefix(prefix)
            .is_some_and(|h| h.len() == 32 && h.bytes().all(|c| c.is_ascii_hexdigit()))
    }

    fn exchange_kind(&self, name: &str) -> Option<&'static str> {
        if name.is_empty() {
            Some("default exchange")
        } else if name == self.control_exchange {
            Some("topic exchange (control_exchange)")
        } else if name == format!("{}_fanout", self.topic) {
            Some("fanout exchange <topic>_fanout")
        } else {
            None
        }
    }

    fn queue_kind(&self, name: &str) -> Option<&'static str> {
        let topic = &self.topic;
        if name == *topic {
            Some("RPC topic queue <topic>")
        } else if name == format!("{topic}.{}", self.server) {
            Some("RPC server queue <topic>.<server>")
        } else if Self::hex_suffix(name, &format!("{topic}_fanout_")) {
            Some("fanout queue <topic>_fanout_<hex>")
        } else if match &self.reply {
            Some(r) => name == r,
            None => is_reply_queue(name),
        } {
            Some("reply queue reply_<hex>")
        } else if name == self.pool {
            Some("pool queue <pool>")
        } else if name
            .strip_prefix(&format!("{}.", self.notifications))
            .is_some_and(|p| p.parse::<Priority>().is_ok())
        {
            Some("notification queue <topic>.<priority>")
        } else {
            None
        }
    }

    /// A routing key in terms of the names.
    fn key_pattern(&self, key: &str, destination: &str) -> String {
        if key == destination {
            "<queue name>".into()
        } else if key == self.topic {
            "<topic>".into()
        } else if key == format!("{}.{}", self.topic, self.server) {
            "<topic>.<server>".into()
        } else if key
            .strip_prefix(&format!("{}.", self.notifications))
            .is_some_and(|p| p.parse::<Priority>().is_ok())
        {
            "<topic>.<priority>".into()
        } else {
            key.into()
        }
    }
}

/// One side's topology by kind of object (names abstracted away).
#[derive(Debug, Default, PartialEq)]
struct Topology {
    /// kind -> (type, durable, auto_delete, internal, arguments)
    exchanges: BTreeMap<&'static str, BTreeSet<Vec<String>>>,
    /// kind -> (durable, auto_delete, exclusive, arguments)
    queues: BTreeMap<&'static str, BTreeSet<Vec<String>>>,
    /// (source kind, destination kind, key pattern, arguments)
    bindings: BTreeSet<Vec<String>>,
    /// queue kind -> ack_required
    consumers: BTreeMap<&'static str, BTreeSet<String>>,
}

impl Topology {
    fn from_rows(
        names: &Names,
        exchanges: &[Vec<String>],
        queues: &[Vec<String>],
        bindings: &[Vec<String>],
        consumers: &[Vec<String>],
    ) -> Self {
        let mut t = Topology::default();
        for row in exchanges {
            if let Some(kind) = names.exchange_kind(&row[0])
                && kind != "default exchange"
            {
                t.exchanges
                    .entry(kind)
                    .or_default()
                    .insert(row[1..6].to_vec());
            }
        }
        for row in queues {
            if let Some(kind) = names.queue_kind(&row[0]) {
                t.queues.entry(kind).or_default().insert(row[1..5].to_vec());
            }
        }
        for row in bindings {
            // source_name source_kind destination_name destination_kind routing_key arguments
            let (Some(source), Some(dest)) =
                (names.exchange_kind(&row[0]), names.queue_kind(&row[2]))
            else {
                continue;
            };
            t.bindings.insert(vec![
                source.into(),
                dest.into(),
                names.key_pattern(&row[4], &row[2]),
                row[5].clone(),
            ]);
        }
        for row in consumers {
            if let Some(kind) = names.queue_kind(&row[0]) {
                t.consumers.entry(kind).or_default().insert(row[1].clone());
            }
        }
        t
    }

    /// Python's listing: the sections of the recorded file.
    fn python() -> Self {
        let mut sections: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
        let mut current = String::new();
        let mut header = false;
        for line in PYTHON_TOPOLOGY.lines() {
            if let Some(title) = line.strip_prefix("## ") {
                current = title.split_whitespace().nth(1).unwrap_or("").to_string();
                header = true;
                continue;
            }
            if line.is_empty() || line.starts_with('(') {
                continue;
            }
            if header {
                header = false; // the column names
                continue;
            }
            sections
                .entry(current.clone())
                .or_default()
                .push(line.split('\t').map(str::to_string).collect());
        }
        let consumers: Vec<Vec<String>> = sections["list_consumers"]
            .iter()
            .map(|r| vec![r[0].clone(), r[2].clone()])
            .collect();
        let names = Names {
            control_exchange: "openstack".into(),
            topic: "anchors_rpc".into(),
            server: "server1".into(),
            notifications: "notifications".into(),
            pool: "anchors_pool".into(),
            reply: None,
        };
        Topology::from_rows(
            &names,
            &sections["list_exchanges"],
            &sections["list_queues"],
            &sections["list_bindings"],
            &consumers,
        )
    }
}

/// Rust declares what the recorded Python peers declared (an RPC server, a client's reply
/// queue, a notification listener on every priority, and one in a pool), and rabbitmqctl
/// lists the same kinds of objects with the same flags, arguments and bindings as Python's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_topology_matches_python_topology() {
    let Some(url) = rabbit_url("interop: rust topology vs python topology") else {
        return;
    };
    if let Err(why) = local_rabbitmqctl(&url).await {
        eprintln!("!!!!!!!!!!!!!!!!!!!!\nSKIPPED: interop topology: {why}\n!!!!!!!!!!!!!!!!!!!!");
        return;
    }

    let names = Names {
        control_exchange: "openstack".into(),
        topic: unique("topo-rpc"),
        server: "server1".into(),
        notifications: unique("topo-notify"),
        pool: unique("topo-pool"),
        reply: None,
    };
    let t = transport(&url).await;
    let (records_tx, _records) = mpsc::unbounded_channel();
    let server = rust_server(&url, &names.topic, &names.server, records_tx).await;
    let everything = || NotificationEndpoint::new().on_all(|_m| async { Handled });
    let listener = NotificationListener::builder(t.clone(), [Target::topic(&names.notifications)])
        .endpoint(everything())
        .start()
        .await
        .unwrap();
    // every priority, as Python's listener (its endpoint has a method per priority)
    let pooled = NotificationListener::builder(t.clone(), [Target::topic(&names.notifications)])
        .pool(&names.pool)
        .endpoint(everything())
        .start()
        .await
        .unwrap();
    // our reply queue: its name, read off a call taken by a stand-in server
    let conn = raw_connection(&url).await;
    let ch = conn.create_channel().await.unwrap();
    let stand_in = unique("topo-stand-in");
    let call = call_through_stand_in(&t, &ch, &stand_in).await;
    let reply_q = inner(&call.data)["_reply_q"].as_str().unwrap().to_string();
    let names = Names {
        reply: Some(reply_q),
        ..names
    };

    let exchanges = rabbitmqctl(&[
        "list_exchanges",
        "name",
        "type",
        "durable",
        "auto_delete",
        "internal",
        "arguments",
    ])
    .await
    .unwrap();
    let queues = rabbitmqctl(&[
        "list_queues",
        "name",
        "durable",
        "auto_delete",
        "exclusive",
        "arguments",
    ])
    .await
    .unwrap();
    let bindings = rabbitmqctl(&[
        "list_bindings",
        "source_name",
        "source_kind",
        "destination_name",
        "destination_kind",
        "routing_key",
        "arguments",
    ])
    .await
    .unwrap();
    let python = Topology::python();
    // RabbitMQ lists a consumer once its queue's process has it, which on a loaded broker
    // can trail the consume-ok by a moment: list again, for at most 10 s
    let listed = Instant::now();
    let ours = loop {
        let consumers = rabbitmqctl(&["list_consumers", "queue_name", "ack_required"])
            .await
            .unwrap();
        let ours = Topology::from_rows(&names, &exchanges, &queues, &bindings, &consumers);
        let all_listed = python
            .consumers
            .iter()
            .all(|(kind, acks)| ours.consumers.get(kind) == Some(acks));
        if all_listed || listed.elapsed() > Duration::from_secs(10) {
            break ours;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // what the recorded listing holds, so that the comparison below can't pass empty
    assert_eq!(python.exchanges.len(), 2, "{python:?}");
    assert_eq!(python.queues.len(), 6, "{python:?}");
    assert_eq!(python.bindings.len(), 11, "{python:?}");
    assert_eq!(python.consumers.len(), 4, "{python:?}");

    assert_eq!(ours.exchanges, python.exchanges, "exchanges");
    assert_eq!(ours.queues, python.queues, "queues");
    assert_eq!(ours.bindings, python.bindings, "bindings");
    // Python's listing has consumers on the RPC queues and the pool queue (acked): ours too
    for (kind, acks) in &python.consumers {
        assert_eq!(
            ours.consumers.get(kind),
            Some(acks),
            "consumers of the {kind}"
        );
    }

    server.shutdown(Duration::from_secs(5)).await.unwrap();
    listener.shutdown(Duration::from_secs(5)).await.unwrap();
    pooled.shutdown(Duration::from_secs(5)).await.unwrap();
    let _ = ch.close(200, "OK".into()).await;
    let _ = conn.close(200, "OK".into()).await;
    let mut cleanup_queues = vec![
        names.topic.clone(),
        format!("{}.{}", names.topic, names.server),
        names.pool.clone(),
        stand_in,
    ];
    cleanup_queues.extend(notification_queues(&names.notifications));
    cleanup(&url, &cleanup_queues).await;
}

// ---------------------------------------------------------------------------------------
// Queue options: the declarations RabbitMQ compares, shared with Python
// ---------------------------------------------------------------------------------------

/// `url` with one more query pair.
fn with_query(url: &str, pair: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{pair}")
}

/// A queue's arguments as rabbitmqctl prints them, in a canonical order.
fn canonical_args(args: &str) -> BTreeSet<String> {
    args.trim_start_matches('[')
        .trim_end_matches(']')
        .split("},{")
        .map(|e| e.trim_matches(|c| c == '{' || c == '}').to_string())
        .filter(|e| !e.is_empty())
        .collect()
}

/// A Python and a Rust server on one topic with the same driver options: the shared
/// queues are declared with equal flags and arguments (else RabbitMQ answers 406 to the
/// second), a call goes through, and (with rabbitmqctl) the per-server queues of both have
/// the same flags and arguments.
async fn shared_topic_with_options(env: &Interop, options: &str, exchange: &str) {
    let url = with_query(&env.url, options);
    let topic = unique("opts");
    let mut py = Peer::spawn(
        env,
        "py_rpc_server.py",
        &[
            "--url",
            &url,
            "--topic",
            &topic,
            "--server",
            "py-1",
            "--exchange",
            exchange,
        ],
    );
    py.ready().await;
    let (records_tx, _records) = mpsc::unbounded_channel();
    let t = transport(&url).await;
    let rust = RpcServer::builder(
        t.clone(),
        Target::server(&topic, "rust-1").with_exchange(exchange),
    )
    .endpoints(rust_endpoints("rust-1", records_tx))
    .start()
    .await
    .unwrap_or_else(|e| {
        panic!("{options}: the rust server can't share python's queues: {e}\n{py}")
    });
    let client = RpcClient::new(t.clone(), Target::topic(&topic).with_exchange(exchange))
        .timeout(CALL_TIMEOUT);
    for name in ["py-1", "rust-1"] {
        let who: String = client
            .prepare()
            .server(name)
            .call(&Context::new(), "whoami", json!({}))
            .await
            .unwrap_or_else(|e| panic!("{options}: whoami on {name}: {e}\n{py}"));
        assert_eq!(who, name, "{options}");
    }

    let listed = match local_rabbitmqctl(&env.url).await {
        Ok(()) => {
            rabbitmqctl(&["list_queues", "name", "durable", "auto_delete", "arguments"]).await
        }
        Err(why) => Err(why),
    };
    if let Err(why) = &listed {
        eprintln!("{options}: per-server queues not compared ({why})");
    }
    if let Ok(rows) = listed {
        let row = |pred: &dyn Fn(&str) -> bool| -> Vec<(String, String, BTreeSet<String>)> {
            rows.iter()
                .filter(|r| pred(&r[0]))
                .map(|r| (r[1].clone(), r[2].clone(), canonical_args(&r[3])))
                .collect()
        };
        let py_server = row(&|n| n == format!("{topic}.py-1"));
        let rust_server = row(&|n| n == format!("{topic}.rust-1"));
        assert_eq!(py_server.len(), 1, "{options}: {rows:?}");
        assert_eq!(rust_server, py_server, "{options}: server queues");
        let fanout = row(&|n| n.starts_with(&format!("{topic}_fanout_")));
        assert_eq!(
            fanout.len(),
            2,
            "{options}: a fanout queue each: {fanout:?}"
        );
        assert_eq!(
            fanout[0], fanout[1],
            "{options}: fanout queues, python vs rust"
        );
    }

    rust.shutdown(Duration::from_secs(5)).await.unwrap();
    py.stop().await;
    cleanup(
        &env.url,
        &[
            topic.clone(),
            format!("{topic}.py-1"),
            format!("{topic}.rust-1"),
        ],
    )
    .await;
}

/// Durable queues, quorum queues (with a delivery limit, transient quorum queues too), and
/// `amqp_durable_queues` on an exchange that already exists non-durable (Python falls back
/// to a non-durable exchange and queue): Python and Rust declare the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_rust_declare_alike_with_durable_and_quorum_options() {
    let Some(env) = interop("interop: durable and quorum options") else {
        return;
    };
    let durable_ex = unique("ex-durable");
    let quorum_ex = unique("ex-quorum");
    let plain_ex = unique("ex-plain");
    // an exchange some service made non-durable before
    {
        let conn = raw_connection(&env.url).await;
        let ch = conn.create_channel().await.unwrap();
        ch.exchange_declare(
            plain_ex.as_str().into(),
            lapin::ExchangeKind::Topic,
            lapin::options::ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let _ = conn.close(200, "OK".into()).await;
    }
    tokio::join!(
        shared_topic_with_options(&env, "amqp_durable_queues=true", &durable_ex),
        shared_topic_with_options(
            &env,
            "rabbit_quorum_queue=true&rabbit_quorum_delivery_limit=3&rabbit_transient_quorum_queue=true",
            &quorum_ex,
        ),
        shared_topic_with_options(&env, "amqp_durable_queues=true", &plain_ex),
    );

    let conn = raw_connection(&env.url).await;
    for ex in [durable_ex, quorum_ex, plain_ex] {
        if let Ok(ch) = conn.create_channel().await {
            let _ = ch
                .exchange_delete(
                    ex.as_str().into(),
                    lapin::options::ExchangeDeleteOptions::default(),
                )
                .await;
        }
    }
    let _ = conn.close(200, "OK".into()).await;
}

// ---------------------------------------------------------------------------------------
// Compressed bodies (kombu_compression)
// ---------------------------------------------------------------------------------------

/// Bodies compressed by one side (`kombu_compression`, kombu's `compression` header) are
/// read by the other, both ways: requests, replies and notifications. Python (kombu) knows
/// bz2 as `bzip2` (its `bz2`, the name oslo's help text gives, fails every send); we take
/// either name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_messages_both_ways() {
    let Some(env) = interop("interop: compressed messages") else {
        return;
    };
    let gzip = with_query(&env.url, "kombu_compression=gzip");
    let bz2 = with_query(&env.url, "kombu_compression=bz2");
    let bzip2 = with_query(&env.url, "kombu_compression=bzip2");
    let payload = json!({"text": "compress me ".repeat(40), "n": [1, 2, 3]});

    // Rust (bz2) calls Python (gzip); the Python peers compress with bzip2
    let py_topic = unique("zip-py");
    let mut py_server = Peer::spawn(
        &env,
        "py_rpc_server.py",
        &["--url", &gzip, "--topic", &py_topic, "--server", "py-1"],
    );
    // Python (bzip2) calls Rust (bzip2, kombu's name: replies in bz2)
    let rs_topic = unique("zip-rs");
    let (records_tx, _records) = mpsc::unbounded_channel();
    let rust = rust_server(&bzip2, &rs_topic, "rust-1", records_tx).await;
    let ops = json!([{"method": "echo", "args": {"value": payload}}]);
    let mut py_client = Peer::spawn(
        &env,
        "py_rpc_client.py",
        &["--url", &bzip2, "--topic", &rs_topic, &ops.to_string()],
    );
    // Python (bzip2) notifies Rust; Rust (gzip) notifies Python
    let to_rust = unique("zip-notify-rs");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener =
        NotificationListener::builder(transport(&env.url).await, [Target::topic(&to_rust)])
            .endpoint(forward_all(tx))
            .start()
            .await
            .unwrap();
    let mut py_notifier = Peer::spawn(
        &env,
        "py_notifier.py",
        &["--url", &bzip2, "--topic", &to_rust, "--count", "1"],
    );
    let to_python = unique("zip-notify-py");
    Notifier::new(transport(&gzip).await)
        .publisher_id("rust.zip")
        .topics([&to_python])
        .info(&Context::new(), "interop.zip", payload.clone())
        .await
        .unwrap();
    let mut py_listener = Peer::spawn(
        &env,
        "py_listener.py",
        &["--topic", &to_python, "--count", "1"],
    );

    py_server.ready().await;
    let client =
        RpcClient::new(transport(&bz2).await, Target::topic(&py_topic)).timeout(CALL_TIMEOUT);
    let echoed: Value = client
        .call(&Context::new(), "echo", json!({"value": payload}))
        .await
        .unwrap_or_else(|e| panic!("rust bz2 -> python gzip: {e}\n{py_server}"));
    assert_eq!(echoed, payload);

    let r = PythonPeer::client_results(&mut py_client, 1).await;
    assert_eq!(
        r[0]["ok"], payload,
        "python bzip2 -> rust bzip2: {py_client}"
    );

    py_notifier.event("done", Duration::from_secs(90)).await;
    let got = recv_n(&mut rx, 1, "python's bz2 notification").await;
    assert_eq!(
        got[0].payload.get("driver").unwrap_or_default(),
        "messagingv2"
    );
    let got = py_listener.notifications(1, ARRIVE_WITHIN).await;
    assert_eq!(got[0]["payload"], payload, "{py_listener}");

    rust.shutdown(Duration::from_secs(5)).await.unwrap();
    listener.shutdown(Duration::from_secs(5)).await.unwrap();
    py_server.stop().await;
    py_listener.stop().await;
    let mut queues = vec![
        py_topic.clone(),
        format!("{py_topic}.py-1"),
        rs_topic.clone(),
        format!("{rs_topic}.rust-1"),
    ];
    queues.extend(notification_queues(&to_rust));
    queues.extend(notification_queues(&to_python));
    cleanup(&env.url, &queues).await;
}
