//! Continuous load over a cluster, counted: calls from several tasks to an echo server and
//! confirmed notifications streaming to a listener. A fault test runs it across a fault and
//! asserts on its [`LoadReport`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Result;
use msg_client::{Notifier, RpcClient};
use msg_core::{Context, Error, Priority, Target, Transport};
use msg_dispatch::{Endpoint, HandlerError, NotificationEndpoint, NotificationResult};
use msg_server::{NotificationListener, RpcServer};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::process::{POLL, wait_until};

/// How much load, and its bounds.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Tasks that call, each one call at a time.
    pub call_tasks: usize,
    /// The pause between one task's calls.
    pub call_interval: Duration,
    /// Each call's timeout.
    pub call_timeout: Duration,
    /// The most calls one task makes.
    pub calls_per_task: u64,
    /// The pause between notifications (each is sent once the previous one is confirmed
    /// or failed).
    pub notify_interval: Duration,
    /// The most notifications sent.
    pub notifications: u64,
    /// How long one notification may take to be confirmed (retrying meanwhile).
    pub notify_timeout: Duration,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            call_tasks: 4,
            call_interval: Duration::from_millis(50),
            call_timeout: Duration::from_secs(10),
            calls_per_task: 3000,
            notify_interval: Duration::from_millis(20),
            notifications: 10_000,
            notify_timeout: Duration::from_secs(30),
        }
    }
}

/// How one call ended.
#[derive(Debug, Clone, PartialEq)]
enum CallEnd {
    /// Answered with what was sent.
    Answered,
    /// Answered with something else.
    Wrong(Value),
    /// Failed with an error other than a timeout.
    Failed(String),
    /// Failed with a timeout.
    TimedOut,
    /// Did not return within its timeout and a margin.
    Hung,
}

#[derive(Debug, Clone)]
struct Call {
    id: u64,
    started: Instant,
    ended: Instant,
    end: CallEnd,
}

#[derive(Debug, Clone)]
struct Sent {
    started: Instant,
    /// `Err` holds why it was not confirmed.
    confirmed: std::result::Result<(), String>,
}

/// Counts by id, and when each id was first seen.
#[derive(Debug, Default, Clone)]
struct Seen(Arc<Mutex<HashMap<u64, (u32, Instant)>>>);

impl Seen {
    fn record(&self, id: u64) {
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = seen.entry(id).or_insert((0, Instant::now()));
        entry.0 = entry.0.saturating_add(1);
    }

    fn snapshot(&self) -> HashMap<u64, (u32, Instant)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A running load; [`Load::finish`] stops it and counts.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    calls: Arc<Mutex<Vec<Call>>>,
    sent: Arc<Mutex<BTreeMap<u64, Sent>>>,
    served: Seen,
    received: Seen,
    server: RpcServer,
    listener: NotificationListener,
    config: LoadConfig,
}

impl Load {
    /// Starts an echo server and a notification listener (info) on `topic` over
    /// `server_side`, then the calling tasks and the notification stream over
    /// `client_side`.
    pub async fn start(
        server_side: &Transport,
        client_side: &Transport,
        topic: &str,
        config: LoadConfig,
    ) -> Result<Load> {
        let served = Seen::default();
        let received = Seen::default();
        let server = {
            let served = served.clone();
            RpcServer::builder(server_side.clone(), Target::server(topic, "cluster-server"))
                .endpoint(
                    Endpoint::new().method("echo", move |_c: Context, a: Value| {
                        let served = served.clone();
                        async move {
                            if let Some(id) = a["id"].as_u64() {
                                served.record(id);
                            }
                            Ok::<_, HandlerError>(a)
                        }
                    }),
                )
                .start()
                .await?
        };
        let listener = {
            let received = received.clone();
            NotificationListener::builder(server_side.clone(), [Target::topic(topic)])
                .endpoint(NotificationEndpoint::new().on(Priority::Info, move |m| {
                    let received = received.clone();
                    async move {
                        if let Some(i) = m.payload.get("i").and_then(|v| v.as_u64()) {
                            received.record(i);
                        }
                        NotificationResult::Handled
                    }
                }))
                .start()
                .await?
        };
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(Mutex::new(BTreeMap::new()));
        let next_id = Arc::new(AtomicU64::new(0));
        let client =
            RpcClient::new(client_side.clone(), Target::topic(topic)).timeout(config.call_timeout);
        let mut tasks = Vec::new();
        for _ in 0..config.call_tasks {
            tasks.push(tokio::spawn(call_loop(
                client.clone(),
                config.clone(),
                stop.clone(),
                next_id.clone(),
                calls.clone(),
            )));
        }
        let notifier = Notifier::new(client_side.clone())
            .topics([topic])
            .send_timeout(config.notify_timeout);
        tasks.push(tokio::spawn(notify_loop(
            notifier,
            config.clone(),
            stop.clone(),
            sent.clone(),
        )));
        Ok(Load {
            stop,
            tasks,
            calls,
            sent,
            served,
            received,
            server,
            listener,
            config,
        })
    }

    /// Waits (bounded by `within`) until msg serves again after `since`: a call started
    /// after it was answered, and a notification sent after it was received. How long after
    /// `since` the later of the two happened.
    pub async fn serving_since(&self, since: Instant, within: Duration) -> Result<Duration> {
        let mut at = None;
        wait_until(
            within,
            "a call answered and a notification received",
            || {
                let call_at = self
                    .calls
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .filter(|c| c.started >= since && c.end == CallEnd::Answered)
                    .map(|c| c.ended)
                    .min();
                let received = self.received.snapshot();
                let notify_at = self
                    .sent
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .filter(|(_, s)| s.started >= since)
                    .filter_map(|(i, _)| received.get(i).map(|(_, first)| *first))
                    .min();
                at = call_at.zip(notify_at).map(|(c, n)| c.max(n));
                let done = at.is_some();
                async move { Ok(done) }
            },
        )
        .await?;
        Ok(at.map_or(Duration::ZERO, |at| at.saturating_duration_since(since)))
    }

    /// Stops sending, waits for the tasks (each call ends within its timeout) and for
    /// every confirmed notification to arrive (bounded by `drain`), stops the server and
    /// the listener, and counts.
    pub async fn finish(self, drain: Duration) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        let join_budget = self
            .config
            .call_timeout
            .max(self.config.notify_timeout)
            .saturating_add(Duration::from_secs(15));
        for task in self.tasks {
            let _ = tokio::time::timeout(join_budget, task).await;
        }
        let confirmed: Vec<u64> = self
            .sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, s)| s.confirmed.is_ok())
            .map(|(i, _)| *i)
            .collect();
        let received = self.received.clone();
        let all_in = wait_until(drain, "every confirmed notification", || {
            let got = received.snapshot();
            let done = confirmed.iter().all(|i| got.contains_key(i));
            async move { Ok(done) }
        })
        .await;
        if all_in.is_err() {
            // not all arrived within the drain time: the report counts them as lost
            tokio::time::sleep(POLL).await;
        }
        let _ = self.listener.shutdown(Duration::from_secs(10)).await;
        let _ = self.server.shutdown(Duration::from_secs(10)).await;
        let calls = self
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let sent = self
            .sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        LoadReport::count(
            &calls,
            &sent,
            &self.served.snapshot(),
            &self.received.snapshot(),
        )
    }
}

async fn call_loop(
    client: RpcClient,
    config: LoadConfig,
    stop: Arc<AtomicBool>,
    next_id: Arc<AtomicU64>,
    calls: Arc<Mutex<Vec<Call>>>,
) {
    let margin = config.call_timeout.saturating_add(Duration::from_secs(10));
    for _ in 0..config.calls_per_task {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let id = next_id.fetch_add(1, Ordering::SeqCst);
        let args = json!({ "id": id });
        let started = Instant::now();
        let context = Context::new();
        let call = client.call::<Value>(&context, "echo", args.clone());
        let end = match tokio::time::timeout(margin, call).await {
            Ok(Ok(v)) if v == args => CallEnd::Answered,
            Ok(Ok(v)) => CallEnd::Wrong(v),
            Ok(Err(Error::Timeout { .. })) => CallEnd::TimedOut,
            Ok(Err(e)) => CallEnd::Failed(e.to_string()),
            Err(_) => CallEnd::Hung,
        };
        calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Call {
                id,
                started,
                ended: Instant::now(),
                end,
            });
        tokio::time::sleep(config.call_interval).await;
    }
}

async fn notify_loop(
    notifier: Notifier,
    config: LoadConfig,
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<BTreeMap<u64, Sent>>>,
) {
    let margin = config
        .notify_timeout
        .saturating_add(Duration::from_secs(10));
    for i in 0..config.notifications {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let started = Instant::now();
        let context = Context::new();
        let send = notifier.info(&context, "cluster.load", json!({ "i": i }));
        let confirmed = match tokio::time::timeout(margin, send).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {margin:?}")),
        };
        sent.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(i, Sent { started, confirmed });
        tokio::time::sleep(config.notify_interval).await;
    }
}

/// What a [`Load`] sent and got.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Notifications sent.
    pub notifications_sent: u64,
    /// Notifications the broker confirmed.
    pub notifications_confirmed: u64,
    /// Notifications that failed (not confirmed), clearly.
    pub notifications_failed: u64,
    /// Distinct notifications the listener got.
    pub notifications_received: u64,
    /// Extra deliveries of notifications already received.
    pub notifications_duplicates: u64,
    /// Confirmed notifications the listener never got.
    pub notifications_lost: u64,
    /// Calls made.
    pub calls: u64,
    /// Calls answered with what they sent.
    pub calls_ok: u64,
    /// Calls that failed with an error other than a timeout.
    pub calls_failed_clearly: u64,
    /// Calls that timed out (or hung) and whose request no server got.
    pub calls_lost_requests: u64,
    /// Calls that timed out (or hung) although a server handled their request.
    pub calls_lost_replies: u64,
    /// Calls that did not return at all within their timeout and a margin.
    pub calls_hung: u64,
    /// Calls answered with something else.
    pub calls_wrong: u64,
    /// Extra deliveries of call requests to a server.
    pub requests_duplicated: u64,
    /// The distinct errors, with how often each came.
    pub errors: BTreeMap<String, u64>,
}

impl LoadReport {
    fn count(
        calls: &[Call],
        sent: &BTreeMap<u64, Sent>,
        served: &HashMap<u64, (u32, Instant)>,
        received: &HashMap<u64, (u32, Instant)>,
    ) -> LoadReport {
        let mut r = LoadReport::default();
        let mut errors: BTreeMap<String, u64> = BTreeMap::new();
        let mut bump = |text: &str| {
            let n = errors.entry(short(text)).or_insert(0);
            *n = n.saturating_add(1);
        };
        for c in calls {
            r.calls += 1;
            match &c.end {
                CallEnd::Answered => r.calls_ok += 1,
                CallEnd::Wrong(_) => r.calls_wrong += 1,
                CallEnd::Failed(e) => {
                    r.calls_failed_clearly += 1;
                    bump(e);
                }
                CallEnd::TimedOut | CallEnd::Hung => {
                    if c.end == CallEnd::Hung {
                        r.calls_hung += 1;
                    }
                    if served.contains_key(&c.id) {
                        r.calls_lost_replies += 1;
                    } else {
                        r.calls_lost_requests += 1;
                    }
                    bump(if c.end == CallEnd::Hung {
                        "call hung"
                    } else {
                        "call timed out"
                    });
                }
            }
        }
        r.requests_duplicated = served
            .values()
            .map(|(n, _)| u64::from(n.saturating_sub(1)))
            .sum();
        for (i, s) in sent {
            r.notifications_sent += 1;
            match &s.confirmed {
                Ok(()) => {
                    r.notifications_confirmed += 1;
                    if !received.contains_key(i) {
                        r.notifications_lost += 1;
                    }
                }
                Err(e) => {
                    r.notifications_failed += 1;
                    bump(e);
                }
            }
        }
        r.notifications_received = received.len() as u64;
        r.notifications_duplicates = received
            .values()
            .map(|(n, _)| u64::from(n.saturating_sub(1)))
            .sum();
        r.errors = errors;
        r
    }

    /// Calls that neither got their answer nor failed clearly (timed out or hung).
    pub fn calls_lost(&self) -> u64 {
        self.calls_lost_requests + self.calls_lost_replies
    }
}

/// An error's text cut to 160 characters, for the report's list of distinct errors.
fn short(text: &str) -> String {
    match text.char_indices().nth(160) {
        Some((at, _)) => format!("{}...", text.get(..at).unwrap_or(text)),
        None => text.to_owned(),
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "notifications: sent {}, confirmed {}, failed {}, received {}, duplicates {}, lost {}",
            self.notifications_sent,
            self.notifications_confirmed,
            self.notifications_failed,
            self.notifications_received,
            self.notifications_duplicates,
            self.notifications_lost
        )?;
        writeln!(
            f,
            "calls: sent {}, ok {}, failed clearly {}, lost {} (request never served {}, reply never came {}; hung {}), wrong answers {}, requests served twice {}",
            self.calls,
            self.calls_ok,
            self.calls_failed_clearly,
            self.calls_lost(),
            self.calls_lost_requests,
            self.calls_lost_replies,
            self.calls_hung,
            self.calls_wrong,
            self.requests_duplicated
        )?;
        for (text, n) in &self.errors {
            writeln!(f, "  {n} x {text}")?;
        }
        Ok(())
    }
}
