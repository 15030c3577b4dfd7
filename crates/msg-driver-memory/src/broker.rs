//! The in-process broker: queues, bindings and round-robin delivery with prefetch credit,
//! modelled on RabbitMQ so the memory driver behaves like the real ones.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use bytes::Bytes;
use msg_core::ReplyWaiters;
use msg_core::codec::WireReply;
use tokio::sync::mpsc;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The brokers of this process, by name: transports opened on the same `memory://NAME`
/// share one.
pub(crate) fn named(name: &str) -> Arc<Broker> {
    static BROKERS: OnceLock<Mutex<HashMap<String, Arc<Broker>>>> = OnceLock::new();
    let brokers = BROKERS.get_or_init(Default::default);
    lock(brokers)
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
            .field("queues", &lock(&self.state).queues.len())
            .finish()
    }
}

impl Broker {
    /// Declares a queue (idempotent) and returns it.
    pub(crate) fn declare_queue(&self, name: &str) -> Arc<Queue> {
        let mut state = lock(&self.state);
        if let Some(q) = state.queues.get(name) {
            return q.clone();
        }
        let q = Arc::new(Queue::new(name));
        state.queues.insert(name.to_string(), q.clone());
        q
    }

    /// Binds a queue to an exchange with a routing key (idempotent).
    pub(crate) fn bind(&self, exchange: &str, key: &str, queue: &Arc<Queue>) {
        let mut state = lock(&self.state);
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
        let mut state = lock(&self.state);
        if let Some(q) = state.queues.remove(name) {
            state.bindings.retain(|_, keys| {
                keys.retain(|_, bound| {
                    bound.retain(|b| !Arc::ptr_eq(b, &q));
                    !bound.is_empty()
                });
                !keys.is_empty()
            });
            lock(&q.inner).ready.clear();
        }
    }

    /// The queues bound to (exchange, key).
    pub(crate) fn route(&self, exchange: &str, key: &str) -> Vec<Arc<Queue>> {
        lock(&self.state)
            .bindings
            .get(exchange)
            .and_then(|keys| keys.get(key))
            .cloned()
            .unwrap_or_default()
    }

    /// Registers a client's reply queue.
    pub(crate) fn add_reply_queue(&self, name: &str, waiters: &Arc<ReplyWaiters>) {
        lock(&self.replies).insert(name.to_string(), Arc::downgrade(waiters));
    }

    /// Removes a client's reply queue.
    pub(crate) fn remove_reply_queue(&self, name: &str) {
        lock(&self.replies).remove(name);
    }

    /// Publishes a reply to a reply queue; `false` when that queue is gone. The bytes go
    /// through the codec like any broker's.
    pub(crate) fn publish_reply(&self, reply_q: &str, body: &[u8]) -> msg_core::Result<bool> {
        let waiters = lock(&self.replies).get(reply_q).and_then(Weak::upgrade);
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

/// What a queue hands a consumer.
#[derive(Debug)]
pub(crate) enum Item {
    Delivery(Delivery),
    Stop,
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
        !lock(&self.inner).consumers.is_empty()
    }

    /// How many messages wait in the queue.
    #[cfg(test)]
    pub(crate) fn ready_len(&self) -> usize {
        lock(&self.inner).ready.len()
    }

    /// Appends a message and delivers what can be delivered.
    pub(crate) fn push(self: &Arc<Self>, message: Message) {
        let mut inner = lock(&self.inner);
        inner.ready.push_back(message);
        self.dispatch_locked(&mut inner);
    }

    fn push_front(self: &Arc<Self>, message: Message) {
        let mut inner = lock(&self.inner);
        inner.ready.push_front(message);
        self.dispatch_locked(&mut inner);
    }

    /// Delivers what can be delivered (after a consumer got credit back).
    pub(crate) fn dispatch(self: &Arc<Self>) {
        let mut inner = lock(&self.inner);
        self.dispatch_locked(&mut inner);
    }

    pub(crate) fn add_consumer(self: &Arc<Self>, consumer: Arc<Consumer>) {
        let mut inner = lock(&self.inner);
        inner.consumers.push(consumer);
        self.dispatch_locked(&mut inner);
    }

    pub(crate) fn remove_consumer(&self, id: u64) {
        let mut inner = lock(&self.inner);
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
            let item = Item::Delivery(Delivery {
                queue: self.clone(),
                message,
            });
            if let Err(mpsc::error::SendError(item)) = consumer.tx.send(item) {
                // the consumer is gone without saying so: take the message back
                consumer.in_flight.fetch_sub(1, Ordering::AcqRel);
                inner.consumers.remove(idx);
                if inner.next >= inner.consumers.len() {
                    inner.next = 0;
                }
                if let Item::Delivery(d) = item {
                    inner.ready.push_front(d.message);
                }
            }
        }
    }
}

/// One listener's consumption: its channel, its prefetch credit and its queues.
pub(crate) struct Consumer {
    id: u64,
    tx: mpsc::UnboundedSender<Item>,
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
    pub(crate) fn new(
        broker: Arc<Broker>,
        prefetch: u32,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Item>) {
        static IDS: AtomicU64 = AtomicU64::new(1);
        let (tx, rx) = mpsc::unbounded_channel();
        let consumer = Arc::new(Consumer {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            tx,
            prefetch: prefetch as usize,
            in_flight: AtomicUsize::new(0),
            queues: Mutex::default(),
            stopped: std::sync::atomic::AtomicBool::new(false),
            owned: Mutex::default(),
            broker,
        });
        (consumer, rx)
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
            lock(&self.owned).push(queue.name().to_string());
        }
        lock(&self.queues).push(queue.clone());
        queue.add_consumer(self.clone());
    }

    /// One delivery was settled: credit comes back, and if the consumer was full its queues
    /// may deliver again.
    pub(crate) fn settled(&self) {
        let before = self.in_flight.fetch_sub(1, Ordering::AcqRel);
        if self.prefetch != 0 && before >= self.prefetch {
            let queues = lock(&self.queues).clone();
            for q in queues {
                q.dispatch();
            }
        }
    }

    /// Stops consuming: detaches from every queue, deletes the ones it owns, and tells the
    /// listener's stream to end.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let queues = std::mem::take(&mut *lock(&self.queues));
        for q in &queues {
            q.remove_consumer(self.id);
        }
        for name in std::mem::take(&mut *lock(&self.owned)) {
            self.broker.delete_queue(&name);
        }
        let _ = self.tx.send(Item::Stop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let (a, mut ra) = Consumer::new(broker.clone(), 1);
        let (b, mut rb) = Consumer::new(broker.clone(), 1);
        a.consume(q.clone(), false);
        b.consume(q.clone(), false);
        for s in ["1", "2", "3"] {
            q.push(msg(s));
        }
        let Some(Item::Delivery(d1)) = ra.recv().await else {
            panic!()
        };
        let Some(Item::Delivery(d2)) = rb.recv().await else {
            panic!()
        };
        assert_eq!(&d1.message.body[..], b"1");
        assert_eq!(&d2.message.body[..], b"2");
        assert_eq!(q.ready_len(), 1, "both consumers are at their prefetch");
        a.settled();
        let Some(Item::Delivery(d3)) = ra.recv().await else {
            panic!()
        };
        assert_eq!(&d3.message.body[..], b"3");
        d3.requeue();
        assert_eq!(q.ready_len(), 1);
    }
}
