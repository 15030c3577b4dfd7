//! How a server runs its handlers.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::OwnedSemaphorePermit;

/// How many handlers run at once, and where.
///
/// Under `Sequential` and `Pool` a handler is first polled on the server's consuming task: one
/// that finishes without waiting costs no task of its own; one that waits goes on as a task
/// of its own, beside the others; after a first poll that ran long (CPU work without an
/// await) the next messages get a task at once. CPU-bound synchronous handlers belong on
/// `Blocking`.
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

    /// Runs one handler, as the type's docs say; the permit (its executor slot) is released
    /// when it ends. `pace` times the first polls and says when to skip them.
    pub(crate) async fn spawn(
        self,
        mut work: BoxFuture<'static, ()>,
        permit: OwnedSemaphorePermit,
        pace: &mut Pace,
    ) {
        match self {
            Executor::Sequential | Executor::Pool(_) => {
                if pace.inline() {
                    let started = pace.timed().then(Instant::now);
                    let polled = std::future::poll_fn(|cx| {
                        Poll::Ready(catch_unwind(AssertUnwindSafe(|| work.as_mut().poll(cx))))
                    })
                    .await;
                    if let Some(started) = started {
                        pace.took(started.elapsed());
                    }
                    match polled {
                        Ok(Poll::Ready(())) => return,
                        Ok(Poll::Pending) => {}
                        Err(_) => {
                            tracing::error!("a message handler panicked; the server goes on");
                            return;
                        }
                    }
                }
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

/// Whether handlers are first polled on the consuming task (see [`Executor::spawn`]).
#[derive(Debug, Default)]
pub(crate) struct Pace {
    /// Messages still to give a task of their own at once.
    spawn_next: u32,
    /// First polls so far (the first [`Self::EVERY`], then one in that many, are timed: a
    /// long one shows soon enough).
    polls: u32,
}

impl Pace {
    /// A first poll longer than this is CPU work that should run in parallel.
    const LONG_POLL: Duration = Duration::from_micros(200);
    /// How many messages get their own task after a long first poll before trying again.
    const BACK_OFF: u32 = 1024;

    /// One first poll in this many is timed.
    const EVERY: u32 = 8;

    fn timed(&mut self) -> bool {
        self.polls = self.polls.saturating_add(1);
        self.polls <= Self::EVERY || self.polls.is_multiple_of(Self::EVERY)
    }

    fn inline(&mut self) -> bool {
        if self.spawn_next == 0 {
            return true;
        }
        self.spawn_next -= 1;
        false
    }

    fn took(&mut self, elapsed: Duration) {
        if elapsed > Self::LONG_POLL {
            self.spawn_next = Self::BACK_OFF;
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
