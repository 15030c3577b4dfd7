//! A listener facing a backlog on JetStream holds no more than its prefetch (its pulls ask
//! for its free slots only), by the server's count (`num_ack_pending`) and its own, then
//! drains all of it.

use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use msg_core::{DriverRegistry, Transport};
use msg_testkit::{Backlog, backlog_within_prefetch};

use crate::driver::delete_streams;
use crate::{nats_url, with_option};

/// The listener's prefetch (below `max_ack_pending`, 1000, the consumer's own bound).
const PREFETCH: u32 = 50;

async fn open(url: &str) -> Transport {
    DriverRegistry::new()
        .with(msg_driver_nats::factory())
        .open(url)
        .await
        .unwrap()
}

/// The messages the server delivered and awaits acks for, on every consumer of the streams
/// of `prefix`.
async fn ack_pending(js: &jetstream::Context, prefix: &str) -> Option<u64> {
    let ours = format!("{}-", msg_driver_nats::encode_name(&[prefix]));
    let mut names = js.stream_names();
    let mut pending = 0;
    while let Some(name) = names.next().await {
        let name = name.ok()?;
        if !name.starts_with(&ours) {
            continue;
        }
        let stream = js.get_stream(&name).await.ok()?;
        let mut consumers = stream.consumers();
        while let Some(info) = consumers.next().await {
            pending += u64::try_from(info.ok()?.num_ack_pending).ok()?;
        }
    }
    Some(pending)
}

async fn backlog(suite: &str, count: u64) {
    let Some(url) = nats_url(suite) else {
        return;
    };
    let prefix = format!(
        "msgtest-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let url = with_option(&url, &format!("subject_prefix={prefix}"));
    // the server's side, asked on a connection of its own
    let inspect = msg_driver_nats::NatsDriver::connect(&url.parse().unwrap())
        .await
        .unwrap();
    let js = jetstream::new(inspect.client().clone());
    let run = Backlog {
        sender: open(&url).await,
        listener: open(&url).await,
        topic: format!("backlog-{prefix}"),
        count,
        prefetch: PREFETCH,
        limit: Duration::from_secs(60),
    };
    let report = tokio::time::timeout(
        Duration::from_secs(200),
        backlog_within_prefetch(run, || ack_pending(&js, &prefix)),
    )
    .await
    .expect("the backlog run ends");
    eprintln!("nats backlog of {count}: {report:?}");
    delete_streams(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_facing_a_backlog_holds_no_more_than_its_prefetch() {
    backlog("nats backlog 20,000", 20_000).await;
}

/// The figure; see docs/benchmarks.md for how long it takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "100,000 notifications: run by hand (cargo test -p msg-driver-nats --test it backlog -- --ignored)"]
async fn a_listener_facing_a_backlog_of_100_000_holds_no_more_than_its_prefetch() {
    backlog("nats backlog 100,000", 100_000).await;
}
