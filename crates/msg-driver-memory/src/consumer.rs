//! Listener streams over a consumer's channel, and the settlement of what they yield.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures::Stream;
use msg_core::codec::{Failure, WireNotification, WireReply, WireRequest};
use msg_core::{
    Acknowledger, IncomingNotification, IncomingRequest, Responder, Result, StopListening,
};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::broker::{Broker, Consumer, Delivery, Item};

/// Turns a delivery into what the listener yields; `None` when it can't be decoded (it was
/// logged and rejected).
pub(crate) type Decode<M> = fn(&Arc<Broker>, &Arc<Consumer>, Delivery) -> Option<M>;

/// A listener's stream: deliveries decoded as they are yielded. On stop (or drop) what the
/// channel still holds goes back to its queues, never acked.
pub(crate) struct ConsumerStream<M> {
    rx: mpsc::UnboundedReceiver<Item>,
    consumer: Arc<Consumer>,
    broker: Arc<Broker>,
    decode: Decode<M>,
    ended: bool,
}

impl<M> ConsumerStream<M> {
    pub(crate) fn new(
        rx: mpsc::UnboundedReceiver<Item>,
        consumer: Arc<Consumer>,
        broker: Arc<Broker>,
        decode: Decode<M>,
    ) -> Self {
        ConsumerStream {
            rx,
            consumer,
            broker,
            decode,
            ended: false,
        }
    }

    fn give_back(&mut self) {
        while let Ok(item) = self.rx.try_recv() {
            if let Item::Delivery(d) = item {
                d.requeue();
                self.consumer.settled();
            }
        }
    }
}

impl<M> Stream for ConsumerStream<M> {
    type Item = M;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<M>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if self.consumer.is_stopped() {
            self.ended = true;
            self.give_back();
            return Poll::Ready(None);
        }
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Item::Delivery(d))) => {
                    if let Some(m) = (self.decode)(&self.broker, &self.consumer, d) {
                        return Poll::Ready(Some(m));
                    }
                }
                Poll::Ready(Some(Item::Stop)) | Poll::Ready(None) => {
                    self.ended = true;
                    self.give_back();
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<M> Drop for ConsumerStream<M> {
    fn drop(&mut self) {
        self.consumer.stop();
        self.give_back();
    }
}

/// Stops a memory listener.
#[derive(Debug)]
pub(crate) struct MemoryStop(pub(crate) Arc<Consumer>);

impl StopListening for MemoryStop {
    fn stop(&self) {
        self.0.stop();
    }
}

/// A delivery that goes back to its queue if dropped unsettled (as a closed channel
/// requeues on a real broker).
struct Unsettled {
    delivery: Mutex<Option<Delivery>>,
    consumer: Arc<Consumer>,
}

impl Unsettled {
    fn new(delivery: Delivery, consumer: Arc<Consumer>) -> Self {
        Unsettled {
            delivery: Mutex::new(Some(delivery)),
            consumer,
        }
    }

    fn take(&self) -> Option<Delivery> {
        self.delivery
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn ack(&self) {
        if self.take().is_some() {
            self.consumer.settled();
        }
    }

    fn requeue(&self) {
        if let Some(d) = self.take() {
            d.requeue();
            self.consumer.settled();
        }
    }
}

impl Drop for Unsettled {
    fn drop(&mut self) {
        self.requeue();
    }
}

impl fmt::Debug for Unsettled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unsettled").finish_non_exhaustive()
    }
}

fn reject_malformed(what: &str, delivery: Delivery, consumer: &Consumer, err: &msg_core::Error) {
    tracing::warn!(
        queue = delivery.queue.name(),
        error = %err,
        "rejected a {what} that can't be decoded (not requeued)"
    );
    consumer.settled();
}

/// Decodes an RPC request delivery.
pub(crate) fn decode_request(
    broker: &Arc<Broker>,
    consumer: &Arc<Consumer>,
    delivery: Delivery,
) -> Option<IncomingRequest> {
    match WireRequest::decode(&delivery.message.body) {
        Ok(req) => {
            let (msg_id, reply_q, cmt) = match req.call {
                Some(c) => (Some(c.msg_id), Some(c.reply_q), c.call_monitor_timeout),
                None => (None, None, None),
            };
            let responder = Arc::new(MemoryResponder {
                broker: broker.clone(),
                reply_q,
                delivery: Unsettled::new(delivery, consumer.clone()),
            });
            Some(IncomingRequest::new(
                req.context,
                req.request,
                req.unique_id,
                msg_id,
                cmt,
                responder,
            ))
        }
        Err(e) => {
            reject_malformed("request", delivery, consumer, &e);
            None
        }
    }
}

/// Decodes a notification delivery.
pub(crate) fn decode_notification(
    _broker: &Arc<Broker>,
    consumer: &Arc<Consumer>,
    delivery: Delivery,
) -> Option<IncomingNotification> {
    match WireNotification::decode(&delivery.message.body) {
        Ok(n) => Some(IncomingNotification::new(
            n.context,
            n.notification,
            n.unique_id,
            Box::new(MemoryAcker(Unsettled::new(delivery, consumer.clone()))),
        )),
        Err(e) => {
            reject_malformed("notification", delivery, consumer, &e);
            None
        }
    }
}

#[derive(Debug)]
struct MemoryResponder {
    broker: Arc<Broker>,
    reply_q: Option<String>,
    delivery: Unsettled,
}

impl MemoryResponder {
    fn send(&self, reply: WireReply) -> Result<()> {
        let Some(reply_q) = &self.reply_q else {
            return Ok(());
        };
        let body = reply.encode()?;
        if !self.broker.publish_reply(reply_q, &body)? {
            tracing::warn!(
                reply_q,
                msg_id = reply.msg_id,
                "the caller's reply queue is gone; reply dropped"
            );
        }
        Ok(())
    }
}

#[async_trait]
impl Responder for MemoryResponder {
    async fn ack(&self) -> Result<()> {
        self.delivery.ack();
        Ok(())
    }

    async fn reply(&self, msg_id: &str, reply: std::result::Result<Value, Failure>) -> Result<()> {
        self.send(match reply {
            Ok(v) => WireReply::result(msg_id, v),
            Err(f) => WireReply::failure(msg_id, f),
        })
    }

    async fn heartbeat(&self, msg_id: &str) -> Result<()> {
        self.send(WireReply::heartbeat(msg_id))
    }
}

#[derive(Debug)]
struct MemoryAcker(Unsettled);

#[async_trait]
impl Acknowledger for MemoryAcker {
    async fn ack(self: Box<Self>) -> Result<()> {
        self.0.ack();
        Ok(())
    }

    async fn requeue(self: Box<Self>, delay: Option<Duration>) -> Result<()> {
        match delay.filter(|d| !d.is_zero()) {
            None => self.0.requeue(),
            Some(delay) => {
                // the message stays unsettled (holding its credit) until the delay is over
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    self.0.requeue();
                });
            }
        }
        Ok(())
    }
}
