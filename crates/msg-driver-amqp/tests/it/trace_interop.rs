//! One trace across languages: Python oslo.messaging 18.3.1 with its tracing on
//! (`[oslo_messaging_tracing] tracing_enabled`) and msg with the `otel` feature, over one
//! RabbitMQ, both ways. The spans of both sides share a trace id, the receiving span is the
//! child of the sending one, and both carry oslo's names and attributes.
//!
//! Python prints its spans as they end (`--trace`: oslo's own spans, through a tracer
//! provider that prints instead of exporting over OTLP); ours go to OpenTelemetry's
//! in-memory exporter through `tracing-opentelemetry`. The subscriber is this test thread's
//! (a current-thread runtime, so every task of the test, the server's included, runs here).

use std::time::{Duration, Instant};

use msg_client::RpcClient;
use msg_core::{Context, Target};
use msg_dispatch::{Endpoint, HandlerError};
use msg_server::RpcServer;
use msg_testkit::PythonPeer;
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::SubscriberExt;

use crate::interop::{cleanup, interop, transport, unique};

const WITHIN: Duration = Duration::from_secs(30);

/// Our spans, kept in memory while the guard lives.
struct Captured {
    spans: InMemorySpanExporter,
    _guard: DefaultGuard,
}

fn capture() -> Captured {
    let spans = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("msg")));
    Captured {
        spans,
        _guard: tracing::subscriber::set_default(subscriber),
    }
}

impl Captured {
    /// Our finished span named `name` (bounded wait: a server's span ends after its reply).
    async fn span(&self, name: &str) -> SpanData {
        let deadline = Instant::now() + WITHIN;
        loop {
            let finished = self.spans.get_finished_spans().unwrap();
            if let Some(s) = finished.iter().find(|s| s.name == name) {
                return s.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no span `{name}` within {WITHIN:?}; finished: {:?}",
                finished.iter().map(|s| &s.name).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// Python's span line named `name` among `lines`.
fn py_span<'a>(lines: &'a [Value], name: &str, peer: &PythonPeer) -> &'a Value {
    lines
        .iter()
        .find(|l| l["event"] == "span" && l["name"] == name)
        .unwrap_or_else(|| panic!("no Python span `{name}`\n{peer}"))
}

/// Asserts that `child` (ours or Python's, as ids) is a child of `parent` in one trace.
fn assert_child(child: (&str, &str), parent: (&str, &str), what: &str) {
    assert_eq!(child.0, parent.0, "{what}: one trace id");
    assert_eq!(child.1, parent.1, "{what}: parented on the sending span");
}

#[derive(Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

#[derive(Deserialize)]
struct Record {
    #[allow(dead_code)]
    value: Value,
}

/// A Python client with oslo's tracing calls and casts to a msg server: our receive spans
/// continue Python's traces; and a msg handler that calls a Python server on (`relay`)
/// keeps one trace from the Python client through msg to the Python server.
#[tokio::test]
async fn a_python_trace_continues_in_a_msg_server() {
    let Some(env) = interop("tracing: python client -> msg server") else {
        return;
    };
    let captured = capture();
    let topic = unique("trace-py2rs");
    let backend = unique("trace-backend");
    let mut py_server = PythonPeer::spawn(
        &env,
        "py_rpc_server.py",
        &["--topic", &backend, "--server", "py-1", "--trace"],
    );
    py_server.ready().await;
    let transport = transport(&env.url).await;
    let onward =
        RpcClient::new(transport.clone(), Target::topic(&backend)).timeout(Duration::from_secs(20));
    let calc = Endpoint::new()
        .method("add", |_ctx: Context, Add { a, b }| async move {
            Ok::<_, HandlerError>(a + b)
        })
        .method("record", |_ctx: Context, _: Record| async move {
            Ok::<_, HandlerError>(())
        })
        .method("relay", move |ctx: Context, args: Add| {
            let onward = onward.clone();
            async move {
                onward
                    .call::<i64>(&ctx, "add", json!({"a": args.a, "b": args.b}))
                    .await
                    .map_err(|e| HandlerError::new(e.to_string()))
            }
        });
    let server = RpcServer::builder(transport, Target::server(&topic, "rust-1"))
        .endpoint(calc)
        .start()
        .await
        .unwrap();

    let ops = json!([
        {"op": "call", "method": "add", "args": {"a": 2, "b": 3},
         "context": {"request_id": "req-trace-py"}},
        {"op": "cast", "method": "record", "args": {"value": 1}},
        {"op": "call", "method": "relay", "args": {"a": 4, "b": 5},
         "context": {"request_id": "req-relay"}},
    ]);
    let mut py = PythonPeer::spawn(
        &env,
        "py_rpc_client.py",
        &["--topic", &topic, "--trace", &ops.to_string()],
    );
    let lines = py.until("done", WITHIN).await;
    assert!(
        lines.iter().any(|l| l["i"] == 0 && l["ok"] == 5),
        "the call's result\n{py}"
    );

    let py_call = py_span(&lines, &format!("{topic}.add"), &py);
    assert_eq!(py_call["kind"], "PRODUCER");
    assert_eq!(py_call["attributes"]["messaging.operation"], "call");
    let ours = captured.span("add receive").await;
    assert_child(
        (
            &ours.span_context.trace_id().to_string(),
            &ours.parent_span_id.to_string(),
        ),
        (
            py_call["trace_id"].as_str().unwrap(),
            py_call["span_id"].as_str().unwrap(),
        ),
        "python call -> msg server",
    );
    assert!(ours.parent_span_is_remote);
    assert_eq!(ours.span_kind, SpanKind::Consumer);
    assert_eq!(attr(&ours, "messaging.system").as_deref(), Some("rabbitmq"));
    assert_eq!(
        attr(&ours, "messaging.operation").as_deref(),
        Some("receive")
    );
    assert_eq!(attr(&ours, "rpc.method").as_deref(), Some("add"));
    assert_eq!(
        attr(&ours, "openstack.request_id").as_deref(),
        Some("req-trace-py")
    );
    assert_eq!(
        attr(&ours, "messaging.destination.name").as_deref(),
        Some(topic.as_str())
    );
    let msg_id = attr(&ours, "messaging.message.id").unwrap_or_default();
    assert_eq!(msg_id.len(), 32, "the call's msg_id: {msg_id:?}");

    let py_cast = py_span(&lines, &format!("{topic}.record"), &py);
    assert_eq!(py_cast["attributes"]["messaging.operation"], "cast");
    let ours = captured.span("record receive").await;
    assert_child(
        (
            &ours.span_context.trace_id().to_string(),
            &ours.parent_span_id.to_string(),
        ),
        (
            py_cast["trace_id"].as_str().unwrap(),
            py_cast["span_id"].as_str().unwrap(),
        ),
        "python cast -> msg server",
    );
    assert_eq!(
        attr(&ours, "messaging.message.id"),
        None,
        "a cast has no msg_id"
    );

    // relay: python client -> msg server -> msg client -> python server, one trace
    assert!(
        lines.iter().any(|l| l["i"] == 2 && l["ok"] == 9),
        "the relayed call's result\n{py}"
    );
    let py_relay = py_span(&lines, &format!("{topic}.relay"), &py);
    let our_receive = captured.span("relay receive").await;
    let our_call = captured.span(&format!("{backend}.add")).await;
    let mut backend_lines = Vec::new();
    let deadline = Instant::now() + WITHIN;
    while !backend_lines
        .iter()
        .any(|l: &Value| l["event"] == "span" && l["name"] == "add receive")
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match py_server.try_next(left).await {
            Some(l) => backend_lines.push(l),
            None => panic!("no Python `add receive` span within {WITHIN:?}\n{py_server}"),
        }
    }
    let py_receive = py_span(&backend_lines, "add receive", &py_server);
    let trace = py_relay["trace_id"].as_str().unwrap();
    let our = |s: &SpanData| {
        (
            s.span_context.trace_id().to_string(),
            s.parent_span_id.to_string(),
        )
    };
    let (t, parent) = our(&our_receive);
    assert_child(
        (&t, &parent),
        (trace, py_relay["span_id"].as_str().unwrap()),
        "relay: python -> msg",
    );
    let (t, parent) = our(&our_call);
    assert_child(
        (&t, &parent),
        (trace, &our_receive.span_context.span_id().to_string()),
        "relay: msg handler -> its onward call",
    );
    assert_child(
        (
            py_receive["trace_id"].as_str().unwrap(),
            py_receive["parent_span_id"].as_str().unwrap_or_default(),
        ),
        (trace, &our_call.span_context.span_id().to_string()),
        "relay: msg -> python",
    );
    assert_eq!(
        py_receive["attributes"]["openstack.request_id"],
        "req-relay"
    );
    eprintln!(
        "{}",
        render(&[
            Row::python(py_relay),
            Row::msg(&our_receive),
            Row::msg(&our_call),
            Row::python(py_receive),
        ])
    );

    py.stop().await;
    py_server.stop().await;
    server.shutdown(Duration::from_secs(10)).await.unwrap();
    cleanup(
        &env.url,
        &[
            topic.clone(),
            format!("{topic}.rust-1"),
            backend.clone(),
            format!("{backend}.py-1"),
        ],
    )
    .await;
}

/// A msg client calls and casts to a Python server with oslo's tracing: Python's receive
/// spans continue our traces.
#[tokio::test]
async fn a_msg_trace_continues_in_a_python_server() {
    let Some(env) = interop("tracing: msg client -> python server") else {
        return;
    };
    let captured = capture();
    let topic = unique("trace-rs2py");
    let mut py = PythonPeer::spawn(
        &env,
        "py_rpc_server.py",
        &["--topic", &topic, "--server", "py-1", "--trace"],
    );
    py.ready().await;
    let client = RpcClient::new(transport(&env.url).await, Target::topic(&topic))
        .timeout(Duration::from_secs(20));
    let ctx = Context::new().with("request_id", "req-trace-rs");
    let sum: i64 = client
        .call(&ctx, "add", json!({"a": 2, "b": 3}))
        .await
        .unwrap();
    assert_eq!(sum, 5);
    client
        .cast(&ctx, "record", json!({"value": "traced"}))
        .await
        .unwrap();
    let ours_call = captured.span(&format!("{topic}.add")).await;
    let ours_cast = captured.span(&format!("{topic}.record")).await;

    let mut lines = Vec::new();
    let deadline = Instant::now() + WITHIN;
    while lines
        .iter()
        .filter(|l: &&Value| l["event"] == "span")
        .count()
        < 2
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match py.try_next(left).await {
            Some(l) => lines.push(l),
            None => panic!("fewer than 2 Python spans within {WITHIN:?}: {lines:?}\n{py}"),
        }
    }
    for (ours, name, operation) in [
        (&ours_call, "add receive", "call"),
        (&ours_cast, "record receive", "cast"),
    ] {
        assert_eq!(ours.span_kind, SpanKind::Producer);
        assert_eq!(attr(ours, "messaging.system").as_deref(), Some("rabbitmq"));
        assert_eq!(
            attr(ours, "messaging.operation").as_deref(),
            Some(operation)
        );
        assert_eq!(
            attr(ours, "messaging.destination.name").as_deref(),
            Some(topic.as_str())
        );
        assert_eq!(
            attr(ours, "openstack.request_id").as_deref(),
            Some("req-trace-rs")
        );
        let theirs = py_span(&lines, name, &py);
        assert_eq!(theirs["kind"], "CONSUMER");
        assert_eq!(theirs["attributes"]["openstack.request_id"], "req-trace-rs");
        assert_child(
            (
                theirs["trace_id"].as_str().unwrap(),
                theirs["parent_span_id"].as_str().unwrap_or_default(),
            ),
            (
                &ours.span_context.trace_id().to_string(),
                &ours.span_context.span_id().to_string(),
            ),
            &format!("msg {operation} -> python server"),
        );
    }
    assert_ne!(
        ours_call.span_context.trace_id(),
        ours_cast.span_context.trace_id(),
        "two sends without a parent start two traces"
    );

    py.stop().await;
    cleanup(&env.url, &[topic.clone(), format!("{topic}.py-1")]).await;
}

/// One span of either side, for the rendered trace.
struct Row {
    side: &'static str,
    name: String,
    kind: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: Vec<(String, String)>,
}

impl Row {
    fn python(v: &Value) -> Row {
        let mut attributes: Vec<(String, String)> = v["attributes"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                )
            })
            .collect();
        attributes.sort();
        Row {
            side: "python",
            name: v["name"].as_str().unwrap_or_default().to_string(),
            kind: v["kind"].as_str().unwrap_or_default().to_ascii_lowercase(),
            trace_id: v["trace_id"].as_str().unwrap_or_default().to_string(),
            span_id: v["span_id"].as_str().unwrap_or_default().to_string(),
            parent: v["parent_span_id"].as_str().unwrap_or_default().to_string(),
            attributes,
        }
    }

    fn msg(s: &SpanData) -> Row {
        let mut attributes: Vec<(String, String)> = s
            .attributes
            .iter()
            .filter(|kv| {
                !kv.key.as_str().starts_with("code.") && !kv.key.as_str().starts_with("thread.")
            })
            .filter(|kv| !matches!(kv.key.as_str(), "target" | "busy_ns" | "idle_ns"))
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect();
        attributes.sort();
        Row {
            side: "msg",
            name: s.name.to_string(),
            kind: format!("{:?}", s.span_kind).to_ascii_lowercase(),
            trace_id: s.span_context.trace_id().to_string(),
            span_id: s.span_context.span_id().to_string(),
            parent: s.parent_span_id.to_string(),
            attributes,
        }
    }
}

/// The spans as a tree, each under its parent.
fn render(rows: &[Row]) -> String {
    fn line(r: &Row, depth: usize, out: &mut String) {
        let pad = "  ".repeat(depth);
        out.push_str(&format!(
            "{pad}{} [{}, {}] span {}\n",
            r.name, r.side, r.kind, r.span_id
        ));
        for (k, v) in &r.attributes {
            out.push_str(&format!("{pad}    {k} = {v}\n"));
        }
    }
    fn below(rows: &[Row], parent: &str, depth: usize, out: &mut String) {
        for r in rows.iter().filter(|r| r.parent == parent) {
            line(r, depth, out);
            below(rows, &r.span_id, depth + 1, out);
        }
    }
    let ids: Vec<&str> = rows.iter().map(|r| r.span_id.as_str()).collect();
    let mut out = format!(
        "trace {}\n",
        rows.first().map_or("", |r| r.trace_id.as_str())
    );
    for root in rows.iter().filter(|r| !ids.contains(&r.parent.as_str())) {
        line(root, 0, &mut out);
        below(rows, &root.span_id, 1, &mut out);
    }
    out
}
