//! What a notification handler answers.

use std::fmt::Display;

/// What a notification handler answers: the message was handled, or must be delivered again.
///
/// ```
/// use msg_dispatch::{IntoNotificationResult, NotificationResult};
/// assert_eq!(().into_notification_result(), NotificationResult::Handled);
/// let failed: Result<(), String> = Err("database down".into());
/// assert_eq!(failed.into_notification_result(), NotificationResult::Requeue);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NotificationResult {
    /// Done with: acknowledge it.
    #[default]
    Handled,
    /// Not done: give it back to the broker for another delivery.
    Requeue,
}

/// What a notification handler may return: a [`NotificationResult`], `()` (handled, like
/// Python's `None`), or a `Result` whose error is logged and requeues the message.
#[diagnostic::on_unimplemented(
    message = "a notification handler cannot return `{Self}`",
    label = "expected `NotificationResult`, `()` or `Result<NotificationResult or (), impl Display>`"
)]
pub trait IntoNotificationResult {
    /// The result this value stands for.
    fn into_notification_result(self) -> NotificationResult;
}

impl IntoNotificationResult for NotificationResult {
    fn into_notification_result(self) -> NotificationResult {
        self
    }
}

impl IntoNotificationResult for () {
    fn into_notification_result(self) -> NotificationResult {
        NotificationResult::Handled
    }
}

impl<T: IntoNotificationResult, E: Display> IntoNotificationResult for Result<T, E> {
    fn into_notification_result(self) -> NotificationResult {
        match self {
            Ok(t) => t.into_notification_result(),
            Err(e) => {
                tracing::error!("notification handler failed, requeueing: {e}");
                NotificationResult::Requeue
            }
        }
    }
}
