//! The listeners' intakes over a consumer, and the settlement of what they yield.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use msg_core::codec::{WireNotification, WireReply, WireRequest};
use msg_core::feed::{Intake, feed, log_rejected};
use msg_core::{Acknowledger, IncomingNotification, IncomingRequest, Listener, Responder, Result};

use crate::broker::{Broker, Consumer, Delivery};

/// Turns a delivery into what the listener yields; `None` when it can't be decoded (it was
/// logged and rejected).
type Decode<M> = fn(&Arc<Broker>, &Arc<Consumer>, Delivery) -> Option<M>;

/// A memory listener's intake: decodes deliveries as they are yielded; what is given back
/// goes to the head of its queue, redelivered.
struct MemoryIntake<M> {
    consumer: Arc<Consumer>,
    broker: Arc<Broker>,
    decode: Decode<M>,
}

impl<M: Send + 'static> Intake for MemoryIntake<M> {
    type Raw = Delivery;
    type Item = M;

    fn decode(&self, d: Delivery) -> Option<M> {
        (self.decode)(&self.broker, &self.consumer, d)
    }

    fn give_back(&self, raws: Vec<Delivery>) {
        for d in raws {
            d.requeue();
            self.consumer.settled();
        }
    }

    fn stop(&self) {
        self.consumer.stop();
    }
}

/// A listener over `consumer`, which starts handing it deliveries now.
pub(crate) fn listener<M: Send + 'static>(
    broker: &Arc<Broker>,
    consumer: &Arc<Consumer>,
    decode: Decode<M>,
) -> Listener<M> {
    let (tx, listener) = feed(MemoryIntake {
        consumer: consumer.clone(),
        broker: broker.clone(),
        decode,
    });
    consumer.attach(Box::new(move |d| tx.try_push(d)));
    listener
}

/// An RPC server's listener over `consumer`.
pub(crate) fn request_listener(
    broker: &Arc<Broker>,
    consumer: &Arc<Consumer>,
) -> Listener<IncomingRequest> {
    listener(broker, consumer, decode_request)
}

/// A notification listener over `consumer`.
pub(crate) fn notification_listener(
    broker: &Arc<Broker>,
    consumer: &Arc<Consumer>,
) -> Listener<IncomingNotification> {
    listener(broker, consumer, decode_notification)
}

/// A delivery that goes back to its queue if dropped unsettled (as a closed channel
/// requeues on a real broker).
struct Unsettled {
    delivery: parking_lot::Mutex<Option<Delivery>>,
    consumer: Arc<Consumer>,
}

impl Unsettled {
    fn new(delivery: Delivery, consumer: Arc<Consumer>) -> Self {
        Unsettled {
            delivery: parking_lot::Mutex::new(Some(delivery)),
            consumer,
        }
    }

    fn ack(&self) {
        if self.delivery.lock().take().is_some() {
            self.consumer.settled();
        }
    }

    fn requeue(&self) {
        let taken = self.delivery.lock().take();
        if let Some(d) = taken {
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
    log_rejected(what, delivery.queue.name(), err);
    consumer.settled();
}

/// Decodes an RPC request delivery.
fn decode_request(
    broker: &Arc<Broker>,
    consumer: &Arc<Consumer>,
    delivery: Delivery,
) -> Option<IncomingRequest> {
    match WireRequest::decode(&delivery.message.body) {
        Ok(req) => {
            let responder = Arc::new(MemoryResponder {
                broker: broker.clone(),
                reply_q: req.call.as_ref().map(|c| c.reply_q.clone()),
                delivery: Unsettled::new(delivery, consumer.clone()),
            });
            Some(IncomingRequest::from_wire(req, responder))
        }
        Err(e) => {
            reject_malformed("request", delivery, consumer, &e);
            None
        }
    }
}

/// Decodes a notification delivery.
fn decode_notification(
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

#[async_trait]
impl Responder for MemoryResponder {
    async fn ack(&self) -> Result<()> {
        self.delivery.ack();
        Ok(())
    }

    async fn send(&self, reply: WireReply) -> Result<()> {
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
