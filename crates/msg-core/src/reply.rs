//! Waiting for replies: calls waiting on one reply queue, woken as their replies arrive,
//! with the call timeout and the call-monitor (heartbeat) timeout. Shared by every driver.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc;
use serde_json::Value;
use tokio::time::Instant;

use crate::codec::{RpcRequest, WireReply};
use crate::{Error, Result};

// futures' channel: a call gets one or a few replies, and its channel costs a small
// allocation (tokio's allocates a block of 32 slots up front, per call)
type ReplySender = mpsc::UnboundedSender<Result<WireReply>>;

/// The calls waiting for replies on one reply queue, by `_msg_id`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use msg_core::{ReplyWaiters, RpcRequest, codec::WireReply};
/// let waiters = Arc::new(ReplyWaiters::default());
/// let pending = waiters.register("m1".to_string());
/// assert!(waiters.deliver(WireReply::result("m1", serde_json::json!(5))));
/// let v = pending.wait(&RpcRequest::default(), None, None).await.unwrap();
/// assert_eq!(v, serde_json::json!(5));
/// # });
/// ```
#[derive(Default)]
pub struct ReplyWaiters {
    waiting: Mutex<HashMap<String, ReplySender>>,
}

impl fmt::Debug for ReplyWaiters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyWaiters")
            .field("waiting", &self.len())
            .finish()
    }
}

impl ReplyWaiters {
    /// Registers a call before its request is sent.
    pub fn register(self: &Arc<Self>, msg_id: String) -> PendingReply {
        let (tx, rx) = mpsc::unbounded();
        self.lock().insert(msg_id.clone(), tx);
        PendingReply {
            msg_id,
            rx,
            waiters: self.clone(),
        }
    }

    /// Hands a reply (or heartbeat) to its call; `false` when no call waits for it (late or
    /// duplicate replies are dropped by the caller, with a log line).
    pub fn deliver(&self, reply: WireReply) -> bool {
        let tx = self.lock().get(&reply.msg_id).cloned();
        match tx {
            Some(tx) => tx.unbounded_send(Ok(reply)).is_ok(),
            None => false,
        }
    }

    /// Fails every waiting call (the reply queue vanished, the connection is gone).
    pub fn fail_all(&self, error: impl Fn() -> Error) {
        for tx in self.lock().values() {
            let _ = tx.unbounded_send(Err(error()));
        }
    }

    /// How many calls wait.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no call waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ReplySender>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One call waiting for its reply. Dropping it unregisters the call.
#[derive(Debug)]
pub struct PendingReply {
    msg_id: String,
    rx: mpsc::UnboundedReceiver<Result<WireReply>>,
    waiters: Arc<ReplyWaiters>,
}

impl PendingReply {
    /// The call's `_msg_id`.
    pub fn msg_id(&self) -> &str {
        &self.msg_id
    }

    /// Waits for the final reply. `timeout` bounds the whole call; with a call-monitor timeout
    /// the call also fails when neither a heartbeat nor the reply came for that long.
    /// Accepts the legacy two-message form (a result, then `ending`).
    pub async fn wait(
        mut self,
        request: &RpcRequest,
        timeout: Option<Duration>,
        call_monitor_timeout: Option<Duration>,
    ) -> Result<Value> {
        let start = Instant::now();
        let overall = timeout.map(|t| start + t);
        let mut monitor = call_monitor_timeout.map(|t| start + t);
        let mut legacy_result: Option<Value> = None;
        loop {
            let deadline = match (overall, monitor) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d, self.rx.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        let by_monitor = monitor.is_some_and(|m| overall.is_none_or(|o| m < o));
                        return Err(Error::Timeout {
                            what: if by_monitor {
                                format!(
                                    "no heartbeat or reply for `{}` (call-monitor timeout)",
                                    request.method
                                )
                            } else {
                                format!("no reply to `{}`", request.method)
                            },
                            after: start.elapsed(),
                        });
                    }
                },
                None => self.rx.next().await,
            };
            let reply = match next {
                Some(Ok(r)) => r,
                Some(Err(e)) => return Err(e),
                None => return Err(Error::Closed("the reply queue is gone".into())),
            };
            if let Some(failure) = reply.failure {
                return Err(failure.into_error(Some(request)));
            }
            if reply.ending {
                return Ok(match legacy_result {
                    Some(v) if reply.result.is_null() => v,
                    _ => reply.result,
                });
            }
            if reply.result.is_null() {
                // a heartbeat: the server is still working on it
                if let Some(cmt) = call_monitor_timeout {
                    monitor = Some(Instant::now() + cmt);
                }
            } else {
                legacy_result = Some(reply.result);
            }
        }
    }
}

impl Drop for PendingReply {
    fn drop(&mut self) {
        self.waiters.lock().remove(&self.msg_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Failure;

    #[tokio::test(start_paused = true)]
    async fn heartbeats_keep_a_call_alive_and_their_absence_ends_it() {
        let waiters = Arc::new(ReplyWaiters::default());
        let pending = waiters.register("m".into());
        let w = waiters.clone();
        tokio::spawn(async move {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                w.deliver(WireReply::heartbeat("m"));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            w.deliver(WireReply::result("m", Value::from(1)));
        });
        let req = RpcRequest::default();
        let v = pending
            .wait(
                &req,
                Some(Duration::from_secs(30)),
                Some(Duration::from_secs(2)),
            )
            .await
            .unwrap();
        assert_eq!(v, Value::from(1));

        let pending = waiters.register("n".into());
        let start = Instant::now();
        let err = pending
            .wait(
                &req,
                Some(Duration::from_secs(30)),
                Some(Duration::from_secs(2)),
            )
            .await
            .unwrap_err();
        assert!(err.is_timeout());
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert!(waiters.is_empty());
    }

    #[tokio::test]
    async fn legacy_two_message_form_and_failures() {
        let waiters = Arc::new(ReplyWaiters::default());
        let pending = waiters.register("m".into());
        let mut first = WireReply::result("m", Value::from("r"));
        first.ending = false;
        waiters.deliver(first);
        let mut end = WireReply::result("m", Value::Null);
        end.ending = true;
        waiters.deliver(end);
        let v = pending.wait(&RpcRequest::default(), None, None).await;
        assert_eq!(v.unwrap(), Value::from("r"));

        let pending = waiters.register("f".into());
        waiters.deliver(WireReply::failure(
            "f",
            Failure::new("ValueError", "builtins", "boom"),
        ));
        let err = pending.wait(&RpcRequest::default(), None, None).await;
        assert!(
            matches!(err, Err(Error::Remote(r)) if r.class == "ValueError" && r.message == "boom")
        );
    }
}
