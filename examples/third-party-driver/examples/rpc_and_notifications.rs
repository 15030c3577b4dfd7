//! An application using the Redis driver as any third-party driver is used: its factory
//! handed to `msg::Transport::builder()`. It serves a topic, calls it, and sends a
//! notification before its listener exists (store and forward), then receives it.
//!
//! ```sh
//! cargo run --example rpc_and_notifications -- redis://127.0.0.1:6379/
//! ```
#![allow(clippy::print_stdout)]

use std::time::Duration;

use msg::notify::{Handled, NotificationEndpoint, NotificationListener, Notifier};
use msg::{Context, Endpoint, HandlerError, Priority, RpcClient, RpcServer, Target, Transport};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> msg::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".into());
    let transport = Transport::builder()
        .driver(msg_driver_redis::factory())
        .open(&url)
        .await?;
    println!(
        "opened {} ({:?})",
        transport.url(),
        transport.capabilities()
    );

    // RPC: a server for topic `calc`, then a call and a cast
    let calc = Endpoint::new().method("add", |_ctx: Context, a: Value| async move {
        let sum = a["a"].as_i64().unwrap_or(0) + a["b"].as_i64().unwrap_or(0);
        Ok::<_, HandlerError>(sum)
    });
    let server = RpcServer::builder(transport.clone(), Target::server("calc", "example-1"))
        .endpoint(calc)
        .start()
        .await?;
    let client =
        RpcClient::new(transport.clone(), Target::topic("calc")).timeout(Duration::from_secs(10));
    let sum: i64 = client
        .call(&Context::new(), "add", json!({"a": 2, "b": 3}))
        .await?;
    println!("add(2, 3) = {sum}");
    client
        .cast(&Context::new(), "add", json!({"a": 1, "b": 1}))
        .await?;

    // notifications: sent first, listened to after (the notifier created the group)
    let notifier = Notifier::new(transport.clone())
        .publisher_id("example.host")
        .topics(["example_notifications"]);
    notifier
        .info(&Context::new(), "example.started", json!({"n": 1}))
        .await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let listener =
        NotificationListener::builder(transport.clone(), [Target::topic("example_notifications")])
            .endpoint(NotificationEndpoint::new().on(Priority::Info, move |n| {
                let _ = tx.send(format!(
                    "{} from {}: {}",
                    n.event_type, n.publisher_id, n.payload
                ));
                futures::future::ready(Handled)
            }))
            .start()
            .await?;
    match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        Ok(Some(line)) => println!("notification: {line}"),
        _ => println!("no notification within 10 s"),
    }

    listener.shutdown(Duration::from_secs(5)).await?;
    server.shutdown(Duration::from_secs(5)).await?;
    transport.cleanup().await
}
