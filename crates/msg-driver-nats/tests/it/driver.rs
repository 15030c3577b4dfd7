//! Driver behaviour beyond the conformance suite, on the broker of `MSG_NATS_URL` (and on
//! servers of the tests' own for authentication).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::StreamExt;
use msg_core::{
    Context, Driver, EnvelopeVersion, Error, ListenOptions, Notification, Priority, Retry,
    RpcRequest, SendOptions, Target, TransportUrl,
};
use msg_driver_nats::NatsDriver;
use serde_json::json;

use crate::server::NatsServer;
use crate::{nats_url, with_option};

/// A test's own subject prefix on the shared broker (its streams are deleted at the end).
fn prefixed(url: &str) -> (String, String) {
    let prefix = format!(
        "msgtest-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    (
        with_option(url, &format!("subject_prefix={prefix}")),
        prefix,
    )
}

async fn connect(url: &str) -> Arc<NatsDriver> {
    Arc::new(NatsDriver::connect(&url.parse().unwrap()).await.unwrap())
}

fn request(method: &str, args: serde_json::Value) -> RpcRequest {
    match args {
        serde_json::Value::Object(m) => RpcRequest::new(method, m),
        _ => RpcRequest::new(method, serde_json::Map::new()),
    }
}

/// Deletes every stream of a test run's own prefix (under the names of this release and of
/// earlier ones).
pub async fn delete_streams(url: &str, prefix: &str) {
    let Ok(driver) = msg_driver_nats::NatsDriver::connect(&url.parse().unwrap()).await else {
        return;
    };
    let js = jetstream::new(driver.client().clone());
    let mut names = js.stream_names();
    let mut doomed = Vec::new();
    let ours = format!("{}-", msg_driver_nats::encode_name(&[prefix]));
    let earlier = format!("{prefix}~");
    while let Some(Ok(name)) = names.next().await {
        if name.starts_with(&ours) || name.starts_with(&earlier) {
            doomed.push(name);
        }
    }
    for name in doomed {
        let _ = js.delete_stream(&name).await;
    }
    use msg_core::Driver;
    let _ = driver.cleanup().await;
}

/// Logs to stderr when `MSG_TEST_LOG` is set (its value is the filter), through the
/// testkit's capture, which the hostile-peer suite reads too.
pub fn init_logging() {
    let _ = msg_testkit::capture_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_max_payload_is_refused_before_sending() {
    let Some(url) = nats_url("nats max_payload") else {
        return;
    };
    let (url, prefix) = prefixed(&url);
    let d = connect(&url).await;
    let big = "x".repeat(d.client().max_payload() + 10);
    let opts = SendOptions {
        timeout: Some(Duration::from_secs(5)),
        ..SendOptions::default()
    };
    for r in [
        d.call(
            &Target::topic("big"),
            &Context::new(),
            &request("m", json!({"s": big})),
            &opts,
        )
        .await
        .map(|_| ()),
        d.cast(
            &Target::topic("big"),
            &Context::new(),
            &request("m", json!({"s": big})),
            &opts,
        )
        .await,
        d.send_notification(
            &Target::topic("big"),
            &Context::new(),
            &Notification::new("p", "e", Priority::Info, json!({"s": big})),
            EnvelopeVersion::V2,
            Retry::Attempts(0),
        )
        .await,
    ] {
        match r {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("max_payload"), "{m}"),
            other => panic!("expected InvalidArgument (max_payload), got {other:?}"),
        }
    }
    delete_streams(&url, &prefix).await;
    let _ = d.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn casts_at_least_once_get_a_receipt_or_undeliverable() {
    let Some(url) = nats_url("nats at_least_once") else {
        return;
    };
    let server = connect(&url).await;
    let client = connect(&url).await;
    let topic = format!("alo-{}", uuid::Uuid::new_v4().simple());
    let opts = SendOptions {
        at_least_once: true,
        timeout: Some(Duration::from_secs(5)),
        ..SendOptions::default()
    };
    let r = client
        .cast(
            &Target::topic(&topic),
            &Context::new(),
            &request("m", json!({})),
            &opts,
        )
        .await;
    assert!(matches!(r, Err(Error::Undeliverable { .. })), "{r:?}");
    let mut l = server
        .listen(&Target::server(&topic, "s1"), &ListenOptions::default())
        .await
        .unwrap();
    client
        .cast(
            &Target::topic(&topic),
            &Context::new(),
            &request("m", json!({"k": 1})),
            &opts,
        )
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), l.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.request.args.get("k"), Some(json!(1)));
    // a call nobody serves is NoResponders (Undeliverable when at_least_once)
    let r = client
        .call(
            &Target::topic("nobody-serves-this"),
            &Context::new(),
            &request("m", json!({})),
            &opts,
        )
        .await;
    assert!(matches!(r, Err(Error::Undeliverable { .. })), "{r:?}");
    l.stop();
    let _ = server.cleanup().await;
    let _ = client.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_leaves_the_queue_group_until_it_halves() {
    let Some(url) = nats_url("nats rpc backlog") else {
        return;
    };
    let url = with_option(&url, "rpc_backlog=4");
    let topic = format!("backlog-{}", uuid::Uuid::new_v4().simple());
    let (a, b, client) = (
        connect(&url).await,
        connect(&url).await,
        connect(&url).await,
    );
    // `a` takes nothing off its stream; `b` serves
    let mut slow = a
        .listen(&Target::server(&topic, "a"), &ListenOptions::default())
        .await
        .unwrap();
    let mut fast = b
        .listen(&Target::server(&topic, "b"), &ListenOptions::default())
        .await
        .unwrap();
    let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let serving = {
        let taken = taken.clone();
        tokio::spawn(async move {
            while let Some(_req) = fast.next().await {
                taken.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        })
    };
    // paced, so `a`'s leaving the group takes effect between two casts
    for i in 0..60 {
        client
            .cast(
                &Target::topic(&topic),
                &Context::new(),
                &request("m", json!({"i": i})),
                &SendOptions::default(),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let start = Instant::now();
    while taken.load(std::sync::atomic::Ordering::SeqCst) < 52
        && start.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut held = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), slow.next()).await {
        held += 1;
    }
    let b_got = taken.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(held + b_got, 60, "a held {held}, b took {b_got}");
    assert!(held <= 8, "a held {held} with a backlog of 4");
    // `a` took its backlog: it is back in the group and gets its share again
    for i in 0..40 {
        client
            .cast(
                &Target::topic(&topic),
                &Context::new(),
                &request("m", json!({"i": i})),
                &SendOptions::default(),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut again = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), slow.next()).await {
        again += 1;
    }
    assert!(again > 0, "a didn't rejoin the queue group");
    slow.stop();
    serving.abort();
    for d in [a, b, client] {
        assert_eq!(d.stats().slow_consumers, 0);
        let _ = d.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeued_too_often_goes_to_the_dead_letter_subject() {
    let Some(url) = nats_url("nats dead letters") else {
        return;
    };
    let (url, prefix) = prefixed(&url);
    let url = with_option(&url, "max_deliveries=2");
    let d = connect(&url).await;
    let target = Target::topic("poison");
    d.send_notification(
        &target,
        &Context::new(),
        &Notification::new("p", "poison.event", Priority::Error, json!({"i": 1})),
        EnvelopeVersion::V2,
        Retry::Attempts(1),
    )
    .await
    .unwrap();
    let mut l = d
        .listen_for_notifications(
            &[(target, Priority::Error)],
            None,
            &ListenOptions::default(),
        )
        .await
        .unwrap();
    // delivered 3 times: requeued twice, the third requeue dead-letters it
    for _ in 0..3 {
        let n = tokio::time::timeout(Duration::from_secs(5), l.next())
            .await
            .unwrap()
            .unwrap();
        n.requeue(None).await.unwrap();
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(500), l.next())
            .await
            .is_err(),
        "redelivered after the dead-lettering"
    );
    let js = jetstream::new(d.client().clone());
    let subject = d
        .layout()
        .dead_letter_subject("openstack", "poison", Priority::Error)
        .unwrap();
    let stream = js
        .get_stream(d.layout().dead_letter_stream("openstack").unwrap())
        .await
        .unwrap();
    let msg = stream
        .get_last_raw_message_by_subject(&subject)
        .await
        .unwrap();
    let headers = msg.headers;
    assert_eq!(
        headers
            .get("Msg-Dead-Letter-Deliveries")
            .map(|v| v.as_str()),
        Some("3")
    );
    assert!(String::from_utf8_lossy(&msg.payload).contains("poison.event"));
    l.stop();
    delete_streams(&url, &prefix).await;
    let _ = d.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_urls_servers_are_tried_in_turn() {
    let Some(url) = nats_url("nats several servers") else {
        return;
    };
    let good: TransportUrl = url.parse().unwrap();
    let host = &good.hosts()[0];
    // a port nothing listens on first
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let both = format!(
        "nats://127.0.0.1:{free},{}:{}?connection_timeout=2",
        host.hostname,
        host.port_or(4222)
    );
    let d = connect(&both).await;
    assert!(d.server_version().starts_with('2'));
    let _ = d.cleanup().await;
    let none = format!("nats://127.0.0.1:{free}?connection_timeout=1");
    let r = NatsDriver::connect(&none.parse().unwrap()).await;
    assert!(matches!(r, Err(Error::Unavailable { .. })), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_events_are_counted() {
    let Some(url) = nats_url("nats slow consumer") else {
        return;
    };
    let d = connect(&with_option(&url, "subscription_capacity=2")).await;
    let subject = format!("slow.{}", uuid::Uuid::new_v4().simple());
    // a raw subscription nobody reads: async-nats drops past its capacity
    let _sub = d.client().subscribe(subject.clone()).await.unwrap();
    d.client().flush().await.unwrap();
    for _ in 0..50 {
        d.client()
            .publish(subject.clone(), "x".into())
            .await
            .unwrap();
    }
    d.client().flush().await.unwrap();
    let start = Instant::now();
    while d.stats().slow_consumers == 0 && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(d.stats().slow_consumers > 0, "{:?}", d.stats());
    let _ = d.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_password_authentication() {
    init_logging();
    let Some(tok) = NatsServer::start_with("nats token auth", &["--auth", "s3cr3t-token"]) else {
        return;
    };
    let ok = connect(&format!("nats://:s3cr3t-token@127.0.0.1:{}", tok.port)).await;
    assert!(!ok.has_jetstream() || ok.server_version().starts_with('2'));
    let _ = ok.cleanup().await;
    let bad = NatsDriver::connect(
        &format!(
            "nats://:wrong-token@127.0.0.1:{}?connection_timeout=2",
            tok.port
        )
        .parse()
        .unwrap(),
    )
    .await
    .unwrap_err();
    let text = bad.to_string();
    assert!(!text.contains("wrong-token"), "the token leaked: {text}");
    // NATS's own `TOKEN@host` form works too, and isn't shown either
    let ok = connect(&format!("nats://s3cr3t-token@127.0.0.1:{}", tok.port)).await;
    let _ = ok.cleanup().await;
    let bad = NatsDriver::connect(
        &format!(
            "nats://other-token@127.0.0.1:{}?connection_timeout=2",
            tok.port
        )
        .parse()
        .unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        !bad.to_string().contains("other-token"),
        "the token leaked: {bad}"
    );

    let Some(pw) = NatsServer::start_with(
        "nats password auth",
        &["--user", "alice", "--pass", "pa55word"],
    ) else {
        return;
    };
    let ok = connect(&format!("nats://alice:pa55word@127.0.0.1:{}", pw.port)).await;
    let _ = ok.cleanup().await;
    let bad = NatsDriver::connect(
        &format!(
            "nats://alice:nope-nope@127.0.0.1:{}?connection_timeout=2",
            pw.port
        )
        .parse()
        .unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        !bad.to_string().contains("nope-nope"),
        "the password leaked: {bad}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_acks_keep_a_long_handler_and_requeue_can_wait() {
    let Some(url) = nats_url("nats progress acks") else {
        return;
    };
    let (url, prefix) = prefixed(&url);
    let url = with_option(&url, "ack_wait=1");
    let (a, b, sender) = (
        connect(&url).await,
        connect(&url).await,
        connect(&url).await,
    );
    let target = Target::topic("slow-handler");
    let subs = [(target.clone(), Priority::Info)];
    let mut la = a
        .listen_for_notifications(&subs, None, &ListenOptions { prefetch: 1 })
        .await
        .unwrap();
    let mut lb = b
        .listen_for_notifications(&subs, None, &ListenOptions { prefetch: 1 })
        .await
        .unwrap();
    sender
        .send_notification(
            &target,
            &Context::new(),
            &Notification::new("p", "e", Priority::Info, json!({"i": 1})),
            EnvelopeVersion::V2,
            Retry::Attempts(1),
        )
        .await
        .unwrap();
    let first = tokio::select! {
        n = la.next() => n.unwrap(),
        n = lb.next() => n.unwrap(),
    };
    // held three ack waits: the other listener must not get it
    let other = tokio::time::timeout(Duration::from_secs(3), async {
        tokio::select! {
            n = la.next() => n,
            n = lb.next() => n,
        }
    })
    .await;
    assert!(
        other.is_err(),
        "redelivered while its handler still held it"
    );
    // a delayed requeue comes back after the delay, not before
    let start = Instant::now();
    first
        .requeue(Some(Duration::from_millis(1500)))
        .await
        .unwrap();
    let again = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::select! {
            n = la.next() => n,
            n = lb.next() => n,
        }
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        start.elapsed()
    );
    again.ack().await.unwrap();
    la.stop();
    lb.stop();
    delete_streams(&url, &prefix).await;
    for d in [a, b, sender] {
        let _ = d.cleanup().await;
    }
}
