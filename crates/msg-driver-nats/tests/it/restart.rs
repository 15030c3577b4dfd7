//! A nats-server restarted under a notification stream and an RPC server: nothing JetStream
//! acknowledged is lost, and RPC resumes.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use msg_core::{
    Context, Driver, EnvelopeVersion, ListenOptions, Notification, Priority, Retry, RpcRequest,
    SendOptions, Target,
};
use msg_driver_nats::NatsDriver;
use serde_json::json;

use crate::server::NatsServer;

async fn connect(url: &str) -> Arc<NatsDriver> {
    Arc::new(NatsDriver::connect(&url.parse().unwrap()).await.unwrap())
}

/// Serves `echo` on a listener until it ends.
fn serve(mut listener: msg_core::RpcListener) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(req) = listener.next().await {
            let _ = req.ack().await;
            let handle = req.reply_handle();
            let args = req.request.args.to_value().unwrap_or_default();
            let _ = handle.reply(Ok(args)).await;
        }
    })
}

async fn call(client: &NatsDriver, i: i64) -> msg_core::Result<serde_json::Value> {
    let mut args = serde_json::Map::new();
    args.insert("i".into(), json!(i));
    client
        .call(
            &Target::topic("restart-rpc"),
            &Context::new(),
            &RpcRequest::new("echo", args),
            &SendOptions {
                timeout: Some(Duration::from_secs(2)),
                ..SendOptions::default()
            },
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_loses_nothing_acked_and_rpc_resumes() {
    crate::driver::init_logging();
    let Some(mut server) = NatsServer::start("nats restart") else {
        return;
    };
    let url = format!(
        "{}?ack_wait=2&reconnect_wait=0.1&reconnect_wait_max=0.5&jetstream_timeout=2&pull_expires=1",
        server.url()
    );
    let rpc_server = connect(&url).await;
    let rpc_client = connect(&url).await;
    let listening = connect(&url).await;
    let notifying = connect(&url).await;

    // RPC before
    let listener = rpc_server
        .listen(
            &Target::server("restart-rpc", "s1"),
            &ListenOptions::default(),
        )
        .await
        .unwrap();
    let serving = serve(listener);
    assert_eq!(call(&rpc_client, 1).await.unwrap(), json!({"i": 1}));

    // a listener counting what it gets
    let target = Target::topic("restart-notify");
    let received: Arc<Mutex<HashMap<i64, usize>>> = Arc::default();
    let mut notifications = listening
        .listen_for_notifications(
            &[(target.clone(), Priority::Info)],
            None,
            &ListenOptions { prefetch: 16 },
        )
        .await
        .unwrap();
    let counting = {
        let received = received.clone();
        tokio::spawn(async move {
            while let Some(n) = notifications.next().await {
                let i = n
                    .notification
                    .payload
                    .get("i")
                    .and_then(|v| v.as_i64())
                    .unwrap_or(-1);
                *received.lock().unwrap().entry(i).or_default() += 1;
                let _ = n.ack().await;
            }
        })
    };

    // a notifier sending 400, each until JetStream acks it (or 30 s pass)
    const N: i64 = 400;
    let acked: Arc<Mutex<BTreeSet<i64>>> = Arc::default();
    let sending = {
        let acked = acked.clone();
        let notifying = notifying.clone();
        let target = target.clone();
        tokio::spawn(async move {
            for i in 0..N {
                let n = Notification::new("restart", "e", Priority::Info, json!({"i": i}));
                let sent = tokio::time::timeout(
                    Duration::from_secs(30),
                    notifying.send_notification(
                        &target,
                        &Context::new(),
                        &n,
                        EnvelopeVersion::V2,
                        Retry::Forever,
                    ),
                )
                .await;
                if let Ok(Ok(())) = sent {
                    acked.lock().unwrap().insert(i);
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };

    // restart the server a quarter of the way in
    let start = Instant::now();
    while acked.lock().unwrap().len() < (N / 4) as usize {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the notifier is stuck"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::task::block_in_place(|| server.restart());
    eprintln!("restarted the server after {} acked sends", N / 4);

    tokio::time::timeout(Duration::from_secs(120), sending)
        .await
        .expect("the notifier didn't finish within 120 s")
        .unwrap();
    let acked: BTreeSet<i64> = acked.lock().unwrap().clone();

    // everything acked arrives (redeliveries of unacked messages come after ack_wait)
    let start = Instant::now();
    loop {
        let all = {
            let r = received.lock().unwrap();
            acked.iter().all(|i| r.contains_key(i))
        };
        if all || start.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // and a moment for duplicates to show
    tokio::time::sleep(Duration::from_secs(3)).await;
    let received = received.lock().unwrap().clone();
    let lost: Vec<i64> = acked
        .iter()
        .copied()
        .filter(|i| !received.contains_key(i))
        .collect();
    let duplicates: usize = received.values().map(|n| n - 1).sum();
    eprintln!(
        "restart: {} sent, {} acked by JetStream, {} received, lost {}, duplicate deliveries {duplicates}",
        N,
        acked.len(),
        received.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "acked by JetStream but never delivered: {lost:?}"
    );
    assert_eq!(acked.len() as i64, N, "a send with Retry::Forever gave up");

    // RPC after: the server's subscriptions came back with the connection
    let start = Instant::now();
    let after = loop {
        match call(&rpc_client, 2).await {
            Ok(v) => break v,
            Err(e) => {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "RPC didn't resume after the restart: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(after, json!({"i": 2}));
    assert!(
        listening.stats().disconnects >= 1,
        "{:?}",
        listening.stats()
    );
    assert!(listening.stats().connects >= 2, "{:?}", listening.stats());

    counting.abort();
    serving.abort();
    for d in [rpc_server, rpc_client, listening, notifying] {
        let _ = d.cleanup().await;
    }
}
