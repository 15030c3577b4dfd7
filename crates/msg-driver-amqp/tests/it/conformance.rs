use lapin::options::{BasicGetOptions, QueueDeleteOptions};

use msg_core::{Capability, DriverRegistry};
use msg_testkit::{PoisonAnswer, PoisonOutcome};

use crate::{rabbit_url, raw_connection};

/// The RabbitMQ driver on the broker of `MSG_RABBIT_URL`: every capability but
/// `NoResponders` (RabbitMQ can't tell "nobody listens" from "slow"), so `rpc_no_responders`
/// is the one case skipped.
async fn suite() -> Option<msg_testkit::Suite> {
    let url = rabbit_url("amqp conformance")?;
    let required = Capability::ALL
        .into_iter()
        .filter(|c| *c != Capability::NoResponders);
    Some(msg_testkit::Suite::new(msg_driver_amqp::factory(), url).require(required))
}

msg_testkit::conformance_suite!(suite: suite);

/// One poison notification in a batch of good ones, with `max_redeliveries=3`: the good ones
/// are handled once each, and the poison one alone reaches `<queue>.dead-letter`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_in_a_batch_is_dead_lettered_alone() {
    let Some(url) = rabbit_url("amqp batch poison") else {
        return;
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let capped = format!("{url}{sep}max_redeliveries=3");
    let registry = DriverRegistry::new().with(msg_driver_amqp::factory());
    let listener = registry.open(&capped).await.unwrap();
    let notifier = registry.open(&capped).await.unwrap();
    let topic = format!(
        "batch-poison-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let out = msg_testkit::batch_with_a_poison(
        listener.clone(),
        notifier.clone(),
        &topic,
        PoisonAnswer::WholeBatch,
    )
    .await;
    let _ = listener.cleanup().await;
    let _ = notifier.cleanup().await;

    let queue = format!("{topic}.info");
    let dead_letters = format!("{queue}.dead-letter");
    let conn = raw_connection(&url).await;
    let ch = conn.create_channel().await.unwrap();
    let mut dead = Vec::new();
    for _ in 0..10 {
        match ch
            .basic_get(
                dead_letters.as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
        {
            Ok(Some(m)) => dead.push(String::from_utf8_lossy(&m.delivery.data).into_owned()),
            _ => break,
        }
    }
    for q in [&queue, &dead_letters] {
        let _ = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "OK".into()).await;

    let out = out.unwrap();
    eprintln!("{out:?}");
    assert_eq!(out.handled, PoisonOutcome::expected_handled(), "{out:?}");
    assert!(
        out.poison_gone,
        "the poison should stop coming back past max_redeliveries: {out:?}"
    );
    assert_eq!(
        dead.len(),
        1,
        "only the poison should be dead-lettered: {dead:?}"
    );
    assert!(
        dead.first().is_some_and(|body| body.contains("poison")),
        "{dead:?}"
    );
}
