//! A notification endpoint: handlers per priority behind a filter.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use msg_core::Priority;

use crate::notify::handler::{self, BoxedBatchHandler, BoxedHandler};
use crate::{IntoBatchResult, IntoNotificationResult, NotificationFilter, NotificationMessage};

/// Handlers of notifications, one per priority, behind an optional [`NotificationFilter`]
/// (oslo's notification endpoint with its `filter_rule`).
///
/// A handler takes a [`NotificationMessage`] and answers anything that is
/// [`IntoNotificationResult`]: a [`NotificationResult`](crate::NotificationResult), `()` for
/// handled, or a `Result` whose error requeues. A batch handler takes all the messages of
/// one priority that passed the filter, and answers the same for the whole batch or a
/// [`BatchResult`](crate::BatchResult) that names the messages to requeue
/// ([`IntoBatchResult`]). Handlers registered with [`on`](Self::on) serve
/// [`NotificationDispatcher::dispatch`](crate::NotificationDispatcher::dispatch); batch
/// handlers ([`on_batch`](Self::on_batch)) serve
/// [`NotificationDispatcher::dispatch_batch`](crate::NotificationDispatcher::dispatch_batch).
///
/// ```
/// use msg_core::Priority;
/// use msg_dispatch::{NotificationEndpoint, NotificationFilter, NotificationMessage, NotificationResult};
///
/// let audit = NotificationEndpoint::new()
///     .filter(NotificationFilter::new().event_type(r"compute\.instance\.")?)
///     .on(Priority::Warn, |m: NotificationMessage| async move {
///         if m.payload.is_null() { NotificationResult::Requeue } else { NotificationResult::Handled }
///     })
///     .on(Priority::Error, |_m| async {})
///     .on_batch(Priority::Info, |ms: Vec<NotificationMessage>| async move {
///         if ms.is_empty() { Err("an empty batch".to_string()) } else { Ok(()) }
///     });
/// assert_eq!(audit.priorities(), vec![Priority::Info, Priority::Warn, Priority::Error]);
/// # Ok::<(), msg_core::Error>(())
/// ```
#[derive(Default)]
pub struct NotificationEndpoint {
    pub(crate) filter: NotificationFilter,
    pub(crate) handlers: BTreeMap<Priority, BoxedHandler>,
    pub(crate) batch_handlers: BTreeMap<Priority, BoxedBatchHandler>,
}

impl NotificationEndpoint {
    /// An endpoint without handlers and with an empty filter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the filter: the endpoint's handlers only see notifications that match it.
    pub fn filter(mut self, filter: NotificationFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Handles notifications of this priority one by one (replacing an earlier handler of the
    /// same priority).
    pub fn on<F, Fut>(mut self, priority: Priority, handler: F) -> Self
    where
        F: Fn(NotificationMessage) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoNotificationResult,
    {
        self.handlers.insert(priority, handler::erase(handler));
        self
    }

    /// Handles notifications of every priority one by one with the same handler.
    pub fn on_all<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(NotificationMessage) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoNotificationResult,
    {
        let handler = handler::erase(handler);
        for priority in Priority::ALL {
            self.handlers.insert(priority, handler.clone());
        }
        self
    }

    /// Handles batches of notifications of this priority (replacing an earlier batch handler
    /// of the same priority). The handler answers for the whole batch, or names the messages
    /// to requeue with [`BatchResult::RequeueOnly`](crate::BatchResult::RequeueOnly).
    pub fn on_batch<F, Fut>(mut self, priority: Priority, handler: F) -> Self
    where
        F: Fn(Vec<NotificationMessage>) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoBatchResult,
    {
        self.batch_handlers
            .insert(priority, handler::erase_batch(handler));
        self
    }

    /// The filter.
    pub fn filter_rule(&self) -> &NotificationFilter {
        &self.filter
    }

    /// The priorities with a handler of either kind, sorted.
    pub fn priorities(&self) -> Vec<Priority> {
        let mut all: Vec<Priority> = self
            .handlers
            .keys()
            .chain(self.batch_handlers.keys())
            .copied()
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Whether a one-by-one handler serves this priority.
    pub fn handles(&self, priority: Priority) -> bool {
        self.handlers.contains_key(&priority)
    }

    /// Whether a batch handler serves this priority.
    pub fn handles_batch(&self, priority: Priority) -> bool {
        self.batch_handlers.contains_key(&priority)
    }
}

impl fmt::Debug for NotificationEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationEndpoint")
            .field("filter", &self.filter)
            .field("handlers", &self.handlers.keys().collect::<Vec<_>>())
            .field(
                "batch_handlers",
                &self.batch_handlers.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}
