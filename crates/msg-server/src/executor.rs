//! How a server runs its handlers.

use futures::future::BoxFuture;
use tokio::sync::OwnedSemaphorePermit;

/// How many handlers run at once, and where.
///
/// ```
/// use msg_server::Executor;
/// assert_eq!(Executor::default(), Executor::Pool(64));
/// assert_eq!(Executor::Sequential.capacity(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Executor {
    /// One message at a time, in order (oslo's `blocking`).
    Sequential,
    /// Up to `n` handlers at once on the async runtime (oslo's `threading`, default 64).
    Pool(usize),
    /// Up to `n` handlers at once, each on a blocking thread (`spawn_blocking`): for
    /// synchronous CPU-bound handlers.
    Blocking(usize),
}

impl Default for Executor {
    fn default() -> Self {
        Executor::Pool(64)
    }
}

impl Executor {
    /// How many handlers may run at once.
    pub fn capacity(self) -> usize {
        match self {
            Executor::Sequential => 1,
            Executor::Pool(n) | Executor::Blocking(n) => n.max(1),
        }
    }

    /// Runs one handler; the permit (its executor slot) is released when it ends.
    pub(crate) fn spawn(self, work: BoxFuture<'static, ()>, permit: OwnedSemaphorePermit) {
        match self {
            Executor::Sequential | Executor::Pool(_) => {
                tokio::spawn(async move {
                    work.await;
                    drop(permit);
                });
            }
            Executor::Blocking(_) => {
                let handle = tokio::runtime::Handle::current();
                tokio::task::spawn_blocking(move || {
                    handle.block_on(work);
                    drop(permit);
                });
            }
        }
    }
}

impl std::str::FromStr for Executor {
    type Err = msg_core::Error;
    /// `sequential`, `pool`, `pool:N`, `blocking:N`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            msg_core::Error::InvalidArgument(format!(
                "unknown executor `{s}` (expected sequential, pool:N or blocking:N)"
            ))
        };
        match s.split_once(':') {
            None if s == "sequential" => Ok(Executor::Sequential),
            None if s == "pool" => Ok(Executor::default()),
            Some(("pool", n)) => n
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .map(Executor::Pool)
                .ok_or_else(bad),
            Some(("blocking", n)) => n
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .map(Executor::Blocking)
                .ok_or_else(bad),
            _ => Err(bad()),
        }
    }
}
