//! The listener plumbing: a stream fed by the driver's reader tasks through a channel, with
//! a stop switch. On stop (or drop) the stream ends and what the channel still holds is
//! dropped, which gives each message back to its group (see [`crate::delivery`]).
//!
//! Nothing here is Redis-specific: it is what msg-core's contract leaves each driver to
//! write (see the README's notes on the contract).

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures::Stream;
use msg_core::{Listener, StopListening};
use tokio::sync::{mpsc, watch};

enum Item<M> {
    Msg(M),
    Stop,
}

/// Puts messages into a listener's stream (from the reader tasks).
pub(crate) struct Feed<M> {
    tx: mpsc::UnboundedSender<Item<M>>,
}

impl<M> Clone for Feed<M> {
    fn clone(&self) -> Self {
        Feed {
            tx: self.tx.clone(),
        }
    }
}

impl<M> Feed<M> {
    /// Queues a message; when the stream is gone the message is dropped (and so given back).
    pub(crate) fn push(&self, m: M) {
        let _ = self.tx.send(Item::Msg(m));
    }
}

/// A new listener: its feed, the stop signal its readers watch, and the listener itself.
pub(crate) fn channel<M: Send + 'static>() -> (Feed<M>, watch::Receiver<bool>, Listener<M>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = Arc::new(Stop {
        stopped: stop_tx,
        wake: Box::new({
            let tx = tx.clone();
            move || {
                let _ = tx.send(Item::Stop);
            }
        }),
    });
    let stream = ChannelStream {
        rx,
        stop: stop.clone(),
        ended: false,
    };
    (Feed { tx }, stop_rx, Listener::new(Box::pin(stream), stop))
}

struct Stop {
    stopped: watch::Sender<bool>,
    wake: Box<dyn Fn() + Send + Sync>,
}

impl fmt::Debug for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stop")
            .field("stopped", &*self.stopped.borrow())
            .finish()
    }
}

impl StopListening for Stop {
    fn stop(&self) {
        if !self.stopped.send_replace(true) {
            (self.wake)();
        }
    }
}

struct ChannelStream<M> {
    rx: mpsc::UnboundedReceiver<Item<M>>,
    stop: Arc<Stop>,
    ended: bool,
}

impl<M> ChannelStream<M> {
    fn end(&mut self) {
        self.ended = true;
        self.rx.close();
        // what is left was never yielded: dropping it gives it back
        while self.rx.try_recv().is_ok() {}
    }
}

impl<M> Stream for ChannelStream<M> {
    type Item = M;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<M>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if *self.stop.stopped.borrow() {
            self.end();
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Item::Msg(m))) => Poll::Ready(Some(m)),
            Poll::Ready(Some(Item::Stop)) | Poll::Ready(None) => {
                self.end();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<M> Drop for ChannelStream<M> {
    fn drop(&mut self) {
        self.stop.stop();
        self.end();
    }
}
