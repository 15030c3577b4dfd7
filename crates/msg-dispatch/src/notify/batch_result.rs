//! What a batch handler answers: for the whole batch, or message by message.

use std::fmt::Display;

use crate::{IntoNotificationResult, NotificationMessage, NotificationResult};

/// What a batch handler answers: every message handled, every message back to the broker,
/// or only the messages it names back (the rest handled).
///
/// Naming the failed messages keeps a bad one from taking its batch-mates along: each goes
/// back (and, past the driver's redelivery cap, to the dead-letter queue) through its own
/// failures only. A [`NotificationResult`], `()` or a `Result` answer the whole batch, as in
/// oslo.
///
/// ```
/// use msg_core::{Context, Notification, Priority};
/// use msg_dispatch::{BatchResult, IntoBatchResult, NotificationMessage, NotificationResult};
///
/// let batch: Vec<NotificationMessage> = ["a.ok", "b.bad", "c.ok"]
///     .into_iter()
///     .map(|e| NotificationMessage::new(Context::new(),
///         Notification::new("p", e, Priority::Info, serde_json::json!({}))))
///     .collect();
/// let answer = BatchResult::requeue_matching(&batch, |m| m.event_type.ends_with(".bad"));
/// assert_eq!(answer, BatchResult::RequeueOnly(vec![1]));
/// assert_eq!(NotificationResult::Requeue.into_batch_result(), BatchResult::Requeue);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum BatchResult {
    /// Every message is done with: acknowledge them all.
    #[default]
    Handled,
    /// No message is done: give them all back (a failure the handler can't pin on one).
    Requeue,
    /// The messages at these positions of the batch the handler got go back; the others are
    /// handled. A position past the batch's end is ignored (with a warning).
    RequeueOnly(Vec<usize>),
}

impl BatchResult {
    /// Requeues the messages of `batch` that match `requeue`; [`Handled`](Self::Handled)
    /// when none does.
    pub fn requeue_matching(
        batch: &[NotificationMessage],
        requeue: impl Fn(&NotificationMessage) -> bool,
    ) -> Self {
        let positions: Vec<usize> = batch
            .iter()
            .enumerate()
            .filter(|(_, m)| requeue(m))
            .map(|(i, _)| i)
            .collect();
        if positions.is_empty() {
            BatchResult::Handled
        } else {
            BatchResult::RequeueOnly(positions)
        }
    }
}

impl From<NotificationResult> for BatchResult {
    fn from(result: NotificationResult) -> Self {
        match result {
            NotificationResult::Handled => BatchResult::Handled,
            NotificationResult::Requeue => BatchResult::Requeue,
        }
    }
}

/// What a batch handler may return: a [`BatchResult`], anything a one-by-one handler may
/// return ([`IntoNotificationResult`]: it answers for the whole batch), or a `Result` of a
/// [`BatchResult`] whose error is logged and requeues the whole batch.
#[diagnostic::on_unimplemented(
    message = "a batch notification handler cannot return `{Self}`",
    label = "expected `BatchResult`, `NotificationResult`, `()` or a `Result` of one of them"
)]
pub trait IntoBatchResult {
    /// The answer this value stands for.
    fn into_batch_result(self) -> BatchResult;
}

impl<T: IntoNotificationResult> IntoBatchResult for T {
    fn into_batch_result(self) -> BatchResult {
        self.into_notification_result().into()
    }
}

impl IntoBatchResult for BatchResult {
    fn into_batch_result(self) -> BatchResult {
        self
    }
}

impl<E: Display> IntoBatchResult for Result<BatchResult, E> {
    fn into_batch_result(self) -> BatchResult {
        match self {
            Ok(answer) => answer,
            Err(e) => {
                tracing::error!("batch notification handler failed, requeueing the batch: {e}");
                BatchResult::Requeue
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_of_a_one_by_one_handler_answers_a_batch() {
        assert_eq!(().into_batch_result(), BatchResult::Handled);
        assert_eq!(
            NotificationResult::Requeue.into_batch_result(),
            BatchResult::Requeue
        );
        assert_eq!(
            Err::<(), _>("down").into_batch_result(),
            BatchResult::Requeue
        );
        assert_eq!(
            Ok::<_, String>(NotificationResult::Handled).into_batch_result(),
            BatchResult::Handled
        );
        assert_eq!(
            Ok::<_, String>(BatchResult::RequeueOnly(vec![2])).into_batch_result(),
            BatchResult::RequeueOnly(vec![2])
        );
        assert_eq!(
            Err::<BatchResult, _>("down").into_batch_result(),
            BatchResult::Requeue
        );
    }

    #[test]
    fn requeue_matching_names_positions_or_says_handled() {
        assert_eq!(
            BatchResult::requeue_matching(&[], |_| true),
            BatchResult::Handled
        );
    }
}
