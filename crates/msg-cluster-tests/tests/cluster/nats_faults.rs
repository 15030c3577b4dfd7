//! NATS cluster faults under load, on R3 streams: the server leading the notification
//! stream killed (-9) and restarted; the server the client is connected to killed and
//! restarted.

use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use msg_cluster_tests::{Load, LoadConfig, NatsCluster, with_option};
use msg_core::{Driver, DriverRegistry, Priority, Transport};
use msg_driver_nats::Layout;

use crate::fault::{self, unique};

/// How soon msg must serve again after a NATS fault: nats-server 2.9.10 takes up to about
/// 25 s to elect a new consumer leader after its leader is killed.
const SERVING_AGAIN: Duration = Duration::from_secs(45);
/// How long the cluster may take to have 3 healthy servers again.
const RESTORE: Duration = Duration::from_secs(60);

/// The suite's URL: R3 streams under a prefix of the test's own, quick reconnects, and a
/// connection name to find the connection's server by.
fn url(cluster: &NatsCluster, prefix: &str, connection_name: &str) -> String {
    with_option(
        cluster.url(),
        &format!(
            "stream_replicas=3&subject_prefix={prefix}&ack_wait=5&jetstream_timeout=5\
             &pull_expires=1&reconnect_wait=0.1&reconnect_wait_max=0.5\
             &connection_name={connection_name}"
        ),
    )
}

async fn open(url: &str) -> Transport {
    DriverRegistry::new()
        .with(msg_driver_nats::factory())
        .open(url)
        .await
        .unwrap()
}

/// Deletes the streams under `prefix` (the cluster outlives the test).
pub async fn delete_streams(url: &str, prefix: &str) {
    let Ok(driver) = msg_driver_nats::NatsDriver::connect(&url.parse().unwrap()).await else {
        return;
    };
    let js = jetstream::new(driver.client().clone());
    let mut names = js.stream_names();
    let mut doomed = Vec::new();
    let ours = format!("{}-", msg_driver_nats::encode_name(&[prefix]));
    while let Some(Ok(name)) = names.next().await {
        if name.starts_with(&ours) {
            doomed.push(name);
        }
    }
    for name in doomed {
        let _ = js.delete_stream(&name).await;
    }
    let _ = driver.cleanup().await;
}

/// A cluster with 3 healthy servers (a failed earlier test may have left one down), the
/// server and client transports, and the load between them.
struct Setup {
    cluster: NatsCluster,
    url: String,
    prefix: String,
    server_side: Transport,
    client_side: Transport,
    client_name: String,
    topic: String,
    load: Load,
}

async fn setup(suite: &str) -> Option<Setup> {
    // MSG_TEST_LOG=<filter> shows the drivers' logs
    let _ = msg_testkit::capture_logs();
    let cluster = NatsCluster::from_env(suite)?;
    cluster.heal(RESTORE).await.unwrap();
    let prefix = unique("msgcl");
    let server_name = unique("cluster-server");
    let client_name = unique("cluster-client");
    let server_side = open(&url(&cluster, &prefix, &server_name)).await;
    let client_side = open(&url(&cluster, &prefix, &client_name)).await;
    let topic = unique("cluster-load");
    let load = Load::start(&server_side, &client_side, &topic, LoadConfig::default())
        .await
        .unwrap();
    Some(Setup {
        url: url(&cluster, &prefix, &client_name),
        cluster,
        prefix,
        server_side,
        client_side,
        client_name,
        topic,
        load,
    })
}

async fn teardown(setup_url: &str, prefix: &str, server_side: Transport, client_side: Transport) {
    let _ = client_side.cleanup().await;
    let _ = server_side.cleanup().await;
    delete_streams(setup_url, prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stream_leader_loses_nothing() {
    let Some(setup) = setup("nats cluster: kill the stream leader").await else {
        return;
    };
    let layout = Layout::new(&setup.prefix).unwrap();
    let stream = layout.notify_stream("openstack").unwrap();
    let consumer = layout
        .default_consumer(&setup.topic, Priority::Info)
        .unwrap();
    let leader = setup.cluster.stream_leader(&stream).await.unwrap();
    let consumer_leader = setup
        .cluster
        .consumer_leader(&stream, &consumer)
        .await
        .map(|n| n.name);
    eprintln!(
        "stream {stream} is led by {}; its consumer {consumer} by {consumer_leader:?}",
        leader.name
    );
    let Setup {
        cluster,
        url,
        prefix,
        server_side,
        client_side,
        load,
        ..
    } = setup;
    let figures = fault::run(
        &format!("nats kill -9 stream leader {}", leader.name),
        load,
        SERVING_AGAIN,
        cluster.kill(&leader),
        async {
            cluster.restart(&leader).await?;
            cluster.heal(RESTORE).await
        },
    )
    .await;
    teardown(&url, &prefix, server_side, client_side).await;
    figures.assert_held(SERVING_AGAIN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_clients_server_loses_nothing() {
    let Some(setup) = setup("nats cluster: kill the client's server").await else {
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
        url,
        prefix,
        server_side,
        client_side,
        load,
        ..
    } = setup;
    let figures = fault::run(
        &format!("nats kill -9 the client's server {}", node.name),
        load,
        SERVING_AGAIN,
        cluster.kill(&node),
        async {
            cluster.restart(&node).await?;
            cluster.heal(RESTORE).await
        },
    )
    .await;
    teardown(&url, &prefix, server_side, client_side).await;
    figures.assert_held(SERVING_AGAIN);
}
