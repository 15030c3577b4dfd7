//! The RPC client of oslo.messaging's seed example, in Rust: calls `test` on topic `test`,
//! then casts `stop` through `prepare(namespace="control", version="2.0")`.
//!
//! ```sh
//! cargo run -p msg --features amqp --example rpc_client -- rabbit://guest:guest@127.0.0.1:5672/
//! ```
#![allow(clippy::print_stdout)]

use std::time::Duration;

use msg::{Context, RpcClient, Target, Transport};
use serde_json::json;

#[tokio::main]
async fn main() -> msg::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "memory://".into());
    let transport = Transport::open(&url).await?;
    let client =
        RpcClient::new(transport.clone(), Target::topic("test")).timeout(Duration::from_secs(10));

    let ctx = Context::new().with("user", "example");
    let reply: serde_json::Value = client.call(&ctx, "test", json!({"arg": "hello"})).await?;
    println!("test(arg=\"hello\") -> {reply}");

    client
        .prepare()
        .namespace("control")
        .version("2.0")
        .cast(&ctx, "stop", json!({}))
        .await?;
    println!("cast stop to namespace control, version 2.0");
    transport.cleanup().await
}
