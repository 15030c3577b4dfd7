//! `msgctl call` and `msgctl cast`.

use msg::{Context, RpcClient, Target, Transport};
use serde_json::{Map, Value};

use crate::cli::{CallArgs, CastArgs, Global, RpcArgs};
use crate::cmd::stdout_error;
use crate::errors::CliError;
use crate::input;
use crate::output;

/// What a call or a cast needs, read and checked before connecting.
struct Request {
    context: Context,
    method: String,
    args: Map<String, Value>,
}

fn read(rpc: &RpcArgs) -> Result<Request, CliError> {
    Ok(Request {
        context: input::context(rpc.context.as_deref())?,
        method: rpc.method.clone(),
        args: input::json_object("ARGS-JSON-OBJECT", rpc.args.as_deref())?,
    })
}

fn client(transport: Transport, global: &Global, rpc: &RpcArgs) -> RpcClient {
    let mut client = RpcClient::new(
        transport,
        input::with_exchange(Target::topic(&rpc.topic), global),
    );
    if let Some(server) = &rpc.server {
        client = client.server(server);
    }
    if let Some(namespace) = &rpc.namespace {
        client = client.namespace(namespace);
    }
    if let Some(version) = &rpc.version {
        client = client.version(version);
    }
    client
}

/// One call: the result as JSON on stdout.
pub async fn call(global: &Global, args: CallArgs) -> Result<(), CliError> {
    let req = read(&args.rpc)?;
    let transport = input::open_transport(global).await?;
    let mut client = client(transport.clone(), global, &args.rpc)
        .call_monitor_timeout(args.call_monitor_timeout);
    if let Some(timeout) = args.timeout {
        client = client.timeout(timeout);
    }
    let result = client
        .call::<Value>(&req.context, &req.method, &req.args)
        .await;
    close(&transport).await;
    if let Err(msg::Error::Remote(remote)) = &result
        && !remote.traceback.is_empty()
    {
        tracing::info!(traceback = remote.traceback.join("\n"), "remote traceback");
    }
    output::json_line(&result?).map_err(stdout_error)
}

/// One cast: nothing on stdout (with `--json`, `{"sent":true}`).
pub async fn cast(global: &Global, args: CastArgs) -> Result<(), CliError> {
    let req = read(&args.rpc)?;
    let transport = input::open_transport(global).await?;
    let client = client(transport.clone(), global, &args.rpc).fanout(args.fanout);
    let result = client.cast(&req.context, &req.method, &req.args).await;
    close(&transport).await;
    result?;
    if global.json {
        output::json_line(&serde_json::json!({ "sent": true })).map_err(stdout_error)?;
    }
    Ok(())
}

/// Closes the transport's connections; a failure then is only logged.
pub async fn close(transport: &Transport) {
    if let Err(e) = transport.cleanup().await {
        tracing::debug!(error = %e, "closing the transport");
    }
}
