//! The `otel` feature: msg's spans through `msg::otel`, in process (notifications, batches,
//! a call made while handling a call) and out to OTLP receivers (HTTP/protobuf, gRPC).

use std::time::Duration;

use msg::notify::{BatchNotificationListener, Handled, NotificationEndpoint, Notifier};
use msg::otel::OtelTracing;
use msg::{
    Context, Endpoint, HandlerError, Priority, RpcClient, RpcServer, Target, TracingOptions,
};
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::SubscriberExt;

const WITHIN: Duration = Duration::from_secs(10);

/// msg's spans, kept in memory for this test thread (current-thread runtimes: every task of
/// the test runs here).
struct Captured {
    spans: InMemorySpanExporter,
    _guard: DefaultGuard,
}

fn capture() -> Captured {
    let spans = InMemorySpanExporter::default();
    let otel = OtelTracing::with_exporter(&TracingOptions::default(), spans.clone());
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(otel.layer()));
    Captured {
        spans,
        _guard: guard,
    }
}

impl Captured {
    async fn span(&self, name: &str) -> SpanData {
        tokio::time::timeout(WITHIN, async {
            loop {
                let finished = self.spans.get_finished_spans().unwrap();
                if let Some(s) = finished.into_iter().find(|s| s.name == name) {
                    return s;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            let names: Vec<_> = self
                .spans
                .get_finished_spans()
                .unwrap()
                .into_iter()
                .map(|s| s.name)
                .collect();
            panic!("no span `{name}` within {WITHIN:?}; finished: {names:?}")
        })
    }
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

fn is_child(child: &SpanData, parent: &SpanData) -> bool {
    child.span_context.trace_id() == parent.span_context.trace_id()
        && child.parent_span_id == parent.span_context.span_id()
}

/// A notification's dispatch continues the notifier's trace, and a call made by an RPC
/// handler is a child of that handler's receive span: one trace from the first call to the
/// last notification handler.
#[tokio::test]
async fn one_trace_runs_through_calls_handlers_and_notifications() {
    let captured = capture();
    let transport = msg::Transport::open("memory://otel-chain").await.unwrap();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let listener = msg::notify::NotificationListener::builder(
        transport.clone(),
        [Target::topic("notifications")],
    )
    .endpoint(NotificationEndpoint::new().on(Priority::Info, move |m| {
        let seen_tx = seen_tx.clone();
        async move {
            let _ = seen_tx.send(m.event_type.clone());
            Handled
        }
    }))
    .start()
    .await
    .unwrap();
    let notifier = Notifier::new(transport.clone()).publisher_id("compute.host1");
    let backend = Endpoint::new().method("store", move |ctx: Context, _: Value| {
        let notifier = notifier.clone();
        async move {
            notifier
                .info(&ctx, "compute.instance.create.end", json!({"id": 1}))
                .await
                .map_err(|e| HandlerError::new(e.to_string()))?;
            Ok::<_, HandlerError>(1)
        }
    });
    let backend_server = RpcServer::builder(transport.clone(), Target::server("backend", "b1"))
        .endpoint(backend)
        .start()
        .await
        .unwrap();
    let inner = RpcClient::new(transport.clone(), Target::topic("backend"));
    let front = Endpoint::new().method("create", move |ctx: Context, _: Value| {
        let inner = inner.clone();
        async move {
            inner
                .call::<i64>(&ctx, "store", json!({}))
                .await
                .map_err(|e| HandlerError::new(e.to_string()))
        }
    });
    let front_server = RpcServer::builder(transport.clone(), Target::server("front", "f1"))
        .endpoint(front)
        .start()
        .await
        .unwrap();

    let ctx = Context::new().with("request_id", "req-chain");
    let stored: i64 = RpcClient::new(transport.clone(), Target::topic("front"))
        .call(&ctx, "create", json!({}))
        .await
        .unwrap();
    assert_eq!(stored, 1);
    let event = tokio::time::timeout(WITHIN, seen.recv()).await.unwrap();
    assert_eq!(event.as_deref(), Some("compute.instance.create.end"));

    let call = captured.span("front.create").await;
    let front_receive = captured.span("create receive").await;
    let inner_call = captured.span("backend.store").await;
    let back_receive = captured.span("store receive").await;
    let notify = captured
        .span("notifications.compute.instance.create.end")
        .await;
    let dispatch = captured.span("compute.instance.create.end receive").await;
    assert_eq!(call.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    for (child, parent) in [
        (&front_receive, &call),
        (&inner_call, &front_receive),
        (&back_receive, &inner_call),
        (&notify, &back_receive),
        (&dispatch, &notify),
    ] {
        assert!(
            is_child(child, parent),
            "`{}` is a child of `{}`",
            child.name,
            parent.name
        );
    }
    assert_eq!(notify.span_kind, SpanKind::Producer);
    assert_eq!(attr(&notify, "messaging.system").as_deref(), Some("memory"));
    assert_eq!(
        attr(&notify, "messaging.operation").as_deref(),
        Some("notify")
    );
    assert_eq!(
        attr(&notify, "messaging.destination.name").as_deref(),
        Some("notifications.info")
    );
    assert_eq!(dispatch.span_kind, SpanKind::Consumer);
    assert_eq!(
        attr(&dispatch, "messaging.message.id"),
        attr(&notify, "messaging.message.id")
    );
    assert_eq!(
        attr(&dispatch, "openstack.request_id").as_deref(),
        Some("req-chain")
    );

    listener.shutdown(WITHIN).await.unwrap();
    front_server.shutdown(WITHIN).await.unwrap();
    backend_server.shutdown(WITHIN).await.unwrap();
}

/// A failed call marks both spans failed; a batch's span links to the trace of each of its
/// notifications.
#[tokio::test]
async fn failures_mark_spans_and_batches_link_their_messages() {
    let captured = capture();
    let transport = msg::Transport::open("memory://otel-batch").await.unwrap();
    let server = RpcServer::builder(transport.clone(), Target::server("calc", "c1"))
        .endpoint(
            Endpoint::new().method("fail", |_ctx: Context, _: Value| async move {
                Err::<i64, _>(HandlerError::with_class(
                    "ValueError",
                    "builtins",
                    "bad input",
                ))
            }),
        )
        .start()
        .await
        .unwrap();
    let err = RpcClient::new(transport.clone(), Target::topic("calc"))
        .call::<i64>(&Context::new(), "fail", json!({}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bad input"), "{err}");
    for name in ["calc.fail", "fail receive"] {
        let span = captured.span(name).await;
        assert!(
            matches!(&span.status, opentelemetry::trace::Status::Error { description } if description.contains("bad input")),
            "{name}: {:?}",
            span.status
        );
    }

    let (got_tx, mut got) = mpsc::unbounded_channel();
    let batches = BatchNotificationListener::builder(
        transport.clone(),
        [Target::topic("metering")],
        3,
        Duration::from_millis(200),
    )
    .endpoint(
        NotificationEndpoint::new().on_batch(Priority::Info, move |ms| {
            let got_tx = got_tx.clone();
            async move {
                let _ = got_tx.send(ms.len());
                Handled
            }
        }),
    )
    .start()
    .await
    .unwrap();
    let notifier = Notifier::new(transport.clone()).topics(["metering"]);
    for i in 0..3 {
        notifier
            .info(&Context::new(), "meter", json!({"i": i}))
            .await
            .unwrap();
    }
    let mut handled = 0;
    while handled < 3 {
        handled += tokio::time::timeout(WITHIN, got.recv())
            .await
            .unwrap()
            .unwrap();
    }
    let batch = captured.span("batch receive").await;
    let sends: Vec<SpanData> = captured
        .spans
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|s| s.name == "metering.meter")
        .collect();
    assert_eq!(sends.len(), 3);
    let linked: Vec<_> = batch
        .links
        .iter()
        .map(|l| (l.span_context.trace_id(), l.span_context.span_id()))
        .collect();
    for send in &sends {
        let id = (send.span_context.trace_id(), send.span_context.span_id());
        assert!(
            linked.contains(&id),
            "the batch links to each notification's send: {linked:?}"
        );
    }
    batches.shutdown(WITHIN).await.unwrap();
    server.shutdown(WITHIN).await.unwrap();
}

/// Reads one HTTP/1.1 request (headers and a Content-Length body) and answers 200.
async fn one_http_request(listener: &TcpListener) -> (String, Vec<u8>) {
    let (mut sock, _) = listener.accept().await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = sock.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed before the headers ended");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        assert!(buf.len() < 64 * 1024, "headers too long");
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    assert!(length < 16 * 1024 * 1024);
    while buf.len() < head_end + length {
        let n = sock.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed inside the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    sock.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
    )
    .await
    .unwrap();
    (head, buf[head_end..head_end + length].to_vec())
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// `otlp_protocol = http/protobuf`: spans are POSTed as protobuf to
/// `<otel_exporter_otlp_endpoint>/v1/traces` with the configured service name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_go_to_an_otlp_http_receiver() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let options = TracingOptions::from_pairs([
        ("tracing_enabled", "true"),
        ("tracing_service_name", "msg-otel-test"),
        ("otel_exporter_otlp_endpoint", endpoint.as_str()),
        ("otlp_protocol", "http/protobuf"),
    ])
    .unwrap();
    let otel = OtelTracing::from_options(&options).unwrap().unwrap();
    let receiver = tokio::spawn(async move { one_http_request(&listener).await });
    {
        let _guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(otel.layer()));
        let transport = msg::Transport::open("memory://otel-http").await.unwrap();
        let notifier = Notifier::new(transport).topics(["exported"]);
        notifier
            .info(&Context::new(), "exported.event", json!({}))
            .await
            .unwrap();
    }
    let flush = tokio::task::spawn_blocking(move || otel.shutdown());
    let (head, body) = tokio::time::timeout(WITHIN, receiver)
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(WITHIN, flush)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(head.starts_with("POST /v1/traces HTTP/1.1"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/x-protobuf"),
        "{head}"
    );
    assert!(
        contains(&body, "exported.exported.event"),
        "the span's name"
    );
    assert!(contains(&body, "msg-otel-test"), "the service name");
    assert!(contains(&body, "messaging.system"), "the attributes");
}

/// `otlp_protocol = grpc`: the exporter opens an HTTP/2 connection to the endpoint itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_go_to_an_otlp_grpc_endpoint() {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let options = TracingOptions::from_pairs([
        ("tracing_enabled", "true"),
        ("otel_exporter_otlp_endpoint", endpoint.as_str()),
        ("otlp_protocol", "grpc"),
    ])
    .unwrap();
    let otel = OtelTracing::from_options(&options).unwrap().unwrap();
    let receiver = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut got = vec![0u8; PREFACE.len()];
        sock.read_exact(&mut got).await.unwrap();
        got
    });
    {
        let _guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(otel.layer()));
        let transport = msg::Transport::open("memory://otel-grpc").await.unwrap();
        Notifier::new(transport)
            .topics(["exported"])
            .info(&Context::new(), "exported.event", json!({}))
            .await
            .unwrap();
    }
    // the receiver speaks no gRPC: the export fails once it has seen the connection
    let flush = tokio::task::spawn_blocking(move || otel.shutdown());
    let got = tokio::time::timeout(WITHIN, receiver)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, PREFACE, "an HTTP/2 connection");
    let _ = tokio::time::timeout(WITHIN, flush).await.unwrap();
}

/// What the options can't do is refused with an error naming the option; tracing off makes
/// no pipeline.
#[test]
fn bad_exporter_options_are_refused() {
    assert!(
        OtelTracing::from_options(&TracingOptions::default())
            .unwrap()
            .is_none()
    );
    let https = TracingOptions::from_pairs([
        ("tracing_enabled", "true"),
        ("otel_exporter_otlp_endpoint", "https://collector:4318"),
    ])
    .unwrap();
    let err = OtelTracing::from_options(&https).unwrap_err();
    assert!(
        err.to_string().contains("otel_exporter_otlp_endpoint"),
        "{err}"
    );
    let grpc = TracingOptions::from_pairs([("tracing_enabled", "true"), ("otlp_protocol", "grpc")])
        .unwrap();
    let err = OtelTracing::from_options(&grpc).unwrap_err();
    assert!(err.to_string().contains("Tokio runtime"), "{err}");
}

/// Over NATS, a call and its dispatch are one trace and say `messaging.system = nats`.
#[cfg(feature = "nats")]
#[tokio::test]
async fn a_call_over_nats_is_one_trace() {
    let url = std::env::var("MSG_NATS_URL").ok().filter(|u| !u.is_empty());
    let Some(url) = url else {
        assert!(
            std::env::var("MSG_REQUIRE_BROKERS").as_deref() != Ok("1"),
            "MSG_REQUIRE_BROKERS=1 but MSG_NATS_URL is not set"
        );
        eprintln!("SKIPPED: otel over NATS (no MSG_NATS_URL)");
        return;
    };
    let captured = capture();
    let topic = format!("otel-nats-{}", uuid::Uuid::new_v4().simple());
    let transport = msg::Transport::open(&url).await.unwrap();
    let server = RpcServer::builder(transport.clone(), Target::server(&topic, "n1"))
        .endpoint(
            Endpoint::new().method("ping", |_ctx: Context, _: Value| async move {
                Ok::<_, HandlerError>("pong")
            }),
        )
        .start()
        .await
        .unwrap();
    let pong: String = RpcClient::new(transport.clone(), Target::topic(&topic))
        .call(&Context::new(), "ping", json!({}))
        .await
        .unwrap();
    assert_eq!(pong, "pong");
    let call = captured.span(&format!("{topic}.ping")).await;
    let receive = captured.span("ping receive").await;
    assert!(is_child(&receive, &call));
    for span in [&call, &receive] {
        assert_eq!(attr(span, "messaging.system").as_deref(), Some("nats"));
    }
    server.shutdown(WITHIN).await.unwrap();
    transport.cleanup().await.unwrap();
}
