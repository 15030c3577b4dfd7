//! Acknowledgements batched with `multiple`, safely.
//!
//! Delivery tags on a channel are consecutive from 1. Every delivery of a consumer channel
//! is settled here (acked, or rejected), and every frame is queued under one lock, in order.
//! A `multiple` ack names an acked tag at or below the *floor* (the highest tag with every
//! tag up to it settled), so it never covers a delivery still being handled, and never one
//! whose reject hasn't been queued yet. Acks above the floor go out one by one at the next
//! flush (waiting for the old delivery would hold their prefetch credit).
//!
//! A frame is queued, not waited for: lapin queues a method frame on the first poll of its
//! future (in call order) and fails that poll when the channel is closed; the wait after it
//! is only for the frame to be written. Nothing on the hot path waits for that (it would
//! add a round trip through lapin's I/O loop to every ack, before an RPC server dispatches
//! and every `threshold` notifications); a frame that is never written goes with its
//! connection, and the broker redelivers. [`Acks::flush`] (before closing) waits.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use msg_core::{Error, Result};
use parking_lot::Mutex;

/// How long an acknowledgement may wait for company before it is sent.
const LINGER: Duration = Duration::from_millis(1);

/// A queued frame's wait for being written.
type Written = Pin<Box<dyn Future<Output = lapin::Result<()>> + Send>>;

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

/// Queues a lapin method frame: polls its future once (which queues the frame, or fails at
/// once on a closed channel). With `keep`, returns the wait for the frame to be written (boxed,
/// to be awaited later); without, drops it (no allocation: the hot path).
fn queue(
    frame: impl Future<Output = lapin::Result<()>> + Send + 'static,
    keep: bool,
) -> lapin::Result<Option<Written>> {
    let mut cx = Context::from_waker(Waker::noop());
    if !keep {
        let frame = std::pin::pin!(frame);
        return match frame.poll(&mut cx) {
            Poll::Ready(r) => r.map(|()| None),
            Poll::Pending => Ok(None),
        };
    }
    let mut frame: Written = Box::pin(frame);
    match frame.as_mut().poll(&mut cx) {
        Poll::Ready(r) => r.map(|()| None),
        Poll::Pending => Ok(Some(frame)),
    }
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

    /// Acks a delivery; the frame is queued with the next batch (within about a millisecond,
    /// or at once when `threshold` acks are pending).
    pub(crate) async fn ack(self: &Arc<Self>, tag: u64) -> Result<()> {
        let full = {
            let mut st = self.state.lock();
            st.settle(tag);
            st.pending.insert(tag);
            st.pending.len() >= self.threshold
        };
        if full {
            self.send_pending(false).map(drop)
        } else {
            self.schedule();
            Ok(())
        }
    }

    /// Rejects a delivery now (queued before any `multiple` ack could cover it).
    pub(crate) async fn reject(self: &Arc<Self>, tag: u64, requeue: bool) -> Result<()> {
        let (sent, pending) = {
            let mut st = self.state.lock();
            let channel = self.channel.clone();
            let sent = queue(
                async move {
                    channel
                        .basic_reject(tag, BasicRejectOptions { requeue })
                        .await
                },
                false,
            );
            st.settle(tag);
            (sent, !st.pending.is_empty())
        };
        if pending {
            self.schedule();
        }
        sent.map(drop)
            .map_err(|e| Error::driver("amqp", "rejecting", e))
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
                if let Err(e) = this.send_pending(false) {
                    tracing::debug!(error = %e, "a batched ack failed (the broker will redeliver)");
                }
            });
        }
    }

    /// Queues what is pending, under the state lock (so frames keep the order decided): one
    /// `multiple` ack for the acked tags at or below the floor, the others one by one.
    /// With `keep`, returns the waits for them to be written.
    fn send_pending(&self, keep: bool) -> Result<Vec<Written>> {
        let mut st = self.state.lock();
        let pending = std::mem::take(&mut st.pending);
        let upto = pending.range(..=st.floor).next_back().copied();
        let singles = pending.range(st.floor + 1..).copied();
        let frames = upto
            .map(|tag| (tag, true))
            .into_iter()
            .chain(singles.map(|tag| (tag, false)));
        let mut written = Vec::new();
        for (tag, multiple) in frames {
            let channel = self.channel.clone();
            let frame = async move { channel.basic_ack(tag, BasicAckOptions { multiple }).await };
            written.extend(queue(frame, keep).map_err(ack_error)?);
        }
        Ok(written)
    }

    /// Sends what is pending and waits until it is written (before a channel or connection
    /// closes).
    pub(crate) async fn flush(&self) -> Result<()> {
        for w in self.send_pending(true)? {
            w.await.map_err(ack_error)?;
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
