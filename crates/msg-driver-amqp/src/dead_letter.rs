//! Dead-lettering: a notification requeued more than `max_redeliveries` times (counted by
//! this process, or by the broker on a quorum queue) goes to its queue's `.dead-letter`
//! queue instead of spinning forever.

use std::collections::HashMap;
use std::sync::Arc;

use lapin::message::Delivery;
use lapin::types::AMQPValue;
use msg_core::{Result, Retry};
use parking_lot::Mutex;

use crate::connection::{Bound, Supervisor};
use crate::consumer::Received;
use crate::publish::Outgoing;
use crate::topology::{Decl, queue_args};

/// How often this process saw a notification requeued, by message id.
#[derive(Default)]
pub(crate) struct RequeueCounts {
    counts: Mutex<HashMap<String, u32>>,
}

impl RequeueCounts {
    /// Counts one more requeue of `key`: how often it was requeued, here or as the broker
    /// says (the larger).
    pub(crate) fn count(&self, key: &str, delivery: &Delivery) -> u32 {
        let mut counts = self.counts.lock();
        if counts.len() > 10_000 {
            counts.clear();
        }
        let c = counts.entry(key.to_string()).or_insert(0);
        *c += 1;
        (*c).max(broker_delivery_count(delivery).unwrap_or(0))
    }

    /// Forgets `key` (acknowledged, or dead-lettered).
    pub(crate) fn forget(&self, key: &str) {
        self.counts.lock().remove(key);
    }
}

/// How often the broker says this message was delivered before (quorum queues count).
fn broker_delivery_count(d: &Delivery) -> Option<u32> {
    let headers = d.properties.headers().as_ref()?;
    match headers.inner().get("x-delivery-count")? {
        AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::ShortInt(n) => u32::try_from(*n).ok(),
        _ => None,
    }
}

/// Publishes a copy of `r` (requeued `count` times) to its queue's dead-letter queue,
/// declared durable on the way. The caller acks `r` after.
pub(crate) async fn dead_letter(sup: &Arc<Supervisor>, r: &Received, count: u32) -> Result<()> {
    let dlq = format!("{}.dead-letter", r.queue);
    tracing::warn!(
        queue = &*r.queue,
        dead_letter = dlq,
        requeues = count,
        "notification requeued too often: dead-lettered"
    );
    sup.declare(
        vec![Decl::Queue {
            name: dlq.clone(),
            durable: true,
            auto_delete: false,
            args: queue_args(&sup.options, false),
        }],
        Bound::setup(),
    )
    .await?;
    sup.publish(Outgoing {
        exchange: "",
        key: &dlq,
        body: &r.delivery.data,
        properties: &r.delivery.properties,
        mandatory: false,
        bound: Bound::new(Retry::Attempts(2), None),
    })
    .await?;
    msg_core::metrics::dead_lettered(crate::DRIVER_NAME);
    Ok(())
}
