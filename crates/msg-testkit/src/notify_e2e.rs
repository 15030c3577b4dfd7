//! End-to-end notification cases: msg-client's `Notifier` against msg-server's
//! `NotificationListener` and `BatchNotificationListener` with msg-dispatch's endpoints and
//! filters, through the driver under test.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use msg_client::{Notifier, RoutingConfig};
use msg_core::{
    Capabilities, Context, Driver, EnvelopeVersion, Error, ListenOptions, Notification,
    NotificationListener as DriverNotificationListener, Priority, Result, Retry, RpcListener,
    RpcRequest, SendOptions, Target, Transport,
};
use msg_dispatch::{
    Handled, NotificationEndpoint, NotificationFilter, NotificationMessage, NotificationResult,
    Requeue,
};
use msg_server::{BatchNotificationListener, Executor, NotificationListener};
use serde_json::{Value, json};

use crate::cases::{Case, CaseResult};
use crate::e2e::{Log, Running, err, stays, wait_until, within};
use crate::env::Env;

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(e2e_notify_pools_each_get_a_copy, [Notifications, Pools]),
        case!(
            e2e_notify_default_queue_shares_the_load,
            [Notifications, LoadBalancing]
        ),
        case!(
            e2e_notify_store_and_forward,
            [Notifications, StoreAndForward]
        ),
        case!(e2e_notify_filters, [Notifications]),
        case!(e2e_notify_requeue_then_handled, [Notifications, Requeue]),
        case!(
            e2e_notify_requeue_without_allow_requeue_acks,
            [Notifications]
        ),
        case!(
            e2e_notify_error_or_panic_counts_as_requeue,
            [Notifications, Requeue]
        ),
        case!(e2e_notify_batches_of_size_under_load, [Notifications]),
        case!(e2e_notify_partial_batch_within_timeout, [Notifications]),
        case!(e2e_notify_batch_groups_by_priority, [Notifications]),
        case!(
            e2e_notify_batch_requeue_sends_the_group_back,
            [Notifications, Requeue]
        ),
        case!(e2e_notify_routing_driver_follows_its_file, [Notifications]),
        case!(e2e_notify_messaging_and_messagingv2_bodies, [Notifications]),
        case!(e2e_notify_unreachable_transport_times_out, []),
        case!(e2e_notify_graceful_stop_loses_nothing, [Notifications]),
    ]
}

const WAIT: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(300);

/// What a handler saw of one notification.
#[derive(Debug, Clone)]
struct Seen {
    /// Which listener or endpoint.
    tag: &'static str,
    priority: Priority,
    event_type: String,
    message_id: String,
    /// `payload.i` (-1 when absent).
    i: i64,
}

impl Seen {
    fn of(tag: &'static str, m: &NotificationMessage) -> Self {
        Seen {
            tag,
            priority: m.priority,
            event_type: m.event_type.clone(),
            message_id: message_id(m),
            i: m.payload.get("i").and_then(|v| v.as_i64()).unwrap_or(-1),
        }
    }
}

/// A handler that records what it sees under `tag` and answers Handled.
fn recorder(
    tag: &'static str,
    log: &Log<Seen>,
) -> impl Fn(NotificationMessage) -> futures::future::Ready<NotificationResult> + Send + Sync + 'static
{
    let log = log.clone();
    move |m| {
        log.push(Seen::of(tag, &m));
        futures::future::ready(Handled)
    }
}

fn notifier(transport: Transport, topic: &str) -> Notifier {
    Notifier::new(transport)
        .publisher_id("testkit.e2e")
        .topics([topic])
}

async fn start_listener(
    env: &Env,
    topic: &str,
    configure: impl FnOnce(
        msg_server::NotificationListenerBuilder,
    ) -> msg_server::NotificationListenerBuilder,
) -> std::result::Result<Running<NotificationListener>, String> {
    let transport = env.transport().await.map_err(err)?;
    let builder = NotificationListener::builder(transport, [Target::topic(topic)]);
    let listener = configure(builder).start().await.map_err(err)?;
    Ok(Running::new(listener))
}

async fn start_batch_listener(
    env: &Env,
    topic: &str,
    size: usize,
    timeout: Duration,
    configure: impl FnOnce(
        msg_server::BatchNotificationListenerBuilder,
    ) -> msg_server::BatchNotificationListenerBuilder,
) -> std::result::Result<Running<BatchNotificationListener>, String> {
    let transport = env.transport().await.map_err(err)?;
    let builder =
        BatchNotificationListener::builder(transport, [Target::topic(topic)], size, timeout);
    let listener = configure(builder).start().await.map_err(err)?;
    Ok(Running::new(listener))
}

fn indices(seen: &[Seen]) -> Vec<i64> {
    let mut v: Vec<i64> = seen.iter().map(|s| s.i).collect();
    v.sort_unstable();
    v
}

fn range(n: i64) -> Vec<i64> {
    (0..n).collect()
}

async fn send_info(n: &Notifier, count: i64) -> CaseResult {
    for i in 0..count {
        n.info(&Context::new(), "e2e.event", json!({ "i": i }))
            .await
            .map_err(err)?;
    }
    Ok(())
}

async fn e2e_notify_pools_each_get_a_copy(env: Env) -> CaseResult {
    let topic = env.unique("e2e-pools");
    let (pool_a, pool_b) = (env.unique("e2e-pool-a"), env.unique("e2e-pool-b"));
    let log = Log::default();
    let mut listeners = Vec::new();
    for (tag, pool) in [
        ("a1", Some(&pool_a)),
        ("a2", Some(&pool_a)),
        ("b1", Some(&pool_b)),
        ("b2", Some(&pool_b)),
        ("default", None),
    ] {
        let endpoint = NotificationEndpoint::new().on(Priority::Info, recorder(tag, &log));
        listeners.push(
            start_listener(&env, &topic, |b| match pool {
                Some(p) => b.pool(p.clone()).endpoint(endpoint),
                None => b.endpoint(endpoint),
            })
            .await?,
        );
    }
    send_info(&notifier(env.transport().await.map_err(err)?, &topic), 20).await?;
    wait_until(
        || format!("{} of 60 deliveries", log.len()),
        WAIT,
        || log.len() >= 60,
    )
    .await?;
    stays("pool deliveries", QUIET, || log.len()).await?;
    let seen = log.snapshot();
    let of = |tags: &[&str]| -> Vec<Seen> {
        seen.iter()
            .filter(|s| tags.contains(&s.tag))
            .cloned()
            .collect()
    };
    let count = |tag: &str| seen.iter().filter(|s| s.tag == tag).count();
    for (pool, members) in [("a", ["a1", "a2"]), ("b", ["b1", "b2"])] {
        let got = indices(&of(&members));
        ensure!(
            got == range(20),
            "pool {pool} should get each notification once: {got:?}"
        );
        ensure!(
            members.iter().all(|m| count(m) > 0),
            "the listeners of pool {pool} didn't share the load: {} / {}",
            count(members[0]),
            count(members[1])
        );
    }
    let got = indices(&of(&["default"]));
    ensure!(
        got == range(20),
        "the listener without a pool should get each notification once: {got:?}"
    );
    Ok(())
}

async fn e2e_notify_default_queue_shares_the_load(env: Env) -> CaseResult {
    let topic = env.unique("e2e-default");
    let log = Log::default();
    let mut listeners = Vec::new();
    for tag in ["l1", "l2"] {
        let endpoint = NotificationEndpoint::new().on(Priority::Info, recorder(tag, &log));
        listeners.push(start_listener(&env, &topic, |b| b.endpoint(endpoint)).await?);
    }
    send_info(&notifier(env.transport().await.map_err(err)?, &topic), 20).await?;
    wait_until(
        || format!("{} of 20 deliveries", log.len()),
        WAIT,
        || log.len() >= 20,
    )
    .await?;
    stays("default-queue deliveries", QUIET, || log.len()).await?;
    let seen = log.snapshot();
    ensure!(
        indices(&seen) == range(20),
        "the default queue should deliver each notification once: {:?}",
        indices(&seen)
    );
    let l1 = seen.iter().filter(|s| s.tag == "l1").count();
    ensure!(
        l1 > 0 && l1 < 20,
        "two listeners without a pool didn't share the default queue: l1 {l1}, l2 {}",
        20 - l1
    );
    Ok(())
}

async fn e2e_notify_store_and_forward(env: Env) -> CaseResult {
    let topic = env.unique("e2e-saf");
    send_info(&notifier(env.transport().await.map_err(err)?, &topic), 10).await?;
    let log = Log::default();
    let _l = start_listener(&env, &topic, |b| {
        b.executor(Executor::Sequential)
            .endpoint(NotificationEndpoint::new().on(Priority::Info, recorder("late", &log)))
    })
    .await?;
    wait_until(
        || {
            format!(
                "{} of the 10 notifications sent before the listener",
                log.len()
            )
        },
        WAIT,
        || log.len() >= 10,
    )
    .await?;
    stays("stored notifications", QUIET, || log.len()).await?;
    let order: Vec<i64> = log.snapshot().iter().map(|s| s.i).collect();
    ensure!(
        order == range(10),
        "stored notifications lost or out of order: {order:?}"
    );
    Ok(())
}

/// A uuid4 whose first hex digit is `first`.
fn message_id_starting_with(first: char) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    format!("{first}{}", &id[1..])
}

fn message_id(m: &NotificationMessage) -> String {
    m.metadata
        .get("message_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn tag_of(m: &NotificationMessage) -> String {
    m.payload
        .get("tag")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

async fn e2e_notify_filters(env: Env) -> CaseResult {
    let topic = env.unique("e2e-filters");
    let log: Log<(&'static str, String, String)> = Log::default();
    let endpoint = |name: &'static str, filter: std::result::Result<NotificationFilter, Error>| {
        let log = log.clone();
        filter.map_err(err).map(|f| {
            NotificationEndpoint::new().filter(f).on(
                Priority::Info,
                move |m: NotificationMessage| {
                    let id = message_id(&m);
                    log.push((name, tag_of(&m), id));
                    futures::future::ready(Handled)
                },
            )
        })
    };
    let endpoints = vec![
        endpoint(
            "publisher_id",
            NotificationFilter::new().publisher_id(r"compute\."),
        )?,
        endpoint(
            "event_type",
            NotificationFilter::new().event_type(r"compute\.instance\."),
        )?,
        endpoint(
            "context",
            NotificationFilter::new().context("project_id", "p-"),
        )?,
        endpoint(
            "message_id",
            NotificationFilter::new().metadata("message_id", "a"),
        )?,
        endpoint(
            "timestamp",
            NotificationFilter::new().metadata("timestamp", "2001-"),
        )?,
        endpoint(
            "payload",
            NotificationFilter::new().payload("state", "active"),
        )?,
        // last, without a filter: when it sees the sentinel, every endpoint before it has
        // seen everything sent before the sentinel (one queue, one message at a time)
        endpoint("all", Ok(NotificationFilter::new()))?,
    ];
    let _l = start_listener(&env, &topic, |b| {
        endpoints
            .into_iter()
            .fold(b.executor(Executor::Sequential), |b, e| b.endpoint(e))
    })
    .await?;
    let transport = env.transport().await.map_err(err)?;
    let base = notifier(transport.clone(), &topic);
    // (tag, publisher, event type, context project_id, payload state)
    let sends: [(&str, &str, &str, Option<&str>, Value); 4] = [
        (
            "A",
            "compute.host1",
            "volume.create",
            Some("p-1"),
            json!("deleted"),
        ),
        (
            "B",
            "network.host2",
            "compute.instance.create",
            Some("q-2"),
            json!("active"),
        ),
        (
            "C",
            "compute.host3",
            "compute.instance.delete",
            None,
            json!(3),
        ),
        (
            "D",
            "xcompute.host4",
            "xcompute.instance.create",
            Some("p-4"),
            json!("active-ish"),
        ),
    ];
    for (tag, publisher, event, project, state) in sends {
        let ctx = match project {
            Some(p) => Context::new().with("project_id", p),
            None => Context::new(),
        };
        base.prepare()
            .publisher_id(publisher)
            .info(&ctx, event, json!({"tag": tag, "state": state}))
            .await
            .map_err(err)?;
    }
    // metadata can't be chosen through a Notifier: send these through the driver
    let mut m1 = Notification::new(
        "meta.host",
        "meta.event",
        Priority::Info,
        json!({"tag": "M1"}),
    );
    m1.message_id = message_id_starting_with('a');
    m1.timestamp = "2001-02-03 04:05:06.000007".into();
    let mut m2 = Notification::new(
        "meta.host",
        "meta.event",
        Priority::Info,
        json!({"tag": "M2"}),
    );
    m2.message_id = message_id_starting_with('b');
    for n in [&m1, &m2] {
        transport
            .driver()
            .send_notification(
                &Target::topic(&topic),
                &Context::new(),
                n,
                EnvelopeVersion::V2,
                Retry::Attempts(2),
            )
            .await
            .map_err(err)?;
    }
    base.prepare()
        .publisher_id("sentinel")
        .info(&Context::new(), "sentinel", json!({"tag": "END"}))
        .await
        .map_err(err)?;
    wait_until(
        || format!("the sentinel didn't arrive; seen: {:?}", log.snapshot()),
        WAIT,
        || {
            log.snapshot()
                .iter()
                .any(|(e, t, _)| *e == "all" && t == "END")
        },
    )
    .await?;
    let seen = log.snapshot();
    let got = |endpoint: &str| -> Vec<String> {
        let mut v: Vec<String> = seen
            .iter()
            .filter(|(e, _, _)| *e == endpoint)
            .map(|(_, t, _)| t.clone())
            .collect();
        v.sort();
        v
    };
    let tags = |t: &[&str]| -> Vec<String> { t.iter().map(|s| s.to_string()).collect() };
    ensure!(
        got("all") == tags(&["A", "B", "C", "D", "END", "M1", "M2"]),
        "the unfiltered endpoint saw {:?}",
        got("all")
    );
    // which notifications have a message_id starting with `a` (the Notifier's are random)
    let mut ids_a: Vec<String> = seen
        .iter()
        .filter(|(e, _, id)| *e == "all" && id.starts_with('a'))
        .map(|(_, t, _)| t.clone())
        .collect();
    ids_a.sort();
    for (endpoint, expected) in [
        ("publisher_id", tags(&["A", "C"])),
        ("event_type", tags(&["B", "C"])),
        ("context", tags(&["A", "D"])),
        ("payload", tags(&["B", "D"])),
        ("message_id", ids_a),
        ("timestamp", tags(&["M1"])),
    ] {
        ensure!(
            got(endpoint) == expected,
            "the {endpoint} filter let through {:?}, expected exactly {expected:?}",
            got(endpoint)
        );
    }
    Ok(())
}

/// How many times each message id was seen, and in which order of answers.
fn by_id(seen: &[(String, &'static str)]) -> BTreeMap<String, Vec<&'static str>> {
    let mut m: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    for (id, what) in seen {
        m.entry(id.clone()).or_default().push(what);
    }
    m
}

async fn e2e_notify_requeue_then_handled(env: Env) -> CaseResult {
    let topic = env.unique("e2e-requeue");
    let log: Log<(String, &'static str)> = Log::default();
    let first_seen = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let handler = {
        let log = log.clone();
        move |m: NotificationMessage| {
            let id = message_id(&m);
            let first = first_seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone());
            let answer = if first { Requeue } else { Handled };
            log.push((id, if first { "requeue" } else { "handled" }));
            futures::future::ready(answer)
        }
    };
    let _l = start_listener(&env, &topic, |b| {
        b.allow_requeue(true)
            .endpoint(NotificationEndpoint::new().on(Priority::Info, handler))
    })
    .await?;
    send_info(&notifier(env.transport().await.map_err(err)?, &topic), 5).await?;
    wait_until(
        || format!("{} of 10 deliveries (5 requeued once)", log.len()),
        WAIT,
        || log.len() >= 10,
    )
    .await?;
    stays(
        "deliveries after the Handled answers",
        Duration::from_millis(500),
        || log.len(),
    )
    .await?;
    let ids = by_id(&log.snapshot());
    ensure!(ids.len() == 5, "expected 5 distinct notifications: {ids:?}");
    ensure!(
        ids.values().all(|v| *v == ["requeue", "handled"]),
        "each notification should be requeued once then handled once: {ids:?}"
    );
    Ok(())
}

async fn e2e_notify_requeue_without_allow_requeue_acks(env: Env) -> CaseResult {
    let topic = env.unique("e2e-norequeue");
    let log: Log<(String, &'static str)> = Log::default();
    let handler = {
        let log = log.clone();
        move |m: NotificationMessage| {
            let id = message_id(&m);
            log.push((id, "requeue"));
            futures::future::ready(Requeue)
        }
    };
    let _l = start_listener(&env, &topic, |b| {
        b.endpoint(NotificationEndpoint::new().on(Priority::Info, handler))
    })
    .await?;
    send_info(&notifier(env.transport().await.map_err(err)?, &topic), 3).await?;
    wait_until(
        || format!("{} of 3 deliveries", log.len()),
        WAIT,
        || log.len() >= 3,
    )
    .await?;
    stays(
        "redeliveries without allow_requeue",
        Duration::from_millis(500),
        || log.len(),
    )
    .await?;
    let ids = by_id(&log.snapshot());
    ensure!(
        ids.len() == 3 && ids.values().all(|v| v.len() == 1),
        "without allow_requeue a Requeue answer must ack: each notification seen once, got {ids:?}"
    );
    Ok(())
}

async fn e2e_notify_error_or_panic_counts_as_requeue(env: Env) -> CaseResult {
    let topic = env.unique("e2e-errpanic");
    let log: Log<(String, &'static str)> = Log::default();
    let first_seen = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let handler = {
        let log = log.clone();
        move |m: NotificationMessage| {
            let log = log.clone();
            let first_seen = first_seen.clone();
            async move {
                let mode = m
                    .payload
                    .get("mode")
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let first = first_seen
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(mode.clone());
                log.push((mode.clone(), if first { "first" } else { "again" }));
                if first && mode == "panic" {
                    panic!("the notification handler panicked on purpose");
                }
                if first && mode == "err" {
                    return Err("the notification handler failed on purpose".to_string());
                }
                Ok(Handled)
            }
        }
    };
    let _l = start_listener(&env, &topic, |b| {
        b.allow_requeue(true)
            .endpoint(NotificationEndpoint::new().on(Priority::Warn, handler))
    })
    .await?;
    let n = notifier(env.transport().await.map_err(err)?, &topic);
    for mode in ["err", "panic", "ok"] {
        n.warn(&Context::new(), "e2e.event", json!({ "mode": mode }))
            .await
            .map_err(err)?;
    }
    wait_until(
        || format!("{} of 5 deliveries", log.len()),
        WAIT,
        || log.len() >= 5,
    )
    .await?;
    stays("deliveries", Duration::from_millis(500), || log.len()).await?;
    let modes = by_id(&log.snapshot());
    ensure!(
        modes.get("err").map(Vec::as_slice) == Some(&["first", "again"][..])
            && modes.get("panic").map(Vec::as_slice) == Some(&["first", "again"][..])
            && modes.get("ok").map(Vec::as_slice) == Some(&["first"][..]),
        "an error or a panic should requeue once (allow_requeue), a success never: {modes:?}"
    );
    Ok(())
}

/// A batch as a handler saw it: when, and the `i` of each message in order.
type Batches = Log<(Instant, Priority, Vec<i64>)>;

fn batch_recorder(
    log: &Batches,
) -> impl Fn(Vec<NotificationMessage>) -> futures::future::Ready<NotificationResult>
+ Send
+ Sync
+ 'static {
    let log = log.clone();
    move |ms| {
        let priority = ms.first().map_or(Priority::Info, |m| m.priority);
        let is: Vec<i64> = ms
            .iter()
            .map(|m| m.payload.get("i").and_then(|v| v.as_i64()).unwrap_or(-1))
            .collect();
        log.push((Instant::now(), priority, is));
        futures::future::ready(Handled)
    }
}

fn batch_total(log: &Batches) -> usize {
    log.snapshot().iter().map(|(_, _, b)| b.len()).sum()
}

async fn e2e_notify_batches_of_size_under_load(env: Env) -> CaseResult {
    let topic = env.unique("e2e-batch-load");
    let log = Batches::default();
    let _l = start_batch_listener(&env, &topic, 10, Duration::from_secs(2), |b| {
        b.endpoint(NotificationEndpoint::new().on_batch(Priority::Info, batch_recorder(&log)))
    })
    .await?;
    send_info(&notifier(env.transport().await.map_err(err)?, &topic), 50).await?;
    wait_until(
        || format!("{} of 50 in batches", batch_total(&log)),
        WAIT,
        || batch_total(&log) >= 50,
    )
    .await?;
    stays("batched notifications", QUIET, || batch_total(&log)).await?;
    let batches = log.snapshot();
    let sizes: Vec<usize> = batches.iter().map(|(_, _, b)| b.len()).collect();
    ensure!(
        sizes == vec![10; 5],
        "50 notifications sent at once should make 5 batches of 10: {sizes:?}"
    );
    let mut all: Vec<i64> = batches.iter().flat_map(|(_, _, b)| b.clone()).collect();
    all.sort_unstable();
    ensure!(
        all == range(50),
        "batches lost or doubled messages: {all:?}"
    );
    Ok(())
}

async fn e2e_notify_partial_batch_within_timeout(env: Env) -> CaseResult {
    let topic = env.unique("e2e-batch-partial");
    let timeout = Duration::from_secs(1);
    let log = Batches::default();
    let _l = start_batch_listener(&env, &topic, 10, timeout, |b| {
        b.endpoint(NotificationEndpoint::new().on_batch(Priority::Info, batch_recorder(&log)))
    })
    .await?;
    // the batch's clock starts when the listener starts waiting, at or after this instant
    let started = Instant::now();
    send_info(&notifier(env.transport().await.map_err(err)?, &topic), 3).await?;
    let sent = Instant::now();
    wait_until(
        || format!("{} of 3 in batches", batch_total(&log)),
        timeout + Duration::from_secs(5),
        || batch_total(&log) >= 3,
    )
    .await?;
    stays("batched notifications", QUIET, || batch_total(&log)).await?;
    let batches = log.snapshot();
    let [(at, _, batch)] = batches.as_slice() else {
        return Err(format!(
            "3 notifications in one window should make one batch: {:?}",
            batches.iter().map(|(_, _, b)| b).collect::<Vec<_>>()
        ));
    };
    ensure!(batch == &[0, 1, 2], "the partial batch was {batch:?}");
    let from_send = at.saturating_duration_since(sent);
    ensure!(
        from_send <= timeout + Duration::from_millis(700),
        "the partial batch came {from_send:?} after the send, more than the {timeout:?} \
         timeout (plus tolerance)"
    );
    let from_start = at.saturating_duration_since(started);
    ensure!(
        from_start + Duration::from_millis(50) >= timeout,
        "the partial batch came {from_start:?} after the listener started: before its \
         {timeout:?} timeout, with room left for 7 more"
    );
    Ok(())
}

async fn e2e_notify_batch_groups_by_priority(env: Env) -> CaseResult {
    let topic = env.unique("e2e-batch-prio");
    let log = Batches::default();
    let _l = start_batch_listener(&env, &topic, 10, Duration::from_secs(1), |b| {
        b.endpoint(NotificationEndpoint::new().on_batch(Priority::Info, batch_recorder(&log)))
            .endpoint(NotificationEndpoint::new().on_batch(Priority::Warn, batch_recorder(&log)))
    })
    .await?;
    let n = notifier(env.transport().await.map_err(err)?, &topic);
    let ctx = Context::new();
    n.info(&ctx, "e2e.event", json!({"i": 0}))
        .await
        .map_err(err)?;
    n.warn(&ctx, "e2e.event", json!({"i": 1}))
        .await
        .map_err(err)?;
    n.info(&ctx, "e2e.event", json!({"i": 2}))
        .await
        .map_err(err)?;
    wait_until(
        || format!("{} of 3 in batches", batch_total(&log)),
        WAIT,
        || batch_total(&log) >= 3,
    )
    .await?;
    stays("batched notifications", QUIET, || batch_total(&log)).await?;
    let batches = log.snapshot();
    let of = |p: Priority| -> Vec<Vec<i64>> {
        batches
            .iter()
            .filter(|(_, q, _)| *q == p)
            .map(|(_, _, b)| b.clone())
            .collect()
    };
    ensure!(
        of(Priority::Info) == vec![vec![0, 2]] && of(Priority::Warn) == vec![vec![1]],
        "info, warn, info in one window: the Info handler should get [[0, 2]] and the Warn \
         one [[1]]; got Info {:?}, Warn {:?}",
        of(Priority::Info),
        of(Priority::Warn)
    );
    Ok(())
}

async fn e2e_notify_batch_requeue_sends_the_group_back(env: Env) -> CaseResult {
    let topic = env.unique("e2e-batch-requeue");
    let log = Batches::default();
    let info_calls = Arc::new(AtomicUsize::new(0));
    let info = {
        let log = log.clone();
        move |ms: Vec<NotificationMessage>| {
            let is: Vec<i64> = ms
                .iter()
                .map(|m| m.payload.get("i").and_then(|v| v.as_i64()).unwrap_or(-1))
                .collect();
            log.push((Instant::now(), Priority::Info, is));
            let first = info_calls.fetch_add(1, Ordering::SeqCst) == 0;
            futures::future::ready(if first { Requeue } else { Handled })
        }
    };
    let _l = start_batch_listener(&env, &topic, 10, Duration::from_secs(1), |b| {
        b.allow_requeue(true)
            .endpoint(NotificationEndpoint::new().on_batch(Priority::Info, info))
            .endpoint(NotificationEndpoint::new().on_batch(Priority::Warn, batch_recorder(&log)))
    })
    .await?;
    let n = notifier(env.transport().await.map_err(err)?, &topic);
    let ctx = Context::new();
    for i in 0..3 {
        n.info(&ctx, "e2e.event", json!({ "i": i }))
            .await
            .map_err(err)?;
    }
    n.warn(&ctx, "e2e.event", json!({"i": 3}))
        .await
        .map_err(err)?;
    wait_until(
        || format!("{} of 7 deliveries in batches", batch_total(&log)),
        WAIT,
        || batch_total(&log) >= 7,
    )
    .await?;
    stays("batched notifications", Duration::from_millis(500), || {
        batch_total(&log)
    })
    .await?;
    let batches = log.snapshot();
    let info: Vec<Vec<i64>> = batches
        .iter()
        .filter(|(_, p, _)| *p == Priority::Info)
        .map(|(_, _, b)| b.clone())
        .collect();
    let warn: Vec<Vec<i64>> = batches
        .iter()
        .filter(|(_, p, _)| *p == Priority::Warn)
        .map(|(_, _, b)| b.clone())
        .collect();
    ensure!(
        info.first() == Some(&vec![0, 1, 2]),
        "the first Info group should be [0, 1, 2]: {info:?}"
    );
    let mut again: Vec<i64> = info.iter().skip(1).flatten().copied().collect();
    again.sort_unstable();
    ensure!(
        again == range(3),
        "a Requeue should send the whole Info group back once: Info batches {info:?}"
    );
    ensure!(
        warn == vec![vec![3]],
        "the Warn group of the same batch should be handled once, not requeued: {warn:?}"
    );
    Ok(())
}

async fn e2e_notify_routing_driver_follows_its_file(env: Env) -> CaseResult {
    let topic = env.unique("e2e-routing");
    let log = Log::default();
    let _l = start_listener(&env, &topic, |b| {
        b.executor(Executor::Sequential).endpoint(
            NotificationEndpoint::new()
                .on(Priority::Info, recorder("routed", &log))
                .on(Priority::Warn, recorder("routed", &log))
                .on(Priority::Error, recorder("routed", &log)),
        )
    })
    .await?;
    let transport = env.transport().await.map_err(err)?;
    let config = RoutingConfig::from_yaml(
        "
group_1:
  messagingv2:
    accepted_events: ['compute.instance.*']
  messaging:
    accepted_priorities: ['warn']
group_2:
  noop:
    accepted_events: ['volume.*']
",
    )
    .map_err(err)?;
    let routing = config.into_driver(Some(&transport)).map_err(err)?;
    let n = Notifier::without_transport()
        .driver(Arc::new(routing))
        .publisher_id("testkit.e2e")
        .topics([topic.as_str()]);
    let ctx = Context::new();
    let sends = [
        (Priority::Info, "compute.instance.create"), // messagingv2
        (Priority::Info, "volume.create"),           // noop only
        (Priority::Warn, "volume.resize"),           // messaging (+ noop)
        (Priority::Error, "compute.instance.delete"), // messagingv2
        (Priority::Error, "volume.delete"),          // noop only
        (Priority::Warn, "compute.instance.pause"),  // messagingv2 and messaging: twice
        (Priority::Info, "other.event"),             // nothing
        // sentinels, one per queue: when all three are in, everything before them is
        (Priority::Info, "compute.instance.sentinel"),
        (Priority::Warn, "sentinel"),
        (Priority::Error, "compute.instance.sentinel"),
    ];
    for (priority, event) in sends {
        n.notify(&ctx, event, priority, json!({}))
            .await
            .map_err(err)?;
    }
    wait_until(
        || {
            format!(
                "the three sentinels didn't all arrive: {:?}",
                log.snapshot()
            )
        },
        WAIT,
        || {
            log.snapshot()
                .iter()
                .filter(|s: &&Seen| s.event_type.ends_with("sentinel"))
                .count()
                >= 3
        },
    )
    .await?;
    let mut got: BTreeMap<(String, Priority), usize> = BTreeMap::new();
    for s in log.snapshot() {
        if !s.event_type.ends_with("sentinel") {
            *got.entry((s.event_type, s.priority)).or_default() += 1;
        }
    }
    let expected: BTreeMap<(String, Priority), usize> = [
        ("compute.instance.create", Priority::Info, 1),
        ("volume.resize", Priority::Warn, 1),
        ("compute.instance.delete", Priority::Error, 1),
        ("compute.instance.pause", Priority::Warn, 2),
    ]
    .into_iter()
    .map(|(e, p, n)| ((e.to_string(), p), n))
    .collect();
    ensure!(
        got == expected,
        "the routing file wasn't followed: got {got:?}, expected {expected:?}"
    );
    Ok(())
}

async fn e2e_notify_messaging_and_messagingv2_bodies(env: Env) -> CaseResult {
    let topic = env.unique("e2e-bodies");
    let log: Log<NotificationMessage> = Log::default();
    let handler = {
        let log = log.clone();
        move |m: NotificationMessage| {
            log.push(m);
            futures::future::ready(Handled)
        }
    };
    let _l = start_listener(&env, &topic, |b| {
        b.endpoint(NotificationEndpoint::new().on(Priority::Audit, handler))
    })
    .await?;
    let transport = env.transport().await.map_err(err)?;
    let ctx = Context::new()
        .with("request_id", "req-e2e")
        .with("user", "alice")
        .with("auth_token", "SECRET");
    let payload = json!({
        "id": 12,
        "name": "vm-é",
        "nested": {"list": [1, 2.5, null, true], "s": "a\"b"},
    });
    for (k, name) in ["messaging", "messagingv2"].into_iter().enumerate() {
        let n = Notifier::new(transport.clone())
            .driver_names([name])
            .map_err(err)?
            .publisher_id("compute.host1")
            .topics([topic.as_str()]);
        n.audit(&ctx, "compute.instance.exists", payload.clone())
            .await
            .map_err(err)?;
        wait_until(
            || format!("the `{name}` notification didn't arrive"),
            WAIT,
            || log.len() > k,
        )
        .await?;
        let got = log.snapshot()[k].clone();
        ensure!(
            got.publisher_id == "compute.host1"
                && got.event_type == "compute.instance.exists"
                && got.priority == Priority::Audit
                && got.payload == payload,
            "the `{name}` notification changed on the way: {got:?}"
        );
        ensure!(
            got.context.get_str("request_id") == Some("req-e2e")
                && got.context.get_str("user") == Some("alice")
                && got.context.get_str("auth_token").is_none(),
            "the `{name}` notification's context: {:?}",
            got.context
        );
        let id = message_id(&got);
        let ts = got
            .metadata
            .get("timestamp")
            .and_then(Value::as_str)
            .unwrap_or_default();
        ensure!(
            id.len() == 36 && ts.len() >= 19,
            "the `{name}` notification's metadata: {:?}",
            got.metadata
        );
    }
    stays("notifications", QUIET, || log.len()).await?;
    let both = log.snapshot();
    ensure!(
        message_id(&both[0]) != message_id(&both[1]),
        "the two notifications share a message_id"
    );
    Ok(())
}

/// A driver whose notification sends never complete (a broker that can't be reached).
#[derive(Debug)]
struct Unreachable;

impl Unreachable {
    fn unsupported(&self, what: &str) -> Error {
        Error::NotSupported {
            driver: "unreachable",
            feature: what.to_string(),
        }
    }
}

#[msg_core::async_trait]
impl Driver for Unreachable {
    fn name(&self) -> &'static str {
        "unreachable"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::empty().with(msg_core::Capability::Notifications)
    }

    async fn call(
        &self,
        _: &Target,
        _: &Context,
        _: &RpcRequest,
        _: &SendOptions,
    ) -> Result<Value> {
        Err(self.unsupported("call"))
    }

    async fn cast(&self, _: &Target, _: &Context, _: &RpcRequest, _: &SendOptions) -> Result<()> {
        Err(self.unsupported("cast"))
    }

    async fn send_notification(
        &self,
        _: &Target,
        _: &Context,
        _: &Notification,
        _: EnvelopeVersion,
        _: Retry,
    ) -> Result<()> {
        futures::future::pending().await
    }

    async fn listen(&self, _: &Target, _: &ListenOptions) -> Result<RpcListener> {
        Err(self.unsupported("listen"))
    }

    async fn listen_for_notifications(
        &self,
        _: &[(Target, Priority)],
        _: Option<&str>,
        _: &ListenOptions,
    ) -> Result<DriverNotificationListener> {
        Err(self.unsupported("listen_for_notifications"))
    }

    async fn cleanup(&self) -> Result<()> {
        Ok(())
    }
}

async fn e2e_notify_unreachable_transport_times_out(env: Env) -> CaseResult {
    let transport = Transport::new(Arc::new(Unreachable), env.url().clone());
    let bound = Duration::from_secs(1);
    for retry in [None, Some(Retry::Attempts(2))] {
        let mut n = Notifier::new(transport.clone()).send_timeout(bound);
        if let Some(r) = retry {
            n = n.retry(r);
        }
        let start = Instant::now();
        let r = within(
            "a send to an unreachable transport",
            Duration::from_secs(5),
            n.info(&Context::new(), "e2e.event", json!({})),
        )
        .await?;
        let took = start.elapsed();
        ensure!(
            matches!(r, Err(Error::Timeout { .. })),
            "a send that never completes (retry {retry:?}): expected Timeout, got {r:?}"
        );
        ensure!(
            took >= bound - Duration::from_millis(50) && took < bound + Duration::from_millis(700),
            "the send gave up after {took:?}, not its {bound:?} bound (retry {retry:?})"
        );
    }
    Ok(())
}

async fn e2e_notify_graceful_stop_loses_nothing(env: Env) -> CaseResult {
    let topic = env.unique("e2e-graceful");
    let log: Log<(&'static str, i64, String)> = Log::default();
    let in_handler = Arc::new(AtomicUsize::new(0));
    let slow = {
        let log = log.clone();
        let in_handler = in_handler.clone();
        move |m: NotificationMessage| {
            let log = log.clone();
            let in_handler = in_handler.clone();
            async move {
                in_handler.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                let s = Seen::of("first", &m);
                log.push(("first", s.i, s.message_id));
                Handled
            }
        }
    };
    // two at a time, ten held by the driver: at the stop some are being handled and some
    // only prefetched
    let first = start_listener(&env, &topic, |b| {
        b.executor(Executor::Pool(2))
            .prefetch(10)
            .endpoint(NotificationEndpoint::new().on(Priority::Info, slow))
    })
    .await?;
    send_info(&notifier(env.transport().await.map_err(err)?, &topic), 20).await?;
    wait_until(
        || "the slow listener didn't start handling".to_string(),
        WAIT,
        || in_handler.load(Ordering::SeqCst) >= 2,
    )
    .await?;
    first.stop();
    within("wait after stop", WAIT, first.wait()).await?;
    let by_first = log.len();
    ensure!(
        by_first < 20,
        "the stopped listener handled all 20; the case proves nothing"
    );
    let fast = {
        let log = log.clone();
        move |m: NotificationMessage| {
            let s = Seen::of("second", &m);
            log.push(("second", s.i, s.message_id));
            futures::future::ready(Handled)
        }
    };
    let _second = start_listener(&env, &topic, |b| {
        b.endpoint(NotificationEndpoint::new().on(Priority::Info, fast))
    })
    .await?;
    wait_until(
        || format!("{} of 20 handled after the restart", log.len()),
        WAIT,
        || log.len() >= 20,
    )
    .await?;
    stays("handled notifications", QUIET, || log.len()).await?;
    let seen = log.snapshot();
    let mut per_index: HashMap<i64, usize> = HashMap::new();
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for (_, i, id) in &seen {
        *per_index.entry(*i).or_default() += 1;
        *per_id.entry(id.clone()).or_default() += 1;
    }
    let lost: Vec<i64> = range(20)
        .into_iter()
        .filter(|i| !per_index.contains_key(i))
        .collect();
    let twice: Vec<&String> = per_id
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    ensure!(
        lost.is_empty() && twice.is_empty() && per_id.len() == 20,
        "after a graceful stop every notification should be handled exactly once \
         ({by_first} by the stopped listener): lost {lost:?}, handled twice {twice:?}"
    );
    Ok(())
}
