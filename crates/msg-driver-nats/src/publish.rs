//! Sending: RPC calls and casts on core NATS (their replies, receipts and "no responders"
//! come to the reply inbox), notifications on JetStream (published until JetStream acks
//! them, with their stream and the default group's consumer made on the way).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use msg_core::codec::{self, CallInfo, EnvelopeVersion, RpcRequest};
use msg_core::{
    Context, Error, Notification, Priority, Refusal, Result, Retry, SendOptions, Target,
};
use serde_json::Value;
use tokio::sync::watch;

use crate::NatsDriver;
use crate::errors;
use crate::reply::{ReplyInbox, Signal};
use crate::topology::{NotifyPath, Topology};

/// The send paths worked out so far: exchange, then topic, then priority (looked up with
/// borrowed names, so a send allocates no key).
pub(crate) type NotifyPaths =
    parking_lot::Mutex<HashMap<String, HashMap<String, Vec<(Priority, Arc<NotifyPath>)>>>>;

impl NatsDriver {
    async fn inbox(&self) -> Result<&ReplyInbox> {
        self.inbox
            .get_or_try_init(|| ReplyInbox::open(&self.conn))
            .await
    }

    /// Where an RPC message goes.
    fn rpc_subject(&self, target: &Target) -> Result<String> {
        let topic = target.require_topic()?;
        let layout = &self.topo.layout;
        if target.fanout {
            layout.rpc_fanout(topic)
        } else if let Some(server) = &target.server {
            layout.rpc_server(self.exchange(target), topic, server)
        } else {
            layout.rpc_topic(self.exchange(target), topic)
        }
    }

    /// The send path of a notification to `target` at `priority` (worked out on the first
    /// send, then looked up).
    fn notify_path(&self, target: &Target, priority: Priority) -> Result<Arc<NotifyPath>> {
        let topic = target.require_topic()?;
        let exchange = self.exchange(target);
        let known = self
            .notify_paths
            .lock()
            .get(exchange)
            .and_then(|topics| topics.get(topic))
            .and_then(|ps| ps.iter().find(|(p, _)| *p == priority))
            .map(|(_, path)| path.clone());
        if let Some(path) = known {
            return Ok(path);
        }
        let stream = self.topo.layout.notify_stream(exchange)?;
        // the notifier makes the default group's consumer too: kept from the first send
        let spec = self.consumer_spec(&stream, target, priority, None)?;
        let path = Arc::new(self.topo.notify_path(exchange, spec)?);
        let mut paths = self.notify_paths.lock();
        let ps = paths
            .entry(exchange.to_string())
            .or_default()
            .entry(topic.to_string())
            .or_default();
        if !ps.iter().any(|(p, _)| *p == priority) {
            ps.push((priority, path.clone()));
        }
        Ok(path)
    }

    /// Sends a request that expects a signal back (a call's "no responders", a cast's
    /// receipt), with `retry` for the connection. Returns a watch that changes when the
    /// connection the request went out on is lost: what comes back for it is lost then too.
    async fn publish_request(
        &self,
        subject: String,
        reply: String,
        body: Vec<u8>,
        retry: Retry,
    ) -> Result<watch::Receiver<u64>> {
        self.conn.check_size("request", body.len())?;
        self.conn.wait_connected(retry).await?;
        let lost = self.conn.losses();
        self.conn
            .client
            .publish_with_reply(subject, reply, Bytes::from(body))
            .await
            .map_err(|e| errors::unavailable("publishing a request to NATS", e))?;
        Ok(lost)
    }

    /// The error of a send whose answer was on its way when the connection was lost.
    fn connection_lost(&self, what: String) -> Error {
        Error::ConnectionLost {
            what: format!(
                "{what}: the connection to NATS at {} was lost (core NATS keeps nothing for a \
                 client that is away; the request may have been handled)",
                self.conn.label()
            ),
        }
    }

    /// Sends a call and waits for its reply: `<inbox>.<msg_id>` gets the reply, the
    /// heartbeats and NATS's "no responders"; a lost connection fails it at once.
    pub(crate) async fn publish_call(
        &self,
        target: &Target,
        context: &Context,
        request: &RpcRequest,
        options: &SendOptions,
    ) -> Result<Value> {
        let subject = self.rpc_subject(target)?;
        let inbox = self.inbox().await?;
        let call = CallInfo {
            msg_id: codec::new_unique_id(),
            reply_q: inbox.base.clone(),
            call_monitor_timeout: options.call_monitor_timeout,
        };
        let body = codec::encode_request(context, request, &codec::new_unique_id(), Some(&call))?;
        let reply = inbox.reply_subject(&call.msg_id);
        let pending = inbox.waiters.register(call.msg_id.clone());
        let (_guard, mut signal) = inbox.signal(&call.msg_id);
        let mut lost = self
            .publish_request(subject.clone(), reply, body, options.retry)
            .await?;
        let wait = pending.wait(request, options.timeout, options.call_monitor_timeout);
        tokio::pin!(wait);
        let mut signalled = false;
        loop {
            tokio::select! {
                r = &mut wait => return r,
                // the reply (or a heartbeat) sent while this client is away is lost: waiting
                // longer only makes the caller wait for the timeout
                _ = lost.changed() => {
                    return Err(self.connection_lost(format!(
                        "no reply to `{}` from `{subject}`",
                        request.method
                    )));
                }
                s = &mut signal, if !signalled => {
                    signalled = true;
                    if let Ok(Signal::NoResponders) = s {
                        return Err(if options.at_least_once {
                            Error::Undeliverable { destination: subject }
                        } else {
                            Error::NoResponders { destination: subject }
                        });
                    }
                }
            }
        }
    }

    /// Sends a cast; with `at_least_once`, waits for a server's receipt.
    pub(crate) async fn publish_cast(
        &self,
        target: &Target,
        context: &Context,
        request: &RpcRequest,
        options: &SendOptions,
    ) -> Result<()> {
        let subject = self.rpc_subject(target)?;
        let body = codec::encode_request(context, request, &codec::new_unique_id(), None)?;
        if !options.at_least_once {
            self.conn.check_size("request", body.len())?;
            self.conn.wait_connected(options.retry).await?;
            return self
                .conn
                .client
                .publish(subject, Bytes::from(body))
                .await
                .map_err(|e| errors::unavailable("publishing a cast to NATS", e));
        }
        // at least once: a server that takes it sends a receipt; nobody listening is a
        // "no responders"
        let inbox = self.inbox().await?;
        let id = codec::new_unique_id();
        let (_guard, signal) = inbox.signal(&id);
        let mut lost = self
            .publish_request(
                subject.clone(),
                inbox.reply_subject(&id),
                body,
                options.retry,
            )
            .await?;
        let bound = options
            .timeout
            .unwrap_or(self.conn.options.cast_receipt_timeout);
        let signal = async {
            tokio::select! {
                s = signal => Some(s),
                _ = lost.changed() => None,
            }
        };
        match tokio::time::timeout(bound, signal).await {
            Ok(None) => Err(self.connection_lost(format!("no receipt for a cast to `{subject}`"))),
            Ok(Some(Ok(Signal::Receipt))) => Ok(()),
            Ok(Some(Ok(Signal::NoResponders))) => Err(Error::Undeliverable {
                destination: subject,
            }),
            Ok(Some(Err(_))) => Err(Error::Closed("the transport was closed".into())),
            Err(_) => Err(Error::Timeout {
                what: format!("no server's receipt for a cast to `{subject}`"),
                after: bound,
            }),
        }
    }

    /// Publishes a notification to JetStream and waits for its ack.
    pub(crate) async fn publish_notification(
        &self,
        target: &Target,
        context: &Context,
        notification: &Notification,
        version: EnvelopeVersion,
        retry: Retry,
    ) -> Result<()> {
        self.require_jetstream().await?;
        let path = self.notify_path(target, notification.priority)?;
        let unique_id = codec::new_unique_id();
        let body = codec::encode_notification(context, notification, &unique_id, version)?;
        // the body plus the `Nats-Msg-Id` header
        self.conn
            .check_size("notification", body.len() + unique_id.len() + 32)?;
        let topo = &self.topo;
        topo.publish(
            path.subject(),
            &unique_id,
            None,
            Bytes::from(body),
            retry,
            || topo.ensure_notify_path(&path),
        )
        .await
    }
}

impl Topology {
    /// Publishes to a stream subject and waits for JetStream's ack, as often as `retry`
    /// allows, with the same `Nats-Msg-Id` every time (the stream stores it once).
    /// `ensure` runs before each attempt (and again after a "no stream").
    pub(crate) async fn publish<F, Fut>(
        &self,
        subject: &str,
        msg_id: &str,
        headers: Option<async_nats::HeaderMap>,
        body: Bytes,
        retry: Retry,
        ensure: F,
    ) -> Result<()>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let mut attempt: u32 = 0;
        loop {
            let outcome: Result<()> = async {
                if !self.conn.is_ready() {
                    // off the hot path (and out of its future's state)
                    Box::pin(self.conn.wait_connected(retry)).await?;
                }
                ensure().await?;
                let mut m = PublishMessage::build()
                    .payload(body.clone())
                    .message_id(msg_id);
                if let Some(h) = &headers {
                    for (k, vs) in h.iter() {
                        for v in vs {
                            m = m.header(k.clone(), v.clone());
                        }
                    }
                }
                let ack = self
                    .conn
                    .js
                    .send_publish(subject.to_string(), m)
                    .await
                    .map_err(|e| publish_error(subject, e))?
                    .await
                    .map_err(|e| publish_error(subject, e))?;
                if ack.duplicate {
                    tracing::debug!(
                        subject,
                        msg_id,
                        "JetStream had this message already (retried publish)"
                    );
                }
                Ok(())
            }
            .await;
            match outcome {
                Ok(()) => return Ok(()),
                Err(
                    e
                    @ (Error::InvalidArgument(_) | Error::InvalidTarget { .. } | Error::Closed(_)),
                ) => {
                    return Err(e);
                }
                Err(e) => {
                    if matches!(
                        &e,
                        Error::Refused {
                            reason: Refusal::NotFound,
                            ..
                        }
                    ) {
                        self.forget();
                    }
                    if retry.max_attempts().is_some_and(|max| attempt + 1 >= max) {
                        return Err(e);
                    }
                    attempt += 1;
                    let delay = self
                        .conn
                        .options
                        .reconnect_delay(attempt as usize)
                        .clamp(Duration::from_millis(100), Duration::from_secs(2));
                    tracing::warn!(subject, attempt, error = %e, "publishing to JetStream failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

fn publish_error(subject: &str, e: async_nats::jetstream::context::PublishError) -> Error {
    match e.kind() {
        PublishErrorKind::MaxPayloadExceeded => Error::InvalidArgument(format!(
            "a message for `{subject}` is over the NATS server's max_payload: {e}"
        )),
        PublishErrorKind::StreamNotFound => Error::refused(
            Refusal::NotFound,
            format!("no stream stores `{subject}`"),
            Some(Box::new(e)),
        ),
        PublishErrorKind::WrongLastMessageId | PublishErrorKind::WrongLastSequence => {
            Error::refused(
                Refusal::PreconditionFailed,
                format!("publishing to `{subject}`"),
                Some(Box::new(e)),
            )
        }
        _ => Error::unavailable(
            format!("publishing to `{subject}` got no JetStream ack"),
            Some(Box::new(e)),
        ),
    }
}
