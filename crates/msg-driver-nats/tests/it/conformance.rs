use async_nats::jetstream;
use msg_core::{Capability, Driver, DriverRegistry, Priority};
use msg_driver_nats::NatsDriver;
use msg_testkit::{PoisonAnswer, PoisonOutcome};

use crate::{nats_url, with_option};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_driver_passes_the_conformance_suite() {
    crate::driver::init_logging();
    let Some(url) = nats_url("nats conformance") else {
        return;
    };
    // a prefix of this run's own: its streams and consumers are deleted at the end
    let prefix = format!(
        "msgtest-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let url = with_option(&url, &format!("subject_prefix={prefix}"));
    let required: Vec<Capability> = Capability::ALL
        .into_iter()
        .filter(|c| *c != Capability::DurableCasts)
        .collect();
    let mut suite =
        msg_testkit::Conformance::new(msg_driver_nats::factory(), url.clone()).require(required);
    if let Ok(only) = std::env::var("MSG_CONFORMANCE_ONLY") {
        suite = suite.only(only);
    }
    let report = suite.run().await;
    eprintln!("{report}");
    crate::driver::delete_streams(&url, &prefix).await;
    // core NATS keeps no message for a server that isn't there: a cast sent while no server
    // listens is lost, so that one case is skipped
    let skipped: Vec<&str> = report.skips().iter().map(|(n, _)| *n).collect();
    if std::env::var("MSG_CONFORMANCE_ONLY").is_err() {
        assert_eq!(
            skipped,
            vec!["rpc_cast_kept_until_a_server_listens"],
            "unexpected skips"
        );
    }
    report.assert_ok();
}

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
