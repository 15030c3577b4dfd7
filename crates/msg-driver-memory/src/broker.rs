//! The in-process broker: queues, bindings and round-robin delivery with prefetch credit,
//! modelled on RabbitMQ so the memory driver behaves like the real ones.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;

use bytes::Bytes;
use msg_core::ReplyWaiters;
use msg_core::codec::WireReply;

/// The brokers of this process, by name: transports opened on the same `memory://NAME`
/// share one.
pub(crate) fn named(name: &str) -> Arc<Broker> {
    static BROKERS: OnceLock<Mutex<HashMap<String, Arc<Broker>>>> = OnceLock::new();
    let brokers = BROKERS.get_or_init(Default::default);
    brokers
        .lock()
        .entry(name.to_string())
        .or_insert_with(|| Arc::new(Broker::default()))
        .clone()
}

/// One broker: queues by name, bindings by (exchange, routing key), and the reply queues of
/// the clients connected to it.
#[derive(Default)]
pub(crate) struct Broker {
    state: Mutex<BrokerState>,
    replies: Mutex<HashMap<String, Weak<ReplyWaiters>>>,
}

#[derive(Default)]
struct BrokerState {
    queues: HashMap<String, Arc<Queue>>,
    /// exchange -> routing key -> queues (nested so lookups borrow instead of allocating)
    bindings: HashMap<String, HashMap<String, Vec<Arc<Queue>>>>,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("queues", &self.state.lock().queues.len())
            .finish()
    }
}

impl Broker {
    /// Declares a queue (idempotent) and returns it.
    pub(crate) fn declare_queue(&self, name: &str) -> Arc<Queue> {
        let mut state = self.state.lock();
        if let Some(q) = state.queues.get(name) {
            return q.clone();
        }
        let q = Arc::new(Queue::new(name));
        state.queues.insert(name.to_string(), q.clone());
        q
    }

    /// Binds a queue to an exchange with a routing key (idempotent).
    pub(crate) fn bind(&self, exchange: &str, key: &str, queue: &Arc<Queue>) {
        let mut state = self.state.lock();
        let known = state
            .bindings
            .get(exchange)
            .and_then(|keys| keys.get(key))
            .is_some_and(|bound| bound.iter().any(|q| Arc::ptr_eq(q, queue)));
        if known {
            return;
        }
        state
            .bindings
            .entry(exchange.to_string())
            .or_default()
            .entry(key.to_string())
            .or_default()
            .push(queue.clone());
    }

    /// Deletes a queue and its bindings; what it held is dropped.
    pub(crate) fn delete_queue(&self, name: &str) {
        let mut state = self.state.lock();
        if let Some(q) = state.queues.remove(name) {
            state.bindings.retain(|_, keys| {
                keys.retain(|_, bound| {
                    bound.retain(|b| !Arc::ptr_eq(b, &q));
                    !bound.is_empty()
                });
                !keys.is_empty()
            });
            q.inner.lock().ready.clear();
        }
    }

    /// The queues bound to (exchange, key).
    pub(crate) fn route(&self, exchange: &str, key: &str) -> Vec<Arc<Queue>> {
        self.state
            .lock()
            .bindings
            .get(exchange)
            .and_then(|keys| keys.get(key))
            .cloned()
            .unwrap_or_default()
    }

    /// Registers a client's reply queue.
    pub(crate) fn add_reply_queue(&self, name: &str, waiters: &Arc<ReplyWaiters>) {
        self.replies
            .lock()
            .insert(name.to_string(), Arc::downgrade(waiters));
    }

    /// Removes a client's reply queue.
    pub(crate) fn remove_reply_queue(&self, name: &str) {
        self.replies.lock().remove(name);
    }

    /// Publishes a reply to a reply queue; `false` when that queue is gone. The bytes go
    /// through the codec like any broker's.
    pub(crate) fn publish_reply(&self, reply_q: &str, body: &[u8]) -> msg_core::Result<bool> {
        let waiters = self.replies.lock().get(reply_q).and_then(Weak::upgrade);
        let Some(waiters) = waiters else {
            return Ok(false);
        };
        let reply = WireReply::decode(body)?;
        if !waiters.deliver(reply) {
            tracing::debug!(
                reply_q,
                "a reply for a call nobody waits for any more was dropped"
            );
        }
        Ok(true)
    }
}

/// A message held by a queue.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) body: Bytes,
    pub(crate) redelivered: bool,
}

/// One message delivered to one consumer, not yet settled.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) queue: Arc<Queue>,
    pub(crate) message: Message,
}

impl Delivery {
    /// Puts the message back at the head of its queue, marked redelivered.
    pub(crate) fn requeue(self) {
        let mut message = self.message;
        message.redelivered = true;
        self.queue.push_front(message);
    }
}

/// A queue: ready messages and the consumers it delivers to, round robin, within each
/// consumer's prefetch credit.
pub(crate) struct Queue {
    name: String,
    inner: Mutex<QueueInner>,
}

#[derive(Default)]
struct QueueInner {
    ready: VecDeque<Message>,
    consumers: Vec<Arc<Consumer>>,
    next: usize,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue").field("name", &self.name).finish()
    }
}

impl Queue {
    fn new(name: &str) -> Self {
        Queue {
            name: name.to_string(),
            inner: Mutex::default(),
        }
    }

    /// The queue's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Whether a consumer is attached.
    pub(crate) fn has_consumers(&self) -> bool {
        !self.inner.lock().consumers.is_empty()
    }

    /// How many messages wait in the queue.
    #[cfg(test)]
    pub(crate) fn ready_len(&self) -> usize {
        self.inner.lock().ready.len()
    }

    /// Appends a message and delivers what can be delivered.
    pub(crate) fn push(self: &Arc<Self>, message: Message) {
        let mut inner = self.inner.lock();
        inner.ready.push_back(message);
        self.dispatch_locked(&mut inner);
    }

    fn push_front(self: &Arc<Self>, message: Message) {
        let mut inner = self.inner.lock();
        inner.ready.push_front(message);
        self.dispatch_locked(&mut inner);
    }

    /// Delivers what can be delivered (after a consumer got credit back).
    pub(crate) fn dispatch(self: &Arc<Self>) {
        let mut inner = self.inner.lock();
        self.dispatch_locked(&mut inner);
    }

    pub(crate) fn add_consumer(self: &Arc<Self>, consumer: Arc<Consumer>) {
        let mut inner = self.inner.lock();
        inner.consumers.push(consumer);
        self.dispatch_locked(&mut inner);
    }

    pub(crate) fn remove_consumer(&self, id: u64) {
        let mut inner = self.inner.lock();
        inner.consumers.retain(|c| c.id != id);
        if inner.next >= inner.consumers.len() {
            inner.next = 0;
        }
    }

    fn dispatch_locked(self: &Arc<Self>, inner: &mut QueueInner) {
        while !inner.ready.is_empty() && !inner.consumers.is_empty() {
            let n = inner.consumers.len();
            let Some(idx) = (0..n)
                .map(|i| (inner.next + i) % n)
                .find(|&i| inner.consumers[i].has_credit())
            else {
                return;
            };
            let Some(message) = inner.ready.pop_front() else {
                return;
            };
            let consumer = inner.consumers[idx].clone();
            inner.next = (idx + 1) % n;
            consumer.in_flight.fetch_add(1, Ordering::AcqRel);
            let delivery = Delivery {
                queue: self.clone(),
                message,
            };
            if let Err(d) = consumer.hand(delivery) {
                // the consumer is gone without saying so: take the message back
                consumer.in_flight.fetch_sub(1, Ordering::AcqRel);
                inner.consumers.remove(idx);
                if inner.next >= inner.consumers.len() {
                    inner.next = 0;
                }
                inner.ready.push_front(d.message);
            }
        }
    }
}

/// Where a consumer hands its deliveries (its listener's feed); a delivery it can't take
/// comes back.
pub(crate) type Sink = Box<dyn Fn(Delivery) -> std::result::Result<(), Delivery> + Send + Sync>;

/// One listener's consumption: its sink, its prefetch credit and its queues.
pub(crate) struct Consumer {
    id: u64,
    /// Set once the listener exists; cleared at stop (it holds the listener's feed).
    sink: Mutex<Option<Sink>>,
    prefetch: usize,
    in_flight: AtomicUsize,
    queues: Mutex<Vec<Arc<Queue>>>,
    stopped: std::sync::atomic::AtomicBool,
    /// Queues deleted when the consumer stops (its own fanout queue).
    owned: Mutex<Vec<String>>,
    broker: Arc<Broker>,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("id", &self.id)
            .field("prefetch", &self.prefetch)
            .field("in_flight", &self.in_flight.load(Ordering::Relaxed))
            .finish()
    }
}

impl Consumer {
    pub(crate) fn new(broker: Arc<Broker>, prefetch: u32) -> Arc<Self> {
        static IDS: AtomicU64 = AtomicU64::new(1);
        Arc::new(Consumer {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            sink: Mutex::new(None),
            prefetch: prefetch as usize,
            in_flight: AtomicUsize::new(0),
            queues: Mutex::default(),
            stopped: std::sync::atomic::AtomicBool::new(false),
            owned: Mutex::default(),
            broker,
        })
    }

    /// Gives the consumer its sink (before it consumes anything).
    pub(crate) fn attach(&self, sink: Sink) {
        *self.sink.lock() = Some(sink);
    }

    fn hand(&self, d: Delivery) -> std::result::Result<(), Delivery> {
        match &*self.sink.lock() {
            Some(sink) if !self.is_stopped() => sink(d),
            _ => Err(d),
        }
    }

    /// Whether `stop` was called: what the listener still holds goes back, unyielded.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    fn has_credit(&self) -> bool {
        self.prefetch == 0 || self.in_flight.load(Ordering::Acquire) < self.prefetch
    }

    /// Starts consuming a queue.
    pub(crate) fn consume(self: &Arc<Self>, queue: Arc<Queue>, owned: bool) {
        if owned {
            self.owned.lock().push(queue.name().to_string());
        }
        self.queues.lock().push(queue.clone());
        queue.add_consumer(self.clone());
    }

    /// One delivery was settled: credit comes back, and if the consumer was full its queues
    /// may deliver again.
    pub(crate) fn settled(&self) {
        let before = self.in_flight.fetch_sub(1, Ordering::AcqRel);
        if self.prefetch != 0 && before >= self.prefetch {
            let queues = self.queues.lock().clone();
            for q in queues {
                q.dispatch();
            }
        }
    }

    /// Stops consuming: detaches from every queue and deletes the ones it owns.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let queues = std::mem::take(&mut *self.queues.lock());
        for q in &queues {
            q.remove_consumer(self.id);
        }
        for name in std::mem::take(&mut *self.owned.lock()) {
            self.broker.delete_queue(&name);
        }
        self.sink.lock().take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn collecting(broker: &Arc<Broker>) -> (Arc<Consumer>, mpsc::UnboundedReceiver<Delivery>) {
        let c = Consumer::new(broker.clone(), 1);
        let (tx, rx) = mpsc::unbounded_channel();
        c.attach(Box::new(move |d| tx.send(d).map_err(|e| e.0)));
        (c, rx)
    }

    fn msg(s: &'static str) -> Message {
        Message {
            body: Bytes::from_static(s.as_bytes()),
            redelivered: false,
        }
    }

    #[tokio::test]
    async fn round_robin_within_credit() {
        let broker = Arc::new(Broker::default());
        let q = broker.declare_queue("q");
        let (a, mut ra) = collecting(&broker);
        let (b, mut rb) = collecting(&broker);
        a.consume(q.clone(), false);
        b.consume(q.clone(), false);
        for s in ["1", "2", "3"] {
            q.push(msg(s));
        }
        let d1 = ra.recv().await.unwrap();
        let d2 = rb.recv().await.unwrap();
        assert_eq!(&d1.message.body[..], b"1");
        assert_eq!(&d2.message.body[..], b"2");
        assert_eq!(q.ready_len(), 1, "both consumers are at their prefetch");
        a.settled();
        let d3 = ra.recv().await.unwrap();
        assert_eq!(&d3.message.body[..], b"3");
        d3.requeue();
        assert_eq!(q.ready_len(), 1);
    }
}
