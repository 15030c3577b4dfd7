//! `rabbit_stream_fanout` over the real broker (streams need RabbitMQ 3.9+): one stream per
//! topic, `<topic>_fanout`, read by every server of the topic; a server reads from where it
//! joined, on from where it was after a lost connection, and never again what it read before
//! a restart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use msg_client::RpcClient;
use msg_core::{Context, Target, Transport, TransportUrl};
use msg_dispatch::{Endpoint, HandlerError};
use msg_driver_amqp::RabbitOptions;
use msg_server::{Executor, RpcServer};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::faults::{open, unique};
use crate::proxy::Proxy;
use crate::{rabbit_url, raw_connection};

/// The options stream fanout needs (oslo's requirements), and a short retention.
pub(crate) const STREAM_OPTIONS: &str = "rabbit_stream_fanout=true&rabbit_qos_prefetch_count=10&rabbit_transient_quorum_queue=true&rabbit_transient_queues_ttl=600";

pub(crate) fn stream_url(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{STREAM_OPTIONS}")
}

/// A server on `topic` named `name` that hands every `record`ed value to `tx`, with its name.
pub(crate) async fn recording_server(
    transport: Transport,
    topic: &str,
    name: &str,
    tx: mpsc::UnboundedSender<(String, Value)>,
) -> RpcServer {
    let me = name.to_string();
    // one at a time: the tests check the stream's order, which a pool of handlers may not keep
    RpcServer::builder(transport, Target::server(topic, name))
        .executor(Executor::Sequential)
        .endpoint(
            Endpoint::new().method("record", move |_c: Context, v: Value| {
                let tx = tx.clone();
                let me = me.clone();
                async move {
                    let _ = tx.send((me, v["value"].clone()));
                    Ok::<_, HandlerError>(Value::Null)
                }
            }),
        )
        .start()
        .await
        .unwrap()
}

/// What arrives within `within`, by server, once `expected` values came (or the time is up).
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<(String, Value)>,
    expected: usize,
    within: Duration,
) -> BTreeMap<String, Vec<Value>> {
    let deadline = Instant::now() + within;
    let mut got: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut n = 0;
    while n < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some((who, v))) => {
                got.entry(who).or_default().push(v);
                n += 1;
            }
            _ => break,
        }
    }
    got
}

/// Nothing more arrives within `quiet`.
async fn nothing_more(rx: &mut mpsc::UnboundedReceiver<(String, Value)>, quiet: Duration) {
    if let Ok(Some(extra)) = tokio::time::timeout(quiet, rx.recv()).await {
        panic!("nothing more was expected, got {extra:?}");
    }
}

async fn cast_all(client: &RpcClient, values: impl IntoIterator<Item = Value>) {
    for v in values {
        client
            .prepare()
            .fanout(true)
            .cast(&Context::new(), "record", json!({ "value": v }))
            .await
            .unwrap();
    }
}

/// The stream's queue type, or `None` when it doesn't exist (a passive declare can't read
/// arguments: a declare with other arguments is refused, with the same ones accepted).
async fn is_stream(url: &str, queue: &str) -> bool {
    let conn = raw_connection(url).await;
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("stream".into()),
    );
    args.insert("x-max-age".into(), AMQPValue::LongString("600s".into()));
    let ok = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await
        .is_ok();
    let _ = conn.close(200, "OK".into()).await;
    ok
}

pub(crate) async fn delete_queues(url: &str, queues: &[String]) {
    let conn = raw_connection(url).await;
    for q in queues {
        let ch = conn.create_channel().await.unwrap();
        let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
    }
    let _ = conn.close(200, "OK".into()).await;
}

#[test]
fn stream_fanout_needs_a_prefetch_and_transient_quorum_queues() {
    for (query, missing) in [
        (
            "rabbit_stream_fanout=true&rabbit_transient_quorum_queue=true",
            "rabbit_qos_prefetch_count",
        ),
        (
            "rabbit_stream_fanout=true&rabbit_transient_quorum_queue=true&rabbit_qos_prefetch_count=0",
            "rabbit_qos_prefetch_count",
        ),
        (
            "rabbit_stream_fanout=true&rabbit_qos_prefetch_count=10",
            "rabbit_transient_quorum_queue",
        ),
    ] {
        let url = TransportUrl::parse(&format!("rabbit://h/?{query}")).unwrap();
        let e = RabbitOptions::from_url(&url).unwrap_err().to_string();
        assert!(e.contains(missing), "{query}: {e}");
    }
    let url = TransportUrl::parse(&format!("rabbit://h/?{STREAM_OPTIONS}")).unwrap();
    assert!(RabbitOptions::from_url(&url).unwrap().rabbit_stream_fanout);
}

/// Fanout casts reach every server through the one stream; a clean stop keeps the stream;
/// a restarted server gets what is cast after it started, never what it got before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_through_a_stream_reaches_every_server_and_no_restart_replays() {
    let Some(url) = rabbit_url("amqp rabbit_stream_fanout") else {
        return;
    };
    let surl = stream_url(&url);
    let topic = unique("stream-fanout");
    let stream = format!("{topic}_fanout");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let ta = open(&surl).await;
    let tb = open(&surl).await;
    let a = recording_server(ta.clone(), &topic, "a", tx.clone()).await;
    let b = recording_server(tb.clone(), &topic, "b", tx.clone()).await;
    assert!(is_stream(&url, &stream).await, "`{stream}` is a stream");

    let client = RpcClient::new(open(&url).await, Target::topic(&topic));
    cast_all(&client, (0..3).map(|i| json!(i))).await;
    let got = collect(&mut rx, 6, Duration::from_secs(20)).await;
    assert_eq!(
        got.get("a"),
        Some(&vec![json!(0), json!(1), json!(2)]),
        "{got:?}"
    );
    assert_eq!(
        got.get("b"),
        Some(&vec![json!(0), json!(1), json!(2)]),
        "{got:?}"
    );

    // a clean stop of a: the stream stays (b reads it); a's restart reads only what comes
    // next, not what it read before (oslo's `last` would give it `2` again)
    a.shutdown(Duration::from_secs(5)).await.unwrap();
    ta.cleanup().await.unwrap();
    assert!(
        is_stream(&url, &stream).await,
        "a clean stop keeps the stream"
    );
    let ta = open(&surl).await;
    let a = recording_server(ta.clone(), &topic, "a", tx.clone()).await;
    cast_all(&client, [json!("after-restart")]).await;
    let got = collect(&mut rx, 2, Duration::from_secs(20)).await;
    assert_eq!(got.get("a"), Some(&vec![json!("after-restart")]), "{got:?}");
    assert_eq!(got.get("b"), Some(&vec![json!("after-restart")]), "{got:?}");
    nothing_more(&mut rx, Duration::from_secs(2)).await;

    // what is cast while a is down is b's alone (a fanout queue goes with its server too)
    a.shutdown(Duration::from_secs(5)).await.unwrap();
    ta.cleanup().await.unwrap();
    cast_all(&client, [json!("while-a-is-down")]).await;
    let got = collect(&mut rx, 1, Duration::from_secs(20)).await;
    assert_eq!(got.get("b"), Some(&vec![json!("while-a-is-down")]));
    let ta = open(&surl).await;
    let a = recording_server(ta.clone(), &topic, "a", tx.clone()).await;
    cast_all(&client, [json!("after-second-restart")]).await;
    let got = collect(&mut rx, 2, Duration::from_secs(20)).await;
    assert_eq!(
        got.get("a"),
        Some(&vec![json!("after-second-restart")]),
        "{got:?}"
    );
    assert_eq!(
        got.get("b"),
        Some(&vec![json!("after-second-restart")]),
        "{got:?}"
    );
    nothing_more(&mut rx, Duration::from_secs(2)).await;

    a.shutdown(Duration::from_secs(5)).await.unwrap();
    b.shutdown(Duration::from_secs(5)).await.unwrap();
    ta.cleanup().await.unwrap();
    tb.cleanup().await.unwrap();
    delete_queues(
        &url,
        &[
            topic.clone(),
            format!("{topic}.a"),
            format!("{topic}.b"),
            stream,
        ],
    )
    .await;
}

/// A server whose connection is cut reads on from where it was once reconnected: what was
/// cast meanwhile arrives, once, and nothing it read before comes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnected_server_reads_on_from_where_it_was() {
    let Some(url) = rabbit_url("amqp rabbit_stream_fanout reconnect") else {
        return;
    };
    let upstream: SocketAddr = "127.0.0.1:5672".parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    let proxied = stream_url(&format!(
        "rabbit://guest:guest@127.0.0.1:{}/?rabbit_retry_interval=1&rabbit_retry_backoff=0.2&kombu_reconnect_delay=0.1",
        proxy.port
    ));
    let topic = unique("stream-reconnect");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let ts = open(&proxied).await;
    let server = recording_server(ts.clone(), &topic, "s", tx).await;
    let client = RpcClient::new(open(&url).await, Target::topic(&topic));

    cast_all(&client, (0..3).map(|i| json!(i))).await;
    let got = collect(&mut rx, 3, Duration::from_secs(20)).await;
    assert_eq!(got.get("s").map(Vec::len), Some(3), "{got:?}");

    proxy.cut();
    // cast while the server is away (it reconnects after about a second)
    cast_all(&client, (3..8).map(|i| json!(i))).await;
    let got = collect(&mut rx, 5, Duration::from_secs(30)).await;
    // the server handles requests concurrently: the order may change
    let mut at_s: Vec<i64> = got
        .get("s")
        .map(|v| v.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    at_s.sort_unstable();
    assert_eq!(
        at_s,
        (3..8).collect::<Vec<_>>(),
        "what was cast while the connection was down arrives, once: {got:?}"
    );
    nothing_more(&mut rx, Duration::from_secs(2)).await;

    server.shutdown(Duration::from_secs(5)).await.unwrap();
    ts.cleanup().await.unwrap();
    delete_queues(
        &url,
        &[
            topic.clone(),
            format!("{topic}.s"),
            format!("{topic}_fanout"),
        ],
    )
    .await;
}
