//! The patterns written directly on lapin, the fastest way it allows, with the same topology,
//! properties and bodies as msg's RabbitMQ driver (and oslo): a topic exchange, the topic's
//! queue, `<topic>.info` for notifications, oslo 2.0 envelopes made by `msg::driver::codec`,
//! persistent JSON messages.
//!
//! - calls: a task per request, its request confirmed before its reply is waited for (as msg
//!   and oslo confirm every publish), replies on an exclusive-by-name reply queue consumed
//!   with no-ack and matched by `_msg_id`; the server replies straight from its consumer loop,
//!   each reply confirmed in a task of its own;
//! - casts and notifications: one channel with publisher confirms, pipelined: up to the
//!   window unconfirmed at any time;
//! - consumers: the prefetch of the run, acks batched with `multiple` every 50 (or half the
//!   prefetch when smaller).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use msg::driver::codec::{
    self, CallInfo, EnvelopeVersion, RpcRequest, WireNotification, WireReply, WireRequest,
};
use msg::{Context, Notification, Priority};
use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::progress::Counter;
use super::stats::{Gaps, Latencies};
use super::{
    CALL_TIMEOUT, EVENT_TYPE, Measured, Names, PRELOAD_WINDOW, PUBLISHER_ID, Spec, Work, reached,
    seconds_since,
};
use crate::errors::{CliError, EXIT_BROKER};
use crate::output::human_duration;

fn amqp_err(what: &str, e: lapin::Error) -> CliError {
    CliError::failed(format!("raw lapin: {what}: {e}"))
}

fn codec_err(e: msg::Error) -> CliError {
    CliError::failed(format!("encoding a message: {e}"))
}

/// The AMQP URI of the URL's first host (credentials default to guest/guest, as msg's).
fn uri(spec: &Spec) -> AMQPUri {
    let url = &spec.url;
    let host = url.hosts().first();
    let name = host
        .map(|h| h.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    AMQPUri {
        scheme: AMQPScheme::AMQP,
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo {
                username: host
                    .and_then(|h| h.username.clone())
                    .unwrap_or_else(|| "guest".into()),
                password: host
                    .and_then(|h| h.password.clone())
                    .unwrap_or_else(|| "guest".into()),
            },
            port: host.map_or(5672, |h| h.port_or(5672)),
            host: name,
        },
        vhost: url.virtual_host().unwrap_or("/").to_string(),
        query: AMQPQueryString::default(),
    }
}

/// A connection of its own.
pub async fn connect(spec: &Spec) -> Result<Connection, CliError> {
    let uri = uri(spec);
    let at = format!("{}:{}", uri.authority.host, uri.authority.port);
    spec.watch
        .bounded("connecting", async {
            Connection::connect_uri(
                uri,
                ConnectionProperties::default().with_connection_name("msgctl-bench-raw".into()),
            )
            .await
            .map_err(|e| {
                CliError::new(
                    EXIT_BROKER,
                    format!("can't connect to the broker: RabbitMQ at {at}: {e}"),
                )
            })
        })
        .await
}

async fn channel(conn: &Connection) -> Result<Channel, CliError> {
    conn.create_channel()
        .await
        .map_err(|e| amqp_err("opening a channel", e))
}

/// The properties msg's driver (and kombu) put on every message: JSON, utf-8, persistent,
/// priority 0, empty headers; a call adds its timeout as `expiration`.
fn properties(expiration_ms: Option<u128>) -> BasicProperties {
    let p = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2)
        .with_priority(0)
        .with_headers(FieldTable::default());
    match expiration_ms {
        Some(ms) => p.with_expiration(ms.to_string().into()),
        None => p,
    }
}

/// The exchange, a queue and its binding, as msg's driver declares them by default.
async fn declare(conn: &Connection, exchange: &str, queue: &str) -> Result<(), CliError> {
    let ch = channel(conn).await?;
    ch.exchange_declare(
        exchange.into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(|e| amqp_err("declaring the exchange", e))?;
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(|e| amqp_err("declaring the queue", e))?;
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        queue.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(|e| amqp_err("binding the queue", e))?;
    let _ = ch.close(200, "OK".into()).await;
    Ok(())
}

/// Deletes queues and exchanges on a connection of its own.
pub async fn delete(spec: &Spec, queues: &[String], exchanges: &[String]) -> Result<(), CliError> {
    let conn = connect(spec).await?;
    let ch = channel(&conn).await?;
    for q in queues {
        if let Err(e) = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
        {
            tracing::debug!(queue = q, error = %e, "deleting a queue");
        }
    }
    for x in exchanges {
        if let Err(e) = ch
            .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
            .await
        {
            tracing::debug!(exchange = x, error = %e, "deleting an exchange");
        }
    }
    let _ = conn.close(200, "OK".into()).await;
    Ok(())
}

/// One run of `spec` on lapin.
pub async fn run(spec: &Spec, label: &str) -> Result<Measured, CliError> {
    let names = Names::new(&spec.global);
    let mut conns = Vec::new();
    let mut tasks = Vec::new();
    let mut queues = Vec::new();
    let result = match spec.work {
        Work::Call | Work::Cast => {
            rpc(spec, label, &names, &mut conns, &mut tasks, &mut queues).await
        }
        Work::Publish | Work::Consume => notify(spec, label, &names, &mut conns, &mut queues).await,
    };
    for t in tasks {
        t.abort();
    }
    for c in conns {
        let _ = spec
            .watch
            .bounded("closing", async {
                let _ = c.close(200, "OK".into()).await;
                Ok(())
            })
            .await;
    }
    let exchanges: Vec<String> = names
        .own_exchange
        .then(|| names.exchange.clone())
        .into_iter()
        .collect();
    if let Err(e) = delete(spec, &queues, &exchanges).await {
        tracing::warn!(error = %e.line, "cleaning up after the bench failed");
    }
    result
}

/// Consumes `queue` (the run's prefetch, acks batched): each request is decoded and counted
/// in `handled`, and a call is answered on its reply queue at once.
async fn serve(
    spec: &Spec,
    conn: &Connection,
    queue: &str,
    handled: Counter,
) -> Result<JoinHandle<()>, CliError> {
    let ch = channel(conn).await?;
    ch.basic_qos(spec.prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| amqp_err("setting the prefetch", e))?;
    let replies = channel(conn).await?;
    replies
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| amqp_err("enabling publisher confirms", e))?;
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| amqp_err("consuming", e))?;
    let ack_every = spec.ack_every();
    let props = properties(None);
    Ok(tokio::spawn(async move {
        let mut unacked = 0u64;
        while let Some(Ok(d)) = consumer.next().await {
            if let Ok(req) = WireRequest::decode(&d.data) {
                if let Some(call) = req.call {
                    let value = req.request.args.get("value").unwrap_or(Value::Null);
                    if let Ok(body) = WireReply::result(call.msg_id, value).encode() {
                        let published = replies
                            .basic_publish(
                                ShortString::from(""),
                                ShortString::from(call.reply_q.as_str()),
                                BasicPublishOptions {
                                    mandatory: true,
                                    immediate: false,
                                },
                                &body,
                                props.clone(),
                            )
                            .await;
                        if let Ok(confirm) = published {
                            tokio::spawn(confirm);
                        }
                    }
                }
                handled.add(1);
            }
            unacked += 1;
            if unacked >= ack_every {
                unacked = 0;
                let _ = d.acker.ack(BasicAckOptions { multiple: true }).await;
            }
        }
    }))
}

async fn rpc(
    spec: &Spec,
    label: &str,
    names: &Names,
    conns: &mut Vec<Arc<Connection>>,
    tasks: &mut Vec<JoinHandle<()>>,
    queues: &mut Vec<String>,
) -> Result<Measured, CliError> {
    let server = Arc::new(connect(spec).await?);
    conns.push(server.clone());
    let client = Arc::new(connect(spec).await?);
    conns.push(client.clone());
    let topic = names.topic.as_str();
    queues.push(topic.to_string());
    spec.watch
        .bounded("declaring", declare(&server, &names.exchange, topic))
        .await?;
    let handled = Counter::default();
    tasks.push(
        spec.watch
            .bounded(
                "starting the server",
                serve(spec, &server, topic, handled.clone()),
            )
            .await?,
    );
    let mut args = Map::new();
    args.insert("value".into(), spec.payload());
    let request = RpcRequest::new("echo", args);
    let context = Context::new();
    let done = Counter::default();
    let latencies = Latencies::new();

    if spec.work == Work::Cast {
        let ch = channel(&client).await?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| amqp_err("enabling publisher confirms", e))?;
        let start = Instant::now();
        let work = publish_window(
            &ch,
            &names.exchange,
            topic,
            spec.count,
            spec.concurrency,
            &done,
            &latencies,
            || codec::encode_request(&context, &request, &codec::new_unique_id(), None),
        );
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

    // calls: replies come back on our reply queue, matched to the waiting task by `_msg_id`
    let reply_q = format!("reply_{}", codec::new_unique_id());
    queues.push(reply_q.clone());
    let ch = channel(&client).await?;
    let mut transient = FieldTable::default();
    transient.insert("x-expires".into(), AMQPValue::LongInt(1_800_000));
    ch.queue_declare(
        reply_q.as_str().into(),
        QueueDeclareOptions::default(),
        transient,
    )
    .await
    .map_err(|e| amqp_err("declaring the reply queue", e))?;
    let mut replies = ch
        .basic_consume(
            reply_q.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| amqp_err("consuming the reply queue", e))?;
    type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<()>>>>;
    let waiters: Waiters = Arc::default();
    {
        let waiters = waiters.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(d)) = replies.next().await {
                if let Ok(reply) = WireReply::decode(&d.data) {
                    let tx = waiters
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&reply.msg_id);
                    if let Some(tx) = tx {
                        let _ = tx.send(());
                    }
                }
            }
        }));
    }
    let publisher = channel(&client).await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| amqp_err("enabling publisher confirms", e))?;
    let props = properties(Some(CALL_TIMEOUT.as_millis()));
    let exchange: Arc<str> = Arc::from(names.exchange.as_str());
    let topic: Arc<str> = Arc::from(topic);
    let reply_q: Arc<str> = Arc::from(reply_q.as_str());
    let (request, context) = (Arc::new(request), Arc::new(context));
    let start = Instant::now();
    let work = super::in_flight(spec.count, spec.concurrency, &done, &latencies, |_| {
        let (waiters, publisher, props) = (waiters.clone(), publisher.clone(), props.clone());
        let (exchange, topic, reply_q) = (exchange.clone(), topic.clone(), reply_q.clone());
        let (request, context) = (request.clone(), context.clone());
        async move {
            let msg_id = codec::new_unique_id();
            let (tx, rx) = oneshot::channel();
            waiters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(msg_id.clone(), tx);
            let call = CallInfo {
                msg_id,
                reply_q: reply_q.to_string(),
                call_monitor_timeout: None,
            };
            let body =
                codec::encode_request(&context, &request, &codec::new_unique_id(), Some(&call))
                    .map_err(codec_err)?;
            publisher
                .basic_publish(
                    ShortString::from(&*exchange),
                    ShortString::from(&*topic),
                    BasicPublishOptions::default(),
                    &body,
                    props,
                )
                .await
                .map_err(|e| amqp_err("publishing a request", e))?
                .await
                .map_err(|e| amqp_err("waiting for a request's confirm", e))?;
            match tokio::time::timeout(CALL_TIMEOUT, rx).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(CliError::failed("raw lapin: the reply consumer ended")),
                Err(_) => Err(CliError::failed(format!(
                    "raw lapin: no reply within {}",
                    human_duration(CALL_TIMEOUT)
                ))),
            }
        }
    });
    spec.watch.run(label, spec.count, &done, work).await?;
    Ok(Measured {
        seconds: seconds_since(start),
        latencies,
        handled_seconds: None,
    })
}

/// Publishes `count` messages made by `body` to `exchange`/`key` with publisher confirms,
/// keeping up to `window` unconfirmed; each one's latency runs from its publish to its
/// confirm.
#[allow(clippy::too_many_arguments)]
async fn publish_window(
    ch: &Channel,
    exchange: &str,
    key: &str,
    count: u64,
    window: usize,
    done: &Counter,
    latencies: &Latencies,
    mut body: impl FnMut() -> msg::Result<Vec<u8>>,
) -> Result<(), CliError> {
    let props = properties(None);
    let window = window.max(1);
    let mut pending = FuturesUnordered::new();
    let settle = |(started, outcome): (Instant, lapin::Result<Confirmation>)| match outcome {
        Ok(Confirmation::Ack(_)) | Ok(Confirmation::NotRequested) => {
            latencies.since(started);
            done.add(1);
            Ok(())
        }
        Ok(Confirmation::Nack(_)) => Err(CliError::failed(
            "raw lapin: the broker refused a message (nack)",
        )),
        Err(e) => Err(amqp_err("waiting for a confirm", e)),
    };
    for _ in 0..count {
        while pending.len() >= window {
            if let Some(c) = pending.next().await {
                settle(c)?;
            }
        }
        let bytes = body().map_err(codec_err)?;
        let started = Instant::now();
        let confirm = ch
            .basic_publish(
                ShortString::from(exchange),
                ShortString::from(key),
                BasicPublishOptions::default(),
                &bytes,
                props.clone(),
            )
            .await
            .map_err(|e| amqp_err("publishing", e))?;
        pending.push(async move { (started, confirm.await) });
        // confirms already in: taken now, so their latency is not stretched by the window
        while let Some(Some(c)) = pending.next().now_or_never() {
            settle(c)?;
        }
    }
    while let Some(c) = pending.next().await {
        settle(c)?;
    }
    Ok(())
}

async fn notify(
    spec: &Spec,
    label: &str,
    names: &Names,
    conns: &mut Vec<Arc<Connection>>,
    queues: &mut Vec<String>,
) -> Result<Measured, CliError> {
    let publisher = Arc::new(connect(spec).await?);
    conns.push(publisher.clone());
    // where the notifier sends `info`, and the queue it declares (store and forward)
    let key = format!("{}.info", names.topic);
    queues.push(key.clone());
    spec.watch
        .bounded("declaring", declare(&publisher, &names.exchange, &key))
        .await?;
    let ch = channel(&publisher).await?;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| amqp_err("enabling publisher confirms", e))?;
    let payload = spec.payload();
    let context = Context::new();
    let body = || {
        let n = Notification::new(PUBLISHER_ID, EVENT_TYPE, Priority::Info, payload.clone());
        codec::encode_notification(&context, &n, &codec::new_unique_id(), EnvelopeVersion::V2)
    };
    let done = Counter::default();
    let latencies = Latencies::new();
    if spec.work == Work::Publish {
        let start = Instant::now();
        let work = publish_window(
            &ch,
            &names.exchange,
            &key,
            spec.count,
            spec.concurrency,
            &done,
            &latencies,
            body,
        );
        spec.watch.run(label, spec.count, &done, work).await?;
        return Ok(Measured {
            seconds: seconds_since(start),
            latencies,
            handled_seconds: None,
        });
    }

    // consume: preload (untimed), then drain
    let scratch = Latencies::new();
    let preload = publish_window(
        &ch,
        &names.exchange,
        &key,
        spec.count,
        PRELOAD_WINDOW,
        &done,
        &scratch,
        body,
    );
    spec.watch
        .run(&format!("{label} preload"), spec.count, &done, preload)
        .await?;
    let consumer_conn = Arc::new(connect(spec).await?);
    conns.push(consumer_conn.clone());
    let handled = Counter::default();
    let start = Instant::now();
    let gaps = Gaps::new(start, latencies.clone());
    let drain = async {
        let ch = channel(&consumer_conn).await?;
        ch.basic_qos(spec.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| amqp_err("setting the prefetch", e))?;
        let mut consumer = ch
            .basic_consume(
                key.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| amqp_err("consuming", e))?;
        let ack_every = spec.ack_every();
        let mut unacked = 0u64;
        while handled.get() < spec.count {
            let Some(d) = consumer.next().await else {
                return Err(CliError::failed("raw lapin: the consumer ended early"));
            };
            let d = d.map_err(|e| amqp_err("consuming", e))?;
            WireNotification::decode(&d.data)
                .map_err(|e| CliError::failed(format!("raw lapin: a bad notification: {e}")))?;
            handled.add(1);
            gaps.completed(1);
            unacked += 1;
            if unacked >= ack_every || handled.get() == spec.count {
                unacked = 0;
                d.acker
                    .ack(BasicAckOptions { multiple: true })
                    .await
                    .map_err(|e| amqp_err("acknowledging", e))?;
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
