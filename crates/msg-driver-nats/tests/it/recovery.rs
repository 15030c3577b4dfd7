//! JetStream consumers and streams deleted under a running listener: the listener makes them
//! again and resumes.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use msg_core::{
    Context, Driver, EnvelopeVersion, ListenOptions, Notification, NotificationListener, Priority,
    Retry, Target,
};
use msg_driver_nats::NatsDriver;
use serde_json::json;

use crate::driver::delete_streams;
use crate::{nats_url, with_option};

pub(crate) async fn send(d: &NatsDriver, target: &Target, events: std::ops::Range<u32>) {
    for i in events {
        d.send_notification(
            target,
            &Context::new(),
            &Notification::new("p", format!("e{i}"), Priority::Info, json!({"i": i})),
            EnvelopeVersion::V2,
            Retry::Attempts(3),
        )
        .await
        .unwrap();
    }
}

/// Receives and acks `n` notifications (10 s each at most), then checks nothing more comes
/// within half a second.
pub(crate) async fn receive_exactly(l: &mut NotificationListener, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..n {
        let m = tokio::time::timeout(Duration::from_secs(10), l.next())
            .await
            .unwrap_or_else(|_| panic!("only {got:?} within 10 s"))
            .expect("the listener ended");
        got.push(m.notification.event_type.clone());
        m.ack().await.unwrap();
    }
    if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), l.next()).await {
        panic!(
            "{got:?} and then {} more than expected",
            m.notification.event_type
        );
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_consumer_or_stream_is_made_again_and_the_listener_resumes() {
    crate::driver::init_logging();
    let Some(url) = nats_url("nats consumer deleted") else {
        return;
    };
    let prefix = format!(
        "msgtest-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    // `limits`: what is sent while no consumer exists is kept (an `interest` stream drops it)
    let url = with_option(
        &url,
        &format!("subject_prefix={prefix}&stream_retention=limits"),
    );
    let d = NatsDriver::connect(&url.parse().unwrap()).await.unwrap();
    let js = jetstream::new(d.client().clone());
    let target = Target::topic("recover.me");
    let mut l = d
        .listen_for_notifications(
            &[(target.clone(), Priority::Info)],
            None,
            &ListenOptions::default(),
        )
        .await
        .unwrap();
    send(&d, &target, 0..2).await;
    assert_eq!(receive_exactly(&mut l, 2).await, ["e0", "e1"]);

    // the consumer is deleted under the listener; what is sent right after is received, and
    // what was acknowledged before doesn't come again
    let stream = d.layout().notify_stream("openstack").unwrap();
    let consumer = d
        .layout()
        .default_consumer("recover.me", Priority::Info)
        .unwrap();
    js.delete_consumer_from_stream(&consumer, &stream)
        .await
        .unwrap();
    send(&d, &target, 2..5).await;
    assert_eq!(receive_exactly(&mut l, 3).await, ["e2", "e3", "e4"]);

    // the stream itself is deleted: the listener makes it and its consumer again (its
    // sequence numbers start over: the consumer starts at the beginning) and follows it
    js.delete_stream(&stream).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while js
        .get_consumer_from_stream::<pull::Config, _, _>(&consumer, &stream)
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the consumer wasn't made again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    send(&d, &target, 5..7).await;
    assert_eq!(receive_exactly(&mut l, 2).await, ["e5", "e6"]);

    l.stop();
    delete_streams(&url, &prefix).await;
    let _ = d.cleanup().await;
}
