//! A listener facing a backlog on RabbitMQ holds no more than its prefetch (`basic.qos`),
//! by the broker's count and its own, then drains all of it.

use std::time::Duration;

use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use msg_testkit::{Backlog, backlog_within_prefetch};

use crate::faults::{open, unique};
use crate::{rabbit_url, raw_connection};

/// The listener's prefetch.
const PREFETCH: u32 = 50;

async fn backlog(suite: &str, count: u64) {
    let Some(url) = rabbit_url(suite) else {
        return;
    };
    let topic = unique("backlog");
    let queue = format!("{topic}.info");
    let inspect = raw_connection(&url).await;
    let channel = inspect.create_channel().await.unwrap();
    let run = Backlog {
        sender: open(&url).await,
        listener: open(&url).await,
        topic,
        count,
        prefetch: PREFETCH,
        limit: Duration::from_secs(60),
    };
    // the gate is shut, so nothing is acked: what isn't ready was delivered to the listener
    let held = || async {
        let q = channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .ok()?;
        count.checked_sub(u64::from(q.message_count()))
    };
    let report = tokio::time::timeout(Duration::from_secs(200), backlog_within_prefetch(run, held))
        .await
        .expect("the backlog run ends");
    eprintln!("amqp backlog of {count}: {report:?}");
    let _ = channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = inspect.close(200, "OK".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_facing_a_backlog_holds_no_more_than_its_prefetch() {
    backlog("amqp backlog 20,000", 20_000).await;
}

/// The figure; see docs/benchmarks.md for how long it takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "100,000 notifications: run by hand (cargo test -p msg-driver-amqp --test it backlog -- --ignored)"]
async fn a_listener_facing_a_backlog_of_100_000_holds_no_more_than_its_prefetch() {
    backlog("amqp backlog 100,000", 100_000).await;
}
