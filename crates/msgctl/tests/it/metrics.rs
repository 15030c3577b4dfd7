//! `--metrics-addr`: `serve` and `listen` serve Prometheus text; a scrape after a known
//! workload shows its counts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{BIN, Server, broker_url, msgctl, stderr};

/// A port free a moment ago, on loopback.
fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// `GET /metrics` on `addr`: the body, or `None` when nothing answers yet.
fn scrape(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    Some(body.to_owned())
}

/// The value of the one sample of `name` whose labels include each of `labels`
/// (`key="value"`), summed over the matching series; 0 when none matches.
fn value(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Scrapes `addr` until `done` holds for the text (within 10 s); returns the last text.
fn scrape_until(addr: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(addr).unwrap_or_default();
        if done(&text) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_on_memory_serves_prometheus_text() {
    let addr = free_addr();
    let server = Server::start_args(
        &["--url", "memory://"],
        "metrics-memory",
        &["--metrics-addr", &addr],
    );
    let text = scrape_until(&addr, |t| !t.is_empty());
    // each method's series exist from the start, at zero, with oslo's labels
    let add = [
        r#"method="add""#,
        r#"topic="metrics-memory""#,
        r#"server="it-server""#,
        r#"exchange="None""#,
        r#"endpoint="0""#,
        r#"namespace="None""#,
        r#"version="1.0""#,
    ];
    assert!(
        text.contains("oslo_messaging_rpc_server_invocation_start_total{"),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "oslo_messaging_rpc_server_invocation_start_total",
            &add
        ),
        0.0
    );
    assert!(text.contains("# HELP oslo_messaging_rpc_server_invocation_start_total"));
    let status = server.terminate();
    assert!(status.success(), "serve exited with {status:?}");
}

#[test]
fn a_bad_metrics_addr_is_bad_input() {
    let o = msgctl(&["serve", "--topic", "t", "--metrics-addr", "nowhere"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--metrics-addr"), "{}", stderr(&o));
}

#[test]
fn serve_counts_calls_casts_and_failures_on_rabbitmq() {
    let Some(url) = broker_url("MSG_RABBIT_URL") else {
        return;
    };
    let topic = format!("msgctl-metrics-{}", std::process::id());
    let addr = free_addr();
    let server = Server::start_args(&["--url", &url], &topic, &["--metrics-addr", &addr]);
    let with_url = |args: &[&str]| {
        let mut all = vec!["--url", url.as_str()];
        all.extend_from_slice(args);
        msgctl(&all)
    };
    for (a, b) in [("1", "2"), ("3", "4")] {
        let args = format!(r#"{{"a": {a}, "b": {b}}}"#);
        let o = with_url(&["call", "--topic", &topic, "add", &args]);
        assert!(o.status.success(), "call add: {}", stderr(&o));
    }
    let o = with_url(&["call", "--topic", &topic, "fail", r#"{"message": "x"}"#]);
    assert_eq!(o.status.code(), Some(1), "call fail: {}", stderr(&o));
    for _ in 0..3 {
        let o = with_url(&["cast", "--topic", &topic, "record", r#"{"key": "m"}"#]);
        assert!(o.status.success(), "cast: {}", stderr(&o));
    }

    let on_topic = format!(r#"topic="{topic}""#);
    let start = "oslo_messaging_rpc_server_invocation_start_total";
    let end = "oslo_messaging_rpc_server_invocation_end_total";
    let record = [on_topic.as_str(), r#"method="record""#];
    let text = scrape_until(&addr, |t| value(t, end, &record) >= 3.0);
    let add = [on_topic.as_str(), r#"method="add""#];
    assert_eq!(value(&text, start, &add), 2.0, "{text}");
    assert_eq!(value(&text, end, &add), 2.0, "{text}");
    assert_eq!(
        value(
            &text,
            "oslo_messaging_rpc_server_processing_seconds_count",
            &add
        ),
        2.0
    );
    let fail = [
        on_topic.as_str(),
        r#"method="fail""#,
        r#"exception="ValueError""#,
    ];
    assert_eq!(
        value(&text, "oslo_messaging_rpc_server_exception_total", &fail),
        1.0,
        "{text}"
    );
    assert_eq!(value(&text, start, &record), 3.0, "{text}");
    assert_eq!(value(&text, end, &record), 3.0, "{text}");
    let status = server.terminate();
    assert!(status.success(), "serve exited with {status:?}");
}

/// A background `msgctl listen`, its stdout lines, and the process, killed when dropped.
struct Listening {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Listening {
    fn start(url: &str, args: &[&str]) -> Listening {
        let mut child = Command::new(BIN)
            .args(["--url", url, "listen"])
            .args(args)
            .env_remove("MSG_TRANSPORT_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Listening { child, lines }
    }

    /// The next notification printed, within 30 s.
    fn next(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("listen prints a notification within 30 s")
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn listen_counts_handled_requeued_dead_lettered_and_restarts_on_rabbitmq() {
    let Some(url) = broker_url("MSG_RABBIT_URL") else {
        return;
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}max_redeliveries=2");
    let topic = format!("msgctl-metrics-listen-{}", std::process::id());
    let queue = format!("{topic}.info");
    let notify = |event: &str, count: &str| {
        let o = msgctl(&[
            "--url",
            &url,
            "notify",
            "--topic",
            &topic,
            "--priority",
            "info",
            "--publisher-id",
            "p",
            "--event-type",
            event,
            "--count",
            count,
            "{}",
        ]);
        assert!(o.status.success(), "notify: {}", stderr(&o));
    };
    notify("keep.it", "3");
    notify("skip.it", "1");
    let addr = free_addr();
    let listening = Listening::start(
        &url,
        &[
            "--topic",
            &topic,
            "--priority",
            "info",
            "--requeue-event-type",
            "skip",
            "--timeout",
            "60",
            "--metrics-addr",
            &addr,
        ],
    );
    for _ in 0..3 {
        let line = listening.next();
        assert!(line.contains("keep.it"), "{line}");
    }
    let handled = "msg_notifications_handled_total";
    let requeued = "msg_notifications_requeued_total";
    let dead = "msg_notifications_dead_lettered_total";
    let in_use = "msg_prefetch_in_use";
    let info = [r#"pool="None""#, r#"priority="info""#];
    let amqp = [r#"driver="amqp""#];
    let text = scrape_until(&addr, |t| {
        value(t, handled, &info) >= 3.0 && value(t, dead, &amqp) >= 1.0
    });
    assert_eq!(value(&text, handled, &info), 3.0, "{text}");
    // the listener sent `skip.it` back 3 times; the driver requeued it twice
    // (max_redeliveries) and dead-lettered it the third time
    assert_eq!(value(&text, requeued, &info), 3.0, "{text}");
    assert_eq!(value(&text, dead, &amqp), 1.0, "{text}");
    assert!(
        text.contains(&format!("{in_use}{{driver=\"amqp\"}} 0")),
        "{text}"
    );

    // the broker cancels the consumer when its queue goes: the listener consumes again
    assert!(super::queue_exists(&url, &queue, true));
    let restarts = "msg_consumer_restarts_total";
    let text = scrape_until(&addr, |t| value(t, restarts, &amqp) >= 1.0);
    assert_eq!(value(&text, restarts, &amqp), 1.0, "{text}");
    notify("keep.again", "1");
    assert!(listening.next().contains("keep.again"));
    let text = scrape_until(&addr, |t| value(t, handled, &info) >= 4.0);
    assert_eq!(value(&text, handled, &info), 4.0, "{text}");
    drop(listening);
    for q in [queue.clone(), format!("{queue}.dead-letter")] {
        super::queue_exists(&url, &q, true);
    }
}

#[test]
fn listen_counts_dead_lettered_and_prefetch_on_nats() {
    let Some(url) = broker_url("MSG_NATS_URL") else {
        return;
    };
    // a prefix of the test's own: its streams are deleted at the end
    let prefix = format!("msgctl-metrics-{}", std::process::id());
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}subject_prefix={prefix}&max_deliveries=2");
    let notify = |event: &str, count: &str| {
        let o = msgctl(&[
            "--url",
            &url,
            "notify",
            "--topic",
            "metrics",
            "--priority",
            "info",
            "--publisher-id",
            "p",
            "--event-type",
            event,
            "--count",
            count,
            "{}",
        ]);
        assert!(o.status.success(), "notify: {}", stderr(&o));
    };
    notify("keep.it", "2");
    notify("skip.it", "1");
    let addr = free_addr();
    let listening = Listening::start(
        &url,
        &[
            "--topic",
            "metrics",
            "--priority",
            "info",
            "--requeue-event-type",
            "skip",
            "--timeout",
            "60",
            "--metrics-addr",
            &addr,
        ],
    );
    for _ in 0..2 {
        assert!(listening.next().contains("keep.it"));
    }
    let handled = "msg_notifications_handled_total";
    let dead = "msg_notifications_dead_lettered_total";
    let in_use = r#"msg_prefetch_in_use{driver="nats"} 0"#;
    let info = [r#"pool="None""#, r#"priority="info""#];
    let nats = [r#"driver="nats""#];
    let text = scrape_until(&addr, |t| {
        value(t, handled, &info) >= 2.0 && value(t, dead, &nats) >= 1.0 && t.contains(in_use)
    });
    drop(listening);
    assert_eq!(value(&text, handled, &info), 2.0, "{text}");
    assert_eq!(value(&text, dead, &nats), 1.0, "{text}");
    assert!(text.contains(in_use), "{text}");
    let streams = [
        msg::nats::encode_name(&[&prefix, "notify", "openstack"]),
        msg::nats::encode_name(&[&prefix, "dlq", "openstack"]),
    ];
    let raw = url.split('?').next().unwrap().to_string();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let js = async_nats::jetstream::new(async_nats::connect(raw).await.unwrap());
            for s in streams {
                let _ = js.delete_stream(&s).await;
            }
        });
}
