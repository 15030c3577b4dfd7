//! The examples, run as users run them, on RabbitMQ (they are separate processes, so the
//! in-process broker can't join them); oslo.config files (`config`), oslo's logging pieces
//! (`logging`) and the metrics of a known workload (`metrics`) through the facade.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod config;
mod logging;
mod metrics;
#[cfg(feature = "otel")]
mod otel;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use msg::notify::Notifier;
use msg::{Context, Transport};
use serde_json::json;

fn rabbit_url() -> Option<String> {
    let url = std::env::var("MSG_RABBIT_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let compiled = msg::builtin_registry().lookup("rabbit").is_some();
    match url {
        Some(url) if compiled => Some(url),
        _ => {
            assert!(
                std::env::var("MSG_REQUIRE_BROKERS").as_deref() != Ok("1") || !compiled,
                "MSG_REQUIRE_BROKERS=1 but MSG_RABBIT_URL is not set"
            );
            eprintln!(
                "SKIPPED: examples on RabbitMQ (no MSG_RABBIT_URL, or built without the amqp feature)"
            );
            None
        }
    }
}

/// The example's binary: `examples/NAME` (cargo build) or the newest `examples/NAME-HASH`
/// (cargo test --all-targets).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let plain = dir.join(name);
    if plain.is_file() {
        return plain;
    }
    let prefix = format!("{name}-");
    std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&prefix) && !n.ends_with(".d") && !n.contains('.')
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
        .unwrap_or(plain)
}

struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(name: &str, args: &[&str]) -> Running {
        let mut child = Command::new(example(name))
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("can't run example {name} ({e}): build it with `cargo test --all-targets`")
            });
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Running { child, lines }
    }

    fn expect_line(&self, contains: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no line containing `{contains}` within 30 s"));
            eprintln!("example: {line}");
            if line.contains(contains) {
                return line;
            }
        }
    }

    fn exits_ok(mut self) {
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "the example exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("the example didn't exit within 30 s");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Acknowledges whatever waits in a pool's queue.
async fn drain(transport: &Transport, pool: &str, topics: &[&str]) {
    use msg::notify::{Handled, NotificationEndpoint, NotificationListener};
    let listener = NotificationListener::builder(
        transport.clone(),
        topics.iter().map(|t| msg::Target::topic(*t)),
    )
    .pool(pool)
    .endpoint(NotificationEndpoint::new().on_all(|_m| async { Handled }))
    .start()
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    listener.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// Takes whatever an earlier run left in the topic's shared queue (a `stop` cast sent when
/// no server listened is kept there, and would stop the next server at once).
async fn drain_topic(url: &str, topic: &str) {
    let transport = Transport::open(url).await.unwrap();
    let drainer = msg::RpcServer::builder(transport.clone(), msg::Target::server(topic, "drainer"))
        .access_policy(msg::AccessPolicy::All)
        .build()
        .unwrap();
    drainer.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    drainer.shutdown(Duration::from_secs(5)).await.unwrap();
    transport.cleanup().await.unwrap();
}

#[test]
fn rpc_server_and_client_examples_talk_and_stop() {
    let Some(url) = rabbit_url() else { return };
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(drain_topic(&url, "test"));
    let server = Running::start("rpc_server", &[&url]);
    server.expect_line("serving topic test");
    let client = Running::start("rpc_client", &[&url]);
    client.expect_line(r#"test(arg="hello") -> "hello""#);
    client.exits_ok();
    server.expect_line("stop received");
    server.exits_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_examples_get_what_their_filters_let_through() {
    let Some(url) = rabbit_url() else { return };
    let run = uuid::Uuid::new_v4().simple().to_string();
    let transport = Transport::open(&url).await.unwrap();
    // the examples' pool queues outlive a run: take what an earlier run left behind
    drain(
        &transport,
        "listener-workers",
        &["notifications", "notifications_bis"],
    )
    .await;
    drain(&transport, "ceilometer-collector", &["notifications"]).await;
    let listener = Running::start("notification_listener", &[&url, "2"]);
    listener.expect_line("listening on notifications");
    let batch = Running::start("batch_listener", &[&url, "5"]);
    batch.expect_line("collecting samples");

    let transport = Transport::open(&url).await.unwrap();
    let ctx = Context::new().with("ctxt_key", "regexp");
    let compute = Notifier::new(transport.clone())
        .publisher_id("compute.host1")
        .topics(["notifications"]);
    let compute_bis = compute.prepare().topics(["notifications_bis"]);
    let network = Notifier::new(transport.clone())
        .publisher_id("network.host1")
        .topics(["notifications"]);
    network
        .warn(&ctx, "port.down", json!({"run": run}))
        .await
        .unwrap();
    compute
        .error(&Context::new(), "instance.boot.start", json!({"run": run}))
        .await
        .unwrap();
    compute
        .warn(&ctx, "disk.low", json!({"run": run, "n": 1}))
        .await
        .unwrap();
    compute_bis
        .error(&ctx, "instance.boot.start", json!({"run": run, "n": 2}))
        .await
        .unwrap();
    let first = listener.expect_line(&run);
    let second = listener.expect_line(&run);
    assert!(first.starts_with("warn  compute.host1 disk.low"), "{first}");
    assert!(
        second.starts_with("error compute.host1 instance.boot.start"),
        "{second}"
    );
    listener.exits_ok();

    let sampler = Notifier::new(transport.clone()).publisher_id("ceilometer.polling");
    for i in 0..5 {
        sampler
            .sample(&Context::new(), "cpu", json!({"run": run, "i": i}))
            .await
            .unwrap();
    }
    batch.expect_line("5 in all");
    batch.exits_ok();
    transport.cleanup().await.unwrap();
}
