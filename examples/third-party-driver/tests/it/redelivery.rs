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

async fn next(l: &mut msg_core::NotificationListener) -> msg_core::IncomingNotification {
    tokio::time::timeout(Duration::from_secs(10), l.next())
        .await
        .expect("nothing arrived")
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

/// Redis's trimming ignores groups, so listeners trim below the floor of all groups: what
/// one group still holds stays, what all are done with goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_trimmed_below_what_every_group_is_done_with() {
    let Some(url) = redis_url("redis retention") else {
        return;
    };
    let (url, prefix) = prefixed(&url);
    let topic = "retention";
    let subs = [(Target::topic(topic), Priority::Info)];
    let t = open(&url).await;
    let mut default = t
        .driver()
        .listen_for_notifications(&subs, None, &ListenOptions::default())
        .await
        .unwrap();
    let mut pool = t
        .driver()
        .listen_for_notifications(&subs, Some("keeper"), &ListenOptions::default())
        .await
        .unwrap();
    for i in 0..10 {
        notify(&t, topic, json!({"i": i})).await;
    }
    let mut held = Vec::new();
    for _ in 0..10 {
        next(&mut default).await.ack().await.unwrap();
        held.push(next(&mut pool).await);
    }
    let d = msg_driver_redis::RedisDriver::connect(&url.parse().unwrap())
        .await
        .unwrap();
    let key = d.keys().notify("openstack", topic, Priority::Info);
    let mut conn = raw_client(d.options())
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let len = |mut c: redis::aio::MultiplexedConnection, key: String| async move {
        redis::cmd("XLEN")
            .arg(key)
            .query_async::<u64>(&mut c)
            .await
            .unwrap()
    };
    // a tidy runs every 10 s: past one, the pool's unacked messages are all still there
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        len(conn.clone(), key.clone()).await,
        10,
        "trimmed what a group holds"
    );
    for n in held {
        n.ack().await.unwrap();
    }
    let start = std::time::Instant::now();
    loop {
        let n = len(conn.clone(), key.clone()).await;
        if n <= 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{n} entries left after every group acked"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _: () = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    default.stop();
    pool.stop();
    delete_keys(&url, &prefix).await;
}
