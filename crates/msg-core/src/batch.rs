//! Batching as a stream combinator, generic over what is batched.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use std::future::Future;
use tokio::time::{Instant, Sleep};

pin_project_lite::pin_project! {
    /// Groups a stream's items into batches: a batch is yielded when it holds `size` items, or
    /// when `timeout` has passed since it began collecting (the wait for its first item
    /// included: one clock per batch, as oslo's "fix batch handling"), whichever comes first.
    /// An interval with no item yields nothing and a new interval starts. When the inner
    /// stream ends (the listener stopped) what is held is flushed. So no item waits longer
    /// than `timeout` for its batch.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use std::time::Duration;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let batches: Vec<Vec<i32>> = msg_core::Batched::new(futures::stream::iter(1..=5), 2, Duration::from_secs(1))
    ///     .collect().await;
    /// assert_eq!(batches, vec![vec![1, 2], vec![3, 4], vec![5]]);
    /// # });
    /// ```
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct Batched<S: Stream> {
        #[pin]
        inner: S,
        clock: Option<Pin<Box<Sleep>>>,
        armed: bool,
        held: Vec<S::Item>,
        size: usize,
        timeout: Duration,
        done: bool,
    }
}

impl<S: Stream> Batched<S> {
    /// Batches of at most `size` (at least 1) items, each collected for at most `timeout`.
    pub fn new(inner: S, size: usize, timeout: Duration) -> Self {
        let size = size.max(1);
        Batched {
            inner,
            clock: None,
            armed: false,
            held: Vec::with_capacity(size.min(1024)),
            size,
            timeout,
            done: false,
        }
    }

    /// The inner stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Stream> Stream for Batched<S> {
    type Item = Vec<S::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if !*this.armed {
            let deadline = Instant::now() + *this.timeout;
            match this.clock.as_mut() {
                Some(clock) => clock.as_mut().reset(deadline),
                None => *this.clock = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            *this.armed = true;
        }
        loop {
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.held.push(item);
                    if this.held.len() >= *this.size {
                        *this.armed = false;
                        let cap = (*this.size).min(1024);
                        return Poll::Ready(Some(std::mem::replace(
                            this.held,
                            Vec::with_capacity(cap),
                        )));
                    }
                }
                Poll::Ready(None) => {
                    *this.done = true;
                    *this.armed = false;
                    if this.held.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(std::mem::take(this.held)));
                }
                Poll::Pending => break,
            }
        }
        let Some(clock) = this.clock.as_mut() else {
            return Poll::Pending;
        };
        loop {
            match clock.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if !this.held.is_empty() => {
                    *this.armed = false;
                    let cap = (*this.size).min(1024);
                    return Poll::Ready(Some(std::mem::replace(
                        this.held,
                        Vec::with_capacity(cap),
                    )));
                }
                // an empty interval yields nothing: a new one starts
                Poll::Ready(()) => clock.as_mut().reset(Instant::now() + *this.timeout),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use proptest::prelude::*;
    use tokio::sync::mpsc;
    use tokio_stream_shim::ReceiverStream;

    mod tokio_stream_shim {
        use super::*;
        pub struct ReceiverStream<T>(pub mpsc::UnboundedReceiver<T>);
        impl<T> Stream for ReceiverStream<T> {
            type Item = T;
            fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
                self.0.poll_recv(cx)
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn first_message_wait_counts_toward_timeout() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut b = Batched::new(ReceiverStream(rx), 10, Duration::from_secs(1));
        let start = Instant::now();
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(900)).await;
            tx.send(1).unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(tx);
        });
        let batch = b.next().await.unwrap();
        assert_eq!(batch, vec![1]);
        // one clock: the batch closed 1 s after collection began, not 1 s after its first item
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        sender.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn empty_interval_yields_nothing_and_stop_flushes() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut b = Batched::new(ReceiverStream(rx), 10, Duration::from_secs(1));
        let start = Instant::now();
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            tx.send(7).unwrap();
            tx.send(8).unwrap();
            drop(tx); // the listener stops
        });
        assert_eq!(b.next().await.unwrap(), vec![7, 8]);
        assert_eq!(start.elapsed(), Duration::from_millis(2500));
        assert!(b.next().await.is_none());
        sender.await.unwrap();
    }

    proptest! {
        #[test]
        fn batches_never_exceed_size_and_keep_everything(n in 0usize..200, size in 1usize..20) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
            let batches: Vec<Vec<usize>> = rt.block_on(
                Batched::new(futures::stream::iter(0..n), size, Duration::from_secs(1)).collect());
            prop_assert!(batches.iter().all(|b| !b.is_empty() && b.len() <= size));
            let flat: Vec<usize> = batches.into_iter().flatten().collect();
            prop_assert_eq!(flat, (0..n).collect::<Vec<_>>());
        }
    }
}
