//! One RPC call and one notification on the in-process broker, at the driver level.
//!
//! `cargo run -p msg --example hello`
#![allow(clippy::print_stdout)]

use std::time::Duration;

use futures::StreamExt;
use msg::{
    Context, EnvelopeVersion, ListenOptions, Notification, Priority, Retry, RpcRequest,
    SendOptions, Target, Transport,
};
use serde_json::json;

#[tokio::main]
async fn main() -> msg::Result<()> {
    let transport = Transport::open("memory://hello").await?;
    let driver = transport.driver().clone();

    // an RPC server for topic "calc" that adds its arguments
    let mut requests = driver
        .listen(&Target::server("calc", "host-1"), &ListenOptions::default())
        .await?;
    tokio::spawn(async move {
        while let Some(req) = requests.next().await {
            let _ = req.ack().await;
            let sum = req.request.args["a"].as_i64().unwrap_or(0)
                + req.request.args["b"].as_i64().unwrap_or(0);
            let _ = req.reply_handle().reply(Ok(json!(sum))).await;
        }
    });

    let args = json!({"a": 2, "b": 3})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let options = SendOptions {
        timeout: Some(Duration::from_secs(5)),
        ..SendOptions::default()
    };
    let sum = driver
        .call(
            &Target::topic("calc"),
            &Context::new(),
            &RpcRequest::new("add", args),
            &options,
        )
        .await?;
    println!("call add(a=2, b=3) on topic calc -> {sum}");

    // a notification, sent before anyone listens: the broker keeps it
    let target = Target::topic("notifications");
    let n = Notification::new(
        "compute.host1",
        "compute.instance.create.end",
        Priority::Info,
        json!({"id": 12}),
    );
    driver
        .send_notification(
            &target,
            &Context::new(),
            &n,
            EnvelopeVersion::V2,
            Retry::Forever,
        )
        .await?;
    let mut listener = driver
        .listen_for_notifications(&[(target, Priority::Info)], None, &ListenOptions::default())
        .await?;
    if let Some(got) = listener.next().await {
        println!(
            "notification {} from {} -> {}",
            got.notification.event_type, got.notification.publisher_id, got.notification.payload
        );
        got.ack().await?;
    }
    Ok(())
}
