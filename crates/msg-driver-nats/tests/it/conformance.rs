use async_nats::jetstream;
use msg_core::{Capability, Driver, DriverRegistry, Priority};
use msg_driver_nats::NatsDriver;
use msg_testkit::{PoisonAnswer, PoisonOutcome};

use crate::{nats_url, with_option};

/// The NATS driver on the server of `MSG_NATS_URL`, under a subject prefix of the case's
/// own (its streams and consumers are deleted after it): every capability but
/// `DurableCasts` (core NATS keeps no cast for a server that isn't there), so
/// `rpc_cast_kept_until_a_server_listens` is the one case skipped.
async fn suite() -> Option<msg_testkit::Suite> {
    crate::driver::init_logging();
    let url = nats_url("nats conformance")?;
    let prefix = format!(
        "msgtest-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let url = with_option(&url, &format!("subject_prefix={prefix}"));
    let required = Capability::ALL
        .into_iter()
        .filter(|c| *c != Capability::DurableCasts);
    let teardown_url = url.clone();
    Some(
        msg_testkit::Suite::new(msg_driver_nats::factory(), url)
            .require(required)
            .teardown(move || async move {
                crate::driver::delete_streams(&teardown_url, &prefix).await;
            }),
    )
}

msg_testkit::conformance_suite!(suite: suite);

/// One poison notification in a batch of good ones, with `max_deliveries=3`: the good ones
/// are handled once each, and the poison one alone reaches the dead-letter stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_in_a_batch_is_dead_lettered_alone() {
    let Some(url) = nats_url("nats batch poison") else {
        return;
    };
    let prefix = format!(
        "msgtest-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let url = with_option(&url, &format!("subject_prefix={prefix}&max_deliveries=3"));
    let registry = DriverRegistry::new().with(msg_driver_nats::factory());
    let listener = registry.open(&url).await.unwrap();
    let notifier = registry.open(&url).await.unwrap();
    let topic = "batch-poison";
    let out = msg_testkit::batch_with_a_poison(
        listener.clone(),
        notifier.clone(),
        topic,
        PoisonAnswer::WholeBatch,
    )
    .await;
    let _ = listener.cleanup().await;
    let _ = notifier.cleanup().await;

    let d = NatsDriver::connect(&url.parse().unwrap()).await.unwrap();
    let js = jetstream::new(d.client().clone());
    let dead = match js
        .get_stream(d.layout().dead_letter_stream("openstack").unwrap())
        .await
    {
        Ok(mut stream) => {
            let messages = stream.info().await.map(|i| i.state.messages).unwrap_or(0);
            let subject = d
                .layout()
                .dead_letter_subject("openstack", topic, Priority::Info)
                .unwrap();
            let last = stream
                .get_last_raw_message_by_subject(&subject)
                .await
                .map(|m| String::from_utf8_lossy(&m.payload).into_owned());
            (messages, last.ok())
        }
        Err(_) => (0, None),
    };
    let _ = d.cleanup().await;
    crate::driver::delete_streams(&url, &prefix).await;

    let out = out.unwrap();
    eprintln!("{out:?}");
    assert_eq!(out.handled, PoisonOutcome::expected_handled(), "{out:?}");
    assert!(
        out.poison_gone,
        "the poison should stop coming back past max_deliveries: {out:?}"
    );
    assert_eq!(dead.0, 1, "only the poison should be dead-lettered");
    assert!(
        dead.1
            .as_deref()
            .is_some_and(|body| body.contains("poison")),
        "{dead:?}"
    );
}
