//! The reply queue: one per transport, made on the first call (its name random, or with
//! `use_queue_manager` numbered), consumed without acks, replies handed to the waiting calls.

use std::sync::Arc;

use msg_core::{Error, ReplyWaiters, Result};
use parking_lot::Mutex;

use crate::AmqpDriver;
use crate::connection::{Bound, Supervisor};
use crate::consumer::{ConsumerCore, Sink};
use crate::queue_manager::QueueNumber;

pub(crate) struct ReplyQueue {
    pub(crate) name: String,
    pub(crate) waiters: Arc<ReplyWaiters>,
    core: Arc<ConsumerCore>,
    /// With `use_queue_manager`, the number in its name, held until the transport closes.
    number: Mutex<Option<QueueNumber>>,
}

impl ReplyQueue {
    /// Stops consuming, fails the calls still waiting, deletes the queue.
    pub(crate) async fn close(&self, sup: &Supervisor) {
        self.core.stop();
        self.waiters
            .fail_all(|| Error::Closed("the transport was closed".into()));
        sup.delete_queue(&self.name).await;
        // its name is free for the next transport (a restart takes it again)
        drop(self.number.lock().take());
    }
}

impl AmqpDriver {
    /// The reply queue of this connection, made on the first call (within the call's bound).
    pub(crate) async fn reply_queue(&self, bound: Bound) -> Result<&ReplyQueue> {
        self.reply
            .get_or_try_init(|| async {
                let (name, number) = self.transient_name("reply").await?;
                self.sup
                    .declare(vec![self.transient_queue(&name)], bound)
                    .await?;
                let waiters = Arc::new(ReplyWaiters::default());
                let core = ConsumerCore::new(
                    self.sup.clone(),
                    vec![name.clone()],
                    0,
                    true,
                    self.max_body(),
                    Sink::Replies(waiters.clone()),
                    None,
                );
                self.sup.add_consumer(core.clone(), bound).await?;
                Ok(ReplyQueue {
                    name,
                    waiters,
                    core,
                    number: Mutex::new(number),
                })
            })
            .await
    }
}
