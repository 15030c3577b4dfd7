//! The RPC server of oslo.messaging's seed example, in Rust: topic `test`, server `server1`,
//! a control endpoint (namespace `control`, version `2.0`) whose `stop` stops the server, and
//! a test endpoint whose `test(arg)` returns `arg`.
//!
//! ```sh
//! cargo run -p msg --features amqp --example rpc_server -- rabbit://guest:guest@127.0.0.1:5672/
//! cargo run -p msg --features amqp --example rpc_client -- rabbit://guest:guest@127.0.0.1:5672/
//! ```
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use msg::{Context, Endpoint, HandlerError, RpcServer, Target, Transport};
use tokio::sync::Notify;

#[derive(serde::Deserialize)]
struct TestArgs {
    arg: serde_json::Value,
}

#[tokio::main]
async fn main() -> msg::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "memory://".into());
    let transport = Transport::open(&url).await?;

    let stop = Arc::new(Notify::new());
    let stopper = stop.clone();
    let control = Endpoint::new().namespace("control").version("2.0").method(
        "stop",
        move |_ctx: Context, ()| {
            let stopper = stopper.clone();
            async move {
                stopper.notify_one();
                Ok::<_, HandlerError>(())
            }
        },
    );
    let test = Endpoint::new().method("test", |_ctx: Context, a: TestArgs| async move {
        Ok::<_, HandlerError>(a.arg)
    });

    let server = RpcServer::builder(transport.clone(), Target::server("test", "server1"))
        .endpoint(control)
        .endpoint(test)
        .start()
        .await?;
    println!("serving topic test as server1 on {url}");
    stop.notified().await;
    println!("stop received: shutting down");
    server.shutdown(Duration::from_secs(10)).await?;
    transport.cleanup().await
}
