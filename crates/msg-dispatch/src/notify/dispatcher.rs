//! The notification dispatcher: oslo's `NotificationDispatcher` and
//! `BatchNotificationDispatcher`.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;
use msg_core::Priority;

use crate::rpc::panic_message;
use crate::{BatchResult, NotificationEndpoint, NotificationMessage, NotificationResult};

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
///         #[derive(serde::Deserialize)]
///         struct Failed { retry: bool }
///         // typed, straight from the payload's JSON text
///         match m.payload.deserialize::<Failed>() {
///             Ok(Failed { retry: true }) => NotificationResult::Requeue,
///             _ => NotificationResult::Handled,
///         }
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
        let mut wanted = self
            .endpoints
            .iter()
            .filter_map(|ep| ep.handlers.get(&msg.priority).map(|h| (ep, h)))
            .filter(|(ep, _)| ep.filter.matches(&msg))
            .map(|(_, h)| h);
        let Some(mut last) = wanted.next() else {
            tracing::trace!(event_type = %msg.event_type, "no endpoint wants this notification");
            return NotificationResult::Handled;
        };
        // each handler but the last gets a copy; no list of them is made
        for next in wanted {
            if run(&msg.event_type, last(msg.clone())).await == NotificationResult::Requeue {
                return NotificationResult::Requeue;
            }
            last = next;
        }
        let event_type = msg.event_type.clone();
        run(&event_type, last(msg)).await
    }

    /// Hands a batch to the endpoints' batch handlers and says which messages to requeue:
    /// one `bool` per message, in order, `true` for requeue.
    ///
    /// The batch is split by priority into one group per priority, arrival order kept inside
    /// each (`[info, warn, info]` makes two groups); groups are handled in [`Priority`]
    /// order. For each group, every endpoint with a batch handler for that priority gets, in
    /// order, the group's messages that pass its filter and that no earlier endpoint sent
    /// back (none: the endpoint is skipped). Its [`BatchResult`] sends back the messages it
    /// names ([`RequeueOnly`](BatchResult::RequeueOnly)) or all the messages it got
    /// ([`Requeue`](BatchResult::Requeue), an error, a panic); a message sent back skips the
    /// remaining endpoints, as in [`dispatch`](Self::dispatch). A message no endpoint sends
    /// back is handled, also when no endpoint wanted it.
    pub async fn dispatch_batch(&self, msgs: Vec<NotificationMessage>) -> Vec<bool> {
        self.answer_batch(&msgs)
            .await
            .into_iter()
            .map(|fate| fate != Fate::Handled)
            .collect()
    }

    /// [`dispatch_batch`](Self::dispatch_batch) for a batch that came back: the messages a
    /// handler sent back all together (an answer for a whole batch of two or more) are
    /// dispatched again in two halves, and so on down to single messages, so that only
    /// messages sent back on their own (named by a
    /// [`RequeueOnly`](BatchResult::RequeueOnly), or the only message of their batch) are
    /// requeued. One bad message among n costs about 2 log2(n) more handler calls; a batch
    /// that fails whatever its size, 2n - 1. Handlers may see a message again that an
    /// endpoint before them already handled, as on a redelivery.
    ///
    /// ```
    /// use msg_core::{Context, Notification, Priority};
    /// use msg_dispatch::{NotificationDispatcher, NotificationEndpoint, NotificationMessage, NotificationResult};
    ///
    /// // a handler that only knows that something in its batch is bad
    /// let dispatcher = NotificationDispatcher::new(vec![NotificationEndpoint::new().on_batch(
    ///     Priority::Info,
    ///     |ms: Vec<NotificationMessage>| async move {
    ///         if ms.iter().any(|m| m.event_type == "bad") { NotificationResult::Requeue } else { NotificationResult::Handled }
    ///     },
    /// )]);
    /// let batch = ["ok", "ok", "bad", "ok"].map(|e| NotificationMessage::new(Context::new(),
    ///     Notification::new("p", e, Priority::Info, serde_json::json!({})))).to_vec();
    /// let once = futures::executor::block_on(dispatcher.dispatch_batch(batch.clone()));
    /// assert_eq!(once, vec![true; 4]);
    /// let halving = futures::executor::block_on(dispatcher.dispatch_batch_halving(batch));
    /// assert_eq!(halving, vec![false, false, true, false]);
    /// ```
    pub async fn dispatch_batch_halving(&self, msgs: Vec<NotificationMessage>) -> Vec<bool> {
        let mut requeue = vec![false; msgs.len()];
        let mut chunks: VecDeque<Vec<usize>> = VecDeque::new();
        chunks.push_back((0..msgs.len()).collect());
        while let Some(chunk) = chunks.pop_front() {
            let batch: Vec<NotificationMessage> =
                chunk.iter().filter_map(|&i| msgs.get(i)).cloned().collect();
            let fates = self.answer_batch(&batch).await;
            let mut together = Vec::new();
            for (&i, fate) in chunk.iter().zip(fates) {
                if let Some(r) = requeue.get_mut(i) {
                    *r = fate != Fate::Handled;
                }
                if fate == Fate::RequeuedTogether {
                    together.push(i);
                }
            }
            if together.len() > 1 {
                tracing::debug!(
                    count = together.len(),
                    "a batch was sent back whole: retrying it in halves"
                );
                let second = together.split_off(together.len() / 2);
                chunks.push_back(together);
                chunks.push_back(second);
            }
        }
        requeue
    }

    /// What becomes of each message of a batch (see [`dispatch_batch`](Self::dispatch_batch)).
    async fn answer_batch(&self, msgs: &[NotificationMessage]) -> Vec<Fate> {
        let mut groups: BTreeMap<Priority, Vec<usize>> = BTreeMap::new();
        for (i, msg) in msgs.iter().enumerate() {
            groups.entry(msg.priority).or_default().push(i);
        }
        let mut fates = vec![Fate::Handled; msgs.len()];
        for (priority, group) in groups {
            for endpoint in &self.endpoints {
                let Some(handler) = endpoint.batch_handlers.get(&priority) else {
                    continue;
                };
                let given: Vec<usize> = group
                    .iter()
                    .copied()
                    .filter(|&i| fates.get(i) == Some(&Fate::Handled))
                    .filter(|&i| msgs.get(i).is_some_and(|m| endpoint.filter.matches(m)))
                    .collect();
                if given.is_empty() {
                    continue;
                }
                let batch: Vec<NotificationMessage> =
                    given.iter().filter_map(|&i| msgs.get(i)).cloned().collect();
                let what = format!("a batch of {} {priority} notifications", batch.len());
                let sent_back: Vec<(usize, Fate)> = match run_batch(&what, handler(batch)).await {
                    BatchResult::Handled => Vec::new(),
                    BatchResult::Requeue => {
                        let fate = if given.len() > 1 {
                            Fate::RequeuedTogether
                        } else {
                            Fate::Requeued
                        };
                        given.iter().map(|&i| (i, fate)).collect()
                    }
                    BatchResult::RequeueOnly(positions) => positions
                        .into_iter()
                        .filter_map(|p| {
                            let i = given.get(p).copied();
                            if i.is_none() {
                                tracing::warn!(
                                    position = p,
                                    size = given.len(),
                                    "a batch handler asked to requeue a message past its \
                                     batch's end: ignored"
                                );
                            }
                            i
                        })
                        .map(|i| (i, Fate::Requeued))
                        .collect(),
                };
                for (i, fate) in sent_back {
                    if let Some(f) = fates.get_mut(i) {
                        *f = fate;
                    }
                }
            }
        }
        fates
    }
}

/// What became of one message of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Every endpoint that wanted it handled it.
    Handled,
    /// Sent back on its own: named by its handler, or alone in its batch.
    Requeued,
    /// Sent back with the rest of a batch of two or more, by an answer for the whole batch.
    RequeuedTogether,
}

/// Runs a batch handler's future, turning a panic into a requeue of the batch.
async fn run_batch(what: &str, fut: impl Future<Output = BatchResult>) -> BatchResult {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(answer) => {
            if answer != BatchResult::Handled {
                tracing::debug!("notification handler sent back (some of) {what}");
            }
            answer
        }
        Err(panic) => {
            let message = panic_message(panic.as_ref());
            tracing::error!("notification handler panicked on {what}, requeueing: {message}");
            BatchResult::Requeue
        }
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
