//! `msgctl demo`: a guided tour of RPC and notifications in one process.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use msg::notify::{
    BatchNotificationListener, Handled, NotificationEndpoint, NotificationFilter,
    NotificationListener, NotificationMessage, Notifier, Requeue,
};
use msg::{Capability, Context, Executor, Priority, RpcClient, RpcServer, Target, Transport};
use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::{DemoArgs, Global, NotifyDriverName};
use crate::cmd::notify;
use crate::cmd::rpc::close;
use crate::cmd::stdout_error;
use crate::endpoint::{Recorder, demo_endpoint};
use crate::errors::CliError;
use crate::input;
use crate::output;

/// How long any one wait of the demo may last: every step is bounded.
const BOUND: Duration = Duration::from_secs(5);
/// The namespace and version of the demo's second endpoint.
const NAMESPACE: &str = "demo.admin";
const NS_VERSION: &str = "1.2";
const SERVERS: [&str; 2] = ["server-a", "server-b"];

/// A step's outcome: what happened (shown after `->`), or why it didn't behave.
type Outcome = Result<String, String>;

#[derive(Serialize)]
struct StepLine<'a> {
    step: usize,
    what: &'a str,
    shows: &'a str,
    ok: bool,
    result: &'a str,
    ms: f64,
}

/// Prints the steps, numbered, with what each shows and how long it took.
struct Tour {
    json: bool,
    steps: usize,
    started: Instant,
}

impl Tour {
    fn say(&self, text: &str) -> Result<(), CliError> {
        if !self.json {
            output::line(text).map_err(stdout_error)?;
        }
        Ok(())
    }

    /// Runs one step: `what` was done, `shows` is what it teaches.
    async fn step(
        &mut self,
        what: &str,
        shows: &str,
        run: impl Future<Output = Outcome>,
    ) -> Result<(), CliError> {
        self.steps += 1;
        let n = self.steps;
        let started = Instant::now();
        let outcome = run.await;
        let took = started.elapsed();
        let (ok, result) = match &outcome {
            Ok(r) => (true, r.as_str()),
            Err(r) => (false, r.as_str()),
        };
        if self.json {
            output::json_line(&StepLine {
                step: n,
                what,
                shows,
                ok,
                result,
                ms: took.as_secs_f64() * 1000.0,
            })
            .map_err(stdout_error)?;
        } else {
            let result = if ok {
                result.to_string()
            } else {
                format!("DID NOT BEHAVE: {result}")
            };
            output::line(&format!(
                "{n:>3}. {what} -> {result}   ({})",
                output::human_duration(took)
            ))
            .map_err(stdout_error)?;
            output::line(&format!("     {shows}")).map_err(stdout_error)?;
        }
        match outcome {
            Ok(_) => Ok(()),
            Err(reason) => Err(CliError::failed(format!(
                "demo step {n} ({what}) didn't behave: {reason}"
            ))),
        }
    }
}

/// Waits until `check` holds, polling, for at most [`BOUND`].
async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + BOUND;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn expect<T: PartialEq + std::fmt::Debug>(got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("expected {want:?}, got {got:?}"))
    }
}

/// What the two servers and the client share.
struct Rpc {
    client: RpcClient,
    servers: Vec<RpcServer>,
    topic: String,
}

impl Rpc {
    /// `recorded(key)` on each server, by server-directed calls.
    async fn recorded(&self, key: &str) -> Result<Vec<u64>, String> {
        let mut counts = Vec::new();
        for server in SERVERS {
            let n: u64 = self
                .client
                .prepare()
                .server(server)
                .call(&Context::new(), "recorded", json!({ "key": key }))
                .await
                .map_err(|e| format!("recorded on {server}: {e}"))?;
            counts.push(n);
        }
        Ok(counts)
    }

    /// Waits until the servers' counts of `key` add up to `total`, then returns them.
    async fn settled(&self, key: &str, total: u64) -> Result<Vec<u64>, String> {
        let deadline = Instant::now() + BOUND;
        loop {
            let counts = self.recorded(key).await?;
            if counts.iter().sum::<u64>() >= total {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the servers counted {counts:?} deliveries of `{key}` after {BOUND:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // a little longer, to see that nothing more arrives
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.recorded(key).await
    }
}

fn counts_text(counts: &[u64]) -> String {
    SERVERS
        .iter()
        .zip(counts)
        .map(|(s, n)| format!("{s}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn run(global: &Global, _args: DemoArgs) -> Result<(), CliError> {
    let id: String = msg::driver::codec::new_unique_id()
        .chars()
        .take(8)
        .collect();
    // servers and listeners on one connection, clients and notifier on another, as separate
    // processes would be
    let serving = input::open_transport(global).await?;
    let sending = match input::open_transport(global).await {
        Ok(t) => t,
        Err(e) => {
            close(&serving).await;
            return Err(e);
        }
    };
    let mut tour = Tour {
        json: global.json,
        steps: 0,
        started: Instant::now(),
    };
    tour.say(&format!(
        "msgctl demo: msg's RPC and notifications on {} (the {} driver)",
        serving.url(),
        serving.driver().name()
    ))?;

    let result = rpc_steps(global, &mut tour, &serving, &sending, &id).await;
    let result = match result {
        Ok(()) => notification_steps(global, &mut tour, &serving, &sending, &id).await,
        Err(e) => Err(e),
    };
    close(&sending).await;
    close(&serving).await;
    result?;

    let took = tour.started.elapsed();
    if tour.json {
        output::json_line(&json!({
            "ok": true,
            "steps": tour.steps,
            "seconds": took.as_secs_f64(),
        }))
        .map_err(stdout_error)?;
    } else {
        tour.say(&format!(
            "\nAll {} steps behaved as expected, in {}.",
            tour.steps,
            output::human_duration(took)
        ))?;
    }
    Ok(())
}

async fn rpc_steps(
    global: &Global,
    tour: &mut Tour,
    serving: &Transport,
    sending: &Transport,
    id: &str,
) -> Result<(), CliError> {
    let topic = format!("msgctl-demo-{id}");
    let mut servers = Vec::new();
    for name in SERVERS {
        let recorder = Recorder::default();
        let started = RpcServer::builder(
            serving.clone(),
            input::with_exchange(Target::server(&topic, name), global),
        )
        .endpoint(demo_endpoint(&recorder))
        .endpoint(
            demo_endpoint(&recorder)
                .namespace(NAMESPACE)
                .version(NS_VERSION),
        )
        .start()
        .await;
        match started {
            Ok(s) => servers.push(s),
            Err(e) => {
                stop_servers(&servers).await;
                return Err(e.into());
            }
        }
    }
    let client = RpcClient::new(
        sending.clone(),
        input::with_exchange(Target::topic(&topic), global),
    )
    .timeout(BOUND);
    let rpc = Rpc {
        client,
        servers,
        topic,
    };
    tour.say(&format!(
        "\nRPC: {} and {} serve topic {}, each with the demo endpoint (echo, add, fail, sleep, \
         record, ...)\n     twice: in no namespace at version 1.0, and in namespace {NAMESPACE} \
         at version {NS_VERSION}.\n",
        SERVERS[0], SERVERS[1], rpc.topic
    ))?;
    let result = rpc_tour(tour, &rpc).await;
    stop_servers(&rpc.servers).await;
    result
}

async fn stop_servers(servers: &[RpcServer]) {
    for s in servers {
        if let Err(e) = s.shutdown(BOUND).await {
            tracing::warn!(error = %e, "stopping a demo server");
        }
    }
}

async fn rpc_tour(tour: &mut Tour, rpc: &Rpc) -> Result<(), CliError> {
    let ctx = Context::new().with("request_id", "req-msgctl-demo");
    let topic = &rpc.topic;
    let client = &rpc.client;

    tour.step(
        &format!("call add(a=2, b=3) on topic {topic}"),
        "a call waits for the result, computed by one of the servers of the topic",
        async {
            let sum: Value = client
                .call(&ctx, "add", json!({"a": 2, "b": 3}))
                .await
                .map_err(|e| e.to_string())?;
            expect(&sum, &json!(5))?;
            Ok(sum.to_string())
        },
    )
    .await?;

    tour.step(
        &format!("cast record(key=\"cast\") on topic {topic}"),
        "a cast returns once the message is sent; one server of the topic handles it, \
         nothing comes back",
        async {
            client
                .cast(&ctx, "record", json!({"key": "cast"}))
                .await
                .map_err(|e| e.to_string())?;
            let counts = rpc.settled("cast", 1).await?;
            expect(counts.iter().sum::<u64>(), 1)?;
            Ok(format!(
                "handled by one server of two ({})",
                counts_text(&counts)
            ))
        },
    )
    .await?;

    tour.step(
        &format!("cast record(key=\"fanout\") with fanout on topic {topic}"),
        "a fanout cast reaches every server of the topic",
        async {
            client
                .prepare()
                .fanout(true)
                .cast(&ctx, "record", json!({"key": "fanout"}))
                .await
                .map_err(|e| e.to_string())?;
            let counts = rpc.settled("fanout", 2).await?;
            expect(counts.as_slice(), &[1, 1])?;
            Ok(format!("handled by both ({})", counts_text(&counts)))
        },
    )
    .await?;

    tour.step(
        &format!("call record(key=\"direct\") on server {}", SERVERS[1]),
        "a server-directed call goes to the one server its target names",
        async {
            let n: u64 = client
                .prepare()
                .server(SERVERS[1])
                .call(&ctx, "record", json!({"key": "direct"}))
                .await
                .map_err(|e| e.to_string())?;
            expect(n, 1)?;
            let counts = rpc.recorded("direct").await?;
            expect(counts.as_slice(), &[0, 1])?;
            Ok(format!("{n} ({})", counts_text(&counts)))
        },
    )
    .await?;

    tour.step(
        "call fail(message=\"boom\")",
        "an error raised by a handler comes back to the caller as data: class, module, message",
        async {
            match client
                .call::<Value>(&ctx, "fail", json!({"message": "boom"}))
                .await
            {
                Err(msg::Error::Remote(e)) => {
                    expect(
                        (e.class.as_str(), e.module.as_str(), e.message.as_str()),
                        ("ValueError", "builtins", "boom"),
                    )?;
                    Ok(format!(
                        "remote error {} ({}): {}",
                        e.class, e.module, e.message
                    ))
                }
                Err(other) => Err(format!("expected a remote error, got: {other}")),
                Ok(v) => Err(format!("expected a remote error, got the result {v}")),
            }
        },
    )
    .await?;

    tour.step(
        &format!("call echo(value=\"hi\") in namespace {NAMESPACE} at version 1.1"),
        "an endpoint at version 1.2 serves requests for 1.0 up to 1.2 in its namespace",
        async {
            let v: Value = client
                .prepare()
                .namespace(NAMESPACE)
                .version("1.1")
                .call(&ctx, "echo", json!({"value": "hi"}))
                .await
                .map_err(|e| e.to_string())?;
            expect(&v, &json!("hi"))?;
            Ok(v.to_string())
        },
    )
    .await?;

    tour.step(
        &format!("call echo(value=\"hi\") in namespace {NAMESPACE} at version 1.3"),
        "a higher minor version than any endpoint has is refused: UnsupportedVersion",
        async {
            let result = client
                .prepare()
                .namespace(NAMESPACE)
                .version("1.3")
                .call::<Value>(&ctx, "echo", json!({"value": "hi"}))
                .await;
            match result {
                Err(e @ msg::Error::UnsupportedVersion { .. }) => Ok(format!("refused: {e}")),
                Err(msg::Error::Remote(e)) if e.class == "UnsupportedVersion" => {
                    Ok(format!("refused: {}: {}", e.class, e.message))
                }
                Err(other) => Err(format!("expected UnsupportedVersion, got: {other}")),
                Ok(v) => Err(format!("expected UnsupportedVersion, got the result {v}")),
            }
        },
    )
    .await?;

    tour.step(
        "call sleep(seconds=0.3) with a 0.1 s timeout",
        "a call without a reply in time fails with a timeout (the server still finishes)",
        async {
            let result = client
                .prepare()
                .timeout(Duration::from_millis(100))
                .call::<Value>(&ctx, "sleep", json!({"seconds": 0.3}))
                .await;
            match result {
                Err(e) if e.is_timeout() => Ok(CliError::from(e).line),
                Err(other) => Err(format!("expected a timeout, got: {other}")),
                Ok(v) => Err(format!("expected a timeout, got the result {v}")),
            }
        },
    )
    .await?;
    Ok(())
}

async fn notification_steps(
    global: &Global,
    tour: &mut Tour,
    serving: &Transport,
    sending: &Transport,
    id: &str,
) -> Result<(), CliError> {
    let base = format!("msgctl-demo-{id}");
    let topic_target =
        |suffix: &str| input::with_exchange(Target::topic(format!("{base}-{suffix}")), global);
    let notifier = |suffix: &str| -> Result<Notifier, CliError> {
        Ok(
            notify::notifier(sending, global, NotifyDriverName::Messagingv2)?
                .topics([format!("{base}-{suffix}")]),
        )
    };
    tour.say(&format!(
        "\nNotifications: a notifier sends to topics {base}-*; listeners print nothing, the \
         demo counts what they get.\n"
    ))?;
    let ctx = Context::new().with("request_id", "req-msgctl-demo");
    let caps = serving.capabilities();
    let driver = serving.driver().name();

    // two pools
    let pools_shows = "each listener pool gets its own copy of every notification (the \
                       listeners inside one pool share the work)";
    if caps.contains(Capability::Pools) {
        let n = notifier("pools")?.publisher_id("compute.host1");
        let target = topic_target("pools");
        tour.step(
            "notify 3 x info compute.instance.create.end; listeners in pools a and b",
            pools_shows,
            async {
                let counts: Vec<Arc<Mutex<u64>>> = vec![Default::default(), Default::default()];
                let mut listeners = Vec::new();
                for (pool, count) in ["a", "b"].into_iter().zip(&counts) {
                    let count = count.clone();
                    let l = NotificationListener::builder(serving.clone(), [target.clone()])
                        .pool(format!("{base}-pool-{pool}"))
                        .endpoint(NotificationEndpoint::new().on(Priority::Info, move |_m| {
                            let count = count.clone();
                            async move {
                                *count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                                Handled
                            }
                        }))
                        .start()
                        .await
                        .map_err(|e| e.to_string())?;
                    listeners.push(l);
                }
                let sent = async {
                    for i in 0..3 {
                        n.info(&ctx, "compute.instance.create.end", json!({"instance": i}))
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    let get = |i: usize| *counts[i].lock().unwrap_or_else(|p| p.into_inner());
                    eventually(|| get(0) >= 3 && get(1) >= 3).await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok::<_, String>((get(0), get(1)))
                }
                .await;
                for l in &listeners {
                    let _ = l.shutdown(BOUND).await;
                }
                let (a, b) = sent?;
                expect((a, b), (3, 3))?;
                Ok(format!("pool a got {a}, pool b got {b}"))
            },
        )
        .await?;
    } else {
        tour.step("listener pools", pools_shows, async {
            Ok(format!(
                "skipped: the {driver} driver has no listener pools"
            ))
        })
        .await?;
    }

    // a filter
    let target = topic_target("filter");
    let n = notifier("filter")?;
    tour.step(
        "notify from network.host1, then from compute.host1; a listener filters on \
         publisher_id ^compute\\.",
        "a NotificationFilter (regexes on publisher_id, event_type, context, payload) picks \
         what an endpoint sees; the rest is acknowledged unseen",
        async {
            let seen: Arc<Mutex<Vec<String>>> = Arc::default();
            let seen2 = seen.clone();
            let filter = NotificationFilter::new()
                .publisher_id(r"^compute\.")
                .map_err(|e| e.to_string())?;
            let l = NotificationListener::builder(serving.clone(), [target])
                .executor(Executor::Sequential)
                .endpoint(NotificationEndpoint::new().filter(filter).on(
                    Priority::Info,
                    move |m: NotificationMessage| {
                        let seen = seen2.clone();
                        async move {
                            seen.lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(m.publisher_id);
                        }
                    },
                ))
                .start()
                .await
                .map_err(|e| e.to_string())?;
            let sent = async {
                for publisher in ["network.host1", "compute.host1"] {
                    n.prepare()
                        .publisher_id(publisher)
                        .info(&ctx, "demo.filtered", json!({}))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                let get = || seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
                eventually(|| !get().is_empty()).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, String>(get())
            }
            .await;
            let _ = l.shutdown(BOUND).await;
            let seen = sent?;
            expect(seen.as_slice(), &["compute.host1".to_string()])?;
            Ok("saw compute.host1's only; network.host1's was filtered out".into())
        },
    )
    .await?;

    // a batch listener
    let target = topic_target("batch");
    let n = notifier("batch")?.publisher_id("metering.host1");
    let batch_timeout = Duration::from_millis(200);
    tour.step(
        "notify 7 x sample; a batch listener with batch size 5 and batch timeout 0.2 s",
        "a batch listener hands over up to N notifications at once, or fewer once the batch \
         timeout has passed",
        async {
            let batches: Arc<Mutex<Vec<usize>>> = Arc::default();
            let batches2 = batches.clone();
            let l = BatchNotificationListener::builder(serving.clone(), [target], 5, batch_timeout)
                .endpoint(NotificationEndpoint::new().on_batch(
                    Priority::Sample,
                    move |ms: Vec<NotificationMessage>| {
                        let batches = batches2.clone();
                        async move {
                            batches
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(ms.len());
                        }
                    },
                ))
                .start()
                .await
                .map_err(|e| e.to_string())?;
            let sent = async {
                for i in 0..7 {
                    n.sample(&ctx, "cpu.util", json!({"cpu": i}))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                let get = || batches.lock().unwrap_or_else(|p| p.into_inner()).clone();
                eventually(|| get().iter().sum::<usize>() >= 7).await;
                Ok::<_, String>(get())
            }
            .await;
            let _ = l.shutdown(BOUND).await;
            let batches = sent?;
            expect(batches.iter().sum::<usize>(), 7)?;
            if batches.iter().any(|b| *b > 5) || batches.len() < 2 {
                return Err(format!("batches of up to 5 expected, got {batches:?}"));
            }
            let sizes = batches
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" + ");
            Ok(format!(
                "7 notifications in {} batches: {sizes} (a batch under 5 left on the timeout)",
                batches.len()
            ))
        },
    )
    .await?;

    // requeue
    let requeue_shows = "a handler that answers Requeue gives the notification back to the \
                         broker (allow_requeue); it is delivered again";
    if caps.contains(Capability::Requeue) {
        let target = topic_target("requeue");
        let n = notifier("requeue")?.publisher_id("volume.host1");
        tour.step(
            "notify 1 x warn; the handler answers Requeue the first time, Handled the next",
            requeue_shows,
            async {
                let answers: Arc<Mutex<Vec<&'static str>>> = Arc::default();
                let answers2 = answers.clone();
                let l = NotificationListener::builder(serving.clone(), [target])
                    .allow_requeue(true)
                    .endpoint(NotificationEndpoint::new().on(Priority::Warn, move |_m| {
                        let answers = answers2.clone();
                        async move {
                            let mut a = answers.lock().unwrap_or_else(|p| p.into_inner());
                            if a.is_empty() {
                                a.push("Requeue");
                                Requeue
                            } else {
                                a.push("Handled");
                                Handled
                            }
                        }
                    }))
                    .start()
                    .await
                    .map_err(|e| e.to_string())?;
                let sent = async {
                    n.warn(&ctx, "volume.usage.high", json!({"volume": "v1"}))
                        .await
                        .map_err(|e| e.to_string())?;
                    let get = || answers.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    eventually(|| get().len() >= 2).await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok::<_, String>(get())
                }
                .await;
                let _ = l.shutdown(BOUND).await;
                let answers = sent?;
                expect(answers.as_slice(), &["Requeue", "Handled"])?;
                Ok("delivery 1 answered Requeue, delivery 2 answered Handled".into())
            },
        )
        .await?;
    } else {
        tour.step("requeue", requeue_shows, async {
            Ok(format!("skipped: the {driver} driver can't requeue"))
        })
        .await?;
    }
    Ok(())
}
