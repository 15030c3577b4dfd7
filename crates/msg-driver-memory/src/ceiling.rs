//! What the in-process broker costs on its own, for the benchmarks: the same queues,
//! prefetch credit, listener feed and reply waiters as the driver, moving encoded bodies
//! with no decoding, no dispatch and no encoding (`benches/benches/memory.rs` reports it
//! beside what goes through the codec and the dispatchers). Not an API.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use msg_core::ReplyWaiters;
use msg_core::codec::{self, WireReply};

use crate::broker::{Broker, Consumer, Delivery, Message};
use crate::consumer::listener;

/// A delivery as the ceiling's listener yields it: not decoded; settled by [`settle`].
struct Raw(Delivery, Arc<Consumer>);

fn raw(_: &Arc<Broker>, consumer: &Arc<Consumer>, d: Delivery) -> Option<Raw> {
    Some(Raw(d, consumer.clone()))
}

fn settle(r: Raw) {
    let Raw(delivery, consumer) = r;
    drop(delivery);
    consumer.settled();
}

/// Preloads `n` copies of `body` into a queue (untimed), then consumes them through a
/// consumer with `prefetch` credit and a listener's feed, settling each as it comes; returns
/// how long the consuming took.
pub async fn consume(body: Bytes, n: u64, prefetch: u32) -> Duration {
    let broker = Arc::new(Broker::default());
    let queue = broker.declare_queue("ceiling.info");
    for _ in 0..n {
        queue.push(Message {
            body: body.clone(),
            redelivered: false,
        });
    }
    let start = Instant::now();
    let consumer = Consumer::new(broker.clone(), prefetch);
    let mut l = listener(&broker, &consumer, raw);
    consumer.consume(queue, false);
    for _ in 0..n {
        let Some(r) = l.next().await else {
            break;
        };
        settle(r);
    }
    let took = start.elapsed();
    l.stop();
    took
}

/// `n` calls, `in_flight` at a time from as many tasks: each pushes `request` (an encoded
/// request) onto the server's queue and waits on the reply waiters; one server task takes
/// the deliveries undecoded, settles them and answers each through the waiters (the call's
/// id taken from a FIFO kept beside the queue, in place of decoding it). Returns how long
/// the calls took.
pub async fn calls(request: Bytes, n: u64, in_flight: u64) -> Duration {
    let broker = Arc::new(Broker::default());
    let queue = broker.declare_queue("ceiling");
    let waiters = Arc::new(ReplyWaiters::default());
    let ids: Arc<parking_lot::Mutex<VecDeque<String>>> = Arc::default();
    let consumer = Consumer::new(broker.clone(), 0);
    let mut l = listener(&broker, &consumer, raw);
    consumer.consume(queue.clone(), false);
    let server = {
        let (waiters, ids) = (waiters.clone(), ids.clone());
        tokio::spawn(async move {
            while let Some(r) = l.next().await {
                settle(r);
                let Some(msg_id) = ids.lock().pop_front() else {
                    continue;
                };
                waiters.deliver(WireReply::result(msg_id, serde_json::Value::Null));
            }
        })
    };
    let start = Instant::now();
    let per = n / in_flight.max(1);
    let callers: Vec<_> = (0..in_flight)
        .map(|_| {
            let (waiters, ids, queue, request) =
                (waiters.clone(), ids.clone(), queue.clone(), request.clone());
            tokio::spawn(async move {
                let req = msg_core::RpcRequest::new("echo", serde_json::Map::new());
                for _ in 0..per {
                    let msg_id = codec::new_unique_id();
                    let pending = waiters.register(msg_id.clone());
                    {
                        let mut ids = ids.lock();
                        ids.push_back(msg_id);
                        queue.push(Message {
                            body: request.clone(),
                            redelivered: false,
                        });
                    }
                    let _ = pending.wait(&req, None, None).await;
                }
            })
        })
        .collect();
    for c in callers {
        let _ = c.await;
    }
    let took = start.elapsed();
    consumer.stop();
    server.abort();
    took
}
