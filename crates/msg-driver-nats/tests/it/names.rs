//! Stream and consumer names: any exchange, topic or pool name works end to end (received
//! and acknowledged), and what an earlier release made under its earlier names is found and
//! used (the stream) or moved (the consumers).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, stream};
use futures::StreamExt;
use msg_core::{
    Context, Driver, EnvelopeVersion, ListenOptions, Notification, Priority, Retry, Target, codec,
};
use msg_driver_nats::NatsDriver;
use serde_json::json;

use crate::driver::delete_streams;
use crate::{nats_url, with_option};

fn own_prefix(url: &str) -> (String, String) {
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

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Waits (at most 10 s) until the consumer has nothing unacknowledged and its ack floor is
/// at `seq`: the acks reached the server.
async fn wait_acked(js: &jetstream::Context, stream: &str, consumer: &str, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = js
            .get_consumer_from_stream::<pull::Config, _, _>(consumer, stream)
            .await
            .unwrap()
            .cached_info()
            .clone();
        if info.num_ack_pending == 0 && info.ack_floor.stream_sequence >= seq {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "consumer `{consumer}` of `{stream}`: acks didn't arrive: {} pending, ack floor {}",
            info.num_ack_pending,
            info.ack_floor.stream_sequence
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn receive(l: &mut msg_core::NotificationListener, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..n {
        let m = tokio::time::timeout(Duration::from_secs(10), l.next())
            .await
            .expect("a notification within 10 s")
            .expect("the listener ended");
        got.push(m.notification.event_type.clone());
        m.ack().await.unwrap();
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_dots_dashes_colons_and_at_signs_are_received_and_acked() {
    crate::driver::init_logging();
    let Some(url) = nats_url("nats names") else {
        return;
    };
    let (url, prefix) = own_prefix(&url);
    let d = connect(&url).await;
    let js = jetstream::new(d.client().clone());
    // a name over 200 bytes is shortened with a hash
    let long = "long.topic-".repeat(20);
    for (exchange, topic, pool) in [
        ("openstack", "a.b", None),
        ("openstack", "a.b", Some("pool.x@y:z-1")),
        ("ex.change", "t-1:x@y", Some("p_q")),
        ("ex@1:2-3", "a.b.c", None),
        ("openstack", long.as_str(), Some("p")),
    ] {
        let target = Target::topic(topic).with_exchange(exchange);
        let mut l = d
            .listen_for_notifications(
                &[(target.clone(), Priority::Info)],
                pool,
                &ListenOptions::default(),
            )
            .await
            .unwrap();
        for i in 0..3 {
            d.send_notification(
                &target,
                &Context::new(),
                &Notification::new("p", format!("e{i}"), Priority::Info, json!({"i": i})),
                EnvelopeVersion::V2,
                Retry::Attempts(1),
            )
            .await
            .unwrap();
        }
        let got = receive(&mut l, 3).await;
        assert_eq!(got, ["e0", "e1", "e2"], "{exchange} {topic} {pool:?}");
        let layout = d.layout();
        let stream = layout.notify_stream(exchange).unwrap();
        let consumer = match pool {
            Some(p) => layout.pool_consumer(p, topic, Priority::Info).unwrap(),
            None => layout.default_consumer(topic, Priority::Info).unwrap(),
        };
        assert!(stream.bytes().all(is_name_byte), "{stream}");
        assert!(consumer.bytes().all(is_name_byte), "{consumer}");
        assert!(consumer.len() <= 200, "{consumer}");
        let last = js
            .get_stream(&stream)
            .await
            .unwrap()
            .cached_info()
            .state
            .last_sequence;
        wait_acked(&js, &stream, &consumer, last).await;
        l.stop();
    }
    delete_streams(&url, &prefix).await;
    let _ = d.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_consumers_of_an_earlier_release_are_used_and_moved() {
    crate::driver::init_logging();
    let Some(url) = nats_url("nats earlier names") else {
        return;
    };
    let (url, prefix) = own_prefix(&url);
    // a raw client makes what an earlier release made: the stream and two default consumers
    let raw = async_nats::connect(url.split('?').next().unwrap())
        .await
        .unwrap();
    let js = jetstream::new(raw.clone());
    let earlier_stream = format!("{prefix}~notify~openstack");
    js.create_stream(stream::Config {
        name: earlier_stream.clone(),
        subjects: vec![format!("{prefix}.notify.openstack.>")],
        retention: stream::RetentionPolicy::Interest,
        ..stream::Config::default()
    })
    .await
    .unwrap();
    let s = js.get_stream(&earlier_stream).await.unwrap();
    for (name, topic) in [
        ("default~plain~info", "plain"),
        ("default~a%2Eb~info", "a%2Eb"),
    ] {
        s.create_consumer(pull::Config {
            durable_name: Some(name.into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            max_deliver: -1,
            filter_subject: format!("{prefix}.notify.openstack.{topic}.info"),
            ..pull::Config::default()
        })
        .await
        .unwrap();
    }
    for (topic, i) in [
        ("plain", 0),
        ("plain", 1),
        ("plain", 2),
        ("a%2Eb", 0),
        ("a%2Eb", 1),
    ] {
        let body = codec::encode_notification(
            &Context::new(),
            &Notification::new("p", format!("{topic}-{i}"), Priority::Info, json!({})),
            &uuid::Uuid::new_v4().to_string(),
            EnvelopeVersion::V2,
        )
        .unwrap();
        js.publish(
            format!("{prefix}.notify.openstack.{topic}.info"),
            body.into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    // the earlier release's listener took the first plain one and acknowledged it
    let plain: jetstream::consumer::PullConsumer =
        s.get_consumer("default~plain~info").await.unwrap();
    let mut batch = plain.fetch().max_messages(1).messages().await.unwrap();
    let first = batch.next().await.unwrap().unwrap();
    first.double_ack().await.unwrap();

    let d = connect(&url).await;
    let mut l = d
        .listen_for_notifications(
            &[
                (Target::topic("plain"), Priority::Info),
                (Target::topic("a.b"), Priority::Info),
            ],
            None,
            &ListenOptions::default(),
        )
        .await
        .unwrap();
    let mut got = receive(&mut l, 4).await;
    got.sort();
    assert_eq!(got, ["a%2Eb-0", "a%2Eb-1", "plain-1", "plain-2"]);
    // sent by this release: stored by the earlier stream, taken by the moved consumer
    d.send_notification(
        &Target::topic("a.b"),
        &Context::new(),
        &Notification::new("p", "new", Priority::Info, json!({})),
        EnvelopeVersion::V2,
        Retry::Attempts(1),
    )
    .await
    .unwrap();
    assert_eq!(receive(&mut l, 1).await, ["new"]);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), l.next())
            .await
            .is_err(),
        "more than was sent"
    );

    let layout = d.layout();
    assert!(
        js.get_stream(layout.notify_stream("openstack").unwrap())
            .await
            .is_err(),
        "a second stream was made"
    );
    let mut names: Vec<String> = s.consumer_names().map(|n| n.unwrap()).collect().await;
    names.sort();
    let mut want = vec![
        layout.default_consumer("a.b", Priority::Info).unwrap(),
        layout.default_consumer("plain", Priority::Info).unwrap(),
    ];
    want.sort();
    assert_eq!(names, want, "the earlier consumers are moved");
    wait_acked(&js, &earlier_stream, &want[0], 6).await;
    wait_acked(&js, &earlier_stream, &want[1], 3).await;
    l.stop();
    delete_streams(&url, &prefix).await;
    let _ = d.cleanup().await;
}
