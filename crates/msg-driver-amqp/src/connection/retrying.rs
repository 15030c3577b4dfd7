//! Work that survives a lost connection: it waits for the supervisor's next connection and
//! runs again, as often as its [`Bound`] allows and until its deadline. Publishing, a call's
//! set-up (channel, reply queue, declarations) and a listener's set-up go through here, so a
//! connection reset in the middle of any of them costs a reconnect, not the operation.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::BoxFuture;
use msg_core::{Error, Result, Retry};
use tokio::time::Instant;

use super::{Conn, Supervisor, is_connection_error};

/// How often and how long work waits for a connection and runs again after losing one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bound {
    /// Reconnects allowed (a send's `retry`).
    pub(crate) retry: Retry,
    /// The operation's timeout, when it has one, and when it ends.
    pub(crate) limit: Option<(Duration, Instant)>,
}

impl Bound {
    /// `retry` reconnects, within `timeout` from now.
    pub(crate) fn new(retry: Retry, timeout: Option<Duration>) -> Self {
        Bound {
            retry,
            limit: timeout.map(|t| (t, Instant::now() + t)),
        }
    }

    /// A listener's or notifier's set-up: a few reconnects, no deadline.
    pub(crate) fn setup() -> Self {
        Bound::new(Retry::Attempts(3), None)
    }

    /// The operation's timeout.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.limit.map(|(t, _)| t)
    }

    /// When the operation must be done.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.limit.map(|(_, d)| d)
    }

    /// What is left of the timeout (`None`: no timeout).
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.limit
            .map(|(_, d)| d.saturating_duration_since(Instant::now()))
    }

    /// Whether `attempt` was the last one allowed.
    pub(crate) fn exhausted(&self, attempt: u32) -> bool {
        self.retry
            .max_attempts()
            .is_some_and(|max| attempt.saturating_add(1) >= max)
    }

    /// The error of work that did not finish within the timeout.
    pub(crate) fn timed_out(&self, what: &str) -> Error {
        Error::Timeout {
            what: what.to_string(),
            after: self.limit.map(|(t, _)| t).unwrap_or_default(),
        }
    }

    /// Runs `work` within the deadline.
    pub(crate) async fn within<T>(
        &self,
        what: &str,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match self.deadline() {
            Some(d) => tokio::time::timeout_at(d, work)
                .await
                .map_err(|_| self.timed_out(what))?,
            None => work.await,
        }
    }
}

/// Whether `e`, from work on `conn`, means the connection is gone (not that the broker refused
/// the work): the connection's state says so, or the error is lapin's for a lost connection.
pub(crate) fn lost_connection(conn: &Conn, e: &Error) -> bool {
    if conn.is_lost()
        || !conn.connection.status().connected()
        || !conn.publish_connection.status().connected()
    {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(lapin) = s.downcast_ref::<lapin::Error>() {
            return is_connection_error(lapin);
        }
        source = s.source();
    }
    false
}

impl Supervisor {
    /// The current connection, waiting for a reconnect as `bound` allows; each wait counts
    /// in `attempt`.
    pub(crate) async fn connection(&self, bound: Bound, attempt: &mut u32) -> Result<Arc<Conn>> {
        // the common case: connected, nothing to wait for
        if let Some(c) = self.current()
            && !self.closed.load(Ordering::Acquire)
        {
            return Ok(c);
        }
        let mut rx = self.generation_tx.subscribe();
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::Closed("the transport was closed".into()));
            }
            if let Some(c) = self.current() {
                return Ok(c);
            }
            // waiting for a connection before the first attempt is a retry; after a lost
            // connection the retry was counted when it was lost
            if *attempt == 0 {
                if bound.exhausted(0) {
                    return Err(Error::unavailable(
                        format!("not connected to {} (no retry allowed)", self.url_label),
                        None,
                    ));
                }
                *attempt = 1;
            }
            let what = format!("a connection to {}", self.url_label);
            let changed = bound.within(&what, async {
                rx.changed()
                    .await
                    .map_err(|_| Error::Closed("the transport was closed".into()))
            });
            changed.await?;
        }
    }

    /// Runs `work` on the current connection; when the connection is lost under it, waits for
    /// the next one and runs it again, as `bound` allows. `what` names the work in logs and
    /// errors.
    pub(crate) async fn on_connection<'a, T>(
        self: &Arc<Self>,
        what: &str,
        bound: Bound,
        mut work: impl FnMut(Arc<Conn>) -> BoxFuture<'a, Result<T>>,
    ) -> Result<T> {
        let mut attempt = 0u32;
        loop {
            let conn = self.connection(bound, &mut attempt).await?;
            let done = tokio::select! {
                done = bound.within(what, work(conn.clone())) => done,
                // given up under the work (see `Conn::until_lost`): its answer may never come
                () = conn.until_lost() => Err(Error::unavailable(
                    format!("{what}: the connection was lost"),
                    None,
                )),
            };
            match done {
                Err(e) if lost_connection(&conn, &e) => {
                    self.connection_lost(conn.generation);
                    if bound.exhausted(attempt) {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, attempt, "{what} failed: the connection was lost; again after reconnecting");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}
