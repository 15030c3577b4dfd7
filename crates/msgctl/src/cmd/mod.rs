//! One module per subcommand; `run` picks one.

mod bench;
mod demo;
mod listen;
mod notify;
mod rpc;
mod serve;

use crate::cli::{Cli, Command};
use crate::errors::CliError;

/// Runs the command line's subcommand.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let global = cli.global;
    match cli.command {
        Command::Demo(args) => demo::run(&global, args).await,
        Command::Serve(args) => serve::run(&global, args).await,
        Command::Call(args) => rpc::call(&global, args).await,
        Command::Cast(args) => rpc::cast(&global, args).await,
        Command::Notify(args) => notify::run(&global, args).await,
        Command::Listen(args) => listen::run(&global, args).await,
        Command::Bench(args) => bench::run(&global, args).await,
    }
}

/// Waits for SIGINT or SIGTERM; returns the signal's name. The handlers are installed by
/// this call, before it returns the future: call it before saying "ready".
pub fn shutdown_signal() -> Result<impl Future<Output = &'static str> + Send + 'static, CliError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind: SignalKind| {
            signal(kind)
                .map_err(|e| CliError::failed(format!("can't install a signal handler: {e}")))
        };
        let mut term = install(SignalKind::terminate())?;
        let mut int = install(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        })
    }
}

/// A failure to write to stdout (a closed pipe, a full disk).
pub fn stdout_error(e: std::io::Error) -> CliError {
    CliError::failed(format!("can't write to stdout: {e}"))
}
