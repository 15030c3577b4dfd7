//! Python oslo.messaging peers for interop tests: the venv found through `MSG_PYTHON`, and
//! a running peer script that prints one JSON object per line.
//!
//! The AMQP driver's interop suite and the cluster suite both drive the peer scripts of
//! `crates/msg-driver-amqp/tests/interop` through this module. Without `MSG_PYTHON` a test
//! prints a SKIPPED line and passes; with `MSG_REQUIRE_BROKERS=1` it fails instead.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// A peer's own bound, in seconds (each script also caps it).
const PEER_LIFETIME: &str = "90";
/// How long a peer may take to import oslo.messaging and start listening (two busy cores
/// shared with other builds).
const READY_WITHIN: Duration = Duration::from_secs(60);

/// Where Python peers run: the Python with oslo.messaging, the directory of the peer
/// scripts, and the broker URL they are given (`MSG_RABBIT_URL`, and `--url` unless a
/// script is given another).
#[derive(Debug, Clone)]
pub struct PythonEnv {
    /// The broker URL.
    pub url: String,
    /// The Python of `MSG_PYTHON`.
    pub python: PathBuf,
    /// The directory of the peer scripts.
    pub scripts: PathBuf,
}

fn brokers_required() -> bool {
    std::env::var("MSG_REQUIRE_BROKERS").as_deref() == Ok("1")
}

impl PythonEnv {
    /// The Python of `MSG_PYTHON` with the scripts in `scripts`, for peers on `url`; `None`
    /// after a loud SKIPPED line naming `suite` when `MSG_PYTHON` is unset (a panic with
    /// `MSG_REQUIRE_BROKERS=1`: CI must run the interop tests).
    ///
    /// ```no_run
    /// # async fn example() {
    /// use msg_testkit::{PythonEnv, PythonPeer};
    /// let Some(env) = PythonEnv::from_env("my suite", "rabbit://localhost//", "tests/interop")
    /// else {
    ///     return; // skipped
    /// };
    /// let mut server =
    ///     PythonPeer::spawn(&env, "py_rpc_server.py", &["--topic", "t", "--server", "s"]);
    /// server.ready().await;
    /// server.stop().await;
    /// # }
    /// ```
    pub fn from_env(suite: &str, url: &str, scripts: impl AsRef<Path>) -> Option<PythonEnv> {
        let python = match std::env::var("MSG_PYTHON") {
            Ok(p) if !p.is_empty() => PathBuf::from(p),
            _ => {
                assert!(
                    !brokers_required(),
                    "MSG_REQUIRE_BROKERS=1 but MSG_PYTHON is not set: run `cargo xtask test` \
                     (it prepares target/interop-venv with oslo.messaging[tracing-http]==18.3.1)"
                );
                #[allow(clippy::print_stderr)]
                {
                    eprintln!(
                        "SKIPPED: {suite}: no Python oslo.messaging (set MSG_PYTHON to a python \
                         with oslo.messaging[tracing-http]==18.3.1, or run `cargo xtask test`)"
                    );
                }
                return None;
            }
        };
        assert!(
            python.is_file(),
            "MSG_PYTHON={} is not a file: run `cargo xtask venv`",
            python.display()
        );
        Some(PythonEnv {
            url: url.to_owned(),
            python,
            scripts: scripts.as_ref().to_path_buf(),
        })
    }
}

/// A running Python peer: its JSON lines, and its output kept for failure messages. It is
/// bounded (`--lifetime`, and it exits when its stdin closes) and killed when dropped.
#[derive(Debug)]
pub struct PythonPeer {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<Value>,
    log: Arc<Mutex<String>>,
}

fn append(log: &Mutex<String>, line: &str) {
    const KEEP: usize = 16_000;
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    log.push_str(line);
    log.push('\n');
    if log.len() > 2 * KEEP {
        let cut = log.len() - KEEP;
        let cut = (cut..log.len())
            .find(|i| log.is_char_boundary(*i))
            .unwrap_or(0);
        log.drain(..cut);
    }
}

impl fmt::Display for PythonPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        write!(f, "python peer `{}`; its output:\n{log}", self.name)
    }
}

impl PythonPeer {
    /// Runs `script` (in `env.scripts`) with `args` and a bounded lifetime.
    ///
    /// # Panics
    /// When the Python can't be run.
    pub fn spawn(env: &PythonEnv, script: &str, args: &[&str]) -> PythonPeer {
        let mut child = Command::new(&env.python)
            .arg(env.scripts.join(script))
            .args(args)
            .args(["--lifetime", PEER_LIFETIME])
            .current_dir(&env.scripts)
            .env("MSG_RABBIT_URL", &env.url)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONWARNINGS", "ignore")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("can't run {} {script}: {e}", env.python.display()));
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::unbounded_channel();
        if let Some(stdout) = child.stdout.take() {
            let out_log = log.clone();
            tokio::spawn(async move {
                let mut stdout = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = stdout.next_line().await {
                    append(&out_log, &format!("[stdout] {line}"));
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        let _ = tx.send(v);
                    }
                }
            });
        }
        if let Some(stderr) = child.stderr.take() {
            let err_log = log.clone();
            tokio::spawn(async move {
                let mut stderr = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = stderr.next_line().await {
                    append(&err_log, &line);
                }
            });
        }
        let shown: Vec<&str> = args
            .iter()
            .map(|a| if a.len() > 60 { "…" } else { *a })
            .collect();
        PythonPeer {
            name: format!("{script} {}", shown.join(" ")),
            stdin: child.stdin.take(),
            child,
            lines,
            log,
        }
    }

    /// The next JSON line, or `None` when nothing came within `within` or the peer ended.
    pub async fn try_next(&mut self, within: Duration) -> Option<Value> {
        tokio::time::timeout(within, self.lines.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits until the peer consumes: calls `probe` (which sends it something) until the peer
    /// prints a line with `"event": event`, for at most `within`. A Python server's `start()`
    /// returns before its consumer is attached (oslo consumes from its poll thread), so what
    /// is sent right after its `ready` line can go by unseen (a stream consumer starting at
    /// `last`). The probes' lines are dropped; later probes may still arrive after it returns.
    ///
    /// # Panics
    /// When no such line comes within `within`.
    pub async fn await_consuming(
        &mut self,
        event: &str,
        within: Duration,
        mut probe: impl AsyncFnMut(),
    ) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            probe().await;
            let pause = Instant::now() + Duration::from_millis(300);
            while let Some(v) = self
                .try_next(pause.saturating_duration_since(Instant::now()))
                .await
            {
                if v["event"] == event {
                    return;
                }
            }
        }
        panic!("{self}\n-> it printed no `{event}` for a probe within {within:?}");
    }

    /// The `"value"`s of the next `n` distinct `"event": event` lines, leaving out those
    /// whose value is `skip` (the probes of [`PythonPeer::await_consuming`]); at most 100
    /// lines are read.
    ///
    /// # Panics
    /// When a line does not come within `within`.
    pub async fn distinct_values(
        &mut self,
        event: &str,
        n: usize,
        skip: &str,
        within: Duration,
    ) -> std::collections::BTreeSet<String> {
        let mut values = std::collections::BTreeSet::new();
        for _ in 0..100 {
            if values.len() == n {
                break;
            }
            let line = self.event(event, within).await;
            match line["value"].as_str() {
                Some(v) if v != skip => {
                    values.insert(v.to_string());
                }
                _ => {}
            }
        }
        values
    }

    /// The next line with `"event": event` (earlier lines are dropped).
    ///
    /// # Panics
    /// When none comes within `within`, or the peer ends first.
    pub async fn event(&mut self, event: &str, within: Duration) -> Value {
        let mut seen = self.until(event, within).await;
        seen.pop().unwrap_or_default()
    }

    /// Every line up to and including the next one with `"event": event`.
    ///
    /// # Panics
    /// When none comes within `within`, or the peer ends first.
    pub async fn until(&mut self, event: &str, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.lines.recv()).await {
                Ok(Some(v)) => {
                    let done = v["event"] == event;
                    seen.push(v);
                    if done {
                        return seen;
                    }
                }
                Ok(None) => panic!("{self}\n-> it ended before printing event `{event}`"),
                Err(_) => panic!("{self}\n-> no event `{event}` within {within:?}"),
            }
        }
    }

    /// Waits for the peer's `ready` line.
    ///
    /// # Panics
    /// When it does not come within a minute.
    pub async fn ready(&mut self) {
        self.event("ready", READY_WITHIN).await;
    }

    /// The next `n` notification lines.
    ///
    /// # Panics
    /// When fewer come within `within`.
    pub async fn notifications(&mut self, n: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.lines.recv()).await {
                Ok(Some(v)) if v["event"] == "notification" => got.push(v),
                Ok(Some(_)) => {}
                Ok(None) => panic!(
                    "{self}\n-> it ended after {} of {n} notifications",
                    got.len()
                ),
                Err(_) => panic!(
                    "{self}\n-> {} of {n} notifications within {within:?}: {got:?}",
                    got.len()
                ),
            }
        }
        got
    }

    /// The results of a `py_rpc_client.py` run (its lines with an operation index `i`, up to
    /// its `done`).
    ///
    /// # Panics
    /// When there are not `n` of them within 90 s.
    pub async fn client_results(&mut self, n: usize) -> Vec<Value> {
        let lines = self.until("done", Duration::from_secs(90)).await;
        let results: Vec<Value> = lines.into_iter().filter(|l| l.get("i").is_some()).collect();
        assert_eq!(results.len(), n, "{self}");
        results
    }

    /// Asks the peer to stop (its stdin closes) and waits for it (bounded; killed after).
    pub async fn stop(mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{self}\n-> did not stop within 15 s: killed");
            }
            let _ = self.child.kill().await;
        }
    }
}
