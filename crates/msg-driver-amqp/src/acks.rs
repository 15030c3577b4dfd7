//! Acknowledgements batched with `multiple`: one `basic.ack` covers every delivery up to a
//! tag once all of them are settled, instead of one frame per message.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::Channel;
use lapin::options::BasicAckOptions;
use msg_core::{Error, Result};

/// How long an acknowledgement may wait for company before it is sent.
const LINGER: Duration = Duration::from_millis(1);

/// The acknowledgement state of one consumer channel.
pub(crate) struct Acks {
    channel: Channel,
    /// Send once this many acks are pending.
    threshold: usize,
    state: Mutex<State>,
    flush_scheduled: AtomicBool,
}

#[derive(Default)]
struct State {
    /// Delivered, not settled yet.
    outstanding: BTreeSet<u64>,
    /// Acked by us, not yet told to the broker.
    acked: BTreeSet<u64>,
}

impl Acks {
    pub(crate) fn new(channel: Channel, prefetch: u16) -> Self {
        let threshold = match prefetch {
            0 => 50,
            p => usize::from(p / 2).clamp(1, 50),
        };
        Acks {
            channel,
            threshold,
            state: Mutex::default(),
            flush_scheduled: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A delivery arrived.
    pub(crate) fn delivered(&self, tag: u64) {
        self.lock().outstanding.insert(tag);
    }

    /// A delivery was settled otherwise (rejected): it no longer blocks a multiple ack.
    pub(crate) fn forget(self: &Arc<Self>, tag: u64) {
        let pending = {
            let mut st = self.lock();
            st.outstanding.remove(&tag);
            !st.acked.is_empty()
        };
        if pending {
            self.schedule();
        }
    }

    /// Acks a delivery; the frame goes out with the next batch (within about a millisecond).
    pub(crate) async fn ack(self: &Arc<Self>, tag: u64) -> Result<()> {
        let full = {
            let mut st = self.lock();
            st.outstanding.remove(&tag);
            st.acked.insert(tag);
            st.acked.len() >= self.threshold
        };
        if full {
            self.flush().await
        } else {
            self.schedule();
            Ok(())
        }
    }

    fn schedule(self: &Arc<Self>) {
        if self.flush_scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                tokio::time::sleep(LINGER).await;
                this.flush_scheduled.store(false, Ordering::Release);
                if let Err(e) = this.flush().await {
                    tracing::debug!(error = %e, "a batched ack failed (the broker will redeliver)");
                }
            });
        }
    }

    /// Sends what is pending: one `multiple` ack for every acked delivery below the oldest
    /// unsettled one, and the others one by one (waiting for the old one would hold their
    /// prefetch credit).
    pub(crate) async fn flush(&self) -> Result<()> {
        let (upto, singles) = {
            let mut st = self.lock();
            let limit = st.outstanding.first().copied().unwrap_or(u64::MAX);
            let acked = std::mem::take(&mut st.acked);
            let upto = acked.range(..limit).next_back().copied();
            let singles: Vec<u64> = acked.range(limit..).copied().collect();
            (upto, singles)
        };
        if let Some(tag) = upto {
            self.channel
                .basic_ack(tag, BasicAckOptions { multiple: true })
                .await
                .map_err(|e| Error::driver("amqp", "acknowledging", e))?;
        }
        for tag in singles {
            self.channel
                .basic_ack(tag, BasicAckOptions::default())
                .await
                .map_err(|e| Error::driver("amqp", "acknowledging", e))?;
        }
        Ok(())
    }

    /// Before the channel closes: every acked delivery is told.
    pub(crate) async fn flush_all(&self) {
        let _ = self.flush().await;
    }
}
