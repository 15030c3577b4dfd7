//! Metrics after a known workload on `memory://`: as Prometheus scrapes them, and as
//! oslo.metrics (the Python package) makes them of our datagrams.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use msg::metrics::{self as names, OsloMetricsSink, PROCESSING_SECONDS_BUCKETS};
use msg::notify::{Handled, NotificationEndpoint, NotificationListener, Notifier, Requeue};
use msg::{Context, Endpoint, HandlerError, Priority, RpcClient, RpcServer, Target, Transport};
use serde_json::{Value, json};

/// One sample of a Prometheus text exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a Prometheus text exposition (label values without escapes, as ours are).
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|kv| !kv.is_empty())
                .filter_map(|kv| {
                    let (k, v) = kv.split_once("=\"")?;
                    Some((k.to_owned(), v.trim_end_matches('"').to_owned()))
                })
                .collect();
            Some(Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// The sum of the samples named `name` whose labels include `want`.
fn total(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

const TOPIC: &str = "metrics-calc";
const NOTIFY_TOPIC: &str = "metrics-notifications";

/// The known workload: 3 calls of `add`, 1 of `fail` (a remote ValueError), 2 casts of
/// `note`; 2 `info` and 1 `warn` notifications, the `warn` one requeued once by a listener
/// in pool `metrics-pool`. Returns when all of it was handled.
async fn workload(url: &str) {
    let transport = Transport::open(url).await.unwrap();
    let noted = Arc::new(AtomicUsize::new(0));
    let n = noted.clone();
    let endpoint = Endpoint::new()
        .method("add", |_: Context, args: Value| async move {
            Ok::<_, HandlerError>(args["a"].as_i64().unwrap_or(0) + args["b"].as_i64().unwrap_or(0))
        })
        .method("fail", |_: Context, _: Value| async {
            Err::<(), _>(HandlerError::with_class("ValueError", "builtins", "no"))
        })
        .method("note", move |_: Context, _: Value| {
            let n = n.clone();
            async move {
                n.fetch_add(1, Ordering::SeqCst);
                Ok::<_, HandlerError>(())
            }
        });
    let server = RpcServer::builder(transport.clone(), Target::server(TOPIC, "h1"))
        .endpoint(endpoint)
        .start()
        .await
        .unwrap();

    let handled = Arc::new(AtomicUsize::new(0));
    let requeued_once = Arc::new(AtomicBool::new(false));
    let (h1, h2, r) = (handled.clone(), handled.clone(), requeued_once.clone());
    let listener = NotificationListener::builder(transport.clone(), [Target::topic(NOTIFY_TOPIC)])
        .pool("metrics-pool")
        .allow_requeue(true)
        .endpoint(
            NotificationEndpoint::new()
                .on(Priority::Info, move |_| {
                    h1.fetch_add(1, Ordering::SeqCst);
                    async { Handled }
                })
                .on(Priority::Warn, move |_| {
                    let first = !r.swap(true, Ordering::SeqCst);
                    if !first {
                        h2.fetch_add(1, Ordering::SeqCst);
                    }
                    async move { if first { Requeue } else { Handled } }
                }),
        )
        .start()
        .await
        .unwrap();

    let client = RpcClient::new(transport.clone(), Target::topic(TOPIC));
    let ctx = Context::new();
    for i in 0..3 {
        let sum: i64 = client
            .call(&ctx, "add", json!({"a": i, "b": 1}))
            .await
            .unwrap();
        assert_eq!(sum, i + 1);
    }
    let err = client
        .call::<()>(&ctx, "fail", json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, msg::Error::Remote(_)), "{err}");
    for _ in 0..2 {
        client.cast(&ctx, "note", json!({})).await.unwrap();
    }
    let notifier = Notifier::new(transport.clone())
        .publisher_id("metrics.test")
        .topics([NOTIFY_TOPIC]);
    notifier.info(&ctx, "a.b", json!({})).await.unwrap();
    notifier.info(&ctx, "a.b", json!({})).await.unwrap();
    notifier.warn(&ctx, "a.c", json!({})).await.unwrap();

    tokio::time::timeout(Duration::from_secs(10), async {
        while noted.load(Ordering::SeqCst) < 2 || handled.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the casts and notifications are handled within 10 s");
    listener.shutdown(Duration::from_secs(5)).await.unwrap();
    server.shutdown(Duration::from_secs(5)).await.unwrap();
    transport.cleanup().await.unwrap();
}

/// Checks the RPC counts the workload leaves, in series that also carry the `extra` labels
/// (oslo.metrics adds `process`; msg's own series have none).
fn check_rpc_counts(samples: &[Sample], extra: &[(&str, &str)]) {
    let with = |pairs: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        pairs.iter().copied().chain(extra.iter().copied()).collect()
    };
    let call_add = with(&[
        ("call_type", "call"),
        ("topic", TOPIC),
        ("method", "add"),
        ("exchange", "None"),
        ("server", "None"),
        ("fanout", "None"),
        ("timeout", "None"),
    ]);
    let client_start = names::RPC_CLIENT_INVOCATION_START_TOTAL;
    let client_end = names::RPC_CLIENT_INVOCATION_END_TOTAL;
    assert_eq!(total(samples, client_start, &call_add), 3.0);
    assert_eq!(total(samples, client_end, &call_add), 3.0);
    let seconds_count = format!("{}_count", names::RPC_CLIENT_PROCESSING_SECONDS);
    assert_eq!(total(samples, &seconds_count, &call_add), 3.0);
    let fail = with(&[("call_type", "call"), ("method", "fail")]);
    assert_eq!(total(samples, client_start, &fail), 1.0);
    assert_eq!(total(samples, client_end, &fail), 0.0);
    let fail_exc = with(&[("method", "fail"), ("exception", "RemoteError")]);
    assert_eq!(
        total(samples, names::RPC_CLIENT_EXCEPTION_TOTAL, &fail_exc),
        1.0
    );
    let cast = with(&[("call_type", "cast"), ("method", "note")]);
    assert_eq!(total(samples, client_start, &cast), 2.0);
    assert_eq!(total(samples, client_end, &cast), 2.0);

    let server_add = with(&[
        ("topic", TOPIC),
        ("server", "h1"),
        ("endpoint", "0"),
        ("namespace", "None"),
        ("version", "1.0"),
        ("method", "add"),
    ]);
    let server_start = names::RPC_SERVER_INVOCATION_START_TOTAL;
    let server_end = names::RPC_SERVER_INVOCATION_END_TOTAL;
    assert_eq!(total(samples, server_start, &server_add), 3.0);
    assert_eq!(total(samples, server_end, &server_add), 3.0);
    let server_fail = with(&[("method", "fail"), ("exception", "ValueError")]);
    assert_eq!(
        total(samples, names::RPC_SERVER_EXCEPTION_TOTAL, &server_fail),
        1.0
    );
    let note = with(&[("method", "note")]);
    assert_eq!(total(samples, server_start, &note), 2.0);
    assert_eq!(total(samples, server_end, &note), 2.0);
}

#[tokio::test]
async fn prometheus_shows_the_counts_of_a_known_workload() {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_processing_seconds".into()),
            &PROCESSING_SECONDS_BUCKETS,
        )
        .unwrap()
        .build_recorder();
    let handle = recorder.handle();
    {
        let _guard = ::metrics::set_default_local_recorder(&recorder);
        msg::metrics::describe();
        workload("memory://metrics-prometheus").await;
    }
    let text = handle.render();
    let samples = parse(&text);
    check_rpc_counts(&samples, &[]);
    assert!(
        text.contains("# HELP oslo_messaging_rpc_client_invocation_start_total"),
        "{text}"
    );
    // oslo.metrics's buckets
    let bucket = format!("{}_bucket", names::RPC_SERVER_PROCESSING_SECONDS);
    assert_eq!(
        total(&samples, &bucket, &[("method", "add"), ("le", "+Inf")]),
        3.0
    );
    assert_eq!(
        total(&samples, &bucket, &[("method", "add"), ("le", "0.01")])
            + total(&samples, &bucket, &[("method", "add"), ("le", "100")]),
        6.0,
        "{text}"
    );
    let sent = names::NOTIFICATIONS_SENT_TOTAL;
    assert_eq!(total(&samples, sent, &[("priority", "info")]), 2.0);
    assert_eq!(total(&samples, sent, &[("priority", "warn")]), 1.0);
    let pool = ("pool", "metrics-pool");
    let handled = names::NOTIFICATIONS_HANDLED_TOTAL;
    let requeued = names::NOTIFICATIONS_REQUEUED_TOTAL;
    assert_eq!(total(&samples, handled, &[pool, ("priority", "info")]), 2.0);
    assert_eq!(total(&samples, handled, &[pool, ("priority", "warn")]), 1.0);
    assert_eq!(
        total(&samples, requeued, &[pool, ("priority", "warn")]),
        1.0
    );
    assert_eq!(
        total(&samples, requeued, &[pool, ("priority", "info")]),
        0.0
    );
}

#[tokio::test]
async fn oslo_metrics_takes_our_datagrams() {
    let python = match std::env::var("MSG_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            assert!(
                std::env::var("MSG_REQUIRE_BROKERS").as_deref() != Ok("1"),
                "MSG_REQUIRE_BROKERS=1 but MSG_PYTHON is not set"
            );
            eprintln!("SKIPPED: oslo.metrics datagrams (no MSG_PYTHON with oslo.metrics)");
            return;
        }
    };
    let dir = std::env::temp_dir().join(format!("msg-oslo-metrics-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("metrics_collector.sock");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/oslo_metrics_collector.py");
    let mut collector = Command::new(python)
        .arg(script)
        .arg(&socket)
        .arg("60")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(collector.stdout.take().unwrap()).lines();
    let ready = tokio::task::spawn_blocking(move || {
        let first = lines.next();
        (first, lines)
    });
    let (first, mut lines) = tokio::time::timeout(Duration::from_secs(60), ready)
        .await
        .expect("oslo.metrics's collector starts within 60 s")
        .unwrap();
    assert_eq!(first.unwrap().unwrap(), "ready");

    let sink = OsloMetricsSink::new(&socket).process("msg-it");
    {
        let _guard = ::metrics::set_default_local_recorder(&sink);
        msg::metrics::describe();
        workload("memory://metrics-oslo").await;
    }
    let mut stdin = collector.stdin.take().unwrap();
    writeln!(stdin, "done").unwrap();
    let report = tokio::time::timeout(
        Duration::from_secs(70),
        tokio::task::spawn_blocking(move || lines.next()),
    )
    .await
    .expect("oslo.metrics's collector reports within its lifetime")
    .unwrap()
    .unwrap()
    .unwrap();
    let _ = collector.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["errors"], json!([]), "oslo.metrics rejected some");
    // 3 calls x (start, seconds, end), 1 failed call x (start, exception), 2 casts x 3:
    // 17 datagrams from the client and as many from the server
    assert_eq!(report["received"], 34);
    let samples = parse(report["metrics"].as_str().unwrap());
    check_rpc_counts(&samples, &[("process", "msg-it")]);
}
