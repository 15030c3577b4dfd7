//! Notification handlers with their types erased. The user's closure is called inside the
//! returned future, so that a panic anywhere in it is caught with the future's.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt as _;
use futures::future::BoxFuture;

use crate::{
    BatchResult, IntoBatchResult, IntoNotificationResult, NotificationMessage, NotificationResult,
};

/// A handler of one notification.
pub(crate) type BoxedHandler =
    Arc<dyn Fn(NotificationMessage) -> BoxFuture<'static, NotificationResult> + Send + Sync>;

/// A handler of a batch of notifications of one priority.
pub(crate) type BoxedBatchHandler =
    Arc<dyn Fn(Vec<NotificationMessage>) -> BoxFuture<'static, BatchResult> + Send + Sync>;

/// Erases a handler of one notification.
pub(crate) fn erase<F, Fut>(handler: F) -> BoxedHandler
where
    F: Fn(NotificationMessage) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoNotificationResult,
{
    let handler = Arc::new(handler);
    Arc::new(move |msg| {
        let handler = Arc::clone(&handler);
        async move { handler(msg).await.into_notification_result() }.boxed()
    })
}

/// Erases a handler of a batch.
pub(crate) fn erase_batch<F, Fut>(handler: F) -> BoxedBatchHandler
where
    F: Fn(Vec<NotificationMessage>) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoBatchResult,
{
    let handler = Arc::new(handler);
    Arc::new(move |msgs| {
        let handler = Arc::clone(&handler);
        async move { handler(msgs).await.into_batch_result() }.boxed()
    })
}
