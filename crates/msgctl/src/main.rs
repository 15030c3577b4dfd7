//! `msgctl`: the operator's tool and the project's demo. Its command line is a contract
//! (`CLI.md`): options may be added, never renamed.
//!
//! Drivers come from the `msg` facade: whatever it is built with (`memory`, and the broker
//! drivers behind their features) is usable through `--url`, with no change here.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod cmd;
mod config;
mod endpoint;
mod errors;
mod input;
mod metrics;
mod output;
mod telemetry;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::cli::{Cli, Command, DEFAULT_URL};
use crate::errors::{EXIT_FAILED, EXIT_USAGE};

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if cli.global.url.trim().is_empty() {
        // an empty `MSG_TRANSPORT_URL=` (or `--url ''`) counts as unset
        cli.global.url = DEFAULT_URL.to_string();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("msgctl: can't start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let pipeline = {
        let _inside = runtime.enter();
        match telemetry::pipeline(&cli.global.tracing) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("msgctl: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        }
    };
    init_logging(&cli, pipeline.as_ref());
    if let Err(e) = config::apply(&mut cli, &matches) {
        eprintln!("msgctl: {}", e.line);
        telemetry::shutdown(pipeline);
        return ExitCode::from(e.code);
    }
    let result = runtime.block_on(cmd::run(cli));
    telemetry::shutdown(pipeline);
    // handlers still sleeping (a timed-out call's server side) don't hold the exit
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("msgctl: {}", e.line);
            ExitCode::from(e.code)
        }
    }
}

/// Logs to stderr, at the level of `RUST_LOG` (default `warn`); with a tracing pipeline,
/// msg's spans (whatever `RUST_LOG` says) go to it too.
fn init_logging(cli: &Cli, pipeline: Option<&telemetry::Pipeline>) {
    // lapin logs, as errors, what the RabbitMQ driver returns to us anyway (a refused login,
    // a closed connection): the one-line error says it already
    let default = match cli.command {
        // the demo provokes an UnsupportedVersion on purpose: no warning for it
        Command::Demo(_) => "warn,lapin=off,msg_dispatch::rpc=error",
        _ => "warn,lapin=off",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default))
        // lapin logs a returned message whole, body included, whatever RUST_LOG says
        .add_directive(msg::amqp::SILENCE_LAPIN_RETURNS.parse().unwrap_or_default());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter);
    #[cfg(feature = "otel")]
    let otel = pipeline.map(|p| {
        // msg's spans: those of the clients and servers
        let spans = tracing_subscriber::filter::Targets::new()
            .with_target("msg_client", tracing::Level::INFO)
            .with_target("msg_server", tracing::Level::INFO);
        p.layer().with_filter(spans)
    });
    #[cfg(not(feature = "otel"))]
    let otel = pipeline.map(|p| -> tracing_subscriber::layer::Identity { match *p {} });
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init();
}
