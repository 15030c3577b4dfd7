//! What Redis makes the driver do itself: take over the messages of a listener that died
//! (`XAUTOCLAIM` after `claim_idle`), and dead-letter a message delivered too often.

use std::time::Duration;

use futures::StreamExt;
use msg_core::{
    Context, DriverRegistry, EnvelopeVersion, ListenOptions, Notification, Priority, Retry, Target,
    Transport,
};
use serde_json::json;

/// `XPENDING key group`'s summary: count, first id, last id, consumers.
type Pending = (
    u64,
    Option<String>,
    Option<String>,
    Option<Vec<(String, String)>>,
);

use crate::{delete_keys, prefixed, raw_client, redis_url, with_option};

async fn open(url: &str) -> Transport {
    DriverRegistry::new()
        .with(msg_driver_redis::factory())
        .open(url)
        .await
        .unwrap()
}

async fn notify(t: &Transport, topic: &str, payload: serde_json::Value) {
    let n = Notification::new("test.host", "test.event", Priority::Info, payload);
    t.driver()
        .send_notification(
            &Target::topic(topic),
            &Context::new(),
            &n,
            EnvelopeVersion::V2,
            Retry::Attempts(0),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_listeners_messages_are_taken_over_after_claim_idle() {
    let Some(url) = redis_url("redis crash recovery") else {
        return;
    };
    let (url, prefix) = prefixed(&url);
    let url = with_option(&url, "claim_idle=1");
    let topic = "crash";
    let subs = [(Target::topic(topic), Priority::Info)];
    let sender = open(&url).await;
    notify(&sender, topic, json!({"i": 1})).await;

    // a listener takes it and dies before settling it (no give-back: as a killed process)
    let doomed = open(&url).await;
    let mut l = doomed
        .driver()
        .listen_for_notifications(&subs, None, &ListenOptions::default())
        .await
        .unwrap();
    let taken = tokio::time::timeout(Duration::from_secs(10), l.next())
        .await
        .unwrap()
        .unwrap();
    std::mem::forget(taken);
    l.stop();
    drop(l);

    let survivor = open(&url).await;
    let mut l2 = survivor
        .driver()
        .listen_for_notifications(&subs, None, &ListenOptions::default())
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let again = tokio::time::timeout(Duration::from_secs(10), l2.next())
        .await
        .expect("the dead listener's message was not taken over")
        .unwrap();
    let took = start.elapsed();
    assert_eq!(again.notification.payload, json!({"i": 1}));
    again.ack().await.unwrap();
    eprintln!("taken over after {took:?} (claim_idle 1 s)");
    assert!(
        took >= Duration::from_millis(500),
        "taken over before claim_idle: {took:?}"
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(3), l2.next())
            .await
            .is_err(),
        "an acked message came back"
    );
    delete_keys(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_requeued_too_often_is_dead_lettered() {
    let Some(url) = redis_url("redis dead letter") else {
        return;
    };
    let (url, prefix) = prefixed(&url);
    let url = with_option(&url, "max_deliveries=3");
    let topic = "poison";
    let subs = [(Target::topic(topic), Priority::Info)];
    let t = open(&url).await;
    notify(&t, topic, json!({"poison": true})).await;
    let mut l = t
        .driver()
        .listen_for_notifications(&subs, None, &ListenOptions::default())
        .await
        .unwrap();
    let mut deliveries = 0;
    while let Ok(Some(n)) = tokio::time::timeout(Duration::from_secs(3), l.next()).await {
        deliveries += 1;
        assert!(deliveries <= 3, "delivered past max_deliveries");
        n.requeue(None).await.unwrap();
    }
    assert_eq!(deliveries, 3, "requeued at once until max_deliveries");

    let d = msg_driver_redis::RedisDriver::connect(&url.parse().unwrap())
        .await
        .unwrap();
    let key = d.keys().notify("openstack", topic, Priority::Info);
    let mut conn = raw_client(d.options())
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let dead: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(d.keys().dead_letter(&key))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let pending: Pending = redis::cmd("XPENDING")
        .arg(&key)
        .arg("default")
        .query_async(&mut conn)
        .await
        .unwrap();
    delete_keys(&url, &prefix).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let fields: std::collections::HashMap<_, _> = dead[0].1.iter().cloned().collect();
    assert!(fields["b"].contains("poison"), "{fields:?}");
    assert_eq!(fields["deliveries"], "4");
    assert_eq!(fields["source"], key);
    assert_eq!(pending.0, 0, "the dead-lettered message is still pending");
}
