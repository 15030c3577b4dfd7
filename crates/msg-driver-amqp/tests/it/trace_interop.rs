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
/// continue Python's traces.
#[tokio::test]
async fn a_python_trace_continues_in_a_msg_server() {
    let Some(env) = interop("tracing: python client -> msg server") else {
        return;
    };
    let captured = capture();
    let topic = unique("trace-py2rs");
    let calc = Endpoint::new()
        .method("add", |_ctx: Context, Add { a, b }| async move {
            Ok::<_, HandlerError>(a + b)
        })
        .method("record", |_ctx: Context, _: Record| async move {
            Ok::<_, HandlerError>(())
        });
    let server = RpcServer::builder(transport(&env.url).await, Target::server(&topic, "rust-1"))
        .endpoint(calc)
        .start()
        .await
        .unwrap();

    let ops = json!([
        {"op": "call", "method": "add", "args": {"a": 2, "b": 3},
         "context": {"request_id": "req-trace-py"}},
        {"op": "cast", "method": "record", "args": {"value": 1}},
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

    py.stop().await;
    server.shutdown(Duration::from_secs(10)).await.unwrap();
    cleanup(&env.url, &[topic.clone(), format!("{topic}.rust-1")]).await;
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
