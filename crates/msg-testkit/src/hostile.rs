//! The hostile-peer suite: a raw publisher puts malformed and out-of-bounds bodies where a
//! running RPC server and notification listener consume, and after each one the same server
//! must still answer, the same listener still receive, the bad message must be logged once (so
//! it was not requeued and redelivered) and no log line may hold its body.
//!
//! A driver's test supplies the raw publisher ([`RawPeer`]): bytes straight onto the broker,
//! bypassing msg's encoder, as a broken or hostile sender would put them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use msg_client::{Notifier, RpcClient};
use msg_core::{Context, DriverFactory, Priority, Target, Transport, TransportUrl, async_trait};
use msg_dispatch::{Endpoint, Handled, HandlerError, NotificationEndpoint};
use msg_server::{NotificationListener, RpcServer};
use serde_json::{Value, json};

use crate::e2e::{Log, Running, err, wait_until};
use crate::log_capture::{CapturedLogs, capture_logs};

/// The exchange the suite's servers and listeners use.
pub const EXCHANGE: &str = "openstack";

/// Puts raw bytes on the broker where msg's servers and listeners consume.
#[async_trait]
pub trait RawPeer: Send + Sync {
    /// Publishes `body` to the shared queue (or subject) of RPC servers of `topic` in
    /// `exchange`.
    async fn send_request(&self, exchange: &str, topic: &str, body: Vec<u8>) -> Result<(), String>;

    /// Publishes `body` where listeners of `topic` at `priority` in `exchange` consume.
    async fn send_notification(
        &self,
        exchange: &str,
        topic: &str,
        priority: Priority,
        body: Vec<u8>,
    ) -> Result<(), String>;

    /// Publishes an already compressed `body` to the RPC servers of `topic`, marked with
    /// kombu's `compression` header value (`application/x-gzip`, `application/x-bz2`);
    /// `Ok(false)` when the transport has no such header (the compressed cases are skipped).
    async fn send_compressed_request(
        &self,
        _exchange: &str,
        _topic: &str,
        _content_type: &str,
        _body: Vec<u8>,
    ) -> Result<bool, String> {
        Ok(false)
    }
}

/// One hostile body and what it is.
#[derive(Debug, Clone)]
pub struct HostileBody {
    /// What is wrong with it, for the report.
    pub name: &'static str,
    /// The bytes.
    pub body: Vec<u8>,
    /// Whether msg must refuse it (logged and rejected); `false` for bodies that are odd but
    /// valid, which must only not hurt the server.
    pub refused: bool,
}

/// A marker every hostile body carries where a log line must never show it.
fn marker(run: &str) -> String {
    format!("BODY-MARKER-{run}")
}

fn envelope(inner: &Value) -> Vec<u8> {
    json!({"oslo.version": "2.0", "oslo.message": inner.to_string()})
        .to_string()
        .into_bytes()
}

/// A call as oslo sends it, with `extra` keys merged over the defaults.
fn call(mark: &str, extra: Value) -> Value {
    let mut inner = json!({
        "method": "echo", "args": {"value": mark}, "namespace": null, "version": "1.0",
        "_msg_id": "0123456789abcdef0123456789abcdef", "_reply_q": "reply_hostile",
        "_timeout": null, "_unique_id": uuid::Uuid::new_v4().simple().to_string(),
    });
    if let (Some(m), Value::Object(e)) = (inner.as_object_mut(), extra) {
        m.extend(e);
    }
    inner
}

/// The hostile RPC request bodies, each carrying `mark` in a place that must not be logged.
pub fn hostile_requests(mark: &str) -> Vec<HostileBody> {
    let refused = |name, body| HostileBody {
        name,
        body,
        refused: true,
    };
    let survived = |name, body| HostileBody {
        name,
        body,
        refused: false,
    };
    vec![
        refused("not JSON", format!("{{{mark} not json").into_bytes()),
        refused("a JSON array", format!("[\"{mark}\"]").into_bytes()),
        refused(
            "an envelope whose message is an object",
            json!({"oslo.version": "2.0", "oslo.message": call(mark, json!({}))})
                .to_string()
                .into_bytes(),
        ),
        refused(
            "an envelope of version 9.0",
            json!({"oslo.version": "9.0", "oslo.message": call(mark, json!({})).to_string()})
                .to_string()
                .into_bytes(),
        ),
        refused(
            "an envelope whose message is not JSON",
            json!({"oslo.version": "2.0", "oslo.message": format!("{{{mark}")})
                .to_string()
                .into_bytes(),
        ),
        refused(
            "a request without method",
            envelope(&json!({"args": {"value": mark}})),
        ),
        refused(
            "args that are not an object",
            envelope(&call(mark, json!({"args": [mark]}))),
        ),
        refused(
            "a negative _timeout",
            envelope(&call(mark, json!({"_timeout": -1}))),
        ),
        refused(
            "a _timeout that is a string",
            envelope(&call(mark, json!({"_timeout": "5"}))),
        ),
        refused(
            "a _timeout that is a 100 KB string",
            envelope(&call(mark, json!({"_timeout": "t".repeat(100_000)}))),
        ),
        refused(
            "a _reply_q of 300 bytes",
            envelope(&call(mark, json!({"_reply_q": "q".repeat(300)}))),
        ),
        refused(
            "a _msg_id with spaces",
            envelope(&call(mark, json!({"_msg_id": "a b c"}))),
        ),
        refused(
            "a method of 2000 bytes",
            envelope(&call(mark, json!({"method": "m".repeat(2000)}))),
        ),
        refused(
            "a _unique_id with a line break",
            envelope(&call(mark, json!({"_unique_id": "a\r\nb"}))),
        ),
        survived(
            "a _timeout of 1e20",
            envelope(&call(mark, json!({"_timeout": 1e20}))),
        ),
        survived(
            "a _timeout of 1e-6",
            envelope(&call(mark, json!({"_timeout": 1e-6}))),
        ),
        survived(
            "a _timeout of 1.5e-9",
            envelope(&call(mark, json!({"_timeout": 1.5e-9}))),
        ),
    ]
}

/// The hostile notification bodies.
pub fn hostile_notifications(mark: &str) -> Vec<HostileBody> {
    let note = |extra: Value| {
        let mut inner = json!({
            "message_id": uuid::Uuid::new_v4().to_string(), "publisher_id": "hostile",
            "event_type": "hostile.event", "priority": "INFO", "payload": {"m": mark},
            "timestamp": "2026-12-01 00:00:00.000000",
        });
        if let (Some(m), Value::Object(e)) = (inner.as_object_mut(), extra) {
            m.extend(e);
        }
        envelope(&inner)
    };
    let refused = |name, body| HostileBody {
        name,
        body,
        refused: true,
    };
    vec![
        refused("not JSON", format!("{mark} not json").into_bytes()),
        refused(
            "an envelope whose message is an object",
            json!({"oslo.version": "2.0", "oslo.message": {"payload": mark}})
                .to_string()
                .into_bytes(),
        ),
        refused("an unknown priority", note(json!({"priority": "LOUD"}))),
        refused(
            "a priority of 100 KB",
            note(json!({"priority": "p".repeat(100_000)})),
        ),
        refused("no event_type", note(json!({"event_type": null}))),
        refused(
            "an event_type of 2000 bytes",
            note(json!({"event_type": "e".repeat(2000)})),
        ),
        refused(
            "a publisher_id that is a number",
            note(json!({"publisher_id": 5})),
        ),
    ]
}

/// A zlib bomb: `size` zero bytes compressed (a few KB for tens of MiB).
pub fn zlib_bomb(size: usize) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len());
        if enc.write_all(&chunk[..n]).is_err() {
            break;
        }
        left -= n;
    }
    enc.finish().unwrap_or_default()
}

/// What the suite saw: per body, how many warning lines named the topic.
#[derive(Debug, Default)]
pub struct HostileReport {
    /// `(kind of body, warning lines naming its topic)`.
    pub logged: Vec<(String, usize)>,
    /// Compressed bodies were skipped (the transport has no compression header).
    pub compressed_skipped: bool,
}

/// The longest warning line a hostile body may cause (a longer one quotes what was sent).
const MAX_LINE: usize = 1024;

/// How long a server or listener gets to answer after a hostile body.
const WAIT: Duration = Duration::from_secs(10);
/// How long a refused body's line is watched for a second one (a redelivery).
const SETTLE: Duration = Duration::from_millis(500);

/// Runs the suite against `url`: one RPC server and one notification listener, each bad body
/// followed by a good call or notification that must be answered.
pub async fn hostile_peer_suite(
    factory: Arc<dyn DriverFactory>,
    url: &str,
    peer: Arc<dyn RawPeer>,
) -> Result<HostileReport, String> {
    let logs = capture_logs()?;
    let url = TransportUrl::parse(url).map_err(err)?;
    let open = || async {
        Ok::<_, String>(Transport::new(
            factory.connect(&url).await.map_err(err)?,
            url.clone(),
        ))
    };
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mark = marker(&run);
    let rpc_topic = format!("hostile_rpc_{run}");
    let notify_topic = format!("hostile_notify_{run}");

    let echo = Endpoint::new().method("echo", |_ctx: Context, a: Value| async move {
        Ok::<_, HandlerError>(a.get("value").cloned().unwrap_or(Value::Null))
    });
    let _server = Running::new(
        RpcServer::builder(open().await?, Target::server(&rpc_topic, "hostile-server"))
            .endpoint(echo)
            .start()
            .await
            .map_err(err)?,
    );
    let seen: Log<String> = Log::default();
    let recorder = seen.clone();
    let _listener = Running::new(
        NotificationListener::builder(open().await?, [Target::topic(&notify_topic)])
            .endpoint(NotificationEndpoint::new().on(Priority::Info, move |m| {
                recorder.push(m.event_type.clone());
                futures::future::ready(Handled)
            }))
            .start()
            .await
            .map_err(err)?,
    );
    let client = RpcClient::new(open().await?, Target::topic(&rpc_topic)).timeout(WAIT);
    let notifier = Notifier::new(open().await?)
        .publisher_id("hostile.suite")
        .topics([notify_topic.as_str()]);

    let mut report = HostileReport::default();
    let mut step = 0usize;
    for b in hostile_requests(&mark) {
        let before = logs.mark();
        peer.send_request(EXCHANGE, &rpc_topic, b.body).await?;
        step += 1;
        still_answers(&client, step, b.name).await?;
        report
            .logged
            .push(check_logged(&logs, &rpc_topic, before, b.name, b.refused).await?);
    }
    for b in compressed_requests(&mark) {
        let before = logs.mark();
        let sent = peer
            .send_compressed_request(EXCHANGE, &rpc_topic, "application/x-gzip", b.body)
            .await?;
        if !sent {
            report.compressed_skipped = true;
            break;
        }
        step += 1;
        still_answers(&client, step, b.name).await?;
        report
            .logged
            .push(check_logged(&logs, &rpc_topic, before, b.name, b.refused).await?);
    }
    for b in hostile_notifications(&mark) {
        let before = logs.mark();
        peer.send_notification(EXCHANGE, &notify_topic, Priority::Info, b.body)
            .await?;
        step += 1;
        let event = format!("good.{step}");
        notifier
            .info(&Context::new(), &event, json!({"step": step}))
            .await
            .map_err(|e| format!("after {}: sending a good notification failed: {e}", b.name))?;
        wait_until(
            || {
                format!(
                    "after {}: the listener did not receive the next notification",
                    b.name
                )
            },
            WAIT,
            || seen.snapshot().contains(&event),
        )
        .await?;
        report
            .logged
            .push(check_logged(&logs, &notify_topic, before, b.name, b.refused).await?);
    }
    let leaked = logs.lines_containing(&mark);
    if !leaked.is_empty() {
        return Err(format!(
            "{} log line(s) hold a hostile body, e.g.: {}",
            leaked.len(),
            leaked[0]
        ));
    }
    for topic in [&rpc_topic, &notify_topic] {
        if let Some(long) = logs
            .lines_containing(topic)
            .into_iter()
            .find(|l| l.len() > MAX_LINE)
        {
            return Err(format!(
                "a log line of {} bytes quotes what a peer sent: {}...",
                long.len(),
                long.chars().take(300).collect::<String>()
            ));
        }
    }
    Ok(report)
}

/// Compressed request bodies (zlib, kombu's `application/x-gzip`): a bomb far past the
/// decompression ceiling (refused) and a small valid call (accepted).
pub fn compressed_requests(mark: &str) -> Vec<HostileBody> {
    use std::io::Write;
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let valid = enc
        .write_all(&envelope(&call(mark, json!({}))))
        .and_then(|()| enc.finish())
        .unwrap_or_default();
    vec![
        HostileBody {
            name: "a zlib bomb of 256 MiB",
            body: zlib_bomb(256 << 20),
            refused: true,
        },
        HostileBody {
            name: "a small zlib-compressed call",
            body: valid,
            refused: false,
        },
    ]
}

/// The server still answers a call (made `step` unique so a stale answer can't pass).
async fn still_answers(client: &RpcClient, step: usize, after: &str) -> Result<(), String> {
    let start = Instant::now();
    let got: Value = client
        .call(&Context::new(), "echo", json!({ "value": step }))
        .await
        .map_err(|e| format!("after {after}: the server no longer answers: {e}"))?;
    if got != json!(step) {
        return Err(format!(
            "after {after}: the server answered {got}, not {step}"
        ));
    }
    if start.elapsed() > WAIT {
        return Err(format!(
            "after {after}: the answer took {:?}",
            start.elapsed()
        ));
    }
    Ok(())
}

/// A refused body is logged exactly once (a requeued one would come back and be logged
/// again): its line is waited for, then nothing more may come for a while. An accepted odd
/// one may be logged or not. Returns the lines that named the topic.
async fn check_logged(
    logs: &CapturedLogs,
    topic: &str,
    mark: usize,
    name: &str,
    refused: bool,
) -> Result<(String, usize), String> {
    let start = Instant::now();
    while refused && logs.lines_since(mark, topic).is_empty() && start.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(SETTLE).await;
    let lines = logs.lines_since(mark, topic);
    if refused && lines.len() != 1 {
        return Err(format!(
            "{name}: expected one warning naming {topic}, got {}: {lines:?}",
            lines.len()
        ));
    }
    Ok((name.to_string(), lines.len()))
}
