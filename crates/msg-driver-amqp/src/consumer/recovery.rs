//! A consumer that ends while its connection lives on: the broker cancelled it (`basic.cancel`:
//! its queue was deleted, or the queue's node failed) or closed its channel. lapin ends the
//! consumer with `Ok(None)` in every case, a lost connection included; the state of the
//! channel and of the connection at that moment tells them apart. A lost connection is the
//! supervisor's to restore; the other two are recovered here, as oslo does (it asks for
//! `consumer_cancel_notify` and re-declares every consumer): the consumer's queues and their
//! bindings are declared again from the supervisor's record and consumed again on a new
//! channel, with back-off while that fails.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use msg_core::{Error, Result};

use super::{ChannelGuard, ConsumerCore, Sink, cancel_later};

/// Why a consumer of ours ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// We stopped it, or replaced its channel.
    Ours,
    /// Its connection is gone: consumption resumes when the supervisor reconnects.
    ConnectionLost,
    /// The broker closed its channel; the connection lives.
    ChannelClosed,
    /// The broker cancelled it (`basic.cancel`); channel and connection live.
    CancelledByBroker,
}

impl ConsumerCore {
    /// Tells why a consumer on `guard` ended.
    fn why_ended(&self, guard: &Arc<ChannelGuard>) -> Ended {
        if self.stopped.load(Ordering::Acquire) {
            Ended::Ours
        } else if !guard.connection.connected() {
            Ended::ConnectionLost
        } else if !self.is_current(guard) {
            Ended::Ours
        } else if guard.channel.status().connected() {
            Ended::CancelledByBroker
        } else {
            Ended::ChannelClosed
        }
    }

    /// A consumer of `queue` on `guard` ended: logs why, and recovers when the broker ended it.
    pub(super) fn consumer_ended(self: &Arc<Self>, guard: &Arc<ChannelGuard>, queue: &str) {
        match self.why_ended(guard) {
            Ended::Ours => {}
            Ended::ConnectionLost => tracing::debug!(
                queue,
                generation = guard.generation,
                "consumer ended with its connection; it resumes when the connection is restored"
            ),
            Ended::CancelledByBroker => {
                tracing::warn!(
                    queue,
                    "the broker cancelled our consumer (the queue was deleted, or its node \
                     failed); declaring the queue again and consuming again"
                );
                if let Some(stream) = self.stream_of(queue) {
                    // oslo: the stream may have been deleted, its offsets start over
                    stream.reset();
                }
                if let Sink::Replies(waiters) = &self.sink {
                    // the replies of the calls waiting went with the queue
                    waiters.fail_all(|| Error::ConnectionLost {
                        what: format!(
                            "the reply queue `{queue}` was deleted by the broker (the request \
                             may or may not have been handled)"
                        ),
                    });
                }
                self.recover(guard);
            }
            Ended::ChannelClosed => {
                if !guard.recovering.load(Ordering::Acquire) {
                    tracing::warn!(
                        queue,
                        "the broker closed our consumer channel; consuming again on a new channel"
                    );
                }
                self.recover(guard);
            }
        }
    }

    /// Declares the queues again and consumes them on a new channel, retried with back-off
    /// until it works, the consumer stops, or the connection is replaced (the supervisor then
    /// resumes the consumer). Once per channel: its other consumers end too.
    fn recover(self: &Arc<Self>, from: &Arc<ChannelGuard>) {
        if from.recovering.swap(true, Ordering::AcqRel) {
            return;
        }
        let core = self.clone();
        let generation = from.generation;
        // lapin runs consumer delegates outside the tokio runtime: spawned on the driver's
        self.sup.runtime.spawn(async move {
            let mut attempt = 0u32;
            loop {
                if core.stopped.load(Ordering::Acquire) || core.sup.is_closed() {
                    return;
                }
                let Some(conn) = core.sup.current() else {
                    return;
                };
                if conn.generation != generation {
                    return;
                }
                match core.restart_on(&conn).await {
                    Ok(()) => {
                        msg_core::metrics::consumer_restarted(crate::DRIVER_NAME);
                        tracing::info!(queues = ?core.queues, attempt, "consuming again");
                        return;
                    }
                    Err(e) => {
                        let delay = core.sup.options.reconnect_delay(attempt);
                        tracing::warn!(
                            queues = ?core.queues,
                            error = %e,
                            attempt,
                            retry_in = ?delay,
                            "consuming again failed"
                        );
                        attempt = attempt.saturating_add(1);
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        });
    }

    /// Declares the queues (and their bindings) again, consumes them on a new channel, then
    /// cancels what still consumes on the old one.
    async fn restart_on(self: &Arc<Self>, conn: &super::Conn) -> Result<()> {
        self.sup.redeclare_queues(conn, &self.queues).await?;
        let (guard, tags) = self.consume_on(conn).await?;
        if let Some((old, old_tags)) = self.install(guard, tags) {
            cancel_later(old, old_tags);
        }
        Ok(())
    }
}
