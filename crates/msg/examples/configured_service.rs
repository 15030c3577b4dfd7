//! A Rust service configured like the Python services beside it: it reads their oslo.config
//! files (`--config-file`, several, and `--config-dir`), serves `echo` on `--topic` as
//! server `--server` with the files' executor, calls itself with the files' timeout, and
//! sends a notification through the files' drivers and topics, to the files' exchange.
//!
//! ```sh
//! cargo run -p msg --features amqp --example configured_service -- \
//!     --config-file /etc/nova/nova.conf --topic my-service --server host-1
//! ```
#![allow(clippy::print_stdout)]

use msg::config::ConfigFiles;
use msg::{Config, Context, Endpoint, HandlerError, Target};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> msg::Result<()> {
    let mut files = ConfigFiles::new();
    let (mut topic, mut server) = ("configured-service".to_string(), "host-1".to_string());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| msg::Error::Config(format!("{arg} wants a value")))?;
        match arg.as_str() {
            "--config-file" => files = files.file(&value)?,
            "--config-dir" => files = files.dir(&value)?,
            "--topic" => topic = value,
            "--server" => server = value,
            other => return Err(msg::Error::Config(format!("unknown argument {other}"))),
        }
    }
    let config = Config::load(files)?;
    println!("transport: {}", config.transport_url());

    let transport = config.transport().await?;
    let echo = Endpoint::new().method("echo", |_ctx: Context, args: Value| async move {
        Ok::<_, HandlerError>(args)
    });
    let rpc_server = config
        .rpc_server(&transport, Target::server(topic.as_str(), server.as_str()))
        .endpoint(echo)
        .start()
        .await?;
    println!(
        "serving topic {topic} as server {server} with {:?}",
        config.executor()
    );

    let client = config.rpc_client(&transport, Target::server(topic.as_str(), server.as_str()));
    let reply: Value = client
        .call(&Context::new(), "echo", json!({"hello": "world"}))
        .await?;
    println!(
        "echo -> {reply} (timeout {:?})",
        config.rpc_response_timeout()
    );

    let notifier = config
        .notifier()
        .await?
        .publisher_id(format!("{topic}.{server}"));
    notifier
        .info(
            &Context::new(),
            "service.started",
            json!({"server": server}),
        )
        .await?;
    println!(
        "notified service.started through {:?} on topics {:?}",
        config.notification_drivers(),
        config.notification_topics()
    );

    rpc_server
        .shutdown(std::time::Duration::from_secs(5))
        .await?;
    transport.cleanup().await
}
