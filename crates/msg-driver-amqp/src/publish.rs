//! Publishing: every message confirmed by the broker, published again after a nack (on a
//! fresh channel) or a lost connection as `retry` allows, waiting out RabbitMQ's flow
//! control within the send's timeout; and the driver's sends built on it (RPC calls and
//! casts, notifications).

use std::sync::Arc;
use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::{BasicProperties, Confirmation};
use msg_core::codec::{self, CallInfo, EnvelopeVersion, RpcRequest};
use msg_core::naming;
use msg_core::{Context, Error, Notification, Refusal, Result, Retry, SendOptions, Target};
use serde_json::Value;

use crate::connection::{Bound, Conn, Supervisor, amqp_err, is_connection_error};
use crate::topology::Decl;
use crate::{AmqpDriver, body, names};

/// One message to publish.
pub(crate) struct Outgoing<'a> {
    pub(crate) exchange: &'a str,
    pub(crate) key: &'a str,
    pub(crate) body: &'a [u8],
    pub(crate) properties: &'a BasicProperties,
    /// Have the broker return it when nothing is bound.
    pub(crate) mandatory: bool,
    /// How often it is published again (after a lost connection or a nack) and how long the
    /// send may take, waiting for a blocked connection included.
    pub(crate) bound: Bound,
}

/// The pause before publishing again a message the broker refused (nack): a quorum queue
/// without a leader, or a full queue that rejects publishes, refuses for a while.
const NACK_PAUSE: Duration = Duration::from_millis(250);

/// How many fresh channels in a row may refuse (nack) one message before the connections
/// move to another node.
const NACKS_BEFORE_MOVING: u32 = 4;

/// How old a connection must be before nacks move it to another node (so that a quorum
/// queue that is electing a leader, refusing everyone for a moment, costs no reconnect
/// storm).
const MOVE_AFTER: Duration = Duration::from_secs(5);

impl Supervisor {
    /// Publishes and waits for the broker's confirm (every publish is confirmed, as oslo's
    /// `confirm_publish`). A publish the broker refuses (nack) or whose connection is lost
    /// before the confirm is published again with the same bytes (so the same `_unique_id`:
    /// receivers drop a duplicate), as often and for as long as `bound` allows. Returns
    /// `Ok(false)` when a mandatory message came back unroutable. While RabbitMQ blocks
    /// publishing it waits, within the bound's timeout, then fails saying so.
    pub(crate) async fn publish(self: &Arc<Self>, out: Outgoing<'_>) -> Result<bool> {
        let Outgoing {
            exchange,
            key,
            body,
            properties,
            mandatory,
            bound,
        } = out;
        let timeout = bound.timeout();
        let mut attempt = 0u32;
        // nacks of this message in a row, each on a fresh channel
        let mut nacks = 0u32;
        loop {
            let conn = self.connection(bound, &mut attempt).await?;
            if let Err(reason) = conn.wait_unblocked(bound.deadline()).await {
                return Err(blocked_error(
                    &reason,
                    exchange,
                    key,
                    "was not sent",
                    timeout,
                ));
            }
            let publisher = conn.publisher();
            let send = async {
                publisher
                    .channel
                    .basic_publish(
                        ShortString::from(exchange),
                        ShortString::from(key),
                        BasicPublishOptions {
                            mandatory,
                            immediate: false,
                        },
                        body,
                        properties.clone(),
                    )
                    .await?
                    .await
            };
            let confirmed = async {
                match bound.deadline() {
                    Some(d) => tokio::time::timeout_at(d, send).await.ok(),
                    None => Some(send.await),
                }
            };
            let outcome = tokio::select! {
                confirmed = confirmed => match confirmed {
                    Some(outcome) => outcome,
                    None => {
                        return Err(match conn.blocked() {
                            Some(reason) => {
                                blocked_error(&reason, exchange, key, "was not confirmed", timeout)
                            }
                            None => bound.timed_out(&format!(
                                "RabbitMQ's confirm of a message to {exchange}/{key}"
                            )),
                        });
                    }
                },
                // the supervisor gave the connection up under this publish: its confirm may
                // never come (see `Conn::until_lost`); the bytes go again on the next one
                () = conn.until_lost() => Err(lapin::Error::from(lapin::ErrorKind::InvalidConnectionState(
                    lapin::ConnectionState::Closed,
                ))),
            };
            let nacked = match outcome {
                Ok(Confirmation::Ack(returned)) => {
                    if nacks > 0 {
                        tracing::info!(
                            exchange,
                            key,
                            nacks,
                            host = conn.host,
                            "a message the broker refused is confirmed now"
                        );
                    }
                    return Ok(returned.is_none());
                }
                Ok(Confirmation::NotRequested) => return Ok(true),
                Ok(Confirmation::Nack(_)) => {
                    let refused = Error::refused(
                        Refusal::Nacked,
                        format!("a message for {exchange}/{key}"),
                        None,
                    );
                    if bound.exhausted(attempt) {
                        return Err(refused);
                    }
                    nacks = nacks.saturating_add(1);
                    tracing::warn!(
                        exchange,
                        key,
                        attempt,
                        nacks,
                        host = conn.host,
                        generation = conn.generation,
                        channel = publisher.serial,
                        "the broker refused a message (nack); publishing it again on a fresh channel"
                    );
                    self.after_nack(&conn, publisher.serial, nacks, bound, key)
                        .await;
                    true
                }
                Err(e) if is_connection_error(&e) => {
                    self.connection_lost(conn.generation);
                    if bound.exhausted(attempt) {
                        return Err(Error::unavailable(
                            format!("publishing to {exchange}/{key} failed"),
                            Some(Box::new(e)),
                        ));
                    }
                    tracing::warn!(error = %e, exchange, key, attempt, "publish failed before its confirm; publishing it again after reconnecting");
                    false
                }
                Err(e) => return Err(amqp_err(&format!("publishing to {exchange}/{key}"), e)),
            };
            attempt += 1;
            if nacked {
                let pause = bound
                    .remaining()
                    .map_or(NACK_PAUSE, |left| left.min(NACK_PAUSE));
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// After the broker nacked a message (to `key`) on the publishing channel `serial` of
    /// `conn` (the `nacks`-th time in a row for this message): the next attempt goes out on a fresh
    /// channel; once [`NACKS_BEFORE_MOVING`] fresh channels in a row were refused and the
    /// connection is at least [`MOVE_AFTER`] old, the node itself refuses (RabbitMQ 3.10
    /// after losing a quorum queue's leader) and the connections move to the next host, as
    /// after a lost connection.
    async fn after_nack(
        self: &Arc<Self>,
        conn: &Conn,
        serial: u64,
        nacks: u32,
        bound: Bound,
        key: &str,
    ) {
        if nacks >= NACKS_BEFORE_MOVING && conn.opened.elapsed() >= MOVE_AFTER {
            tracing::warn!(
                host = conn.host,
                generation = conn.generation,
                nacks,
                key,
                "the broker keeps refusing a message on fresh channels: reconnecting to the next host"
            );
            self.connection_lost(conn.generation);
            return;
        }
        let renewed = bound
            .within("a new publishing channel", conn.renew_publisher(serial))
            .await;
        if let Err(e) = renewed {
            // the next attempt finds out whether the connection is gone
            tracing::debug!(error = %e, "opening a new publishing channel failed");
        }
    }

    /// Why RabbitMQ blocks our publishing now, if it does.
    pub(crate) fn publishing_blocked(&self) -> Option<String> {
        self.current().and_then(|c| c.blocked())
    }
}

/// The error of a send that RabbitMQ's flow control held back.
pub(crate) fn blocked_error(
    reason: &str,
    exchange: &str,
    key: &str,
    what: &str,
    within: Option<Duration>,
) -> Error {
    let within = within.map(|t| format!(" within {t:?}")).unwrap_or_default();
    Error::refused(
        Refusal::Blocked,
        format!(
            "RabbitMQ is blocking publishers ({reason}; a memory or disk alarm): the message to \
             {exchange}/{key} {what}{within}"
        ),
        None,
    )
}

impl AmqpDriver {
    /// An RPC call: published to its route, the reply awaited on the reply queue.
    pub(crate) async fn publish_call(
        &self,
        target: &Target,
        context: &Context,
        request: &RpcRequest,
        options: &SendOptions,
    ) -> Result<Value> {
        // the timeout and retry bound the whole call: set-up, publish and the reply
        let bound = Bound::new(options.retry, options.timeout);
        let (exchange, key) = self.rpc_route(target, bound).await?;
        let reply = self.reply_queue(bound).await?;
        let call = CallInfo {
            msg_id: codec::new_unique_id(),
            reply_q: reply.name.clone(),
            call_monitor_timeout: options.call_monitor_timeout,
        };
        let pending = reply.waiters.register(call.msg_id.clone());
        let body = body::compress(
            codec::encode_request(context, request, &codec::new_unique_id(), Some(&call))?,
            self.compression(),
        )?;
        let props = body::properties(
            options.timeout.map(|t| t.as_millis().max(1)),
            self.compression(),
        );
        self.publish_rpc(&exchange, &key, &body, &props, options.at_least_once, bound)
            .await?;
        match pending
            .wait(request, bound.remaining(), options.call_monitor_timeout)
            .await
        {
            // no reply in time while RabbitMQ blocks publishing: the reply is held back too
            Err(Error::Timeout { .. }) if let Some(reason) = self.sup.publishing_blocked() => Err(
                blocked_error(&reason, &exchange, &key, "got no reply", options.timeout),
            ),
            other => other,
        }
    }

    /// An RPC cast: published to its route, confirmed.
    pub(crate) async fn publish_cast(
        &self,
        target: &Target,
        context: &Context,
        request: &RpcRequest,
        options: &SendOptions,
    ) -> Result<()> {
        let bound = Bound::new(options.retry, options.timeout);
        let (exchange, key) = self.rpc_route(target, bound).await?;
        let body = body::compress(
            codec::encode_request(context, request, &codec::new_unique_id(), None)?,
            self.compression(),
        )?;
        let props = body::properties(None, self.compression());
        // the timeout bounds the wait for the confirm (and for a blocked connection)
        self.publish_rpc(&exchange, &key, &body, &props, options.at_least_once, bound)
            .await
    }

    /// Publishes an RPC request, confirmed; with `at_least_once` a request nothing is bound
    /// to is `Undeliverable` (the broker returned it).
    async fn publish_rpc(
        &self,
        exchange: &str,
        key: &str,
        body: &[u8],
        properties: &BasicProperties,
        at_least_once: bool,
        bound: Bound,
    ) -> Result<()> {
        let routed = self
            .sup
            .publish(Outgoing {
                exchange,
                key,
                body,
                properties,
                mandatory: at_least_once,
                bound,
            })
            .await?;
        if !routed {
            return Err(Error::Undeliverable {
                destination: format!("{exchange}/{key}"),
            });
        }
        Ok(())
    }

    /// A notification: its exchange, default queue and binding declared once, then
    /// published, confirmed.
    pub(crate) async fn publish_notification(
        &self,
        target: &Target,
        context: &Context,
        notification: &Notification,
        version: EnvelopeVersion,
        retry: Retry,
    ) -> Result<()> {
        let topic = target.require_topic()?;
        let exchange = self.exchange(target);
        names::check(target, exchange, None)?;
        let key = naming::notification_key(topic, notification.priority);
        // the notifier declares the default queue itself: store and forward
        let bound = Bound::new(retry, None);
        self.declare_once(&format!("{exchange}\0{key}"), bound, || {
            vec![
                self.topic_exchange(exchange),
                self.queue(&key),
                AmqpDriver::bind(&key, exchange, &key),
            ]
        })
        .await?;
        let body = body::compress(
            codec::encode_notification(context, notification, &codec::new_unique_id(), version)?,
            self.compression(),
        )?;
        let props = body::properties(None, self.compression());
        self.sup
            .publish(Outgoing {
                exchange,
                key: &key,
                body: &body,
                properties: &props,
                mandatory: false,
                bound,
            })
            .await?;
        Ok(())
    }

    /// Where an RPC message goes, declaring the exchange first (publishing to a missing
    /// exchange would close the channel), within the send's bound.
    async fn rpc_route(&self, target: &Target, bound: Bound) -> Result<(String, String)> {
        let topic = target.require_topic()?;
        names::check(target, self.exchange(target), None)?;
        if target.fanout {
            self.sup
                .declare(vec![self.fanout_exchange(topic)], bound)
                .await?;
            return Ok((naming::fanout_exchange(topic), String::new()));
        }
        let exchange = self.exchange(target).to_string();
        self.sup
            .declare(vec![self.topic_exchange(&exchange)], bound)
            .await?;
        let key = match &target.server {
            Some(server) => naming::server_key(topic, server),
            None => topic.to_string(),
        };
        Ok((exchange, key))
    }

    /// Declares what a send path needs, once per path (the supervisor re-declares it after
    /// a reconnect).
    async fn declare_once(
        &self,
        path: &str,
        bound: Bound,
        decls: impl FnOnce() -> Vec<Decl>,
    ) -> Result<()> {
        let known = self.declared_paths.read().contains(path);
        if known {
            return Ok(());
        }
        let _one = self.declaring.lock().await;
        if self.declared_paths.read().contains(path) {
            return Ok(());
        }
        self.sup.declare(decls(), bound).await?;
        self.declared_paths.write().insert(path.to_string());
        Ok(())
    }

    fn compression(&self) -> Option<&str> {
        self.sup.options.kombu_compression.as_deref()
    }
}
