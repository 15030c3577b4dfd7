//! A Redis that dies and comes back empty (it keeps nothing on disk): servers, listeners
//! and callers reconnect, streams and groups are made again, and messaging resumes.

use std::time::{Duration, Instant};

use futures::StreamExt;
use msg_core::{
    Context, DriverRegistry, EnvelopeVersion, ListenOptions, Notification, Priority, Retry,
    SendOptions, Target,
};
use serde_json::json;

use crate::own_server::OwnServer;
use crate::redis_url;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_is_reconnected_and_its_streams_made_again() {
    if redis_url("redis restart").is_none() {
        return;
    }
    let Some(mut server) = OwnServer::plain(1) else {
        eprintln!("SKIPPED: redis restart: no redis-server to start");
        return;
    };
    let url = format!("redis://127.0.0.1:{}/", server.port);
    let registry = DriverRegistry::new().with(msg_driver_redis::factory());
    let t = registry.open(&url).await.unwrap();
    let mut requests = t
        .driver()
        .listen(&Target::server("restart", "s1"), &ListenOptions::default())
        .await
        .unwrap();
    let server_task = tokio::spawn(async move {
        while let Some(req) = requests.next().await {
            let _ = req.ack().await;
            let _ = req.reply_handle().reply(Ok(json!("pong"))).await;
        }
    });
    let subs = [(Target::topic("restart"), Priority::Info)];
    let mut notes = t
        .driver()
        .listen_for_notifications(&subs, None, &ListenOptions::default())
        .await
        .unwrap();
    let call = |timeout| {
        let t = t.clone();
        async move {
            t.driver()
                .call(
                    &Target::topic("restart"),
                    &Context::new(),
                    &msg_core::RpcRequest::new("ping", serde_json::Map::new()),
                    &SendOptions {
                        timeout: Some(timeout),
                        retry: Retry::Attempts(0),
                        ..SendOptions::default()
                    },
                )
                .await
        }
    };
    let notify = |i: i64| {
        let t = t.clone();
        async move {
            let n = Notification::new("h", "e", Priority::Info, json!({ "i": i }));
            t.driver()
                .send_notification(
                    &Target::topic("restart"),
                    &Context::new(),
                    &n,
                    EnvelopeVersion::V2,
                    Retry::Attempts(0),
                )
                .await
        }
    };
    assert_eq!(call(Duration::from_secs(5)).await.unwrap(), json!("pong"));
    notify(1).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), notes.next())
        .await
        .unwrap()
        .unwrap();
    n.ack().await.unwrap();

    server.kill();
    let e = call(Duration::from_secs(2)).await.unwrap_err();
    assert!(e.is_transient(), "a call while Redis is down: {e:?}");
    server.restart().unwrap();

    // the server's reader makes its streams again: calls work again within seconds
    let start = Instant::now();
    loop {
        match call(Duration::from_secs(1)).await {
            Ok(v) => {
                assert_eq!(v, json!("pong"));
                break;
            }
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(15),
                "no reply 15 s after Redis came back: {e}"
            ),
        }
    }
    eprintln!(
        "calls answered again {:?} after the restart",
        start.elapsed()
    );
    // and the listener gets what is sent now
    let start = Instant::now();
    let mut i = 2;
    let got = loop {
        let _ = notify(i).await;
        i += 1;
        if let Ok(Some(n)) = tokio::time::timeout(Duration::from_millis(500), notes.next()).await {
            break n;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the listener got nothing after the restart"
        );
    };
    got.ack().await.unwrap();
    // fanout casts too, once the server made its fanout stream again (within 10 s)
    let start = Instant::now();
    while t
        .driver()
        .cast(
            &Target::topic("restart").with_fanout(true),
            &Context::new(),
            &msg_core::RpcRequest::new("ping", serde_json::Map::new()),
            &SendOptions {
                at_least_once: true,
                ..SendOptions::default()
            },
        )
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the fanout stream wasn't made again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server_task.abort();
    notes.stop();
}
