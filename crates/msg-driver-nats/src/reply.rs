//! The client side of RPC: one inbox subscription per driver (`<inbox>.*`); each call
//! replies to `<inbox>.<msg_id>`, so a "no responders" status for it arrives there too.

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::StatusCode;
use futures::StreamExt;
use msg_core::ReplyWaiters;
use msg_core::codec::WireReply;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::connection::Conn;

/// The header of a cast receipt (a server took an `at_least_once` cast).
pub(crate) const RECEIPT_HEADER: &str = "Msg-Receipt";

/// What the server (or a listener) says about one send, apart from replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// No subscription matched the subject (NATS status 503).
    NoResponders,
    /// A server took the cast.
    Receipt,
}

type Signals = Arc<Mutex<HashMap<String, oneshot::Sender<Signal>>>>;

/// The driver's reply inbox.
pub(crate) struct ReplyInbox {
    /// `<inbox>` (what `_reply_q` says).
    pub(crate) base: String,
    /// `<inbox>.`
    prefix: String,
    pub(crate) waiters: Arc<ReplyWaiters>,
    signals: Signals,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for ReplyInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyInbox")
            .field("base", &self.base)
            .field("waiting", &self.waiters.len())
            .finish()
    }
}

/// Unregisters a send's signal when the send is over.
pub(crate) struct SignalGuard {
    id: String,
    signals: Signals,
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        self.signals.lock().remove(&self.id);
    }
}

impl ReplyInbox {
    /// Subscribes `<inbox>.*` and starts routing what arrives.
    pub(crate) async fn open(conn: &Arc<Conn>) -> msg_core::Result<Self> {
        let base = conn.client.new_inbox();
        let prefix = format!("{base}.");
        let mut sub = conn
            .client
            .subscribe(format!("{base}.*"))
            .await
            .map_err(|e| crate::errors::unavailable("subscribing the reply inbox", e))?;
        let waiters = Arc::new(ReplyWaiters::default());
        let signals: Signals = Arc::default();
        let task = {
            let waiters = waiters.clone();
            let signals = signals.clone();
            let prefix = prefix.clone();
            tokio::spawn(async move {
                while let Some(msg) = sub.next().await {
                    let Some(id) = msg.subject.as_str().strip_prefix(prefix.as_str()) else {
                        continue;
                    };
                    if msg.status == Some(StatusCode::NO_RESPONDERS) {
                        if let Some(tx) = signals.lock().remove(id) {
                            let _ = tx.send(Signal::NoResponders);
                        }
                        continue;
                    }
                    if msg
                        .headers
                        .as_ref()
                        .is_some_and(|h| h.get(RECEIPT_HEADER).is_some())
                    {
                        if let Some(tx) = signals.lock().remove(id) {
                            let _ = tx.send(Signal::Receipt);
                        }
                        continue;
                    }
                    if msg.status.is_some() {
                        tracing::debug!(status = ?msg.status, "a status message on the reply inbox ignored");
                        continue;
                    }
                    match WireReply::decode(&msg.payload) {
                        Ok(reply) => {
                            if !waiters.deliver(reply) {
                                tracing::debug!("a reply for a call nobody waits for was dropped");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "a reply that can't be decoded was dropped")
                        }
                    }
                }
            })
        };
        Ok(ReplyInbox {
            base,
            prefix,
            waiters,
            signals,
            task,
        })
    }

    /// The reply subject of a send: `<inbox>.<id>`.
    pub(crate) fn reply_subject(&self, id: &str) -> String {
        let mut s = String::with_capacity(self.prefix.len() + id.len());
        s.push_str(&self.prefix);
        s.push_str(id);
        s
    }

    /// Registers for the signal of one send (before it is sent).
    pub(crate) fn signal(&self, id: &str) -> (SignalGuard, oneshot::Receiver<Signal>) {
        let (tx, rx) = oneshot::channel();
        self.signals.lock().insert(id.to_string(), tx);
        (
            SignalGuard {
                id: id.to_string(),
                signals: self.signals.clone(),
            },
            rx,
        )
    }

    /// Fails every waiting call and stops routing.
    pub(crate) fn close(&self) {
        self.task.abort();
        self.waiters
            .fail_all(|| msg_core::Error::Closed("the transport was closed".into()));
        self.signals.lock().clear();
    }
}

impl Drop for ReplyInbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}
