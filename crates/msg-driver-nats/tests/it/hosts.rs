//! A URL's hosts: tried in a random order, so clients spread over a cluster's nodes, and a
//! dead host costs its refusal, not a reconnect delay.

use std::time::{Duration, Instant};

use msg_core::Driver;
use msg_driver_nats::NatsDriver;

use crate::server::NatsServer;

/// A loopback port nothing listens on.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_leading_hosts_cost_no_reconnect_delay() {
    let Some(server) = NatsServer::start("nats dead leading hosts") else {
        return;
    };
    let url = format!(
        "nats://127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}",
        dead_port(),
        dead_port(),
        server.port
    );
    for _ in 0..4 {
        let start = Instant::now();
        let d = NatsDriver::connect(&url.parse().unwrap()).await.unwrap();
        let took = start.elapsed();
        eprintln!("connected past two dead hosts in {took:?}");
        assert!(took < Duration::from_secs(2), "connecting took {took:?}");
        assert_eq!(d.client().server_info().port, server.port);
        let _ = d.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_spread_over_the_urls_hosts() {
    let (Some(a), Some(b)) = (
        NatsServer::start("nats hosts spread"),
        NatsServer::start("nats hosts spread"),
    ) else {
        return;
    };
    let url = format!("nats://127.0.0.1:{},127.0.0.1:{}", a.port, b.port);
    let mut on_a = 0;
    let mut drivers = Vec::new();
    // all 16 on one host by chance: 1 in 32768
    for _ in 0..16 {
        let d = NatsDriver::connect(&url.parse().unwrap()).await.unwrap();
        if d.client().server_info().port == a.port {
            on_a += 1;
        }
        drivers.push(d);
    }
    eprintln!("{on_a} of 16 clients on the URL's first host");
    assert!((1..16).contains(&on_a), "{on_a} of 16 on the first host");
    for d in drivers {
        let _ = d.cleanup().await;
    }
}
