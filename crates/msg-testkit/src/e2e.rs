//! What the end-to-end cases share: stop guards, bounded waits and shared logs.

use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use msg_core::Error;
use msg_server::{BatchNotificationListener, NotificationListener, RpcServer};

use crate::cases::CaseResult;

pub(crate) fn err(e: Error) -> String {
    e.to_string()
}

/// What a guard stops.
pub(crate) trait Stoppable: Send + Sync + 'static {
    fn stop_now(&self);
}

impl Stoppable for RpcServer {
    fn stop_now(&self) {
        self.stop();
    }
}

impl Stoppable for NotificationListener {
    fn stop_now(&self) {
        self.stop();
    }
}

impl Stoppable for BatchNotificationListener {
    fn stop_now(&self) {
        self.stop();
    }
}

/// A started server or listener that is stopped when the case ends, passed or failed (a
/// dropped server would otherwise go on consuming).
pub(crate) struct Running<T: Stoppable>(Arc<T>);

impl<T: Stoppable> Running<T> {
    pub(crate) fn new(inner: T) -> Self {
        Running(Arc::new(inner))
    }
}

impl<T: Stoppable> Deref for Running<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Stoppable> Drop for Running<T> {
    fn drop(&mut self) {
        self.0.stop_now();
    }
}

/// A list shared by handlers and the case.
#[derive(Debug)]
pub(crate) struct Log<T>(Arc<Mutex<Vec<T>>>);

impl<T> Clone for Log<T> {
    fn clone(&self) -> Self {
        Log(self.0.clone())
    }
}

impl<T> Default for Log<T> {
    fn default() -> Self {
        Log(Arc::default())
    }
}

impl<T: Clone> Log<T> {
    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn push(&self, item: T) {
        self.lock().push(item);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn snapshot(&self) -> Vec<T> {
        self.lock().clone()
    }
}

/// Polls `done` until it holds, for at most `within`.
pub(crate) async fn wait_until(
    what: impl Fn() -> String,
    within: Duration,
    done: impl Fn() -> bool,
) -> CaseResult {
    let start = Instant::now();
    loop {
        if done() {
            return Ok(());
        }
        if start.elapsed() >= within {
            return Err(format!("{} (waited {within:?})", what()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Checks that `count` doesn't change for `window` (nothing more arrives: no duplicate, no
/// redelivery).
pub(crate) async fn stays(what: &str, window: Duration, count: impl Fn() -> usize) -> CaseResult {
    let before = count();
    let start = Instant::now();
    while start.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = count();
        ensure!(now == before, "{what}: {now} after the expected {before}");
    }
    Ok(())
}

/// Awaits a future for at most `within`.
pub(crate) async fn within<F: Future>(
    what: &str,
    within: Duration,
    fut: F,
) -> Result<F::Output, String> {
    tokio::time::timeout(within, fut)
        .await
        .map_err(|_| format!("{what} did not finish within {within:?}"))
}
