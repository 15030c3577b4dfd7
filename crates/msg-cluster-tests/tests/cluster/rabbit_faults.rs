//! RabbitMQ cluster faults under load, on quorum queues: the node leading the call queue
//! killed (-9) and restarted; that node's `stop_app` then `start_app`; the node the client
//! is connected to killed and restarted.

use std::time::Duration;

use msg_cluster_tests::{Load, LoadConfig, RabbitCluster, RabbitNode, with_option};
use msg_core::{DriverRegistry, Transport};

use crate::fault::{self, unique};

/// How soon msg must serve again after a RabbitMQ fault.
const SERVING_AGAIN: Duration = Duration::from_secs(30);
/// How long the cluster may take to have 3 running nodes again (a killed node boots
/// again in about 15 s here).
const RESTORE: Duration = Duration::from_secs(120);

/// The suite's URL: quorum queues, quick reconnects, and a connection name to find the
/// connection's node by.
fn url(cluster: &RabbitCluster, connection_name: &str) -> String {
    with_option(
        cluster.url(),
        &format!(
            "rabbit_quorum_queue=true&heartbeat_timeout_threshold=5&rabbit_retry_interval=0.2\
             &rabbit_retry_backoff=0.2&kombu_reconnect_delay=0.1&connection_name={connection_name}"
        ),
    )
}

async fn open(url: &str) -> Transport {
    DriverRegistry::new()
        .with(msg_driver_amqp::factory())
        .open(url)
        .await
        .unwrap()
}

/// A cluster with 3 healthy nodes (a failed earlier test may have left one down), the
/// server and client transports, and the load between them.
struct Setup {
    cluster: RabbitCluster,
    server_side: Transport,
    client_side: Transport,
    client_name: String,
    topic: String,
    load: Load,
}

async fn setup(suite: &str) -> Option<Setup> {
    // MSG_TEST_LOG=<filter> shows the drivers' logs
    let _ = msg_testkit::capture_logs();
    let cluster = RabbitCluster::from_env(suite)?;
    cluster.heal(RESTORE).await.unwrap();
    let server_name = unique("cluster-server");
    let client_name = unique("cluster-client");
    let server_side = open(&url(&cluster, &server_name)).await;
    let client_side = open(&url(&cluster, &client_name)).await;
    let topic = unique("cluster-load");
    let load = Load::start(&server_side, &client_side, &topic, LoadConfig::default())
        .await
        .unwrap();
    Some(Setup {
        cluster,
        server_side,
        client_side,
        client_name,
        topic,
        load,
    })
}

async fn leader_of_the_call_queue(setup: &Setup) -> RabbitNode {
    let leader = setup.cluster.quorum_leader(&setup.topic).await.unwrap();
    let notify_leader = setup
        .cluster
        .quorum_leader(&format!("{}.info", setup.topic))
        .await
        .map(|n| n.name);
    eprintln!(
        "queue {} is led by {}; {}.info by {notify_leader:?}",
        setup.topic, leader.name, setup.topic
    );
    leader
}

async fn teardown(server_side: Transport, client_side: Transport) {
    let _ = client_side.cleanup().await;
    let _ = server_side.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_queue_leader_loses_nothing() {
    let Some(setup) = setup("rabbit cluster: kill the queue leader").await else {
        return;
    };
    let leader = leader_of_the_call_queue(&setup).await;
    let Setup {
        cluster,
        server_side,
        client_side,
        load,
        ..
    } = setup;
    let figures = fault::run(
        &format!("rabbit kill -9 queue leader {}", leader.name),
        load,
        SERVING_AGAIN,
        cluster.kill(&leader),
        async {
            cluster.restart(&leader).await?;
            cluster.heal(RESTORE).await
        },
    )
    .await;
    teardown(server_side, client_side).await;
    figures.assert_held(SERVING_AGAIN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_app_on_the_queue_leader_loses_nothing() {
    let Some(setup) = setup("rabbit cluster: stop_app").await else {
        return;
    };
    let leader = leader_of_the_call_queue(&setup).await;
    let Setup {
        cluster,
        server_side,
        client_side,
        load,
        ..
    } = setup;
    let figures = fault::run(
        &format!("rabbit stop_app queue leader {}", leader.name),
        load,
        SERVING_AGAIN,
        cluster.stop_app(&leader),
        async {
            cluster.start_app(&leader).await?;
            cluster.heal(RESTORE).await
        },
    )
    .await;
    teardown(server_side, client_side).await;
    figures.assert_held(SERVING_AGAIN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_clients_node_loses_nothing() {
    let Some(setup) = setup("rabbit cluster: kill the client's node").await else {
        return;
    };
    let node = setup
        .cluster
        .node_of_connection(&setup.client_name)
        .await
        .unwrap();
    eprintln!("the client is connected to {}", node.name);
    let Setup {
        cluster,
        server_side,
        client_side,
        load,
        ..
    } = setup;
    let figures = fault::run(
        &format!("rabbit kill -9 the client's node {}", node.name),
        load,
        SERVING_AGAIN,
        cluster.kill(&node),
        async {
            cluster.restart(&node).await?;
            cluster.heal(RESTORE).await
        },
    )
    .await;
    teardown(server_side, client_side).await;
    figures.assert_held(SERVING_AGAIN);
}
