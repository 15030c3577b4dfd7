//! Acknowledgements batched with `multiple`, safely.
//!
//! Delivery tags on a channel are consecutive from 1. Every delivery of a consumer channel
//! is settled here (acked, or rejected), and every frame goes out under one lock, in order.
//! A `multiple` ack names an acked tag at or below the *floor* (the highest tag with every
//! tag up to it settled), so it never covers a delivery still being handled, and never one
//! whose reject hasn't gone out yet. Acks above the floor go out one by one at the next flush
//! (waiting for the old delivery would hold their prefetch credit).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use msg_core::{Error, Result};

/// How long an acknowledgement may wait for company before it is sent.
const LINGER: Duration = Duration::from_millis(1);

/// The acknowledgement state of one consumer channel.
pub(crate) struct Acks {
    channel: Channel,
    /// Send once this many acks are pending.
    threshold: usize,
    state: Mutex<State>,
    /// Frames go out one at a time, in the order decided.
    sending: tokio::sync::Mutex<()>,
    flush_scheduled: AtomicBool,
}

#[derive(Default)]
struct State {
    /// Every tag up to here is settled.
    floor: u64,
    /// Settled tags above the floor.
    settled: BTreeSet<u64>,
    /// Acked by us, not yet told to the broker.
    pending: BTreeSet<u64>,
}

impl State {
    fn settle(&mut self, tag: u64) {
        if tag <= self.floor {
            return;
        }
        self.settled.insert(tag);
        while self.settled.remove(&(self.floor + 1)) {
            self.floor += 1;
        }
    }
}

fn ack_error(e: lapin::Error) -> Error {
    Error::driver("amqp", "acknowledging", e)
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
            sending: tokio::sync::Mutex::new(()),
            flush_scheduled: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Acks a delivery; the frame goes out with the next batch (within about a millisecond).
    pub(crate) async fn ack(self: &Arc<Self>, tag: u64) -> Result<()> {
        let full = {
            let mut st = self.lock();
            st.settle(tag);
            st.pending.insert(tag);
            st.pending.len() >= self.threshold
        };
        if full {
            self.flush().await
        } else {
            self.schedule();
            Ok(())
        }
    }

    /// Rejects a delivery now (before any `multiple` ack could cover it).
    pub(crate) async fn reject(self: &Arc<Self>, tag: u64, requeue: bool) -> Result<()> {
        let sent = {
            let _order = self.sending.lock().await;
            self.channel
                .basic_reject(tag, BasicRejectOptions { requeue })
                .await
        };
        let pending = {
            let mut st = self.lock();
            st.settle(tag);
            !st.pending.is_empty()
        };
        if pending {
            self.schedule();
        }
        sent.map_err(|e| Error::driver("amqp", "rejecting", e))
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

    /// Sends what is pending: one `multiple` ack for the acked tags at or below the floor,
    /// the others one by one.
    pub(crate) async fn flush(&self) -> Result<()> {
        let _order = self.sending.lock().await;
        let (upto, singles) = {
            let mut st = self.lock();
            let pending = std::mem::take(&mut st.pending);
            let upto = pending.range(..=st.floor).next_back().copied();
            let singles: Vec<u64> = pending.range(st.floor + 1..).copied().collect();
            (upto, singles)
        };
        if let Some(tag) = upto {
            self.channel
                .basic_ack(tag, BasicAckOptions { multiple: true })
                .await
                .map_err(ack_error)?;
        }
        for tag in singles {
            self.channel
                .basic_ack(tag, BasicAckOptions::default())
                .await
                .map_err(ack_error)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::State;

    #[test]
    fn the_floor_rises_only_over_settled_tags() {
        let mut st = State::default();
        st.settle(2);
        st.settle(3);
        assert_eq!(st.floor, 0);
        st.settle(1);
        assert_eq!(st.floor, 3);
        st.settle(5);
        assert_eq!(st.floor, 3);
        st.settle(4);
        assert_eq!(st.floor, 5);
        assert!(st.settled.is_empty());
        st.settle(5); // settled twice: nothing changes
        assert_eq!(st.floor, 5);
    }
}
