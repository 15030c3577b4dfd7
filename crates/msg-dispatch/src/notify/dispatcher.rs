//! The notification dispatcher: oslo's `NotificationDispatcher` and
//! `BatchNotificationDispatcher`.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;
use msg_core::Priority;

use crate::rpc::panic_message;
use crate::{NotificationEndpoint, NotificationMessage, NotificationResult};

/// Hands notifications to the endpoints that want them, as oslo's notification dispatchers.
///
/// [`dispatch`](Self::dispatch) uses the endpoints' one-by-one handlers
/// ([`NotificationEndpoint::on`]); [`dispatch_batch`](Self::dispatch_batch) their batch
/// handlers ([`NotificationEndpoint::on_batch`]). A handler's error or panic counts as
/// [`Requeue`](NotificationResult::Requeue) and is logged. The dispatcher does no I/O.
///
/// ```
/// use msg_core::{Context, Notification, Priority};
/// use msg_dispatch::{NotificationDispatcher, NotificationEndpoint, NotificationMessage, NotificationResult};
///
/// let dispatcher = NotificationDispatcher::new(vec![
///     NotificationEndpoint::new().on(Priority::Error, |m: NotificationMessage| async move {
///         if m.payload["retry"] == true { NotificationResult::Requeue } else { NotificationResult::Handled }
///     }),
/// ]);
/// assert_eq!(dispatcher.supported_priorities(), vec![Priority::Error]);
///
/// let n = Notification::new("compute.host1", "compute.failed", Priority::Error,
///                           serde_json::json!({"retry": true}));
/// let result = futures::executor::block_on(dispatcher.dispatch(NotificationMessage::new(Context::new(), n)));
/// assert_eq!(result, NotificationResult::Requeue);
/// ```
#[derive(Debug, Default)]
pub struct NotificationDispatcher {
    endpoints: Vec<NotificationEndpoint>,
}

impl NotificationDispatcher {
    /// A dispatcher over these endpoints, tried in this order.
    pub fn new(endpoints: Vec<NotificationEndpoint>) -> Self {
        NotificationDispatcher { endpoints }
    }

    /// The priorities some endpoint handles, one by one or in batches, sorted and without
    /// duplicates: a listener subscribes to these only.
    pub fn supported_priorities(&self) -> Vec<Priority> {
        self.collect_priorities(|ep| ep.priorities())
    }

    /// The priorities some endpoint handles one by one: what a listener feeding
    /// [`dispatch`](Self::dispatch) subscribes to.
    pub fn single_priorities(&self) -> Vec<Priority> {
        self.collect_priorities(|ep| ep.handlers.keys().copied().collect())
    }

    /// The priorities some endpoint handles in batches: what a listener feeding
    /// [`dispatch_batch`](Self::dispatch_batch) subscribes to.
    pub fn batch_priorities(&self) -> Vec<Priority> {
        self.collect_priorities(|ep| ep.batch_handlers.keys().copied().collect())
    }

    fn collect_priorities(
        &self,
        of: impl Fn(&NotificationEndpoint) -> Vec<Priority>,
    ) -> Vec<Priority> {
        let mut all: Vec<Priority> = self.endpoints.iter().flat_map(of).collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Hands one notification to every endpoint with a one-by-one handler for its priority
    /// whose filter matches, in order. The first [`Requeue`](NotificationResult::Requeue)
    /// (or error, or panic) is returned at once and the remaining endpoints are skipped;
    /// otherwise the notification is [`Handled`](NotificationResult::Handled), also when no
    /// endpoint wanted it.
    pub async fn dispatch(&self, msg: NotificationMessage) -> NotificationResult {
        let handlers: Vec<_> = self
            .endpoints
            .iter()
            .filter_map(|ep| ep.handlers.get(&msg.priority).map(|h| (ep, h)))
            .filter(|(ep, _)| ep.filter.matches(&msg))
            .map(|(_, h)| h)
            .collect();
        let Some((last, rest)) = handlers.split_last() else {
            tracing::trace!(event_type = %msg.event_type, "no endpoint wants this notification");
            return NotificationResult::Handled;
        };
        for handler in rest {
            if run(&msg.event_type, handler(msg.clone())).await == NotificationResult::Requeue {
                return NotificationResult::Requeue;
            }
        }
        let event_type = msg.event_type.clone();
        run(&event_type, last(msg)).await
    }

    /// Hands a batch to the endpoints' batch handlers and says which messages to requeue:
    /// one `bool` per message, in order, `true` for requeue.
    ///
    /// The batch is split by priority into one group per priority, arrival order kept inside
    /// each (`[info, warn, info]` makes two groups); groups are handled in [`Priority`]
    /// order. For each group, every endpoint with a batch handler for that priority gets the
    /// group's messages that pass its filter (none: the endpoint is skipped). A
    /// [`Requeue`](NotificationResult::Requeue) (or error, or panic) requeues the whole group,
    /// filtered-out messages included, and skips the group's remaining endpoints.
    pub async fn dispatch_batch(&self, msgs: Vec<NotificationMessage>) -> Vec<bool> {
        let mut groups: BTreeMap<Priority, Vec<usize>> = BTreeMap::new();
        for (i, msg) in msgs.iter().enumerate() {
            groups.entry(msg.priority).or_default().push(i);
        }
        let mut requeue = vec![false; msgs.len()];
        for (priority, group) in groups {
            for endpoint in &self.endpoints {
                let Some(handler) = endpoint.batch_handlers.get(&priority) else {
                    continue;
                };
                let batch: Vec<NotificationMessage> = group
                    .iter()
                    .map(|&i| &msgs[i])
                    .filter(|m| endpoint.filter.matches(m))
                    .cloned()
                    .collect();
                if batch.is_empty() {
                    continue;
                }
                let what = format!("a batch of {} {priority} notifications", batch.len());
                if run(&what, handler(batch)).await == NotificationResult::Requeue {
                    for &i in &group {
                        requeue[i] = true;
                    }
                    break;
                }
            }
        }
        requeue
    }
}

/// Runs a handler's future, turning a panic into a requeue.
async fn run(what: &str, fut: impl Future<Output = NotificationResult>) -> NotificationResult {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(NotificationResult::Requeue) => {
            tracing::debug!("notification handler requeued {what}");
            NotificationResult::Requeue
        }
        Ok(NotificationResult::Handled) => NotificationResult::Handled,
        Err(panic) => {
            let message = panic_message(panic.as_ref());
            tracing::error!("notification handler panicked on {what}, requeueing: {message}");
            NotificationResult::Requeue
        }
    }
}

#[cfg(test)]
mod tests;
