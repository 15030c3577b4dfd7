//! `msgctl serve`: the demo endpoint on a topic until SIGINT/SIGTERM.

use std::time::Duration;

use msg::{Role, RpcServer, Target, Version};
use serde::Serialize;

use crate::cli::{Global, ServeArgs};
use crate::cmd::rpc::close;
use crate::cmd::{shutdown_signal, stdout_error};
use crate::endpoint::{Recorder, demo_endpoint};
use crate::errors::CliError;
use crate::input;
use crate::output;

/// How long requests in flight may take to finish after a signal.
const GRACE: Duration = Duration::from_secs(30);

#[derive(Serialize)]
struct Event<'a> {
    event: &'static str,
    topic: &'a str,
    server: &'a str,
    url: &'a str,
    exchange: Option<&'a str>,
    namespace: Option<&'a str>,
    version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<&'a str>,
}

/// This host's name, the default server name.
pub fn host_name() -> String {
    hostname::get()
        .ok()
        .map(|h| h.to_string_lossy().into_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "msgctl".to_string())
}

pub async fn run(global: &Global, args: ServeArgs) -> Result<(), CliError> {
    let server_name = args.server.clone().unwrap_or_else(host_name);
    let target = input::with_exchange(Target::server(&args.topic, &server_name), global);
    // bad input is reported before connecting
    target.validate(Role::RpcServer)?;
    let versioned = args.namespace.is_some() || args.version.is_some();
    let version = args.version.as_deref().unwrap_or("1.0");
    if versioned {
        Version::parse(version).map_err(|e| CliError::usage(format!("--version: {e}")))?;
    }

    crate::metrics::install(&args.metrics)?;
    let transport = input::open_transport(global).await?;
    let recorder = Recorder::default();
    let mut builder = RpcServer::builder(transport.clone(), target)
        .executor(args.executor)
        .ping(true)
        .endpoint(demo_endpoint(&recorder));
    if versioned {
        let mut endpoint = demo_endpoint(&recorder).version(version);
        if let Some(ns) = &args.namespace {
            endpoint = endpoint.namespace(ns);
        }
        builder = builder.endpoint(endpoint);
    }
    let signal = shutdown_signal()?;
    let server = builder.start().await?;

    let url = transport.url().to_string();
    let event = |event, signal| Event {
        event,
        topic: &args.topic,
        server: &server_name,
        url: &url,
        exchange: global.exchange.as_deref(),
        namespace: args.namespace.as_deref(),
        version: versioned.then_some(version),
        signal,
    };
    if global.json {
        output::json_line(&event("ready", None)).map_err(stdout_error)?;
    } else {
        output::note(&format!(
            "msgctl: serving topic {} as server {server_name} on {url}",
            args.topic
        ));
    }

    let got = signal.await;
    tracing::info!(signal = got, "shutting down");
    let result = server.shutdown(GRACE).await;
    close(&transport).await;
    result?;
    if global.json {
        output::json_line(&event("stopped", Some(got))).map_err(stdout_error)?;
    } else {
        output::note(&format!("msgctl: stopped on {got}"));
    }
    Ok(())
}
