//! A channel-fed listener: what every driver's listener shares. The driver's consuming task
//! pushes messages as it takes them off the wire; the listener yields them decoded; `stop()`
//! (or dropping the listener) ends the stream and gives back, unsettled, whatever was taken
//! but never yielded.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context as TaskContext, Poll};

use futures::Stream;
use tokio::sync::{mpsc, oneshot};

use crate::{Listener, StopListening};

/// The driver's side of a feed: how its messages are decoded, given back and stopped.
///
/// A driver implements it once per kind of listener and builds the listener with
/// [`feed`]. `decode` runs on the listener's task as each message is yielded, so a driver may
/// push raw deliveries and leave decoding to the consumer (or push what it decoded already).
pub trait Intake: Send + Sync + 'static {
    /// A message as the driver holds it: a delivery with what settles it.
    type Raw: Send + 'static;
    /// What the listener yields ([`crate::IncomingRequest`], [`crate::IncomingNotification`]).
    type Item: Send + 'static;

    /// Decodes one message; `None` when it can't be (the intake logs it once, never its body,
    /// and rejects it without requeue: see [`log_rejected`]).
    fn decode(&self, raw: Self::Raw) -> Option<Self::Item>;

    /// Gives back messages taken but never yielded (at stop, or when the listener is
    /// dropped): the broker must deliver them again, to this process or another.
    fn give_back(&self, raws: Vec<Self::Raw>);

    /// Stops consumption at the broker (cancels consumers, unsubscribes). Called once, on
    /// the first `stop()` or when the listener is dropped.
    fn stop(&self);

    /// A message left the feed for the consumer; `queued` are still waiting behind it.
    fn yielded(&self, queued: usize) {
        let _ = queued;
    }

    /// The consumer waits and the feed is empty (a pulling driver asks for more).
    fn idle(&self) {}
}

enum Entry<R> {
    Ready(R),
    /// A message still being prepared off the consuming task (decompressed on the blocking
    /// pool), yielded in its place in the order.
    Later(oneshot::Receiver<R>),
    Stop,
}

struct Shared<I> {
    intake: I,
    stopped: AtomicBool,
    /// Pushed and not yet yielded or given back.
    queued: AtomicUsize,
}

impl<I: Intake> Shared<I> {
    /// Marks the feed stopped; `true` the first time.
    fn mark_stopped(&self) -> bool {
        let first = !self.stopped.swap(true, Ordering::AcqRel);
        if first {
            self.intake.stop();
        }
        first
    }
}

/// The driver's handle on a listener's feed: cheap to clone, one per consuming task.
pub struct Feed<I: Intake> {
    tx: mpsc::UnboundedSender<Entry<I::Raw>>,
    shared: Arc<Shared<I>>,
}

impl<I: Intake> Clone for Feed<I> {
    fn clone(&self) -> Self {
        Feed {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<I: Intake> fmt::Debug for Feed<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feed")
            .field("stopped", &self.is_stopped())
            .field("queued", &self.queued())
            .finish()
    }
}

impl<I: Intake> Feed<I> {
    /// Queues a message for the listener; once the listener stopped (or is gone) the
    /// message is given back at once instead. Returns whether it was queued.
    pub fn push(&self, raw: I::Raw) -> bool {
        match self.try_push(raw) {
            Ok(()) => true,
            Err(raw) => {
                self.shared.intake.give_back(vec![raw]);
                false
            }
        }
    }

    /// Queues a message for the listener, or hands it back when the listener stopped (or is
    /// gone), for a driver that must not give it back from where it pushes (under a lock
    /// that giving back takes).
    pub fn try_push(&self, raw: I::Raw) -> std::result::Result<(), I::Raw> {
        if self.is_stopped() {
            return Err(raw);
        }
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        let Err(mpsc::error::SendError(entry)) = self.tx.send(Entry::Ready(raw)) else {
            return Ok(());
        };
        self.shared.queued.fetch_sub(1, Ordering::AcqRel);
        match entry {
            Entry::Ready(raw) => Err(raw),
            // what was sent is what comes back
            Entry::Later(_) | Entry::Stop => Ok(()),
        }
    }

    /// Queues a place for a message still being prepared; the listener yields it there once
    /// `prepared` delivers it. Dropping the sender skips the place (whoever dropped it gives
    /// the message back or rejects it). Returns whether the place was queued.
    pub fn push_later(&self, prepared: oneshot::Receiver<I::Raw>) -> bool {
        if self.is_stopped() {
            return false;
        }
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(Entry::Later(prepared)).is_err() {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Whether the listener was stopped (or dropped): stop taking messages.
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::Acquire)
    }

    /// Messages pushed and not yet yielded or given back.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// The driver's intake.
    pub fn intake(&self) -> &I {
        &self.shared.intake
    }

    /// Stops the listener from the driver's side (its consumption ended for good), as
    /// [`StopListening::stop`] does: the stream ends at once and what is queued goes back.
    pub fn stop(&self) {
        self.shared.mark_stopped();
        let _ = self.tx.send(Entry::Stop);
    }
}

struct FeedStop<I: Intake> {
    tx: mpsc::UnboundedSender<Entry<I::Raw>>,
    shared: Arc<Shared<I>>,
}

impl<I: Intake> fmt::Debug for FeedStop<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeedStop")
            .field("stopped", &self.shared.stopped.load(Ordering::Relaxed))
            .finish()
    }
}

impl<I: Intake> StopListening for FeedStop<I> {
    fn stop(&self) {
        if self.shared.mark_stopped() {
            // wakes a consumer waiting on an empty feed
            let _ = self.tx.send(Entry::Stop);
        }
    }
}

struct FeedStream<I: Intake> {
    rx: mpsc::UnboundedReceiver<Entry<I::Raw>>,
    shared: Arc<Shared<I>>,
    waiting: Option<oneshot::Receiver<I::Raw>>,
    ended: bool,
}

impl<I: Intake> FeedStream<I> {
    /// Ends the stream: what is queued goes back (a message being prepared goes back through
    /// whoever prepares it, as its receiver is dropped here).
    fn end(&mut self) {
        self.ended = true;
        self.waiting = None;
        self.rx.close();
        let mut back = Vec::new();
        while let Ok(entry) = self.rx.try_recv() {
            match entry {
                Entry::Ready(raw) => back.push(raw),
                Entry::Later(mut prepared) => {
                    if let Ok(raw) = prepared.try_recv() {
                        back.push(raw);
                    }
                }
                Entry::Stop => continue,
            }
        }
        self.shared.queued.store(0, Ordering::Release);
        if !back.is_empty() {
            self.shared.intake.give_back(back);
        }
    }

    fn took_one(&self) -> usize {
        let left = self
            .shared
            .queued
            .fetch_sub(1, Ordering::AcqRel)
            .saturating_sub(1);
        self.shared.intake.yielded(left);
        left
    }
}

impl<I: Intake> Stream for FeedStream<I> {
    type Item = I::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<I::Item>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        if this.shared.stopped.load(Ordering::Acquire) {
            this.end();
            return Poll::Ready(None);
        }
        loop {
            if let Some(waiting) = this.waiting.as_mut() {
                match Pin::new(waiting).poll(cx) {
                    Poll::Ready(prepared) => {
                        this.waiting = None;
                        this.took_one();
                        if let Ok(raw) = prepared
                            && let Some(item) = this.shared.intake.decode(raw)
                        {
                            return Poll::Ready(Some(item));
                        }
                        continue;
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(Entry::Ready(raw))) => {
                    this.took_one();
                    if let Some(item) = this.shared.intake.decode(raw) {
                        return Poll::Ready(Some(item));
                    }
                }
                Poll::Ready(Some(Entry::Later(prepared))) => this.waiting = Some(prepared),
                Poll::Ready(Some(Entry::Stop)) | Poll::Ready(None) => {
                    this.end();
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    this.shared.intake.idle();
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<I: Intake> Drop for FeedStream<I> {
    fn drop(&mut self) {
        self.shared.mark_stopped();
        if !self.ended {
            self.end();
        }
    }
}

/// A listener fed by the driver through the returned [`Feed`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Mutex;
/// use futures::StreamExt;
/// use msg_core::feed::{Intake, feed};
///
/// /// A toy driver: numbers come in, even ones are "malformed".
/// #[derive(Default)]
/// struct Numbers { given_back: Mutex<Vec<u32>> }
/// impl Intake for Numbers {
///     type Raw = u32;
///     type Item = u32;
///     fn decode(&self, n: u32) -> Option<u32> { (n % 2 == 1).then_some(n) }
///     fn give_back(&self, raws: Vec<u32>) { self.given_back.lock().unwrap().extend(raws) }
///     fn stop(&self) {}
/// }
///
/// let (tx, mut listener) = feed(Numbers::default());
/// for n in 1..=5 { tx.push(n); }
/// assert_eq!(listener.next().await, Some(1));
/// assert_eq!(listener.next().await, Some(3)); // 2 was skipped
/// listener.stop();
/// assert_eq!(listener.next().await, None);
/// assert_eq!(*tx.intake().given_back.lock().unwrap(), vec![4, 5]);
/// assert!(!tx.push(6)); // stopped: given back at once
/// # });
/// ```
pub fn feed<I: Intake>(intake: I) -> (Feed<I>, Listener<I::Item>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        intake,
        stopped: AtomicBool::new(false),
        queued: AtomicUsize::new(0),
    });
    let stream = FeedStream {
        rx,
        shared: shared.clone(),
        waiting: None,
        ended: false,
    };
    let stopper = Arc::new(FeedStop {
        tx: tx.clone(),
        shared: shared.clone(),
    });
    (
        Feed { tx, shared },
        Listener::new(Box::pin(stream), stopper),
    )
}

/// Logs a message that can't be decoded, once, at WARN, naming where it came from and why
/// (never its body): the line every driver writes before it rejects such a message without
/// requeue.
pub fn log_rejected(what: &str, from: &str, error: &crate::Error) {
    tracing::warn!(
        from,
        error = %error,
        "rejected a {what} that can't be decoded (not requeued)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Probe {
        back: Mutex<Vec<u32>>,
        stops: AtomicUsize,
        idle: AtomicUsize,
        left: Mutex<Vec<usize>>,
    }

    impl Intake for Probe {
        type Raw = u32;
        type Item = u32;
        fn decode(&self, n: u32) -> Option<u32> {
            Some(n)
        }
        fn give_back(&self, raws: Vec<u32>) {
            self.back.lock().unwrap().extend(raws);
        }
        fn stop(&self) {
            self.stops.fetch_add(1, Ordering::SeqCst);
        }
        fn yielded(&self, queued: usize) {
            self.left.lock().unwrap().push(queued);
        }
        fn idle(&self) {
            self.idle.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn order_is_kept_across_prepared_messages_and_drop_gives_back() {
        let (tx, mut l) = feed(Probe::default());
        tx.push(1);
        let (later_tx, later_rx) = oneshot::channel();
        tx.push_later(later_rx);
        tx.push(3);
        assert_eq!(tx.queued(), 3);
        assert_eq!(l.next().await, Some(1));
        let next = tokio::spawn(async move {
            let two = l.next().await;
            let three = l.next().await;
            (two, three, l)
        });
        tokio::task::yield_now().await;
        later_tx.send(2).unwrap();
        let (two, three, l) = next.await.unwrap();
        assert_eq!((two, three), (Some(2), Some(3)));
        assert_eq!(*tx.intake().left.lock().unwrap(), vec![2, 1, 0]);
        tx.push(4);
        tx.push(5);
        drop(l);
        assert_eq!(*tx.intake().back.lock().unwrap(), vec![4, 5]);
        assert_eq!(tx.intake().stops.load(Ordering::SeqCst), 1);
        assert!(!tx.push(6));
        assert_eq!(*tx.intake().back.lock().unwrap(), vec![4, 5, 6]);
    }

    #[tokio::test]
    async fn stop_wakes_a_waiting_consumer_and_stops_once() {
        let (tx, mut l) = feed(Probe::default());
        let stop = l.stop_handle();
        let waiter = tokio::spawn(async move { l.next().await });
        tokio::task::yield_now().await;
        assert!(tx.intake().idle.load(Ordering::SeqCst) >= 1);
        stop.stop();
        stop.stop();
        assert_eq!(waiter.await.unwrap(), None);
        assert_eq!(tx.intake().stops.load(Ordering::SeqCst), 1);
        assert!(tx.is_stopped());
    }

    #[tokio::test]
    async fn a_prepared_message_ready_at_stop_goes_back() {
        let (tx, mut l) = feed(Probe::default());
        let (later_tx, later_rx) = oneshot::channel();
        tx.push_later(later_rx);
        later_tx.send(7).unwrap();
        l.stop();
        assert_eq!(l.next().await, None);
        assert_eq!(*tx.intake().back.lock().unwrap(), vec![7]);
    }
}
