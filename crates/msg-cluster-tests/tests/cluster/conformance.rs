//! The conformance suite's end-to-end cases (`e2e_rpc_*`, `e2e_notify_*`: the real client
//! and server stack) on the clusters: RabbitMQ with quorum queues, NATS with R3 streams.

use msg_cluster_tests::{NatsCluster, RabbitCluster, with_option};
use msg_core::Capability;

/// The cases run: every end-to-end case, RPC and notifications.
const CASES: &str = "e2e_";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_cluster_passes_the_end_to_end_cases_on_quorum_queues() {
    let Some(cluster) = RabbitCluster::from_env("rabbit cluster conformance") else {
        return;
    };
    let url = with_option(cluster.url(), "rabbit_quorum_queue=true");
    let required: Vec<Capability> = Capability::ALL
        .into_iter()
        .filter(|c| *c != Capability::NoResponders)
        .collect();
    let report = msg_testkit::Conformance::new(msg_driver_amqp::factory(), url)
        .require(required)
        .only(CASES)
        .run()
        .await;
    eprintln!("{report}");
    // the skips the single-broker run allows: nobody-listens can't be told from slow
    for (name, _) in report.skips() {
        assert_eq!(name, "rpc_no_responders", "unexpected skip");
    }
    report.assert_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_cluster_passes_the_end_to_end_cases_on_r3_streams() {
    let Some(cluster) = NatsCluster::from_env("nats cluster conformance") else {
        return;
    };
    let prefix = crate::fault::unique("msgcl");
    let url = with_option(
        cluster.url(),
        &format!("stream_replicas=3&subject_prefix={prefix}"),
    );
    let required: Vec<Capability> = Capability::ALL
        .into_iter()
        .filter(|c| *c != Capability::DurableCasts)
        .collect();
    let report = msg_testkit::Conformance::new(msg_driver_nats::factory(), url.clone())
        .require(required)
        .only(CASES)
        .run()
        .await;
    eprintln!("{report}");
    crate::nats_faults::delete_streams(&url, &prefix).await;
    // the skips the single-server run allows: core NATS keeps no cast for an absent server
    for (name, _) in report.skips() {
        assert_eq!(
            name, "rpc_cast_kept_until_a_server_listens",
            "unexpected skip"
        );
    }
    report.assert_ok();
}
