//! msgctl as scripts use it: the built binary, its stdout, stderr and exit codes.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod config;
mod metrics;

const BIN: &str = env!("CARGO_BIN_EXE_msgctl");

/// Runs msgctl with these arguments, without `MSG_TRANSPORT_URL` from the environment.
fn msgctl(args: &[&str]) -> Output {
    msgctl_env(args, &[])
}

fn msgctl_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("MSG_TRANSPORT_URL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Asserts the exit code and that stderr is one line starting with `msgctl: `; returns it.
fn fails_with(o: &Output, code: i32) -> String {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {err}",
        stdout(o)
    );
    assert_eq!(err.lines().count(), 1, "one line expected on stderr: {err}");
    assert!(err.starts_with("msgctl: "), "{err}");
    err.trim_end().to_string()
}

#[test]
fn demo_runs_every_step_and_explains_it() {
    let o = msgctl(&["demo"]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("  1. call add(a=2, b=3) on topic msgctl-demo-"),
        "{out}"
    );
    assert!(out.contains("-> 5   ("), "{out}");
    for what in [
        "cast record",
        "with fanout",
        "on server server-b",
        "remote error ValueError (builtins): boom",
        "UnsupportedVersion",
        "pool a got 3, pool b got 3",
        "filtered out",
        "batches",
        "Requeue",
    ] {
        assert!(out.contains(what), "`{what}` missing from:\n{out}");
    }
    assert!(out.contains("All 12 steps behaved as expected"), "{out}");
    assert!(stderr(&o).is_empty(), "stderr: {}", stderr(&o));
}

#[test]
fn demo_with_json_prints_a_line_per_step() {
    let o = msgctl(&["demo", "--json"]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 13);
    for (i, step) in lines[..12].iter().enumerate() {
        assert_eq!(step["step"], i + 1);
        assert_eq!(step["ok"], true, "{step}");
    }
    assert_eq!(lines[12]["ok"], true);
    assert_eq!(lines[12]["steps"], 12);
}

#[test]
fn a_call_nobody_answers_exits_1_with_one_line() {
    let o = msgctl(&[
        "call",
        "--topic",
        "nobody-here",
        "add",
        r#"{"a": 1, "b": 2}"#,
    ]);
    let err = fails_with(&o, 1);
    assert!(err.starts_with("msgctl: nobody answered"), "{err}");
    assert!(stdout(&o).is_empty());
}

#[test]
fn a_bad_url_exits_2() {
    let o = msgctl(&["--url", "bogus url", "call", "--topic", "t", "add"]);
    let err = fails_with(&o, 2);
    assert!(err.contains("invalid transport URL"), "{err}");
    // from the environment as well
    let o = msgctl_env(
        &["call", "--topic", "t", "add"],
        &[("MSG_TRANSPORT_URL", "bogus url")],
    );
    fails_with(&o, 2);
}

#[test]
fn an_unknown_scheme_exits_2_and_names_the_supported_ones() {
    let o = msgctl(&["--url", "kafka://x", "call", "--topic", "t", "add"]);
    let err = fails_with(&o, 2);
    assert!(err.contains("kafka"), "{err}");
    assert!(err.contains("memory://"), "{err}");
    let o = msgctl_env(
        &[
            "notify",
            "--priority",
            "info",
            "--publisher-id",
            "p",
            "--event-type",
            "e",
            "{}",
        ],
        &[("MSG_TRANSPORT_URL", "kafka://x")],
    );
    fails_with(&o, 2);
}

#[test]
fn notify_counts_and_summarizes() {
    let o = msgctl(&[
        "notify",
        "--count",
        "3",
        "--json",
        "--priority",
        "info",
        "--publisher-id",
        "compute.host1",
        "--event-type",
        "compute.instance.create.end",
        r#"{"id": 12}"#,
    ]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let summary: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(summary["sent"], 3);
    assert_eq!(summary["failed"], 0);
    assert!(summary["seconds"].is_f64(), "{summary}");

    let o = msgctl(&[
        "notify",
        "--priority",
        "WARNING",
        "--publisher-id",
        "p",
        "--event-type",
        "e",
        "--driver",
        "messaging",
        "--context",
        r#"{"request_id": "req-1"}"#,
        "3",
    ]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert!(stdout(&o).is_empty());
    assert!(
        stderr(&o).starts_with("sent 1, failed 0 in "),
        "{}",
        stderr(&o)
    );
}

#[test]
fn listen_times_out_quietly() {
    let started = Instant::now();
    let o = msgctl(&["listen", "--timeout", "0.5", "--json"]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    assert!(started.elapsed() >= Duration::from_millis(500));
    let o = msgctl(&[
        "listen",
        "--topic",
        "a",
        "--topic",
        "b",
        "--pool",
        "p",
        "--priority",
        "info",
        "--priority",
        "error",
        "--batch-size",
        "10",
        "--batch-timeout",
        "0.1",
        "--filter-publisher-id",
        "^compute",
        "--requeue-event-type",
        "later",
        "--timeout",
        "0.2",
    ]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let o = msgctl(&["listen", "--count", "0"]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
}

#[test]
fn cast_prints_nothing_or_sent() {
    let o = msgctl(&["cast", "--topic", "t", "record", r#"{"key": "k"}"#]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert!(stdout(&o).is_empty());
    let o = msgctl(&["cast", "--json", "--fanout", "--topic", "t", "record"]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o).trim(), r#"{"sent":true}"#);
}

#[test]
fn bad_input_exits_2() {
    let bad: &[&[&str]] = &[
        &["call", "--topic", "t", "add", "{a: 1}"],
        &["call", "--topic", "t", "add", "[1, 2]"],
        &["call", "--topic", "t", "--context", "{", "add"],
        &["call", "--topic", "t", "--context", "3", "add"],
        &["cast", "--topic", "t", "add", "nope"],
        &["call", "--topic", "", "add"],
        &[
            "notify",
            "--priority",
            "info",
            "--publisher-id",
            "p",
            "--event-type",
            "e",
            "{",
        ],
        &["listen", "--filter-event-type", "(", "--timeout", "1"],
        &["listen", "--requeue-event-type", "[", "--timeout", "1"],
        &["serve", "--topic", "t", "--version", "one"],
    ];
    for args in bad {
        let o = msgctl(args);
        fails_with(&o, 2);
    }
    // clap's own usage errors exit 2 as well (several lines, clap's format)
    let clap_errors: &[&[&str]] = &[
        &[
            "notify",
            "--priority",
            "loud",
            "--publisher-id",
            "p",
            "--event-type",
            "e",
            "{}",
        ],
        &["call", "--topic", "t", "--timeout", "soon", "add"],
        &["call", "--topic", "t", "--timeout", "-1", "add"],
        &["call", "add"],
        &["serve", "--topic", "t", "--executor", "threads"],
        &["listen", "--batch-size", "0"],
        &["cast", "--fanout", "--server", "s", "--topic", "t", "m"],
        &["frobnicate"],
    ];
    for args in clap_errors {
        let o = msgctl(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn every_subcommand_has_help() {
    let o = msgctl(&["--help"]);
    assert!(o.status.success());
    for sub in ["demo", "serve", "call", "cast", "notify", "listen"] {
        assert!(stdout(&o).contains(sub), "`{sub}` missing from --help");
        let o = msgctl(&[sub, "--help"]);
        assert!(o.status.success(), "{sub} --help: {}", stderr(&o));
        let help = stdout(&o);
        assert!(help.contains(&format!("Usage: msgctl {sub}")), "{help}");
        assert!(help.contains("--url"), "{help}");
    }
    let o = msgctl(&["serve", "--help"]);
    assert!(stdout(&o).contains("ValueError"));
}

// ---- against a real broker -------------------------------------------------------------

/// The broker URL in `var`, or `None` (with a loud SKIPPED line) when it isn't set or this
/// build has no driver for its scheme. With `MSG_REQUIRE_BROKERS=1` an unset variable fails.
fn broker_url(var: &str) -> Option<String> {
    let require = std::env::var("MSG_REQUIRE_BROKERS").is_ok_and(|v| v == "1");
    let url = match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            assert!(!require, "MSG_REQUIRE_BROKERS=1 but {var} is not set");
            eprintln!("SKIPPED: {var} not set");
            return None;
        }
    };
    let scheme = url.split("://").next().unwrap_or_default();
    if msg::builtin_registry().lookup(scheme).is_none() {
        // the driver hasn't landed in msgctl's build yet: nothing to test against
        eprintln!("SKIPPED: msgctl is built without a driver for {scheme}:// ({var})");
        return None;
    }
    Some(url)
}

/// A background `msgctl serve`, killed if the test fails before it is stopped.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Server {
    fn start(url: &str, topic: &str) -> Server {
        Server::start_with(&["--url", url], topic)
    }

    /// `serve` with these global options (`--url`, `--config-file`, ...) first.
    fn start_with(global: &[&str], topic: &str) -> Server {
        Server::start_args(global, topic, &[])
    }

    /// `start_with`, and `extra` options for `serve`.
    fn start_args(global: &[&str], topic: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(global)
            .args(["serve", "--topic", topic, "--server", "it-server"])
            .args(extra)
            .env_remove("MSG_TRANSPORT_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server { child, lines };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match server.lines.recv_timeout(left) {
                Ok(line) if line.starts_with("msgctl: serving topic ") => {
                    assert!(line.contains(topic) && line.contains("it-server"), "{line}");
                    return server;
                }
                Ok(line) => eprintln!("serve: {line}"),
                Err(e) => {
                    let status = server.child.try_wait().unwrap();
                    panic!("serve never said it was ready ({e}; exit status {status:?})");
                }
            }
        }
    }

    /// SIGTERM, then the exit status within 40 s.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "serve didn't exit on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `serve` in the background, then `call add`, `call fail`, `cast record` + `call recorded`,
/// then SIGTERM: the same script an operator would run, across processes.
fn serve_and_call(url: &str) {
    let topic = format!("msgctl-it-{}", std::process::id());
    let server = Server::start(url, &topic);
    let with_url = |args: &[&str]| {
        let mut all = vec!["--url", url];
        all.extend_from_slice(args);
        msgctl(&all)
    };

    let o = with_url(&[
        "call",
        "--topic",
        &topic,
        "--timeout",
        "10",
        "add",
        r#"{"a": 2, "b": 3}"#,
    ]);
    assert!(o.status.success(), "call add: {}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "5");

    let o = with_url(&["call", "--topic", &topic, "fail", r#"{"message": "boom"}"#]);
    assert_eq!(o.status.code(), Some(1), "call fail: {}", stderr(&o));
    // the driver's own log lines (warnings) may come first: the error is the last line
    let err = stderr(&o);
    assert_eq!(
        err.lines().last(),
        Some("msgctl: remote error: ValueError (builtins): boom"),
        "{err}"
    );
    assert_eq!(err.lines().filter(|l| l.starts_with("msgctl: ")).count(), 1);

    let o = with_url(&["cast", "--topic", &topic, "record", r#"{"key": "k"}"#]);
    assert!(o.status.success(), "cast record: {}", stderr(&o));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = with_url(&[
            "call",
            "--topic",
            &topic,
            "--server",
            "it-server",
            "recorded",
            r#"{"key": "k"}"#,
        ]);
        assert!(o.status.success(), "call recorded: {}", stderr(&o));
        if stdout(&o).trim() == "1" {
            break;
        }
        assert!(Instant::now() < deadline, "the cast was never recorded");
        std::thread::sleep(Duration::from_millis(100));
    }

    let status = server.terminate();
    assert!(status.success(), "serve exited with {status:?}");
}

#[test]
fn serve_and_call_across_processes_on_rabbitmq() {
    if let Some(url) = broker_url("MSG_RABBIT_URL") {
        serve_and_call(&url);
    }
}

/// The queues whose names start with `prefix`, by rabbitmqctl; `None` when it isn't usable
/// here.
fn queues_named_like(prefix: &str) -> Option<Vec<String>> {
    let out = Command::new("timeout")
        .args([
            "60",
            "rabbitmqctl",
            "-q",
            "list_queues",
            "name",
            "--no-table-headers",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|n| n.starts_with(prefix))
            .map(str::to_string)
            .collect(),
    )
}

/// Whether `queue` exists, by a passive declare from a raw lapin connection; deletes it
/// when `delete`.
fn queue_exists(url: &str, queue: &str, delete: bool) -> bool {
    let base = url.split('?').next().unwrap_or(url);
    let mut uri = base.replacen("rabbit://", "amqp://", 1);
    if uri.ends_with('/') {
        // lapin reads an empty path as the vhost "", not the default "/"
        uri.push_str("%2f");
    }
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let conn = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
                .await
                .unwrap();
            let ch = conn.create_channel().await.unwrap();
            let passive = lapin::options::QueueDeclareOptions {
                passive: true,
                ..lapin::options::QueueDeclareOptions::default()
            };
            let exists = ch
                .queue_declare(queue.into(), passive, lapin::types::FieldTable::default())
                .await
                .is_ok();
            if exists && delete {
                let ch = conn.create_channel().await.unwrap();
                let _ = ch
                    .queue_delete(queue.into(), lapin::options::QueueDeleteOptions::default())
                    .await;
            }
            let _ = conn.close(200, "OK".into()).await;
            exists
        })
}

#[test]
fn a_clean_sigterm_of_serve_deletes_its_fanout_queue_on_rabbitmq() {
    let Some(url) = broker_url("MSG_RABBIT_URL") else {
        return;
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    // (case, options, kept): oslo keeps a queue manager's fanout queue and the fanout stream
    for (case, options, kept) in [
        ("plain", "", false),
        ("qm", "use_queue_manager=true", true),
        (
            "stream",
            "rabbit_stream_fanout=true&rabbit_qos_prefetch_count=10&rabbit_transient_quorum_queue=true",
            true,
        ),
    ] {
        let topic = format!("msgctl-it-fanout-{}-{case}", std::process::id());
        let url = if options.is_empty() {
            url.clone()
        } else {
            format!("{url}{sep}{options}")
        };
        let server = Server::start(&url, &topic);
        // the stream is `<topic>_fanout` itself; a server's own queue has a suffix
        let Some(queues) = queues_named_like(&format!("{topic}_fanout")) else {
            assert!(
                std::env::var("MSG_REQUIRE_BROKERS").as_deref() != Ok("1"),
                "rabbitmqctl is needed to find the fanout queue"
            );
            eprintln!("SKIPPED: rabbitmqctl can't list queues here");
            return;
        };
        assert_eq!(queues.len(), 1, "one fanout queue for {topic}: {queues:?}");
        let status = server.terminate();
        assert!(status.success(), "serve exited with {status:?}");
        assert_eq!(
            queue_exists(&url, &queues[0], true),
            kept,
            "with options `{options}` the fanout queue `{}` must be {}",
            queues[0],
            if kept {
                "kept (as oslo)"
            } else {
                "deleted by a clean stop"
            }
        );
    }
}

#[test]
fn notify_then_listen_on_a_dotted_topic_over_nats() {
    let Some(url) = broker_url("MSG_NATS_URL") else {
        return;
    };
    // a prefix of the test's own: its stream is deleted at the end
    let prefix = format!("msgctl-it-{}", std::process::id());
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}subject_prefix={prefix}");
    let o = msgctl(&[
        "--url",
        &url,
        "notify",
        "--priority",
        "info",
        "--publisher-id",
        "p",
        "--event-type",
        "e",
        "--topic",
        "a.b",
        "--count",
        "3",
        "{}",
    ]);
    assert!(o.status.success(), "notify: {}", stderr(&o));
    let o = msgctl(&[
        "--url",
        &url,
        "listen",
        "--topic",
        "a.b",
        "--count",
        "3",
        "--timeout",
        "10",
        "--json",
    ]);
    assert!(o.status.success(), "listen: {}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 3, "{}", stdout(&o));
    let stream = msg::nats::encode_name(&[&prefix, "notify", "openstack"]);
    let raw = url.split('?').next().unwrap().to_string();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let client = async_nats::connect(raw).await.unwrap();
            async_nats::jetstream::new(client)
                .delete_stream(&stream)
                .await
                .unwrap();
        });
}

#[test]
fn serve_says_ready_then_stops_cleanly_on_sigterm() {
    // memory:// can't be reached from another process, but the life cycle is the same
    let server = Server::start("memory://", "msgctl-it-lifecycle");
    let status = server.terminate();
    assert!(status.success(), "serve exited with {status:?}");

    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--json",
            "--topic",
            "t",
            "--namespace",
            "admin",
            "--version",
            "1.2",
            "--executor",
            "sequential",
        ])
        .env_remove("MSG_TRANSPORT_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut ready = String::new();
    out.read_line(&mut ready).unwrap();
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["event"], "ready");
    assert_eq!(ready["topic"], "t");
    assert_eq!(ready["namespace"], "admin");
    assert_eq!(ready["version"], "1.2");
    assert!(ready["server"].as_str().is_some_and(|s| !s.is_empty()));
    let int = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(int.success());
    let mut stopped = String::new();
    out.read_line(&mut stopped).unwrap();
    let stopped: Value = serde_json::from_str(&stopped).unwrap();
    assert_eq!(stopped["event"], "stopped");
    assert_eq!(stopped["signal"], "SIGINT");
    assert!(child.wait().unwrap().success());
}

// ---- bench ------------------------------------------------------------------------------

/// The fields of CLI.md's `bench --json` object, checked on one run's object.
fn check_bench_object(v: &Value, pattern: &str, phase: &str, scheme: &str, raw: bool, count: u64) {
    assert_eq!(v["pattern"], pattern, "{v}");
    assert_eq!(v["phase"], phase, "{v}");
    assert_eq!(v["url_scheme"], scheme, "{v}");
    assert_eq!(v["raw"], raw, "{v}");
    assert_eq!(v["count"], count, "{v}");
    for key in ["concurrency", "payload_bytes"] {
        assert!(v[key].as_u64().is_some(), "{key}: {v}");
    }
    for key in ["seconds", "rate", "p50_ms", "p90_ms", "p99_ms", "max_ms"] {
        let x = v[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing: {v}"));
        assert!(x.is_finite() && x >= 0.0, "{key}: {v}");
    }
    assert!(v["rate"].as_f64().unwrap() > 0.0, "{v}");
    let p = |k: &str| v[k].as_f64().unwrap();
    assert!(
        p("p50_ms") <= p("p90_ms") && p("p90_ms") <= p("p99_ms") && p("p99_ms") <= p("max_ms"),
        "{v}"
    );
    // the process's resident set over the timed part (Linux: /proc/self/status)
    if cfg!(target_os = "linux") {
        let rss = &v["rss"];
        let kib = |k: &str| {
            rss[k]
                .as_u64()
                .filter(|&x| x > 0)
                .unwrap_or_else(|| panic!("rss.{k}: {v}"))
        };
        let peak = kib("peak_kib");
        for k in ["start_kib", "warm_kib", "end_kib"] {
            assert!(kib(k) <= peak, "rss.{k} above the peak: {v}");
        }
        assert!(rss["samples"].as_u64().is_some_and(|n| n >= 2), "{v}");
        let growth = rss["growth_pct"].as_f64().unwrap();
        assert!(growth.is_finite() && growth >= 0.0, "rss.growth_pct: {v}");
    }
}

#[test]
fn bench_rpc_on_memory_prints_one_json_object() {
    let o = msgctl(&[
        "--url",
        "memory://",
        "bench",
        "rpc",
        "--count",
        "200",
        "--concurrency",
        "4",
        "--json",
    ]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    check_bench_object(&v, "rpc", "call", "memory", false, 200);
    assert_eq!(v["concurrency"], 4);
    assert_eq!(v["payload_bytes"], 100);
    // no terminal: no progress bar on stderr
    assert!(stderr(&o).is_empty(), "stderr: {}", stderr(&o));

    // human output names the rate and the percentiles
    let o = msgctl(&["bench", "cast", "--count", "100", "--payload-bytes", "10"]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("casts/s") || out.contains("/s"), "{out}");
    assert!(out.contains("p99"), "{out}");
    assert!(out.contains("handled by the server"), "{out}");

    // memory:// has no raw client: a usage error before anything runs
    let err = fails_with(&msgctl(&["bench", "rpc", "--raw"]), 2);
    assert!(err.contains("memory://"), "{err}");
    fails_with(&msgctl(&["bench", "rpc", "--phase", "consume"]), 2);
}

#[test]
fn bench_notify_publish_vs_raw_on_rabbitmq() {
    let Some(url) = broker_url("MSG_RABBIT_URL") else {
        return;
    };
    let o = msgctl(&[
        "--url",
        &url,
        "bench",
        "notify",
        "--phase",
        "publish",
        "--count",
        "500",
        "--vs-raw",
        "--rounds",
        "2",
        "--json",
        "--stall-timeout",
        "20",
    ]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let scheme = url.split("://").next().unwrap();
    check_bench_object(&v["ours"], "notify", "publish", scheme, false, 500);
    check_bench_object(&v["raw"], "notify", "publish", scheme, true, 500);
    assert_eq!(v["rounds"], 2);
    for side in ["ours", "raw"] {
        assert_eq!(v[side]["rates"].as_array().map(Vec::len), Some(2), "{v}");
        assert!(v[side]["spread"].as_f64().is_some(), "{v}");
    }
    let ratio = v["ratio"].as_f64().unwrap();
    let expected = v["ours"]["rate"].as_f64().unwrap() / v["raw"]["rate"].as_f64().unwrap();
    assert!((ratio - expected).abs() < 1e-9 * expected.max(1.0), "{v}");
}

#[test]
fn an_empty_transport_url_variable_counts_as_unset() {
    let o = msgctl_env(
        &[
            "notify",
            "--topic",
            "empty-url",
            "--priority",
            "info",
            "--publisher-id",
            "p",
            "--event-type",
            "e",
            "{}",
        ],
        &[("MSG_TRANSPORT_URL", "")],
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
}

#[test]
fn out_of_range_options_and_names_are_bad_input_not_panics() {
    // parsed before any connection: no broker needed
    let o = msgctl(&[
        "--url",
        "rabbit://guest:guest@127.0.0.1:1/?connection_timeout=inf",
        "cast",
        "--topic",
        "t",
        "m",
    ]);
    let err = fails_with(&o, 2);
    assert!(err.contains("connection_timeout"), "{err}");
}

#[test]
fn a_rabbitmq_name_over_255_bytes_is_bad_input() {
    let Some(url) = broker_url("MSG_RABBIT_URL") else {
        return;
    };
    let topic = "t".repeat(300);
    let o = msgctl(&["--url", &url, "cast", "--topic", &topic, "m"]);
    let err = fails_with(&o, 2);
    assert!(err.contains("field `topic`"), "{err}");
}

/// The event types `msgctl listen` printed, one JSON line each.
fn event_types(o: &Output) -> Vec<String> {
    stdout(o)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["event_type"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn listen_in_batches_requeues_only_the_matching_ones_on_rabbitmq() {
    let Some(url) = broker_url("MSG_RABBIT_URL") else {
        return;
    };
    let topic = format!("msgctl-batch-requeue-{}", std::process::id());
    for event in ["skip.1", "keep.1", "skip.2", "keep.2"] {
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
            "{}",
        ]);
        assert!(o.status.success(), "notify: {}", stderr(&o));
    }
    let listen = |extra: &[&str]| {
        let mut args = vec![
            "--url",
            &url,
            "listen",
            "--topic",
            &topic,
            "--priority",
            "info",
            "--count",
            "2",
            "--timeout",
            "10",
        ];
        args.extend_from_slice(extra);
        msgctl(&args)
    };
    let o = listen(&[
        "--batch-size",
        "4",
        "--batch-timeout",
        "0.5",
        "--requeue-event-type",
        "skip",
    ]);
    assert!(o.status.success(), "listen: {}", stderr(&o));
    assert_eq!(event_types(&o), ["keep.1", "keep.2"]);
    // the matching ones went back, and only they
    let o = listen(&[]);
    assert!(o.status.success(), "listen: {}", stderr(&o));
    let mut rest = event_types(&o);
    rest.sort_unstable();
    assert_eq!(rest, ["skip.1", "skip.2"]);
}
