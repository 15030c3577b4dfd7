//! The patterns on msg: `RpcClient` and `RpcServer`, `Notifier`, `NotificationListener`.
//!
//! Server and client (or notifier and listener) get a transport each, as two processes
//! would; both are opened on the same URL.

use std::sync::Arc;
use std::time::Instant;

use msg::notify::{
    BatchNotificationListener, Handled, NotificationEndpoint, NotificationListener, Notifier,
};
use msg::{
    Context, Endpoint, Executor, HandlerError, Priority, RpcClient, RpcServer, Target, Transport,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::progress::Counter;
use super::stats::{Gaps, Latencies};
use super::{
    CALL_TIMEOUT, EVENT_TYPE, GRACE, Measured, Names, PRELOAD_WINDOW, PUBLISHER_ID, SERVER, Spec,
    Work, in_flight, in_window, reached, seconds_since,
};
use crate::cli::{Global, NotifyDriverName};
use crate::cmd::notify::notifier;
use crate::cmd::rpc::close;
use crate::errors::CliError;
use crate::input;

#[derive(Deserialize)]
struct EchoArgs {
    value: Value,
}

/// `echo(value)` returns value, and counts what it handled.
fn echo_endpoint(handled: Counter) -> Endpoint {
    Endpoint::new().method("echo", move |_ctx: Context, args: EchoArgs| {
        let handled = handled.clone();
        async move {
            handled.add(1);
            Ok::<_, HandlerError>(args.value)
        }
    })
}

/// One run of `spec` on msg.
pub async fn run(spec: &Spec, label: &str) -> Result<Measured, CliError> {
    let names = Names::new(&spec.global);
    let mut opened = Vec::new();
    let result = match spec.work {
        Work::Call | Work::Cast => rpc(spec, label, &names, &mut opened).await,
        Work::Publish => publish(spec, label, &names, &mut opened).await,
        Work::Consume => consume(spec, label, &names, &mut opened).await,
    };
    for t in &opened {
        let _ = spec
            .watch
            .bounded("closing the transport", async {
                close(t).await;
                Ok(())
            })
            .await;
    }
    cleanup(spec, &names).await;
    result
}

async fn open(spec: &Spec, opened: &mut Vec<Transport>) -> Result<Transport, CliError> {
    let t = spec
        .watch
        .bounded("connecting", input::open_transport(&spec.global))
        .await?;
    opened.push(t.clone());
    Ok(t)
}

/// The global options with this run's exchange.
fn with_exchange(spec: &Spec, names: &Names) -> Global {
    Global {
        exchange: Some(names.exchange.clone()),
        ..spec.global.clone()
    }
}

async fn rpc(
    spec: &Spec,
    label: &str,
    names: &Names,
    opened: &mut Vec<Transport>,
) -> Result<Measured, CliError> {
    let server_t = open(spec, opened).await?;
    let client_t = open(spec, opened).await?;
    let handled = Counter::default();
    let server = spec
        .watch
        .bounded("starting the RPC server", async {
            RpcServer::builder(
                server_t,
                Target::server(&names.topic, SERVER).with_exchange(&names.exchange),
            )
            .executor(Executor::Pool(spec.concurrency))
            .prefetch(u32::from(spec.prefetch))
            .endpoint(echo_endpoint(handled.clone()))
            .start()
            .await
            .map_err(CliError::from)
        })
        .await?;
    let result = drive_rpc(spec, label, names, client_t, &handled).await;
    let _ = server.shutdown(GRACE).await;
    result
}

async fn drive_rpc(
    spec: &Spec,
    label: &str,
    names: &Names,
    client_t: Transport,
    handled: &Counter,
) -> Result<Measured, CliError> {
    let client = Arc::new(
        RpcClient::new(
            client_t,
            Target::topic(&names.topic).with_exchange(&names.exchange),
        )
        .timeout(CALL_TIMEOUT),
    );
    let args = Arc::new(json!({ "value": spec.payload() }));
    let context = Arc::new(Context::new());
    let done = Counter::default();
    let latencies = Latencies::new();
    let cast = spec.work == Work::Cast;
    let start = Instant::now();
    if cast {
        // a window of casts in one task, as the raw publishers keep theirs
        let work = in_window(spec.count, spec.concurrency, &done, &latencies, |_| {
            let (client, args, context) = (client.clone(), args.clone(), context.clone());
            async move {
                client.cast(&context, "echo", &*args).await?;
                Ok(())
            }
        });
        spec.watch.run(label, spec.count, &done, work).await?;
    } else {
        // a task per call, as the raw callers
        let work = in_flight(spec.count, spec.concurrency, &done, &latencies, |_| {
            let (client, args, context) = (client.clone(), args.clone(), context.clone());
            async move {
                client.call::<Value>(&context, "echo", &*args).await?;
                Ok(())
            }
        });
        spec.watch.run(label, spec.count, &done, work).await?;
    }
    let seconds = seconds_since(start);
    let handled_seconds = if cast {
        spec.watch
            .run(
                &format!("{label} handled"),
                spec.count,
                handled,
                reached(handled, spec.count),
            )
            .await?;
        Some(seconds_since(start))
    } else {
        None
    };
    Ok(Measured {
        seconds,
        latencies,
        handled_seconds,
    })
}

fn bench_notifier(spec: &Spec, names: &Names, t: &Transport) -> Result<Arc<Notifier>, CliError> {
    Ok(Arc::new(
        notifier(
            t,
            &with_exchange(spec, names),
            NotifyDriverName::Messagingv2,
        )?
        .publisher_id(PUBLISHER_ID)
        .topics([names.topic.clone()]),
    ))
}

/// Sends `count` notifications with `window` in flight.
async fn send(
    spec: &Spec,
    label: &str,
    notifier: &Arc<Notifier>,
    window: usize,
    latencies: &Latencies,
) -> Result<(), CliError> {
    let payload = Arc::new(spec.payload());
    let context = Arc::new(Context::new());
    let done = Counter::default();
    // a window of sends in one task, as the raw publishers keep theirs
    let work = in_window(spec.count, window, &done, latencies, |_| {
        let (notifier, payload, context) = (notifier.clone(), payload.clone(), context.clone());
        async move {
            notifier.info(&context, EVENT_TYPE, &*payload).await?;
            Ok(())
        }
    });
    spec.watch.run(label, spec.count, &done, work).await
}

async fn publish(
    spec: &Spec,
    label: &str,
    names: &Names,
    opened: &mut Vec<Transport>,
) -> Result<Measured, CliError> {
    let t = open(spec, opened).await?;
    let notifier = bench_notifier(spec, names, &t)?;
    let latencies = Latencies::new();
    let start = Instant::now();
    send(spec, label, &notifier, spec.concurrency, &latencies).await?;
    Ok(Measured {
        seconds: seconds_since(start),
        latencies,
        handled_seconds: None,
    })
}

async fn consume(
    spec: &Spec,
    label: &str,
    names: &Names,
    opened: &mut Vec<Transport>,
) -> Result<Measured, CliError> {
    let pub_t = open(spec, opened).await?;
    let notifier = bench_notifier(spec, names, &pub_t)?;
    let scratch = Latencies::new();
    send(
        spec,
        &format!("{label} preload"),
        &notifier,
        PRELOAD_WINDOW,
        &scratch,
    )
    .await?;

    let listen_t = open(spec, opened).await?;
    let targets = [Target::topic(&names.topic).with_exchange(&names.exchange)];
    let handled = Counter::default();
    let latencies = Latencies::new();
    let start = Instant::now();
    let gaps = Gaps::new(start, latencies.clone());
    let executor = Executor::Pool(spec.concurrency);
    let prefetch = u32::from(spec.prefetch);
    enum Running {
        Single(NotificationListener),
        Batch(BatchNotificationListener),
    }
    let listener = {
        let (handled, gaps) = (handled.clone(), gaps.clone());
        match spec.batch_size {
            None => Running::Single(
                NotificationListener::builder(listen_t, targets)
                    .executor(executor)
                    .prefetch(prefetch)
                    .endpoint(NotificationEndpoint::new().on(Priority::Info, move |_n| {
                        handled.add(1);
                        gaps.completed(1);
                        async { Handled }
                    }))
                    .start()
                    .await?,
            ),
            Some(size) => Running::Batch(
                BatchNotificationListener::builder(
                    listen_t,
                    targets,
                    size,
                    std::time::Duration::from_millis(100),
                )
                .executor(executor)
                .prefetch(prefetch)
                .endpoint(
                    NotificationEndpoint::new().on_batch(Priority::Info, move |batch| {
                        let n = batch.len() as u64;
                        handled.add(n);
                        gaps.completed(n);
                        async { Handled }
                    }),
                )
                .start()
                .await?,
            ),
        }
    };
    let result = spec
        .watch
        .run(label, spec.count, &handled, reached(&handled, spec.count))
        .await;
    let seconds = seconds_since(start);
    let _ = match &listener {
        Running::Single(l) => l.shutdown(GRACE).await,
        Running::Batch(l) => l.shutdown(GRACE).await,
    };
    result?;
    Ok(Measured {
        seconds,
        latencies,
        handled_seconds: None,
    })
}

/// Deletes what the run made on the broker (best effort, bounded): msg declares its queues
/// and exchanges itself and has no API to delete them.
async fn cleanup(spec: &Spec, names: &Names) {
    let queues = match spec.work {
        Work::Call | Work::Cast => vec![names.topic.clone(), format!("{}.{SERVER}", names.topic)],
        Work::Publish | Work::Consume => vec![format!("{}.info", names.topic)],
    };
    let done = spec
        .watch
        .bounded("cleaning up", async {
            match spec.url.scheme() {
                "rabbit" | "amqp" => {
                    // msg deletes its fanout queue when the server stops; its fanout
                    // exchange (auto-delete) goes with it, unless the connection was lost
                    let mut exchanges = vec![format!("{}_fanout", names.topic)];
                    if names.own_exchange {
                        exchanges.push(names.exchange.clone());
                    }
                    super::raw_amqp::delete(spec, &queues, &exchanges).await
                }
                "nats" if names.own_exchange => {
                    // the NATS driver's stream of an exchange (docs/nats.md)
                    let stream = msg::nats::encode_name(&["msg", "notify", &names.exchange]);
                    super::raw_nats::delete_stream(spec, &stream).await
                }
                _ => Ok(()),
            }
        })
        .await;
    if let Err(e) = done {
        tracing::warn!(error = %e.line, "cleaning up after the bench failed");
    }
}
