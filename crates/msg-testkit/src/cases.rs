//! The driver-contract cases.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use msg_core::codec::RpcRequest;
use msg_core::{
    Capability, Context, Driver, EnvelopeVersion, Error, IncomingNotification, ListenOptions,
    Notification, NotificationListener, Priority, Retry, RpcListener, SendOptions, Target,
};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::env::{Env, next_within, nothing_within};

pub(crate) type CaseResult = std::result::Result<(), String>;

/// A case: its name, what it needs, and how it runs.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) needs: &'static [Capability],
    pub(crate) run: fn(Env) -> BoxFuture<'static, CaseResult>,
}

pub(crate) fn all() -> Vec<Case> {
    let mut cases = vec![
        case!(rpc_call_gets_its_reply, [Replies]),
        case!(rpc_concurrent_calls_are_correlated, [Replies]),
        case!(rpc_topic_is_load_balanced, [LoadBalancing]),
        case!(rpc_server_directed, [ServerDirected]),
        case!(rpc_fanout_reaches_every_server, [Fanout]),
        case!(rpc_remote_failure_travels, [Replies]),
        case!(rpc_call_times_out, [CallTimeout]),
        case!(rpc_heartbeats_keep_a_long_call_alive, [Heartbeats]),
        case!(rpc_silent_server_fails_by_call_monitor, [Heartbeats]),
        case!(rpc_no_responders, [NoResponders]),
        case!(rpc_undeliverable_at_least_once, [Undeliverable]),
        case!(rpc_cast_kept_until_a_server_listens, [DurableCasts]),
        case!(rpc_stop_ends_the_listener, []),
        case!(notify_store_and_forward, [Notifications, StoreAndForward]),
        case!(notify_only_subscribed_priorities, [Notifications]),
        case!(
            notify_default_group_shares_the_load,
            [Notifications, LoadBalancing]
        ),
        case!(notify_pools_each_get_a_copy, [Notifications, Pools]),
        case!(notify_requeue_redelivers, [Notifications, Requeue]),
        case!(notify_stop_loses_nothing, [Notifications]),
        case!(notify_prefetch_bounds_unacked, [Notifications]),
        case!(notify_envelope_versions, [Notifications]),
        case!(exchanges_are_isolated, [Notifications]),
    ];
    cases.extend(crate::rpc_e2e::cases());
    cases.extend(crate::notify_e2e::cases());
    cases.extend(crate::batch_poison::cases());
    cases
}

fn request(method: &str, args: Value) -> RpcRequest {
    let args = match args {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    RpcRequest::new(method, args)
}

fn call_opts(timeout: Duration) -> SendOptions {
    SendOptions {
        timeout: Some(timeout),
        ..SendOptions::default()
    }
}

fn err(e: Error) -> String {
    e.to_string()
}

/// What a test server saw: (server tag, method, args) in arrival order.
type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;

/// Serves a listener: acks each request, records it, and replies to calls with
/// `{"server": tag, "args": args}`; method `fail` replies with a ValueError; method `sleep`
/// heartbeats every `hb` (if any) for `args.ms` then replies; method `silent` never replies.
fn serve(mut listener: RpcListener, tag: &str, seen: Seen, hb: Option<Duration>) -> JoinHandle<()> {
    let tag = tag.to_string();
    tokio::spawn(async move {
        while let Some(req) = listener.next().await {
            let _ = req.ack().await;
            let method = req.request.method.clone();
            let args = req.request.args.to_value().unwrap_or_default();
            seen.lock().unwrap_or_else(|p| p.into_inner()).push((
                tag.clone(),
                method.clone(),
                args.clone(),
            ));
            let handle = req.reply_handle();
            let tag = tag.clone();
            tokio::spawn(async move {
                match method.as_str() {
                    "fail" => {
                        let f = msg_core::Failure::new("ValueError", "builtins", "boom");
                        let _ = handle.reply(Err(f)).await;
                    }
                    "silent" => {}
                    "sleep" => {
                        let ms = args["ms"].as_u64().unwrap_or(0);
                        let end = Instant::now() + Duration::from_millis(ms);
                        while Instant::now() < end {
                            let step = hb.unwrap_or(Duration::from_millis(ms));
                            tokio::time::sleep(step.min(end - Instant::now())).await;
                            if hb.is_some() {
                                let _ = handle.heartbeat().await;
                            }
                        }
                        let _ = handle.reply(Ok(json!({"server": tag, "args": args}))).await;
                    }
                    _ => {
                        let _ = handle.reply(Ok(json!({"server": tag, "args": args}))).await;
                    }
                }
            });
        }
    })
}

async fn server(
    env: &Env,
    topic: &str,
    name: &str,
    seen: &Seen,
    hb: Option<Duration>,
) -> std::result::Result<
    (
        Arc<dyn Driver>,
        JoinHandle<()>,
        Arc<dyn msg_core::StopListening>,
    ),
    String,
> {
    let d = env.driver().await.map_err(err)?;
    let listener = d
        .listen(
            &Target::server(topic, Env::server(name)),
            &ListenOptions::default(),
        )
        .await
        .map_err(err)?;
    let stop = listener.stop_handle();
    let task = serve(listener, name, seen.clone(), hb);
    Ok((d, task, stop))
}

/// How long a case watches for what must not arrive (a duplicate, a message for a stopped
/// server): nothing signals an absence, so this stays a fixed window.
const QUIET: Duration = Duration::from_millis(300);

async fn wait_for_count(seen: &Seen, n: usize, within: Duration) -> CaseResult {
    let start = Instant::now();
    loop {
        let len = seen.lock().unwrap_or_else(|p| p.into_inner()).len();
        if len >= n {
            // anything beyond n arriving shortly after is a duplicate
            tokio::time::sleep(Duration::from_millis(100)).await;
            let len = seen.lock().unwrap_or_else(|p| p.into_inner()).len();
            ensure!(len == n, "expected {n} deliveries, got {len}");
            return Ok(());
        }
        ensure!(
            start.elapsed() < within,
            "only {len} of {n} deliveries within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn per_server(seen: &Seen) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (tag, _, _) in seen.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        *m.entry(tag.clone()).or_insert(0) += 1;
    }
    m
}

async fn rpc_call_gets_its_reply(env: Env) -> CaseResult {
    let topic = env.unique("call");
    let seen = Seen::default();
    let (_s, task, _) = server(&env, &topic, "s1", &seen, None).await?;
    let client = env.driver().await.map_err(err)?;
    let ctx = Context::new().with("user", "alice");
    let v = client
        .call(
            &Target::topic(&topic),
            &ctx,
            &request("echo", json!({"value": {"k": "v", "n": 1}})),
            &call_opts(Duration::from_secs(10)),
        )
        .await
        .map_err(err)?;
    ensure!(
        v == json!({"server": "s1", "args": {"value": {"k": "v", "n": 1}}}),
        "unexpected reply {v}"
    );
    task.abort();
    Ok(())
}

async fn rpc_concurrent_calls_are_correlated(env: Env) -> CaseResult {
    let topic = env.unique("corr");
    let seen = Seen::default();
    let (_s, task, _) = server(&env, &topic, "s1", &seen, None).await?;
    let client = env.driver().await.map_err(err)?;
    let target = Target::topic(&topic);
    let calls = (0..50).map(|i| {
        let client = client.clone();
        let target = target.clone();
        async move {
            let v = client
                .call(
                    &target,
                    &Context::new(),
                    &request("echo", json!({"i": i})),
                    &call_opts(Duration::from_secs(10)),
                )
                .await
                .map_err(err)?;
            ensure!(v["args"]["i"] == json!(i), "call {i} got the reply {v}");
            Ok::<_, String>(())
        }
    });
    for r in futures::future::join_all(calls).await {
        r?;
    }
    task.abort();
    Ok(())
}

async fn rpc_topic_is_load_balanced(env: Env) -> CaseResult {
    let topic = env.unique("lb");
    let seen = Seen::default();
    let (_a, ta, _) = server(&env, &topic, "s1", &seen, None).await?;
    let (_b, tb, _) = server(&env, &topic, "s2", &seen, None).await?;
    let client = env.driver().await.map_err(err)?;
    for i in 0..20 {
        client
            .cast(
                &Target::topic(&topic),
                &Context::new(),
                &request("record", json!({"i": i})),
                &SendOptions::default(),
            )
            .await
            .map_err(err)?;
    }
    wait_for_count(&seen, 20, Duration::from_secs(10)).await?;
    let counts = per_server(&seen);
    ensure!(
        counts.len() == 2 && counts.values().all(|c| *c >= 3),
        "the two servers didn't share the load: {counts:?}"
    );
    let distinct: HashSet<String> = seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(_, _, a)| a.to_string())
        .collect();
    ensure!(distinct.len() == 20, "a cast was delivered twice");
    ta.abort();
    tb.abort();
    Ok(())
}

async fn rpc_server_directed(env: Env) -> CaseResult {
    let topic = env.unique("direct");
    let seen = Seen::default();
    let (_a, ta, _) = server(&env, &topic, "s1", &seen, None).await?;
    let (_b, tb, _) = server(&env, &topic, "s2", &seen, None).await?;
    let client = env.driver().await.map_err(err)?;
    for i in 0..6 {
        client
            .cast(
                &Target::server(&topic, Env::server("s2")),
                &Context::new(),
                &request("record", json!({"i": i})),
                &SendOptions::default(),
            )
            .await
            .map_err(err)?;
    }
    let v = client
        .call(
            &Target::server(&topic, Env::server("s1")),
            &Context::new(),
            &request("echo", json!({})),
            &call_opts(Duration::from_secs(10)),
        )
        .await
        .map_err(err)?;
    ensure!(
        v["server"] == json!("s1"),
        "a call to s1 was answered by {v}"
    );
    wait_for_count(&seen, 7, Duration::from_secs(10)).await?;
    let counts = per_server(&seen);
    ensure!(
        counts.get("s2") == Some(&6) && counts.get("s1") == Some(&1),
        "server-directed casts went astray: {counts:?}"
    );
    ta.abort();
    tb.abort();
    Ok(())
}

async fn rpc_fanout_reaches_every_server(env: Env) -> CaseResult {
    let topic = env.unique("fan");
    let seen = Seen::default();
    let mut keep = Vec::new();
    for s in ["s1", "s2", "s3"] {
        keep.push(server(&env, &topic, s, &seen, None).await?);
    }
    let client = env.driver().await.map_err(err)?;
    for i in 0..2 {
        client
            .cast(
                &Target::topic(&topic).with_fanout(true),
                &Context::new(),
                &request("record", json!({"i": i})),
                &SendOptions::default(),
            )
            .await
            .map_err(err)?;
    }
    wait_for_count(&seen, 6, Duration::from_secs(10)).await?;
    let counts = per_server(&seen);
    ensure!(
        counts.len() == 3 && counts.values().all(|c| *c == 2),
        "fanout didn't reach every server exactly once per cast: {counts:?}"
    );
    for (_, t, _) in keep {
        t.abort();
    }
    Ok(())
}

async fn rpc_remote_failure_travels(env: Env) -> CaseResult {
    let topic = env.unique("fail");
    let seen = Seen::default();
    let (_s, task, _) = server(&env, &topic, "s1", &seen, None).await?;
    let client = env.driver().await.map_err(err)?;
    let r = client
        .call(
            &Target::topic(&topic),
            &Context::new(),
            &request("fail", json!({})),
            &call_opts(Duration::from_secs(10)),
        )
        .await;
    match r {
        Err(Error::Remote(e)) => ensure!(
            e.class == "ValueError" && e.module == "builtins" && e.message == "boom",
            "unexpected remote error {e:?}"
        ),
        other => return Err(format!("expected a remote error, got {other:?}")),
    }
    task.abort();
    Ok(())
}

async fn rpc_call_times_out(env: Env) -> CaseResult {
    let topic = env.unique("timeout");
    let seen = Seen::default();
    let (_s, task, _) = server(&env, &topic, "s1", &seen, None).await?;
    let client = env.driver().await.map_err(err)?;
    let start = Instant::now();
    let r = client
        .call(
            &Target::topic(&topic),
            &Context::new(),
            &request("silent", json!({})),
            &call_opts(Duration::from_millis(500)),
        )
        .await;
    let took = start.elapsed();
    ensure!(
        matches!(r, Err(Error::Timeout { .. })),
        "expected a timeout, got {r:?}"
    );
    ensure!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "the timeout fired after {took:?}, not about 500ms"
    );
    task.abort();
    Ok(())
}

async fn rpc_heartbeats_keep_a_long_call_alive(env: Env) -> CaseResult {
    let topic = env.unique("hb");
    let seen = Seen::default();
    let (_s, task, _) = server(&env, &topic, "s1", &seen, Some(Duration::from_millis(150))).await?;
    let client = env.driver().await.map_err(err)?;
    let opts = SendOptions {
        timeout: Some(Duration::from_secs(10)),
        call_monitor_timeout: Some(Duration::from_millis(400)),
        ..SendOptions::default()
    };
    let v = client
        .call(
            &Target::topic(&topic),
            &Context::new(),
            &request("sleep", json!({"ms": 1500})),
            &opts,
        )
        .await
        .map_err(err)?;
    ensure!(v["server"] == json!("s1"), "unexpected reply {v}");
    task.abort();
    Ok(())
}

async fn rpc_silent_server_fails_by_call_monitor(env: Env) -> CaseResult {
    let topic = env.unique("cmt");
    let seen = Seen::default();
    let (_s, task, _) = server(&env, &topic, "s1", &seen, None).await?;
    let client = env.driver().await.map_err(err)?;
    let opts = SendOptions {
        timeout: Some(Duration::from_secs(20)),
        call_monitor_timeout: Some(Duration::from_millis(500)),
        ..SendOptions::default()
    };
    let start = Instant::now();
    let r = client
        .call(
            &Target::topic(&topic),
            &Context::new(),
            &request("silent", json!({})),
            &opts,
        )
        .await;
    let took = start.elapsed();
    ensure!(
        matches!(r, Err(Error::Timeout { .. })),
        "expected a timeout, got {r:?}"
    );
    ensure!(
        took < Duration::from_secs(3),
        "the call-monitor should end the call after about 500ms, it took {took:?}"
    );
    task.abort();
    Ok(())
}

async fn rpc_no_responders(env: Env) -> CaseResult {
    let topic = env.unique("nobody");
    let client = env.driver().await.map_err(err)?;
    let start = Instant::now();
    let r = client
        .call(
            &Target::topic(&topic),
            &Context::new(),
            &request("echo", json!({})),
            &call_opts(Duration::from_secs(20)),
        )
        .await;
    ensure!(
        matches!(r, Err(Error::NoResponders { .. })),
        "expected NoResponders, got {r:?}"
    );
    ensure!(
        start.elapsed() < Duration::from_secs(5),
        "NoResponders took {:?}",
        start.elapsed()
    );
    Ok(())
}

async fn rpc_undeliverable_at_least_once(env: Env) -> CaseResult {
    let topic = env.unique("undeliverable");
    let client = env.driver().await.map_err(err)?;
    let opts = SendOptions {
        at_least_once: true,
        ..SendOptions::default()
    };
    let r = client
        .cast(
            &Target::topic(&topic),
            &Context::new(),
            &request("echo", json!({})),
            &opts,
        )
        .await;
    ensure!(
        matches!(r, Err(Error::Undeliverable { .. })),
        "expected Undeliverable, got {r:?}"
    );
    Ok(())
}

async fn rpc_cast_kept_until_a_server_listens(env: Env) -> CaseResult {
    let topic = env.unique("durable");
    let seen = Seen::default();
    let (_s, task, stop) = server(&env, &topic, "s1", &seen, None).await?;
    stop.stop();
    let _ = task.await;
    let client = env.driver().await.map_err(err)?;
    client
        .cast(
            &Target::topic(&topic),
            &Context::new(),
            &request("record", json!({"k": 1})),
            &SendOptions::default(),
        )
        .await
        .map_err(err)?;
    tokio::time::sleep(QUIET).await;
    ensure!(
        seen.lock().unwrap_or_else(|p| p.into_inner()).is_empty(),
        "a stopped server still received"
    );
    let (_s2, task2, _) = server(&env, &topic, "s1", &seen, None).await?;
    wait_for_count(&seen, 1, Duration::from_secs(10)).await?;
    task2.abort();
    Ok(())
}

async fn rpc_stop_ends_the_listener(env: Env) -> CaseResult {
    let topic = env.unique("stop");
    let d = env.driver().await.map_err(err)?;
    let mut listener = d
        .listen(
            &Target::server(&topic, Env::server("s1")),
            &ListenOptions::default(),
        )
        .await
        .map_err(err)?;
    listener.stop();
    match tokio::time::timeout(Duration::from_secs(5), listener.next()).await {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err("a stopped listener yielded a message".into()),
        Err(_) => Err("a stopped listener's stream didn't end within 5 s".into()),
    }
}

async fn notify(
    d: &Arc<dyn Driver>,
    target: &Target,
    priority: Priority,
    event: &str,
    payload: Value,
) -> CaseResult {
    let n = Notification::new("testkit.host", event, priority, payload);
    d.send_notification(
        target,
        &Context::new().with("request_id", "req-1"),
        &n,
        EnvelopeVersion::V2,
        Retry::Attempts(2),
    )
    .await
    .map_err(err)
}

async fn listen(
    env: &Env,
    subs: &[(Target, Priority)],
    pool: Option<&str>,
    prefetch: u32,
) -> std::result::Result<(Arc<dyn Driver>, NotificationListener), String> {
    let d = env.driver().await.map_err(err)?;
    let l = d
        .listen_for_notifications(subs, pool, &ListenOptions { prefetch })
        .await
        .map_err(err)?;
    Ok((d, l))
}

fn n_index(n: &IncomingNotification) -> i64 {
    n.notification
        .payload
        .get("i")
        .and_then(|v| v.as_i64())
        .unwrap_or(-1)
}

async fn notify_store_and_forward(env: Env) -> CaseResult {
    let topic = env.unique("saf");
    let target = Target::topic(&topic);
    let sender = env.driver().await.map_err(err)?;
    for i in 0..5 {
        notify(&sender, &target, Priority::Info, "saf.ev", json!({"i": i})).await?;
    }
    let (_d, mut l) = listen(&env, &[(target.clone(), Priority::Info)], None, 0).await?;
    for i in 0..5 {
        let n = next_within(&mut l, Duration::from_secs(10)).await?;
        ensure!(
            n_index(&n) == i,
            "expected notification {i}, got {}",
            n_index(&n)
        );
        ensure!(
            n.context.request_id() == Some("req-1"),
            "the context didn't travel: {:?}",
            n.context
        );
        ensure!(
            n.notification.publisher_id == "testkit.host" && n.notification.event_type == "saf.ev",
            "fields didn't travel: {:?}",
            n.notification
        );
        n.ack().await.map_err(err)?;
    }
    nothing_within(&mut l, QUIET).await
}

async fn notify_only_subscribed_priorities(env: Env) -> CaseResult {
    let topic = env.unique("prio");
    let target = Target::topic(&topic);
    let (_d, mut l) = listen(&env, &[(target.clone(), Priority::Error)], None, 0).await?;
    let sender = env.driver().await.map_err(err)?;
    notify(&sender, &target, Priority::Info, "e", json!({"i": 1})).await?;
    notify(&sender, &target, Priority::Error, "e", json!({"i": 2})).await?;
    let n = next_within(&mut l, Duration::from_secs(10)).await?;
    ensure!(
        n.notification.priority == Priority::Error && n_index(&n) == 2,
        "got {:?}",
        n.notification
    );
    n.ack().await.map_err(err)?;
    nothing_within(&mut l, QUIET).await
}

/// Drains a listener into a shared list, acking each message.
fn drain(mut l: NotificationListener, tag: &'static str, seen: Seen) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(n) = l.next().await {
            seen.lock().unwrap_or_else(|p| p.into_inner()).push((
                tag.to_string(),
                n.notification.event_type.clone(),
                n.notification.payload.to_value().unwrap_or_default(),
            ));
            let _ = n.ack().await;
        }
    })
}

async fn notify_default_group_shares_the_load(env: Env) -> CaseResult {
    let topic = env.unique("group");
    let target = Target::topic(&topic);
    let subs = [(target.clone(), Priority::Info)];
    let seen = Seen::default();
    let (_a, la) = listen(&env, &subs, None, 1).await?;
    let (_b, lb) = listen(&env, &subs, None, 1).await?;
    let ta = drain(la, "a", seen.clone());
    let tb = drain(lb, "b", seen.clone());
    let sender = env.driver().await.map_err(err)?;
    for i in 0..20 {
        notify(&sender, &target, Priority::Info, "e", json!({"i": i})).await?;
    }
    wait_for_count(&seen, 20, Duration::from_secs(10)).await?;
    let counts = per_server(&seen);
    ensure!(
        counts.len() == 2,
        "listeners without a pool didn't share the default queue: {counts:?}"
    );
    ta.abort();
    tb.abort();
    Ok(())
}

async fn notify_pools_each_get_a_copy(env: Env) -> CaseResult {
    let topic = env.unique("pools");
    let pool_a = env.unique("pool-a");
    let pool_b = env.unique("pool-b");
    let target = Target::topic(&topic);
    let subs = [(target.clone(), Priority::Info)];
    let seen = Seen::default();
    let mut tasks = Vec::new();
    let mut keep = Vec::new();
    for (tag, pool) in [
        ("a1", Some(pool_a.as_str())),
        ("a2", Some(pool_a.as_str())),
        ("b1", Some(pool_b.as_str())),
        ("default", None),
    ] {
        let (d, l) = listen(&env, &subs, pool, 1).await?;
        keep.push(d);
        tasks.push(drain(l, tag, seen.clone()));
    }
    let sender = env.driver().await.map_err(err)?;
    for i in 0..10 {
        notify(&sender, &target, Priority::Info, "e", json!({"i": i})).await?;
    }
    wait_for_count(&seen, 30, Duration::from_secs(10)).await?;
    let counts = per_server(&seen);
    let a = counts.get("a1").copied().unwrap_or(0) + counts.get("a2").copied().unwrap_or(0);
    ensure!(a == 10, "pool a got {a} copies of 10: {counts:?}");
    ensure!(
        counts.contains_key("a1") && counts.contains_key("a2"),
        "the listeners of pool a didn't share: {counts:?}"
    );
    ensure!(counts.get("b1") == Some(&10), "pool b: {counts:?}");
    ensure!(
        counts.get("default") == Some(&10),
        "default group: {counts:?}"
    );
    for t in tasks {
        t.abort();
    }
    Ok(())
}

async fn notify_requeue_redelivers(env: Env) -> CaseResult {
    let topic = env.unique("requeue");
    let target = Target::topic(&topic);
    let (_d, mut l) = listen(&env, &[(target.clone(), Priority::Warn)], None, 0).await?;
    let sender = env.driver().await.map_err(err)?;
    notify(&sender, &target, Priority::Warn, "e", json!({"i": 7})).await?;
    let first = next_within(&mut l, Duration::from_secs(10)).await?;
    let id = first.notification.message_id.clone();
    first.requeue(None).await.map_err(err)?;
    let again = next_within(&mut l, Duration::from_secs(10)).await?;
    ensure!(
        again.notification.message_id == id,
        "a different message came back"
    );
    again.ack().await.map_err(err)?;
    nothing_within(&mut l, Duration::from_millis(500)).await
}

async fn notify_stop_loses_nothing(env: Env) -> CaseResult {
    let topic = env.unique("stopsafe");
    let target = Target::topic(&topic);
    let subs = [(target.clone(), Priority::Info)];
    let sender = env.driver().await.map_err(err)?;
    for i in 0..20 {
        notify(&sender, &target, Priority::Info, "e", json!({"i": i})).await?;
    }
    let (_d, mut l) = listen(&env, &subs, None, 0).await?;
    let mut got = HashSet::new();
    for _ in 0..5 {
        let n = next_within(&mut l, Duration::from_secs(10)).await?;
        got.insert(n_index(&n));
        n.ack().await.map_err(err)?;
    }
    // one received but not handled: must come back
    let unhandled = next_within(&mut l, Duration::from_secs(10)).await?;
    l.stop();
    while let Ok(Some(n)) = tokio::time::timeout(Duration::from_secs(5), l.next()).await {
        drop(n); // held but not handled: goes back
    }
    drop(unhandled);
    drop(l);
    let (_d2, mut l2) = listen(&env, &subs, None, 0).await?;
    while got.len() < 20 {
        let n = next_within(&mut l2, Duration::from_secs(10))
            .await
            .map_err(|e| format!("{e}; had {} of 20", got.len()))?;
        got.insert(n_index(&n));
        n.ack().await.map_err(err)?;
    }
    nothing_within(&mut l2, QUIET).await
}

async fn notify_prefetch_bounds_unacked(env: Env) -> CaseResult {
    let topic = env.unique("prefetch");
    let target = Target::topic(&topic);
    let sender = env.driver().await.map_err(err)?;
    for i in 0..10 {
        notify(&sender, &target, Priority::Info, "e", json!({"i": i})).await?;
    }
    let (_d, mut l) = listen(&env, &[(target.clone(), Priority::Info)], None, 3).await?;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(next_within(&mut l, Duration::from_secs(10)).await?);
    }
    nothing_within(&mut l, Duration::from_millis(500))
        .await
        .map_err(|_| {
            "a fourth message arrived while three were unacked (prefetch 3)".to_string()
        })?;
    if let Some(n) = held.pop() {
        n.ack().await.map_err(err)?;
    }
    held.push(next_within(&mut l, Duration::from_secs(10)).await?);
    for n in held {
        n.ack().await.map_err(err)?;
    }
    Ok(())
}

async fn notify_envelope_versions(env: Env) -> CaseResult {
    let topic = env.unique("envelope");
    let target = Target::topic(&topic);
    let (_d, mut l) = listen(&env, &[(target.clone(), Priority::Audit)], None, 0).await?;
    let sender = env.driver().await.map_err(err)?;
    for (i, v) in [EnvelopeVersion::V1, EnvelopeVersion::V2]
        .into_iter()
        .enumerate()
    {
        let n = Notification::new("p", "e", Priority::Audit, json!({"i": i}));
        sender
            .send_notification(&target, &Context::new(), &n, v, Retry::Attempts(0))
            .await
            .map_err(err)?;
        let got = next_within(&mut l, Duration::from_secs(10)).await?;
        ensure!(
            got.notification == n,
            "{v:?} changed the notification: {:?}",
            got.notification
        );
        got.ack().await.map_err(err)?;
    }
    Ok(())
}

/// Queue names are global (as on RabbitMQ), so isolation shows on pool queues, which are
/// bound only in their exchange.
async fn exchanges_are_isolated(env: Env) -> CaseResult {
    let topic = env.unique("exch");
    let x = env.unique("x");
    let y = env.unique("y");
    let (_d, mut l) = listen(
        &env,
        &[(Target::topic(&topic).with_exchange(&x), Priority::Info)],
        Some(&env.unique("xpool")),
        0,
    )
    .await?;
    let (_d2, mut ly) = listen(
        &env,
        &[(Target::topic(&topic).with_exchange(&y), Priority::Info)],
        Some(&env.unique("ypool")),
        0,
    )
    .await?;
    let sender = env.driver().await.map_err(err)?;
    notify(
        &sender,
        &Target::topic(&topic).with_exchange(&y),
        Priority::Info,
        "e",
        json!({"i": 1}),
    )
    .await?;
    let n = next_within(&mut ly, Duration::from_secs(10)).await?;
    n.ack().await.map_err(err)?;
    nothing_within(&mut l, QUIET)
        .await
        .map_err(|_| "a listener on exchange x got a notification sent to y".to_string())
}
