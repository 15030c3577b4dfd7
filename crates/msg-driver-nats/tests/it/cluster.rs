//! On a 3-node cluster of the test's own: a client that doesn't ask for replicas leaves an R3
//! stream R3, and every consumer gets its stream's replicas; a call in flight when its
//! client's node is killed fails at once, and the client goes on through another node.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use msg_core::{
    Context, Driver, EnvelopeVersion, Error, ListenOptions, Notification, Priority, Retry, Target,
};
use msg_driver_nats::NatsDriver;
use serde_json::json;

use crate::lost_connection::{call, serve};
use crate::server::NatsCluster;
use crate::with_option;

async fn notify(d: &NatsDriver, topic: &str) -> msg_core::Result<()> {
    d.send_notification(
        &Target::topic(topic),
        &Context::new(),
        &Notification::new("p", "e", Priority::Info, json!({})),
        EnvelopeVersion::V2,
        Retry::Attempts(0),
    )
    .await
}

async fn consumer_replicas(js: &jetstream::Context, stream: &str, consumer: &str) -> usize {
    js.get_consumer_from_stream::<pull::Config, _, _>(consumer, stream)
        .await
        .unwrap()
        .cached_info()
        .config
        .num_replicas
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_replicas_leaves_an_r3_stream_r3_and_consumers_follow_it() {
    crate::driver::init_logging();
    let Some(cluster) = NatsCluster::start("nats cluster replicas") else {
        return;
    };
    let url = with_option(&cluster.url(), "subject_prefix=msgtest&jetstream_timeout=2");
    // ready: the cluster's JetStream answers without an error (a leader is elected)
    let raw = async_nats::connect(format!("127.0.0.1:{}", cluster.nodes[0].port))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let start = Instant::now();
    loop {
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            raw.request("$JS.API.INFO", bytes::Bytes::new()),
        )
        .await;
        if let Ok(Ok(m)) = r
            && serde_json::from_slice::<serde_json::Value>(&m.payload)
                .is_ok_and(|v| v.get("error").is_none())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster's JetStream wasn't ready within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "the cluster's JetStream was ready after {:?}",
        start.elapsed()
    );
    // the owner makes the stream R3: retried until the cluster's JetStream has a leader
    let owner = NatsDriver::connect(
        &with_option(&url, "stream_replicas=3&manage_streams=true")
            .parse()
            .unwrap(),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let start = Instant::now();
    while let Err(e) = notify(&owner, "owned").await {
        assert!(
            Instant::now() < deadline,
            "the cluster's JetStream wasn't ready within 60 s: {e}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("the cluster took an R3 stream after {:?}", start.elapsed());
    let js = jetstream::new(owner.client().clone());
    let stream = owner.layout().notify_stream("openstack").unwrap();

    // a client with the default `stream_replicas` notifies and listens: the stream stays R3,
    // and its consumers are R3
    let plain = NatsDriver::connect(&url.parse().unwrap()).await.unwrap();
    notify(&plain, "plain").await.unwrap();
    let l = plain
        .listen_for_notifications(
            &[(Target::topic("listened"), Priority::Info)],
            Some("pool"),
            &ListenOptions::default(),
        )
        .await
        .unwrap();
    let info = js.get_stream(&stream).await.unwrap().cached_info().clone();
    assert_eq!(info.config.num_replicas, 3, "the stream was rewritten");
    let layout = plain.layout();
    for consumer in [
        layout.default_consumer("owned", Priority::Info).unwrap(),
        layout.default_consumer("plain", Priority::Info).unwrap(),
        layout
            .pool_consumer("pool", "listened", Priority::Info)
            .unwrap(),
    ] {
        assert_eq!(
            consumer_replicas(&js, &stream, &consumer).await,
            3,
            "consumer {consumer}"
        );
    }

    // a consumer an earlier release left with one replica is given the stream's
    let healed = layout.default_consumer("healed", Priority::Info).unwrap();
    js.create_consumer_on_stream(
        pull::Config {
            durable_name: Some(healed.clone()),
            filter_subject: layout
                .notify_subject("openstack", "healed", Priority::Info)
                .unwrap(),
            num_replicas: 1,
            ..pull::Config::default()
        },
        stream.as_str(),
    )
    .await
    .unwrap();
    assert_eq!(consumer_replicas(&js, &stream, &healed).await, 1);
    notify(&plain, "healed").await.unwrap();
    assert_eq!(consumer_replicas(&js, &stream, &healed).await, 3);

    l.stop();
    let _ = plain.cleanup().await;
    let _ = owner.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_on_a_killed_node_fails_at_once_and_the_client_moves_on() {
    crate::driver::init_logging();
    let Some(mut cluster) = NatsCluster::start("nats cluster node killed") else {
        return;
    };
    let url = with_option(&cluster.url(), "reconnect_wait=0.1&reconnect_wait_max=0.5");
    // the client and the server on different nodes (reconnected until they are)
    let rpc_server = NatsDriver::connect(&url.parse().unwrap()).await.unwrap();
    let server_port = rpc_server.client().server_info().port;
    let mut client = None;
    for _ in 0..50 {
        let c = NatsDriver::connect(&url.parse().unwrap()).await.unwrap();
        if c.client().server_info().port != server_port {
            client = Some(c);
            break;
        }
        let _ = c.cleanup().await;
    }
    let client = std::sync::Arc::new(client.expect("a client on another node within 50 tries"));
    let client_node = cluster
        .nodes
        .iter()
        .position(|n| n.port == client.client().server_info().port)
        .unwrap();
    let listener = rpc_server
        .listen(&Target::server("lost-rpc", "s1"), &ListenOptions::default())
        .await
        .unwrap();
    let (serving, mut taken) = serve(listener);
    // the server's subscription reaches the client's node through the route: bounded retries
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = call(&client, "echo", Duration::from_secs(2)).await {
        assert!(Instant::now() < deadline, "no call went through: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move {
            let r = call(&client, "slow", Duration::from_secs(30)).await;
            (r, Instant::now())
        })
    };
    tokio::time::timeout(Duration::from_secs(10), taken.recv())
        .await
        .expect("the server took the slow call within 10 s");
    let killed = Instant::now();
    cluster.nodes[client_node].kill();
    let (r, ended) = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("the call ended within 10 s of the kill")
        .unwrap();
    let failed_after = ended.duration_since(killed);
    assert!(matches!(r, Err(Error::ConnectionLost { .. })), "{r:?}");
    assert!(
        failed_after < Duration::from_secs(2),
        "failed after {failed_after:?}"
    );

    // the client reconnects to another node at once and calls go through again
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Err(e) = call(&client, "echo", Duration::from_secs(2)).await {
        assert!(
            Instant::now() < deadline,
            "no call went through after the kill: {e}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let serving_again = killed.elapsed();
    eprintln!(
        "node killed: the call in flight failed after {failed_after:?}; calls went through again \
         after {serving_again:?}"
    );
    assert_ne!(
        client.client().server_info().port,
        cluster.nodes[client_node].port
    );
    serving.abort();
    let _ = client.cleanup().await;
    let _ = rpc_server.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_connected_before_the_clusters_jetstream_serves_notifies_once_it_does() {
    crate::driver::init_logging();
    let Some(cluster) = NatsCluster::start("nats cluster starting") else {
        return;
    };
    // connected as soon as the nodes take connections: their JetStream has no leader yet
    let url = with_option(&cluster.url(), "subject_prefix=msgtest&jetstream_timeout=2");
    let d = NatsDriver::connect(&url.parse().unwrap()).await.unwrap();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(60);
    while let Err(e) = notify(&d, "early").await {
        assert!(
            Instant::now() < deadline,
            "no notification was taken within 60 s: {e}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("notifications taken {:?} after connecting", start.elapsed());
    assert!(d.has_jetstream());
    let _ = d.cleanup().await;
}
