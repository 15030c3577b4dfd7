//! A call waiting for its reply when the client's connection is lost fails at once with
//! `Error::ConnectionLost` (the reply can't come: core NATS keeps nothing for a client that is
//! away), not after its timeout; calls work again once the server is back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use msg_core::{Context, Driver, Error, ListenOptions, RpcRequest, SendOptions, Target};
use msg_driver_nats::NatsDriver;
use serde_json::json;
use tokio::sync::mpsc;

use crate::server::NatsServer;

async fn connect(url: &str) -> Arc<NatsDriver> {
    Arc::new(NatsDriver::connect(&url.parse().unwrap()).await.unwrap())
}

pub(crate) async fn call(
    client: &NatsDriver,
    method: &str,
    timeout: Duration,
) -> msg_core::Result<serde_json::Value> {
    client
        .call(
            &Target::topic("lost-rpc"),
            &Context::new(),
            &RpcRequest::new(method, serde_json::Map::new()),
            &SendOptions {
                timeout: Some(timeout),
                ..SendOptions::default()
            },
        )
        .await
}

/// Serves `lost-rpc`: `slow` is taken (said on the returned channel) and answered only after a
/// minute; `echo` is answered at once.
pub(crate) fn serve(
    mut listener: msg_core::RpcListener,
) -> (tokio::task::JoinHandle<()>, mpsc::UnboundedReceiver<()>) {
    let (taken_tx, taken) = mpsc::unbounded_channel();
    let serving = tokio::spawn(async move {
        while let Some(req) = listener.next().await {
            let _ = req.ack().await;
            let handle = req.reply_handle();
            if req.request.method == "slow" {
                let _ = taken_tx.send(());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    let _ = handle.reply(Ok(json!("late"))).await;
                });
            } else {
                let _ = handle.reply(Ok(json!("echo"))).await;
            }
        }
    });
    (serving, taken)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_fails_at_once_when_the_connection_is_lost() {
    crate::driver::init_logging();
    let Some(mut server) = NatsServer::start("nats lost connection") else {
        return;
    };
    let url = format!("{}?reconnect_wait=0.1&reconnect_wait_max=0.5", server.url());
    let rpc_server = connect(&url).await;
    let client = connect(&url).await;

    // `slow` is taken and never answered (its reply would come after a minute); `echo` is
    // answered at once
    let listener = rpc_server
        .listen(&Target::server("lost-rpc", "s1"), &ListenOptions::default())
        .await
        .unwrap();
    let (serving, mut taken) = serve(listener);
    assert_eq!(
        call(&client, "echo", Duration::from_secs(5)).await.unwrap(),
        json!("echo")
    );

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
    server.kill();
    let (r, ended) = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("the call ended within 10 s of the kill")
        .unwrap();
    let after = ended.duration_since(killed);
    eprintln!("a call in flight failed {after:?} after its server was killed: {r:?}");
    match &r {
        Err(e @ Error::ConnectionLost { what }) => {
            assert!(e.is_connection_lost() && !e.is_timeout());
            assert!(what.contains("`slow`") && what.contains("lost"), "{what}");
        }
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
    assert!(
        after < Duration::from_secs(2),
        "the call failed after {after:?}"
    );

    // back: new calls go through once both clients are reconnected (bounded)
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match call(&client, "echo", Duration::from_secs(2)).await {
            Ok(v) => {
                assert_eq!(v, json!("echo"));
                break;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "no call went through within 15 s of the restart: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    serving.abort();
    let _ = client.cleanup().await;
    let _ = rpc_server.cleanup().await;
}
