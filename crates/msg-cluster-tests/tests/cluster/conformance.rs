//! The conformance suite's end-to-end cases (`e2e_rpc_*`, `e2e_notify_*`: the real client
//! and server stack) on the clusters, one test per case: RabbitMQ with quorum queues, NATS
//! with R3 streams.

use msg_cluster_tests::{NatsCluster, RabbitCluster, with_option};
use msg_core::Capability;

/// The RabbitMQ cluster with quorum queues: every capability but `NoResponders`, as on a
/// single broker.
async fn rabbit_suite() -> Option<msg_testkit::Suite> {
    let cluster = RabbitCluster::from_env("rabbit cluster conformance")?;
    let url = with_option(cluster.url(), "rabbit_quorum_queue=true");
    let required = Capability::ALL
        .into_iter()
        .filter(|c| *c != Capability::NoResponders);
    Some(msg_testkit::Suite::new(msg_driver_amqp::factory(), url).require(required))
}

/// The NATS cluster with R3 streams, under a subject prefix of the case's own (deleted
/// after it): every capability but `DurableCasts`, as on a single server.
async fn nats_suite() -> Option<msg_testkit::Suite> {
    let cluster = NatsCluster::from_env("nats cluster conformance")?;
    let prefix = crate::fault::unique("msgcl");
    let url = with_option(
        cluster.url(),
        &format!("stream_replicas=3&subject_prefix={prefix}"),
    );
    let required = Capability::ALL
        .into_iter()
        .filter(|c| *c != Capability::DurableCasts);
    let teardown_url = url.clone();
    Some(
        msg_testkit::Suite::new(msg_driver_nats::factory(), url)
            .require(required)
            .teardown(move || async move {
                crate::nats_faults::delete_streams(&teardown_url, &prefix).await;
            }),
    )
}

/// `rabbit_cluster::e2e_*`: the end-to-end cases on quorum queues.
mod rabbit_cluster {
    msg_testkit::conformance_suite!(suite: super::rabbit_suite, cases: [e2e_rpc, e2e_notify]);
}

/// `nats_cluster::e2e_*`: the end-to-end cases on R3 streams.
mod nats_cluster {
    msg_testkit::conformance_suite!(suite: super::nats_suite, cases: [e2e_rpc, e2e_notify]);
}
