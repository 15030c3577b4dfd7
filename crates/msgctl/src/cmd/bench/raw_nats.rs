//! The patterns written directly on async-nats, the fastest way it allows, with the same
//! oslo 2.0 envelopes (made by `msg::driver::codec`) as bodies:
//!
//! - calls: core NATS request/reply, a task per request; the server is a queue subscriber
//!   that replies from its loop;
//! - casts: core NATS publishes to a queue subscriber, the window confirmed by a flush (a
//!   round trip to the server) every `concurrency` messages;
//! - notifications: JetStream publishes on a stream of the run's own, up to the window
//!   awaiting their acks, each with the `Nats-Msg-Id` header msg sends, on a stream with
//!   the durable consumer msg's notifier makes (the same message and topology, so the same
//!   work for the server); consumed by a pull consumer (ack policy `all`) fetching batches of
//!   the prefetch, acking every 50 (or half the prefetch when smaller).

use std::time::Instant;

use async_nats::jetstream::{self, consumer::AckPolicy, consumer::pull, stream};
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use msg::driver::codec::{
    self, CallInfo, EnvelopeVersion, RpcRequest, WireNotification, WireReply, WireRequest,
};
use msg::{Context, Notification, Priority};
use serde_json::{Map, Value};

use super::progress::Counter;
use super::stats::{Gaps, Latencies};
use super::{
    CALL_TIMEOUT, EVENT_TYPE, Measured, Names, PRELOAD_WINDOW, PUBLISHER_ID, Spec, Work, reached,
    seconds_since,
};
use crate::errors::{CliError, EXIT_BROKER};

fn nats_err(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::failed(format!("raw async-nats: {what}: {e}"))
}

fn codec_err(e: msg::Error) -> CliError {
    CliError::failed(format!("encoding a message: {e}"))
}

/// A connection of its own to the URL's first host.
pub async fn connect(spec: &Spec) -> Result<async_nats::Client, CliError> {
    let host = spec.url.hosts().first();
    let name = host
        .map(|h| h.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "127.0.0.1".into());
    let at = format!("{name}:{}", host.map_or(4222, |h| h.port_or(4222)));
    let mut options = async_nats::ConnectOptions::new()
        .name("msgctl-bench-raw")
        .request_timeout(Some(CALL_TIMEOUT));
    if let Some((Some(user), Some(pass))) = host.map(|h| (h.username.clone(), h.password.clone())) {
        options = options.user_and_password(user, pass);
    }
    spec.watch
        .bounded("connecting", async {
            options.connect(at.as_str()).await.map_err(|e| {
                CliError::new(
                    EXIT_BROKER,
                    format!("can't connect to the broker: NATS at {at}: {e}"),
                )
            })
        })
        .await
}

/// Deletes a JetStream stream (best effort) on a connection of its own.
pub async fn delete_stream(spec: &Spec, name: &str) -> Result<(), CliError> {
    let client = connect(spec).await?;
    if let Err(e) = jetstream::new(client.clone()).delete_stream(name).await {
        tracing::debug!(stream = name, error = %e, "deleting a stream");
    }
    let _ = client.flush().await;
    Ok(())
}

/// One run of `spec` on async-nats.
pub async fn run(spec: &Spec, label: &str) -> Result<Measured, CliError> {
    let names = Names::new(&spec.global);
    let mut tasks = Vec::new();
    let mut stream_made = false;
    let result = match spec.work {
        Work::Call | Work::Cast => rpc(spec, label, &names, &mut tasks).await,
        Work::Publish | Work::Consume => notify(spec, label, &names, &mut stream_made).await,
    };
    for t in tasks {
        t.abort();
    }
    if stream_made {
        let stream = stream_name(&names);
        let done = spec
            .watch
            .bounded("cleaning up", delete_stream(spec, &stream))
            .await;
        if let Err(e) = done {
            tracing::warn!(error = %e.line, "cleaning up after the bench failed");
        }
    }
    result
}

fn stream_name(names: &Names) -> String {
    format!("msgbench_{}", names.id)
}

async fn rpc(
    spec: &Spec,
    label: &str,
    names: &Names,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Measured, CliError> {
    let server = connect(spec).await?;
    let client = connect(spec).await?;
    let subject = format!("msgbench.{}.rpc", names.id);
    let mut requests = server
        .queue_subscribe(subject.clone(), "msgbench".into())
        .await
        .map_err(|e| nats_err("subscribing", e))?;
    // the subscription is known to the server before anything is sent
    server.flush().await.map_err(|e| nats_err("flushing", e))?;
    let handled = Counter::default();
    {
        let (server, handled) = (server.clone(), handled.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(m) = requests.next().await {
                let Ok(req) = WireRequest::decode(&m.payload) else {
                    continue;
                };
                if let (Some(reply), Some(call)) = (m.reply, req.call) {
                    let value = req.request.args.get("value").unwrap_or(Value::Null);
                    if let Ok(body) = WireReply::result(call.msg_id, value).encode() {
                        let _ = server.publish(reply, Bytes::from(body)).await;
                    }
                }
                handled.add(1);
            }
        }));
    }
    let mut args = Map::new();
    args.insert("value".into(), spec.payload());
    let request = RpcRequest::new("echo", args);
    let context = Context::new();
    let done = Counter::default();
    let latencies = Latencies::new();

    if spec.work == Work::Cast {
        let start = Instant::now();
        let work = async {
            let window = spec.concurrency.max(1);
            let mut unflushed = Vec::with_capacity(window);
            for i in 0..spec.count {
                let body = codec::encode_request(&context, &request, &codec::new_unique_id(), None)
                    .map_err(codec_err)?;
                unflushed.push(Instant::now());
                client
                    .publish(subject.clone(), Bytes::from(body))
                    .await
                    .map_err(|e| nats_err("publishing", e))?;
                if unflushed.len() >= window || i + 1 == spec.count {
                    client.flush().await.map_err(|e| nats_err("flushing", e))?;
                    let n = unflushed.len() as u64;
                    for started in unflushed.drain(..) {
                        latencies.since(started);
                    }
                    done.add(n);
                }
            }
            Ok(())
        };
        spec.watch.run(label, spec.count, &done, work).await?;
        let seconds = seconds_since(start);
        spec.watch
            .run(
                &format!("{label} handled"),
                spec.count,
                &handled,
                reached(&handled, spec.count),
            )
            .await?;
        return Ok(Measured {
            seconds,
            latencies,
            handled_seconds: Some(seconds_since(start)),
        });
    }

    let (request, context) = (std::sync::Arc::new(request), std::sync::Arc::new(context));
    let subject: std::sync::Arc<str> = std::sync::Arc::from(subject.as_str());
    let start = Instant::now();
    let work = super::in_flight(spec.count, spec.concurrency, &done, &latencies, |_| {
        let (client, request, context, subject) = (
            client.clone(),
            request.clone(),
            context.clone(),
            subject.clone(),
        );
        async move {
            let call = CallInfo {
                msg_id: codec::new_unique_id(),
                reply_q: String::new(),
                call_monitor_timeout: None,
            };
            let body =
                codec::encode_request(&context, &request, &codec::new_unique_id(), Some(&call))
                    .map_err(codec_err)?;
            let reply = client
                .request(subject.to_string(), Bytes::from(body))
                .await
                .map_err(|e| nats_err("requesting", e))?;
            WireReply::decode(&reply.payload).map_err(|e| nats_err("a bad reply", e))?;
            Ok(())
        }
    });
    spec.watch.run(label, spec.count, &done, work).await?;
    Ok(Measured {
        seconds: seconds_since(start),
        latencies,
        handled_seconds: None,
    })
}

/// Publishes `count` notifications to a JetStream subject, keeping up to `window` awaiting
/// their acks; each one's latency runs from its publish to its ack.
async fn publish_window(
    js: &jetstream::Context,
    subject: &str,
    count: u64,
    window: usize,
    done: &Counter,
    latencies: &Latencies,
    spec: &Spec,
) -> Result<(), CliError> {
    let payload = spec.payload();
    let context = Context::new();
    let window = window.max(1);
    let mut pending = FuturesUnordered::new();
    let settle = |(started, ack): (Instant, Result<jetstream::publish::PublishAck, _>)| match ack {
        Ok(_) => {
            latencies.since(started);
            done.add(1);
            Ok(())
        }
        Err(e) => Err(nats_err("a publish ack", e)),
    };
    for _ in 0..count {
        while pending.len() >= window {
            if let Some(a) = pending.next().await {
                settle(a)?;
            }
        }
        let n = Notification::new(PUBLISHER_ID, EVENT_TYPE, Priority::Info, payload.clone());
        let unique_id = codec::new_unique_id();
        let body = codec::encode_notification(&context, &n, &unique_id, EnvelopeVersion::V2)
            .map_err(codec_err)?;
        let started = Instant::now();
        // the same message msg sends: `Nats-Msg-Id` = `_unique_id` (JetStream dedups by it)
        let message = jetstream::message::PublishMessage::build()
            .payload(Bytes::from(body))
            .message_id(unique_id);
        let ack = js
            .send_publish(subject.to_string(), message)
            .await
            .map_err(|e| nats_err("publishing", e))?;
        pending.push(async move { (started, ack.await) });
        while let Some(Some(a)) = pending.next().now_or_never() {
            settle(a)?;
        }
    }
    while let Some(a) = pending.next().await {
        settle(a)?;
    }
    Ok(())
}

async fn notify(
    spec: &Spec,
    label: &str,
    names: &Names,
    stream_made: &mut bool,
) -> Result<Measured, CliError> {
    let client = connect(spec).await?;
    let window = match spec.work {
        Work::Consume => PRELOAD_WINDOW,
        _ => spec.concurrency,
    };
    let js = jetstream::context::ContextBuilder::new()
        .max_ack_inflight(window.max(5_000))
        .build(client.clone());
    let stream_name = stream_name(names);
    let subject = format!("msgbench.{}.notify.{}.info", names.id, names.topic);
    spec.watch
        .bounded("creating the stream", async {
            js.create_stream(stream::Config {
                name: stream_name.clone(),
                subjects: vec![format!("msgbench.{}.notify.>", names.id)],
                ..Default::default()
            })
            .await
            .map_err(|e| nats_err("creating the stream", e))
        })
        .await?;
    *stream_made = true;
    let done = Counter::default();
    let latencies = Latencies::new();
    if spec.work == Work::Publish {
        // what msg's notifier makes before its first send: the default group's durable
        // consumer on the subject, so the server keeps (and counts) the same for both
        spec.watch
            .bounded("creating the consumer", async {
                js.create_consumer_on_stream(
                    pull::Config {
                        durable_name: Some("msgbench-publish".into()),
                        filter_subject: subject.clone(),
                        ack_policy: AckPolicy::Explicit,
                        ..Default::default()
                    },
                    stream_name.as_str(),
                )
                .await
                .map_err(|e| nats_err("creating the consumer", e))
            })
            .await?;
        let start = Instant::now();
        let work = publish_window(&js, &subject, spec.count, window, &done, &latencies, spec);
        spec.watch.run(label, spec.count, &done, work).await?;
        return Ok(Measured {
            seconds: seconds_since(start),
            latencies,
            handled_seconds: None,
        });
    }

    let scratch = Latencies::new();
    let preload = publish_window(&js, &subject, spec.count, window, &done, &scratch, spec);
    spec.watch
        .run(&format!("{label} preload"), spec.count, &done, preload)
        .await?;
    let consumer_client = connect(spec).await?;
    let stream = jetstream::new(consumer_client)
        .get_stream(stream_name.clone())
        .await
        .map_err(|e| nats_err("looking the stream up", e))?;
    let handled = Counter::default();
    let start = Instant::now();
    let gaps = Gaps::new(start, latencies.clone());
    let drain = async {
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some("msgbench".into()),
                ack_policy: AckPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| nats_err("creating the consumer", e))?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(usize::from(spec.prefetch))
            .messages()
            .await
            .map_err(|e| nats_err("pulling", e))?;
        let ack_every = spec.ack_every();
        let mut unacked = 0u64;
        while handled.get() < spec.count {
            let Some(m) = messages.next().await else {
                return Err(CliError::failed("raw async-nats: the consumer ended early"));
            };
            let m = m.map_err(|e| nats_err("pulling", e))?;
            WireNotification::decode(&m.payload).map_err(|e| nats_err("a bad notification", e))?;
            handled.add(1);
            gaps.completed(1);
            unacked += 1;
            if unacked >= ack_every || handled.get() == spec.count {
                unacked = 0;
                m.ack().await.map_err(|e| nats_err("acknowledging", e))?;
            }
        }
        Ok(())
    };
    spec.watch.run(label, spec.count, &handled, drain).await?;
    Ok(Measured {
        seconds: seconds_since(start),
        latencies,
        handled_seconds: None,
    })
}
