//! The notification listener's side of a delivery: a notification decoded, its acknowledger
//! acking, requeueing, or (past `max_redeliveries`) dead-lettering it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use msg_core::codec::WireNotification;
use msg_core::{Acknowledger, IncomingNotification, Result};

use crate::consumer::{Received, Shared, ack, is_stale, reject_later, reject_malformed};
use crate::dead_letter;

/// Decodes a notification.
pub(crate) fn decode_notification(
    shared: &Arc<Shared>,
    r: Received,
) -> Option<IncomingNotification> {
    let decoded = r.body().and_then(WireNotification::decode);
    match decoded {
        Ok(n) => {
            let key = if n.unique_id.is_empty() {
                n.notification.message_id.clone()
            } else {
                n.unique_id.clone()
            };
            Some(IncomingNotification::new(
                n.context,
                n.notification,
                n.unique_id,
                Box::new(AmqpAcker {
                    shared: shared.clone(),
                    received: Some(r),
                    key,
                }),
            ))
        }
        Err(e) => {
            reject_malformed(shared, r, "notification", &e);
            None
        }
    }
}

struct AmqpAcker {
    shared: Arc<Shared>,
    received: Option<Received>,
    /// What redeliveries are counted by.
    key: String,
}

impl fmt::Debug for AmqpAcker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpAcker").field("key", &self.key).finish()
    }
}

impl Drop for AmqpAcker {
    fn drop(&mut self) {
        if let Some(r) = self.received.take() {
            reject_later(&self.shared.sup, r, true);
        }
    }
}

#[async_trait]
impl Acknowledger for AmqpAcker {
    async fn ack(mut self: Box<Self>) -> Result<()> {
        let r = self.received.take();
        if let Some(r) = r {
            self.shared.requeues.forget(&self.key);
            ack(&self.shared.sup, &r).await?;
        }
        Ok(())
    }

    async fn requeue(mut self: Box<Self>, delay: Option<Duration>) -> Result<()> {
        let Some(r) = self.received.take() else {
            return Ok(());
        };
        if let Some(d) = delay.filter(|d| !d.is_zero()) {
            tokio::time::sleep(d).await;
        }
        let sup = &self.shared.sup;
        let max = sup.options.max_redeliveries;
        let count = self.shared.requeues.count(&self.key, &r.delivery);
        if max > 0 && count > max {
            // past the cap: to the dead-letter queue instead of spinning forever
            dead_letter::dead_letter(sup, &r, count).await?;
            self.shared.requeues.forget(&self.key);
            return ack(sup, &r).await;
        }
        if is_stale(sup, &r) {
            return Ok(());
        }
        r.channel.acks.reject(r.delivery.delivery_tag, true).await
    }
}
