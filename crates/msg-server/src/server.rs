//! The message-handling server, generic over what it handles.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use msg_core::{Error, Result, StopListening};
use tokio::sync::{Semaphore, watch};

use crate::executor::{Executor, Pace};

/// An open listener: its stream and its stop switch.
pub(crate) type Opened<M> = (BoxStream<'static, M>, Arc<dyn StopListening>);

/// Opens a listener (each `start` opens a new one).
pub(crate) trait Source<M>: Send + Sync + 'static {
    fn open(&self) -> BoxFuture<'static, Result<Opened<M>>>;
}

/// Handles one item a listener yielded.
pub(crate) trait Handle<M>: Send + Sync + 'static {
    fn handle(self: Arc<Self>, item: M) -> BoxFuture<'static, ()>;
    /// Forgets what the handler remembers between messages (dedup ids).
    fn reset(&self) {}
}

/// The life-cycle methods of a type holding a `server: MessageHandlingServer<_>` field.
macro_rules! lifecycle {
    ($ty:ty) => {
        impl $ty {
            /// Starts consuming (again, after a stop).
            pub async fn start(&self) -> msg_core::Result<()> {
                self.server.start().await
            }

            /// Stops taking new messages; those received are still handled (and settled).
            pub fn stop(&self) {
                self.server.stop();
            }

            /// Returns when every handler is done and the listener is released (after `stop`).
            pub async fn wait(&self) {
                self.server.wait().await;
            }

            /// Forgets the `_unique_id`s remembered for dedup.
            pub fn reset(&self) {
                self.server.reset();
            }

            /// `stop` and `wait` within `grace`.
            pub async fn shutdown(&self, grace: std::time::Duration) -> msg_core::Result<()> {
                self.server.shutdown(grace).await
            }

            /// Where it is in its life.
            pub fn state(&self) -> $crate::server::ServerState {
                self.server.state()
            }
        }
    };
}
pub(crate) use lifecycle;

/// Where a server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Not consuming (never started, or stopped and waited for).
    Idle,
    /// Consuming.
    Running,
    /// Stopped: no new message is taken; what was received is still being handled.
    Stopping,
}

struct Run {
    stop: Arc<dyn StopListening>,
    done: watch::Receiver<bool>,
    stopped: bool,
}

/// Runs a listener through an executor: `start`, `stop`, `wait`, `reset`, `shutdown`.
pub(crate) struct MessageHandlingServer<M> {
    source: Arc<dyn Source<M>>,
    handler: Arc<dyn Handle<M>>,
    executor: Executor,
    run: Mutex<Option<Run>>,
}

impl<M: Send + 'static> fmt::Debug for MessageHandlingServer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageHandlingServer")
            .field("executor", &self.executor)
            .field("state", &self.state())
            .finish()
    }
}

impl<M: Send + 'static> MessageHandlingServer<M> {
    pub(crate) fn new(
        source: Arc<dyn Source<M>>,
        handler: Arc<dyn Handle<M>>,
        executor: Executor,
    ) -> Self {
        MessageHandlingServer {
            source,
            handler,
            executor,
            run: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Run>> {
        self.run.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn state(&self) -> ServerState {
        match &*self.lock() {
            None => ServerState::Idle,
            Some(r) if *r.done.borrow() => ServerState::Idle,
            Some(r) if r.stopped => ServerState::Stopping,
            Some(_) => ServerState::Running,
        }
    }

    /// Opens the listener and starts consuming. Starting a running server does nothing;
    /// starting a stopped one first waits for its previous run to finish.
    pub(crate) async fn start(&self) -> Result<()> {
        match self.state() {
            ServerState::Running => return Ok(()),
            ServerState::Stopping => self.wait().await,
            ServerState::Idle => {}
        }
        let (stream, stop) = self.source.open().await?;
        let (done_tx, done_rx) = watch::channel(false);
        let capacity = self.executor.capacity();
        let permits = Arc::new(Semaphore::new(capacity));
        let handler = self.handler.clone();
        let executor = self.executor;
        tokio::spawn(consume(
            stream, handler, executor, permits, capacity, done_tx,
        ));
        *self.lock() = Some(Run {
            stop,
            done: done_rx,
            stopped: false,
        });
        Ok(())
    }

    /// Stops consuming: the listener yields nothing new; what it already yielded is still
    /// handled.
    pub(crate) fn stop(&self) {
        if let Some(run) = &mut *self.lock()
            && !run.stopped
        {
            run.stopped = true;
            run.stop.stop();
        }
    }

    /// Returns when the current run has ended: consumption stopped, every handler done, the
    /// listener released. Without a `stop` it waits for one.
    pub(crate) async fn wait(&self) {
        let done = self.lock().as_ref().map(|r| r.done.clone());
        if let Some(mut done) = done {
            let _ = done.wait_for(|d| *d).await;
        }
    }

    /// `stop` then `wait`, for at most `grace`; past it, an `Error::Timeout` (handlers still
    /// running go on in the background).
    pub(crate) async fn shutdown(&self, grace: Duration) -> Result<()> {
        self.stop();
        tokio::time::timeout(grace, self.wait())
            .await
            .map_err(|_| Error::Timeout {
                what: "handlers still running at the end of the shutdown grace".into(),
                after: grace,
            })
    }

    pub(crate) fn reset(&self) {
        self.handler.reset();
    }
}

impl<M> Drop for MessageHandlingServer<M> {
    /// A server dropped without `stop` stops consuming (handlers already running finish on
    /// their own).
    fn drop(&mut self) {
        if let Some(run) = &mut *self.run.lock().unwrap_or_else(|p| p.into_inner())
            && !run.stopped
        {
            run.stopped = true;
            run.stop.stop();
        }
    }
}

async fn consume<M: Send + 'static>(
    mut stream: BoxStream<'static, M>,
    handler: Arc<dyn Handle<M>>,
    executor: Executor,
    permits: Arc<Semaphore>,
    capacity: usize,
    done: watch::Sender<bool>,
) {
    let mut pace = Pace::default();
    loop {
        // a slot first, then a message: a busy server leaves messages at the broker
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let Some(item) = stream.next().await else {
            break;
        };
        executor
            .spawn(handler.clone().handle(item), permit, &mut pace)
            .await;
    }
    drop(stream);
    let all = u32::try_from(capacity).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
    let _ = done.send(true);
}
