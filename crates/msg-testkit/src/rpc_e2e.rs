//! End-to-end RPC cases: msg-client's `RpcClient` against msg-server's `RpcServer` with
//! msg-dispatch's endpoints, through the driver under test.
//!
//! Dedup of redelivered requests (`_unique_id`) is not covered here: at this level a case
//! can't make the broker deliver a request twice. msg-server's own tests cover it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use msg_client::RpcClient;
use msg_core::{Context, Error, Target};
use msg_dispatch::{Endpoint, HandlerError};
use msg_server::{Executor, RpcServer, ServerState};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cases::{Case, CaseResult};
use crate::e2e::{Log, Running, err, stays, wait_until, within};
use crate::env::Env;

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(e2e_rpc_topic_is_load_balanced, [Replies, LoadBalancing]),
        case!(e2e_rpc_server_directed, [Replies, ServerDirected]),
        case!(e2e_rpc_fanout_reaches_every_server, [Fanout]),
        case!(e2e_rpc_namespaces_and_versions, [Replies]),
        case!(e2e_rpc_remote_failures, [Replies]),
        case!(e2e_rpc_typed_results, [Replies]),
        case!(e2e_rpc_call_times_out, [Replies, CallTimeout]),
        case!(e2e_rpc_version_cap, [Replies]),
        case!(
            e2e_rpc_heartbeats_keep_a_long_call_alive,
            [Replies, Heartbeats]
        ),
        case!(
            e2e_rpc_killed_server_fails_by_call_monitor,
            [Replies, Heartbeats]
        ),
        case!(e2e_rpc_shutdown_finishes_in_flight_calls, [Replies]),
        case!(e2e_rpc_panic_is_a_remote_failure, [Replies]),
        case!(e2e_rpc_start_after_stop, [Replies]),
        case!(e2e_rpc_sequential_executor_keeps_order, []),
        case!(e2e_rpc_pool_executor_runs_n_at_once, []),
        case!(e2e_rpc_pool_executor_runs_blocking_handlers_in_parallel, []),
    ]
}

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
struct Sleep {
    ms: u64,
}

#[derive(Debug, Deserialize)]
struct Index {
    i: u64,
}

async fn start_server(
    env: &Env,
    topic: &str,
    name: &str,
    endpoints: Vec<Endpoint>,
    executor: Executor,
) -> Result<Running<RpcServer>, String> {
    start_server_on(
        env,
        Target::server(topic, Env::server(name)),
        endpoints,
        executor,
    )
    .await
}

/// Starts a server on `target` (a topic and server, maybe an exchange): the server listens
/// once `start` returns.
async fn start_server_on(
    env: &Env,
    target: Target,
    endpoints: Vec<Endpoint>,
    executor: Executor,
) -> Result<Running<RpcServer>, String> {
    let transport = env.transport().await.map_err(err)?;
    let server = RpcServer::builder(transport, target)
        .endpoints(endpoints)
        .executor(executor)
        .start()
        .await
        .map_err(err)?;
    Ok(Running::new(server))
}

async fn client(env: &Env, topic: &str) -> Result<RpcClient, String> {
    let transport = env.transport().await.map_err(err)?;
    Ok(RpcClient::new(transport, Target::topic(topic)).timeout(CALL_TIMEOUT))
}

/// An endpoint whose `who` answers the server's name and counts its calls, and whose
/// `record` counts casts.
fn who_endpoint(name: &str, count: Arc<AtomicUsize>) -> Endpoint {
    let name = name.to_string();
    let casts = count.clone();
    Endpoint::new()
        .method("who", move |_ctx: Context, _: ()| {
            let name = name.clone();
            let count = count.clone();
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                Ok::<_, HandlerError>(name)
            }
        })
        .method("record", move |_ctx: Context, _: Index| {
            let casts = casts.clone();
            async move {
                casts.fetch_add(1, Ordering::SeqCst);
                Ok::<_, HandlerError>(())
            }
        })
}

/// Counts a handler in, and returns how many run now.
fn enter(current: &AtomicUsize, max: &AtomicUsize) {
    let now = current.fetch_add(1, Ordering::SeqCst) + 1;
    max.fetch_max(now, Ordering::SeqCst);
}

fn is_gone(r: &Result<String, Error>) -> bool {
    matches!(r, Err(Error::NoResponders { .. } | Error::Timeout { .. }))
}

async fn e2e_rpc_topic_is_load_balanced(env: Env) -> CaseResult {
    let topic = env.unique("e2e-lb");
    let (c1, c2) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let _s1 = start_server(
        &env,
        &topic,
        "s1",
        vec![who_endpoint("s1", c1.clone())],
        Executor::default(),
    )
    .await?;
    let _s2 = start_server(
        &env,
        &topic,
        "s2",
        vec![who_endpoint("s2", c2.clone())],
        Executor::default(),
    )
    .await?;
    let client = client(&env, &topic).await?;
    let mut answered: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..20 {
        let who: String = client
            .call(&Context::new(), "who", json!({}))
            .await
            .map_err(err)?;
        *answered.entry(who).or_default() += 1;
    }
    let (n1, n2) = (c1.load(Ordering::SeqCst), c2.load(Ordering::SeqCst));
    ensure!(
        n1 + n2 == 20,
        "20 calls ran {} times on the servers (s1 {n1}, s2 {n2})",
        n1 + n2
    );
    ensure!(
        n1 > 0 && n2 > 0,
        "both servers should get calls: s1 {n1}, s2 {n2}"
    );
    ensure!(
        answered.get("s1") == Some(&n1) && answered.get("s2") == Some(&n2),
        "the replies {answered:?} don't match what the servers ran (s1 {n1}, s2 {n2})"
    );
    Ok(())
}

/// On an exchange of its own: servers and calls must meet there.
async fn e2e_rpc_server_directed(env: Env) -> CaseResult {
    let topic = env.unique("e2e-direct");
    let exchange = env.unique("e2e-exchange");
    let (c1, c2) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut servers = Vec::new();
    for (name, count) in [("s1", &c1), ("s2", &c2)] {
        let target = Target::server(&topic, Env::server(name)).with_exchange(&exchange);
        servers.push(
            start_server_on(
                &env,
                target,
                vec![who_endpoint(name, count.clone())],
                Executor::default(),
            )
            .await?,
        );
    }
    let to_s2 = client(&env, &topic)
        .await?
        .prepare()
        .exchange(&exchange)
        .server(Env::server("s2"));
    for _ in 0..10 {
        let who: String = to_s2
            .call(&Context::new(), "who", json!({}))
            .await
            .map_err(err)?;
        ensure!(who == "s2", "a call directed at s2 was answered by {who}");
    }
    for i in 0..5 {
        to_s2
            .cast(&Context::new(), "record", json!({ "i": i }))
            .await
            .map_err(err)?;
    }
    wait_until(
        || format!("s2 ran {} of 15", c2.load(Ordering::SeqCst)),
        Duration::from_secs(10),
        || c2.load(Ordering::SeqCst) >= 15,
    )
    .await?;
    stays("directed messages", Duration::from_millis(200), || {
        c1.load(Ordering::SeqCst) + c2.load(Ordering::SeqCst)
    })
    .await?;
    ensure!(
        c1.load(Ordering::SeqCst) == 0 && c2.load(Ordering::SeqCst) == 15,
        "directed messages went astray: s1 {}, s2 {}",
        c1.load(Ordering::SeqCst),
        c2.load(Ordering::SeqCst)
    );
    Ok(())
}

async fn e2e_rpc_fanout_reaches_every_server(env: Env) -> CaseResult {
    let topic = env.unique("e2e-fanout");
    let counts: Vec<Arc<AtomicUsize>> = (0..3).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let mut servers = Vec::new();
    for (i, c) in counts.iter().enumerate() {
        let name = format!("s{i}");
        servers.push(
            start_server(
                &env,
                &topic,
                &name,
                vec![who_endpoint(&name, c.clone())],
                Executor::default(),
            )
            .await?,
        );
    }
    let fanout = client(&env, &topic).await?.prepare().fanout(true);
    for i in 0..2 {
        fanout
            .cast(&Context::new(), "record", json!({ "i": i }))
            .await
            .map_err(err)?;
    }
    let snapshot = || -> Vec<usize> { counts.iter().map(|c| c.load(Ordering::SeqCst)).collect() };
    wait_until(
        || format!("fanout casts reached {:?} of 2 each", snapshot()),
        Duration::from_secs(10),
        || snapshot().iter().all(|n| *n >= 2),
    )
    .await?;
    stays("fanout casts", Duration::from_millis(200), || {
        snapshot().iter().sum()
    })
    .await?;
    ensure!(
        snapshot() == vec![2, 2, 2],
        "every server should get each fanout cast once: {:?}",
        snapshot()
    );
    Ok(())
}

async fn e2e_rpc_namespaces_and_versions(env: Env) -> CaseResult {
    let topic = env.unique("e2e-versions");
    let endpoint = Endpoint::new()
        .namespace("ns")
        .version("1.2")
        .method("echo", |_ctx: Context, v: serde_json::Value| async move {
            Ok::<_, HandlerError>(v)
        })
        .method("_private", |_ctx: Context, _: ()| async move {
            Ok::<_, HandlerError>("secret")
        });
    let _s = start_server(&env, &topic, "s1", vec![endpoint], Executor::default()).await?;
    let client = client(&env, &topic).await?;
    let ns = client.prepare().namespace("ns");
    let ctx = Context::new();
    for v in ["1.1", "1.2"] {
        let got: serde_json::Value = ns
            .prepare()
            .version(v)
            .call(&ctx, "echo", json!({"v": v}))
            .await
            .map_err(|e| format!("a call asking {v} of an endpoint at 1.2 failed: {e}"))?;
        ensure!(got == json!({"v": v}), "echo at {v} returned {got}");
    }
    for v in ["1.3", "2.0"] {
        let r = ns
            .prepare()
            .version(v)
            .call::<serde_json::Value>(&ctx, "echo", json!({}))
            .await;
        ensure!(
            matches!(&r, Err(Error::UnsupportedVersion { version, namespace })
                if version == v && namespace.as_deref() == Some("ns")),
            "asking {v} of an endpoint at 1.2: expected UnsupportedVersion, got {r:?}"
        );
    }
    let r = ns
        .prepare()
        .version("1.2")
        .call::<serde_json::Value>(&ctx, "nope", json!({}))
        .await;
    ensure!(
        matches!(&r, Err(Error::NoSuchMethod { method, .. }) if method == "nope"),
        "an unknown method on a matching endpoint: expected NoSuchMethod, got {r:?}"
    );
    let r = ns
        .prepare()
        .version("1.2")
        .call::<serde_json::Value>(&ctx, "_private", json!({}))
        .await;
    ensure!(
        matches!(&r, Err(Error::NoSuchMethod { method, .. }) if method == "_private"),
        "a `_private` method (denied by the access policy): expected NoSuchMethod, got {r:?}"
    );
    for other in [client.prepare().namespace("other"), client.prepare()] {
        let r = other
            .version("1.0")
            .call::<serde_json::Value>(&ctx, "echo", json!({}))
            .await;
        ensure!(
            matches!(&r, Err(Error::UnsupportedVersion { .. })),
            "an unknown namespace: expected UnsupportedVersion, got {r:?}"
        );
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct ParseArgs {
    s: String,
}

async fn e2e_rpc_remote_failures(env: Env) -> CaseResult {
    let topic = env.unique("e2e-failures");
    let endpoint = Endpoint::new()
        .method("boom", |_ctx: Context, _: ()| async move {
            Err::<(), _>(HandlerError::with_class("ValueError", "builtins", "boom"))
        })
        .method("parse", |_ctx: Context, a: ParseArgs| async move {
            let n: i64 = a.s.parse()?;
            Ok::<_, HandlerError>(n)
        });
    let _s = start_server(&env, &topic, "s1", vec![endpoint], Executor::default()).await?;
    let client = client(&env, &topic).await?;
    let ctx = Context::new();
    match client.call::<()>(&ctx, "boom", json!({})).await {
        Err(Error::Remote(e)) => ensure!(
            e.class == "ValueError" && e.module == "builtins" && e.message == "boom",
            "the remote failure changed on the way: {e:?}"
        ),
        other => return Err(format!("expected Error::Remote, got {other:?}")),
    }
    let n: i64 = client
        .call(&ctx, "parse", json!({"s": "42"}))
        .await
        .map_err(err)?;
    ensure!(n == 42, "parse returned {n}");
    let mut classes = Vec::new();
    for _ in 0..2 {
        match client.call::<i64>(&ctx, "parse", json!({"s": "x"})).await {
            Err(Error::Remote(e)) => {
                ensure!(
                    e.class == "ParseIntError"
                        && !e.module.is_empty()
                        && !e.module.contains("::")
                        && e.message == "invalid digit found in string",
                    "a std error raised with `?` arrived as {e:?}"
                );
                classes.push((e.class, e.module));
            }
            other => return Err(format!("expected Error::Remote, got {other:?}")),
        }
    }
    ensure!(
        classes[0] == classes[1],
        "the class of a std error is not stable: {classes:?}"
    );
    match client.call::<i64>(&ctx, "parse", json!({"t": 1})).await {
        Err(Error::Remote(e)) => ensure!(
            e.class == "TypeError" && e.module == "builtins",
            "bad arguments arrived as {e:?}"
        ),
        other => {
            return Err(format!(
                "bad arguments: expected a TypeError, got {other:?}"
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Flavor {
    name: String,
    vcpus: u32,
    ram_mb: u64,
    tags: Vec<String>,
    swap: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

async fn e2e_rpc_typed_results(env: Env) -> CaseResult {
    let topic = env.unique("e2e-typed");
    let flavor = Flavor {
        name: "m1.small".into(),
        vcpus: 2,
        ram_mb: 2048,
        tags: vec!["a".into(), "é".into()],
        swap: None,
    };
    let served = flavor.clone();
    let endpoint = Endpoint::new()
        .method("add", |_ctx: Context, a: Add| async move {
            Ok::<_, HandlerError>(a.a + a.b)
        })
        .method("flavor", move |_ctx: Context, _: ()| {
            let f = served.clone();
            async move { Ok::<_, HandlerError>(f) }
        })
        .method("nothing", |_ctx: Context, _: ()| async move {
            Ok::<Option<String>, HandlerError>(None)
        });
    let _s = start_server(&env, &topic, "s1", vec![endpoint], Executor::default()).await?;
    let client = client(&env, &topic).await?;
    let ctx = Context::new();
    let sum: i64 = client
        .call(&ctx, "add", json!({"a": 40, "b": 2}))
        .await
        .map_err(err)?;
    ensure!(sum == 42, "add returned {sum}");
    let big: i64 = client
        .call(&ctx, "add", json!({"a": i64::MAX - 1, "b": 1}))
        .await
        .map_err(err)?;
    ensure!(big == i64::MAX, "add lost precision: {big}");
    let got: Flavor = client.call(&ctx, "flavor", ()).await.map_err(err)?;
    ensure!(got == flavor, "the struct changed on the way: {got:?}");
    let none: Option<String> = client.call(&ctx, "nothing", ()).await.map_err(err)?;
    ensure!(none.is_none(), "None came back as {none:?}");
    let r = client.call::<i64>(&ctx, "flavor", ()).await;
    ensure!(
        matches!(r, Err(Error::InvalidArgument(_))),
        "a result of the wrong type: expected InvalidArgument, got {r:?}"
    );
    Ok(())
}

fn sleep_endpoint() -> Endpoint {
    Endpoint::new().method("sleep", |_ctx: Context, a: Sleep| async move {
        tokio::time::sleep(Duration::from_millis(a.ms)).await;
        Ok::<_, HandlerError>("woke")
    })
}

async fn e2e_rpc_call_times_out(env: Env) -> CaseResult {
    let topic = env.unique("e2e-timeout");
    let _s = start_server(
        &env,
        &topic,
        "s1",
        vec![sleep_endpoint()],
        Executor::default(),
    )
    .await?;
    let client = client(&env, &topic)
        .await?
        .timeout(Duration::from_millis(300));
    let start = Instant::now();
    let r = client
        .call::<String>(&Context::new(), "sleep", json!({"ms": 3000}))
        .await;
    let took = start.elapsed();
    ensure!(
        matches!(r, Err(Error::Timeout { .. })),
        "a 3 s handler with a 300 ms call timeout: expected Timeout, got {r:?}"
    );
    ensure!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "the 300 ms timeout fired after {took:?}"
    );
    Ok(())
}

async fn e2e_rpc_version_cap(env: Env) -> CaseResult {
    let topic = env.unique("e2e-cap");
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let endpoint = Endpoint::new().version("1.2").method(
        "echo",
        move |_ctx: Context, _: serde_json::Value| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                Ok::<_, HandlerError>("ok")
            }
        },
    );
    // one at a time, in order: the call below proves the refused cast never arrived
    let _s = start_server(&env, &topic, "s1", vec![endpoint], Executor::Sequential).await?;
    let capped = client(&env, &topic).await?.version_cap("1.1");
    for (v, ok) in [("1.0", true), ("1.1", true), ("1.2", false), ("2.0", false)] {
        ensure!(
            capped.can_send_version(Some(v)) == ok,
            "can_send_version({v}) under cap 1.1 should be {ok}"
        );
    }
    ensure!(
        !capped.prepare().version("1.2").can_send_version(None),
        "can_send_version(None) should check the prepared version 1.2"
    );
    // oslo compares a third number between equal minors
    let revised = client(&env, &topic).await?.version_cap("1.1.5");
    for (v, ok) in [
        ("1.1.3", true),
        ("1.1.5", true),
        ("1.1.6", false),
        ("1.0.9", true),
    ] {
        ensure!(
            revised.can_send_version(Some(v)) == ok,
            "can_send_version({v}) under cap 1.1.5 should be {ok}"
        );
    }
    let ctx = Context::new();
    // as oslo: under a cap, a message must carry a version
    let r = capped.call::<String>(&ctx, "echo", json!({})).await;
    ensure!(
        matches!(&r, Err(Error::VersionCapExceeded { .. })),
        "an unversioned call under cap 1.1: expected VersionCapExceeded, got {r:?}"
    );
    // the endpoint (1.2) serves a request for 1.1.5: a revision counts only at equal minors
    let ok: String = revised
        .prepare()
        .version("1.1.5")
        .call(&ctx, "echo", json!({}))
        .await
        .map_err(err)?;
    ensure!(ok == "ok", "echo at 1.1.5 returned {ok}");
    let r = capped
        .prepare()
        .version("1.2")
        .call::<String>(&ctx, "echo", json!({}))
        .await;
    ensure!(
        matches!(&r, Err(Error::VersionCapExceeded { version, cap }) if version == "1.2" && cap == "1.1"),
        "a call at 1.2 under cap 1.1: expected VersionCapExceeded, got {r:?}"
    );
    let r = capped
        .prepare()
        .version("1.2")
        .cast(&ctx, "echo", json!({}))
        .await;
    ensure!(
        matches!(r, Err(Error::VersionCapExceeded { .. })),
        "a cast at 1.2 under cap 1.1: expected VersionCapExceeded, got {r:?}"
    );
    let ok: String = capped
        .prepare()
        .version("1.1")
        .call(&ctx, "echo", json!({}))
        .await
        .map_err(err)?;
    ensure!(ok == "ok", "echo returned {ok}");
    ensure!(
        count.load(Ordering::SeqCst) == 2,
        "the refused messages reached the server: it ran {} times (2 calls were allowed)",
        count.load(Ordering::SeqCst)
    );
    Ok(())
}

async fn e2e_rpc_heartbeats_keep_a_long_call_alive(env: Env) -> CaseResult {
    let topic = env.unique("e2e-hb");
    let _s = start_server(
        &env,
        &topic,
        "s1",
        vec![sleep_endpoint()],
        Executor::default(),
    )
    .await?;
    let client = client(&env, &topic)
        .await?
        .timeout(Duration::from_secs(30))
        .call_monitor_timeout(Duration::from_secs(2));
    let start = Instant::now();
    let r: String = client
        .call(&Context::new(), "sleep", json!({"ms": 5000}))
        .await
        .map_err(|e| format!("a 5 s call with timeout 30 s and cmt 2 s failed: {e}"))?;
    let took = start.elapsed();
    ensure!(r == "woke", "the call returned {r}");
    ensure!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(8),
        "the 5 s call took {took:?}"
    );
    Ok(())
}

/// The server runs in its own "process": a thread with its own runtime and its own
/// connection. Killing it drops that runtime mid-call: the handler, its heartbeats and the
/// connection all vanish, nothing replies.
async fn e2e_rpc_killed_server_fails_by_call_monitor(env: Env) -> CaseResult {
    let topic = env.unique("e2e-kill");
    let started = Arc::new(tokio::sync::Notify::new());
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = {
        let env = env.clone();
        let topic = topic.clone();
        let started = started.clone();
        std::thread::Builder::new()
            .name("e2e-killed-server".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let server = rt.block_on(async move {
                    let endpoint =
                        Endpoint::new().method("sleep", move |_ctx: Context, a: Sleep| {
                            let started = started.clone();
                            async move {
                                started.notify_one();
                                tokio::time::sleep(Duration::from_millis(a.ms)).await;
                                Ok::<_, HandlerError>("woke")
                            }
                        });
                    let server = async {
                        let transport = env.detached_transport().await.map_err(err)?;
                        RpcServer::builder(transport, Target::server(&topic, Env::server("doomed")))
                            .endpoint(endpoint)
                            .start()
                            .await
                            .map_err(err)
                    }
                    .await;
                    match server {
                        Ok(server) => {
                            let _ = ready_tx.send(Ok(()));
                            let _ = kill_rx.await;
                            Some(server)
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            None
                        }
                    }
                });
                // no stop, no wait: the runtime dies first, with the server's tasks in it
                drop(rt);
                drop(server);
            })
            .map_err(|e| format!("spawning the server thread: {e}"))?
    };
    within(
        "the doomed server's start",
        Duration::from_secs(10),
        ready_rx,
    )
    .await?
    .map_err(|_| "the server thread ended before it started".to_string())??;
    let client = client(&env, &topic)
        .await?
        .timeout(Duration::from_secs(30))
        .call_monitor_timeout(Duration::from_secs(2));
    let start = Instant::now();
    let call = tokio::spawn(async move {
        client
            .call::<String>(&Context::new(), "sleep", json!({"ms": 20_000}))
            .await
    });
    within(
        "the 20 s handler's start",
        Duration::from_secs(10),
        started.notified(),
    )
    .await?;
    // longer than the call-monitor timeout: only heartbeats keep the call alive until now
    tokio::time::sleep(Duration::from_millis(2500)).await;
    if call.is_finished() {
        let r = call.await;
        return Err(format!(
            "the call ended before the server was killed (heartbeats should keep it alive): {r:?}"
        ));
    }
    let _ = kill_tx.send(());
    let killed = Instant::now();
    let joined = tokio::task::spawn_blocking(move || thread.join());
    within("killing the server", Duration::from_secs(10), joined)
        .await?
        .map_err(|e| format!("joining the server thread: {e}"))?
        .map_err(|_| "the server thread panicked".to_string())?;
    let r = within("the call to a killed server", Duration::from_secs(10), call)
        .await?
        .map_err(|e| format!("the calling task failed: {e}"))?;
    let after_kill = killed.elapsed();
    ensure!(
        matches!(r, Err(Error::Timeout { .. })),
        "the call to a killed server: expected Timeout, got {r:?}"
    );
    ensure!(
        after_kill < Duration::from_secs(5),
        "the call failed {after_kill:?} after the kill, not about the 2 s call-monitor timeout \
         (call timeout 30 s; {:?} in all)",
        start.elapsed()
    );
    Ok(())
}

async fn e2e_rpc_shutdown_finishes_in_flight_calls(env: Env) -> CaseResult {
    let topic = env.unique("e2e-shutdown");
    let started = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let (s, f) = (started.clone(), finished.clone());
    let endpoint = Endpoint::new().method("slow", move |_ctx: Context, a: Index| {
        let (s, f) = (s.clone(), f.clone());
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            f.fetch_add(1, Ordering::SeqCst);
            Ok::<_, HandlerError>(a.i)
        }
    });
    let server = start_server(&env, &topic, "s1", vec![endpoint], Executor::default()).await?;
    let client = client(&env, &topic).await?;
    let calls: Vec<_> = (0..5u64)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .call::<u64>(&Context::new(), "slow", json!({ "i": i }))
                    .await
            })
        })
        .collect();
    wait_until(
        || format!("{} of 5 handlers started", started.load(Ordering::SeqCst)),
        Duration::from_secs(10),
        || started.load(Ordering::SeqCst) == 5,
    )
    .await?;
    ensure!(
        finished.load(Ordering::SeqCst) < 5,
        "the handlers finished before the shutdown began; the case proves nothing"
    );
    server
        .shutdown(Duration::from_secs(10))
        .await
        .map_err(|e| format!("shutdown with in-flight calls: {e}"))?;
    ensure!(
        finished.load(Ordering::SeqCst) == 5,
        "shutdown returned with {} of 5 handlers done",
        finished.load(Ordering::SeqCst)
    );
    ensure!(
        server.state() == ServerState::Idle,
        "after shutdown the server is {:?}",
        server.state()
    );
    for (i, call) in calls.into_iter().enumerate() {
        let r = within("an in-flight call", Duration::from_secs(10), call)
            .await?
            .map_err(|e| format!("the calling task failed: {e}"))?;
        ensure!(
            matches!(r, Ok(v) if v == i as u64),
            "in-flight call {i} got {r:?}"
        );
    }
    let after = client
        .prepare()
        .timeout(Duration::from_secs(1))
        .call::<u64>(&Context::new(), "slow", json!({"i": 9}))
        .await;
    ensure!(
        matches!(
            after,
            Err(Error::NoResponders { .. } | Error::Timeout { .. })
        ),
        "a call after shutdown: expected NoResponders or Timeout, got {after:?}"
    );
    Ok(())
}

#[derive(Debug, Deserialize)]
struct PanicArgs {
    really: bool,
}

async fn e2e_rpc_panic_is_a_remote_failure(env: Env) -> CaseResult {
    let topic = env.unique("e2e-panic");
    let endpoint =
        Endpoint::new().method("maybe_panic", |_ctx: Context, a: PanicArgs| async move {
            if a.really {
                panic!("the handler exploded on purpose");
            }
            Ok::<_, HandlerError>("calm".to_string())
        });
    let _s = start_server(&env, &topic, "s1", vec![endpoint], Executor::default()).await?;
    let client = client(&env, &topic).await?;
    let ctx = Context::new();
    for _ in 0..2 {
        match client
            .call::<String>(&ctx, "maybe_panic", json!({"really": true}))
            .await
        {
            Err(Error::Remote(e)) => ensure!(
                e.class == "Panic" && e.message.contains("exploded on purpose"),
                "a panic arrived as {e:?}"
            ),
            other => {
                return Err(format!(
                    "a panicking handler: expected Remote, got {other:?}"
                ));
            }
        }
        let calm: String = client
            .call(&ctx, "maybe_panic", json!({"really": false}))
            .await
            .map_err(|e| format!("the server stopped serving after a panic: {e}"))?;
        ensure!(calm == "calm", "got {calm}");
    }
    Ok(())
}

async fn e2e_rpc_start_after_stop(env: Env) -> CaseResult {
    let topic = env.unique("e2e-restart");
    let count = Arc::new(AtomicUsize::new(0));
    let server = start_server(
        &env,
        &topic,
        "s1",
        vec![who_endpoint("s1", count.clone())],
        Executor::default(),
    )
    .await?;
    let client = client(&env, &topic).await?;
    let ctx = Context::new();
    let who: String = client.call(&ctx, "who", ()).await.map_err(err)?;
    ensure!(who == "s1", "got {who}");
    server.stop();
    within("wait after stop", Duration::from_secs(5), server.wait()).await?;
    ensure!(
        server.state() == ServerState::Idle,
        "a stopped and waited server is {:?}",
        server.state()
    );
    within("start after stop", Duration::from_secs(5), server.start())
        .await?
        .map_err(|e| format!("start after stop: {e}"))?;
    ensure!(
        server.state() == ServerState::Running,
        "a restarted server is {:?}",
        server.state()
    );
    let who: String = client
        .call(&ctx, "who", ())
        .await
        .map_err(|e| format!("a call to the restarted server: {e}"))?;
    ensure!(who == "s1", "got {who}");
    server.stop();
    within(
        "wait after the second stop",
        Duration::from_secs(5),
        server.wait(),
    )
    .await?;
    let r = client
        .prepare()
        .timeout(Duration::from_secs(1))
        .call::<String>(&ctx, "who", ())
        .await;
    ensure!(
        is_gone(&r),
        "a call to a stopped server: expected NoResponders or Timeout, got {r:?}"
    );
    Ok(())
}

/// A `record` method that logs `i`, tracks how many run at once and sleeps `ms`.
fn tracking_endpoint(
    log: Log<u64>,
    current: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
    ms: u64,
) -> Endpoint {
    Endpoint::new().method("record", move |_ctx: Context, a: Index| {
        let (log, current, max) = (log.clone(), current.clone(), max.clone());
        async move {
            enter(&current, &max);
            log.push(a.i);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            current.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, HandlerError>(())
        }
    })
}

async fn e2e_rpc_sequential_executor_keeps_order(env: Env) -> CaseResult {
    let topic = env.unique("e2e-sequential");
    let log = Log::default();
    let (current, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let _s = start_server(
        &env,
        &topic,
        "s1",
        vec![tracking_endpoint(
            log.clone(),
            current.clone(),
            max.clone(),
            20,
        )],
        Executor::Sequential,
    )
    .await?;
    let client = client(&env, &topic).await?;
    for i in 0..10u64 {
        client
            .cast(&Context::new(), "record", json!({ "i": i }))
            .await
            .map_err(err)?;
    }
    wait_until(
        || format!("{} of 10 casts handled", log.len()),
        Duration::from_secs(10),
        || log.len() >= 10 && current.load(Ordering::SeqCst) == 0,
    )
    .await?;
    let order = log.snapshot();
    ensure!(
        order == (0..10).collect::<Vec<u64>>(),
        "Sequential handled the casts out of order: {order:?}"
    );
    let max = max.load(Ordering::SeqCst);
    ensure!(max == 1, "Sequential ran {max} handlers at once");
    Ok(())
}

async fn e2e_rpc_pool_executor_runs_n_at_once(env: Env) -> CaseResult {
    let topic = env.unique("e2e-pool");
    let log = Log::default();
    let (current, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let _s = start_server(
        &env,
        &topic,
        "s1",
        vec![tracking_endpoint(
            log.clone(),
            current.clone(),
            max.clone(),
            200,
        )],
        Executor::Pool(3),
    )
    .await?;
    let client = client(&env, &topic).await?;
    for i in 0..9u64 {
        client
            .cast(&Context::new(), "record", json!({ "i": i }))
            .await
            .map_err(err)?;
    }
    wait_until(
        || format!("{} of 9 casts handled", log.len()),
        Duration::from_secs(10),
        || log.len() >= 9 && current.load(Ordering::SeqCst) == 0,
    )
    .await?;
    let max = max.load(Ordering::SeqCst);
    ensure!(
        max == 3,
        "Pool(3) with 9 slow casts waiting ran at most {max} handlers at once, not 3"
    );
    Ok(())
}

/// A handler that works without awaiting (here: a blocking sleep standing for CPU work) still
/// runs beside the others under `Pool`: the server doesn't keep it on its consuming task.
async fn e2e_rpc_pool_executor_runs_blocking_handlers_in_parallel(env: Env) -> CaseResult {
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    if workers < 2 {
        // one runtime thread runs one non-awaiting handler at a time, whatever the executor
        tracing::warn!(
            workers,
            "not checked: run the conformance suite on a multi-thread runtime to check that Pool runs non-awaiting handlers in parallel"
        );
        return Ok(());
    }
    let topic = env.unique("e2e-pool-blocking");
    let log = Log::default();
    let (current, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let endpoint = {
        let (log, current, max) = (log.clone(), current.clone(), max.clone());
        Endpoint::new().method("work", move |_ctx: Context, a: Index| {
            let (log, current, max) = (log.clone(), current.clone(), max.clone());
            async move {
                enter(&current, &max);
                std::thread::sleep(Duration::from_millis(100));
                log.push(a.i);
                current.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, HandlerError>(())
            }
        })
    };
    let _s = start_server(&env, &topic, "s1", vec![endpoint], Executor::Pool(4)).await?;
    let client = client(&env, &topic).await?;
    for i in 0..8u64 {
        client
            .cast(&Context::new(), "work", json!({ "i": i }))
            .await
            .map_err(err)?;
    }
    wait_until(
        || format!("{} of 8 casts handled", log.len()),
        Duration::from_secs(20),
        || log.len() >= 8 && current.load(Ordering::SeqCst) == 0,
    )
    .await?;
    let max = max.load(Ordering::SeqCst);
    ensure!(
        max >= 2,
        "Pool(4) on {workers} runtime threads ran non-awaiting handlers one at a time"
    );
    Ok(())
}
