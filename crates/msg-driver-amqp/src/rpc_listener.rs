//! The RPC listener's side of a delivery: a request decoded, its responder acking it and
//! publishing the replies and heartbeats to the caller's reply queue.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lapin::message::Delivery;
use msg_core::codec::{WireReply, WireRequest};
use msg_core::{IncomingRequest, Responder, Result, Retry};
use parking_lot::Mutex;

use crate::body;
use crate::connection::Bound;
use crate::consumer::{Received, Shared, ack, reject_later, reject_malformed};
use crate::publish::Outgoing;

/// Decodes an RPC request.
pub(crate) fn decode_request(shared: &Arc<Shared>, r: Received) -> Option<IncomingRequest> {
    let decoded = r.body().and_then(WireRequest::decode);
    match decoded {
        Ok(req) => {
            let responder = Arc::new(AmqpResponder {
                shared: shared.clone(),
                reply_q: req.call.as_ref().map(|c| c.reply_q.clone()),
                reply_within: expiration(&r.delivery),
                received: Mutex::new(Some(r)),
            });
            Some(IncomingRequest::from_wire(req, responder))
        }
        Err(e) => {
            reject_malformed(shared, r, "request", &e);
            None
        }
    }
}

/// The caller's timeout, which it sends as the request's `expiration` (milliseconds; oslo
/// does too): a reply later than that is waited for by nobody. At most a day.
fn expiration(d: &Delivery) -> Option<Duration> {
    let ms: u64 = d.properties.expiration().as_ref()?.as_str().parse().ok()?;
    Some(Duration::from_millis(ms.min(86_400_000)))
}

struct AmqpResponder {
    shared: Arc<Shared>,
    reply_q: Option<String>,
    /// How long a reply may wait for RabbitMQ (blocking publishers): the caller's timeout.
    reply_within: Option<Duration>,
    /// Until acknowledged.
    received: Mutex<Option<Received>>,
}

impl fmt::Debug for AmqpResponder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpResponder")
            .field("reply_q", &self.reply_q)
            .finish_non_exhaustive()
    }
}

impl Drop for AmqpResponder {
    fn drop(&mut self) {
        if let Some(r) = self.received.lock().take() {
            reject_later(&self.shared.sup, r, true);
        }
    }
}

/// How often a reply to a missing reply queue is published again (oslo's pace).
const MISSING_QUEUE_RETRY_EVERY: Duration = Duration::from_millis(250);

impl AmqpResponder {
    /// Publishes a reply or heartbeat to the caller's reply queue, confirmed, and mandatory
    /// (with `direct_mandatory_flag`) so that a missing reply queue is known: the broker
    /// returns the message. A returned reply is published again every 0.25 s for
    /// `kombu_missing_consumer_retry_timeout` (the caller may be reconnecting, its queue
    /// about to be declared again), then given up: logged as an error (never the body) and
    /// the queue marked obsolete, so later replies to it are dropped at once, as oslo does. A
    /// returned heartbeat is logged and dropped.
    async fn publish_reply(&self, reply: WireReply) -> Result<()> {
        let Some(reply_q) = &self.reply_q else {
            return Ok(());
        };
        let what = if reply.ending { "reply" } else { "heartbeat" };
        let msg_id = reply.msg_id.clone();
        if self.shared.obsolete.contains(reply_q) {
            tracing::warn!(
                msg_id,
                reply_queue = reply_q.as_str(),
                "the {what}'s reply queue is missing (given up on earlier); dropped"
            );
            return Ok(());
        }
        let sup = &self.shared.sup;
        let compression = sup.options.kombu_compression.as_deref();
        let body = body::compress(reply.encode()?, compression)?;
        let props = body::properties(None, compression);
        let patience = sup.options.missing_consumer_retry_timeout();
        let start = tokio::time::Instant::now();
        loop {
            let routed = sup
                .publish(Outgoing {
                    exchange: "",
                    key: reply_q,
                    body: &body,
                    properties: &props,
                    mandatory: sup.options.direct_mandatory_flag,
                    // a reply waits for a blocked connection no longer than its caller waits
                    bound: Bound::new(Retry::Attempts(1), self.reply_within),
                })
                .await?;
            if routed {
                return Ok(());
            }
            if !reply.ending {
                tracing::warn!(
                    msg_id,
                    reply_queue = reply_q.as_str(),
                    bytes = body.len(),
                    "the broker returned a heartbeat: its reply queue is missing; dropped"
                );
                return Ok(());
            }
            if start.elapsed() >= patience {
                self.shared.obsolete.add(reply_q);
                tracing::error!(
                    msg_id,
                    reply_queue = reply_q.as_str(),
                    bytes = body.len(),
                    after = ?patience,
                    "a reply could not be sent: its reply queue is missing (the caller is \
                     gone, or the queue was deleted); given up, and later replies to that \
                     queue are dropped"
                );
                return Ok(());
            }
            tracing::debug!(
                msg_id,
                reply_queue = reply_q.as_str(),
                "the reply queue is missing; publishing the reply again"
            );
            tokio::time::sleep(MISSING_QUEUE_RETRY_EVERY).await;
        }
    }
}

#[async_trait]
impl Responder for AmqpResponder {
    async fn ack(&self) -> Result<()> {
        let r = self.received.lock().take();
        match r {
            Some(r) => ack(&self.shared.sup, &r).await,
            None => Ok(()),
        }
    }

    async fn send(&self, reply: WireReply) -> Result<()> {
        self.publish_reply(reply).await
    }
}
