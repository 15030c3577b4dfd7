//! The server side of RPC: a server's three subscriptions (its topic through a queue group,
//! its own subject, the topic's fanout), pumped at once into the listener's backlog so
//! async-nats never drops a message for a slow consumer; past `rpc_backlog` waiting
//! requests the server leaves its topic's queue group (other servers take the topic's
//! messages) until half of them are taken.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use async_nats::{HeaderMap, Message, Subscriber};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use msg_core::codec::{Failure, WireReply, WireRequest};
use msg_core::{IncomingRequest, Responder, Result, StopListening};
use tokio::sync::{Notify, mpsc};

use crate::conn::Conn;
use crate::errors;
use crate::inbox::RECEIPT_HEADER;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Which subscription a request came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Topic,
    Direct,
    Fanout,
}

/// A request taken off the wire, decoded, not yet yielded.
struct Held {
    msg: Message,
    request: WireRequest,
    origin: Origin,
}

/// What a server listens on.
#[derive(Debug, Clone)]
pub(crate) struct RpcSubjects {
    pub(crate) topic: String,
    pub(crate) direct: String,
    pub(crate) fanout: String,
}

/// What the pump, the stream and the stop switch share.
pub(crate) struct RpcCore {
    conn: Arc<Conn>,
    subjects: RpcSubjects,
    backlog: usize,
    tx: Mutex<Option<mpsc::UnboundedSender<Held>>>,
    stopped: AtomicBool,
    /// Requests in the backlog (taken off the wire, not yet yielded).
    waiting: AtomicUsize,
    /// Whether the server left its topic's queue group.
    shed: AtomicBool,
    wake: Notify,
}

impl fmt::Debug for RpcCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcCore")
            .field("subjects", &self.subjects)
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RpcCore {
    fn stop(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        // no push after this: what the pump still takes goes back at once
        lock(&self.tx).take();
        self.wake.notify_one();
    }

    /// Queues a request for the stream, or gives it back when stopped.
    fn push(&self, held: Held) {
        let guard = lock(&self.tx);
        match &*guard {
            Some(tx) => {
                self.waiting.fetch_add(1, Ordering::AcqRel);
                if let Err(mpsc::error::SendError(h)) = tx.send(held) {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    drop(guard);
                    self.give_back(vec![h]);
                }
            }
            None => {
                drop(guard);
                self.give_back(vec![held]);
            }
        }
    }

    /// Requests held but not yielded go back to NATS: the topic's and the server's are
    /// published again to their subject (another server of the group takes them; a call
    /// nobody can take gets "no responders"), a fanout copy is dropped (every server has
    /// its own).
    fn give_back(&self, held: Vec<Held>) {
        let again: Vec<Message> = held
            .into_iter()
            .filter_map(|h| {
                if h.origin == Origin::Fanout {
                    tracing::debug!(subject = %h.msg.subject, "a fanout request held at stop dropped");
                    None
                } else {
                    Some(h.msg)
                }
            })
            .collect();
        if again.is_empty() {
            return;
        }
        let client = self.conn.client.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            for m in again {
                let r = match (m.reply, m.headers) {
                    (Some(reply), Some(h)) => {
                        client
                            .publish_with_reply_and_headers(m.subject, reply, h, m.payload)
                            .await
                    }
                    (Some(reply), None) => {
                        client.publish_with_reply(m.subject, reply, m.payload).await
                    }
                    (None, Some(h)) => client.publish_with_headers(m.subject, h, m.payload).await,
                    (None, None) => client.publish(m.subject, m.payload).await,
                };
                if let Err(e) = r {
                    tracing::warn!(error = %e, "giving back a request held at stop failed");
                }
            }
        });
    }

    /// Decodes what came off the wire, sends a receipt for an `at_least_once` cast, and
    /// queues it.
    async fn accept(&self, msg: Message, origin: Origin) {
        if msg.status.is_some() {
            return;
        }
        let request = match WireRequest::decode(&msg.payload) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(subject = %msg.subject, error = %e, "rejected a request that can't be decoded (not requeued)");
                return;
            }
        };
        if request.call.is_none()
            && let Some(reply) = &msg.reply
        {
            let mut h = HeaderMap::new();
            h.insert(RECEIPT_HEADER, "1");
            if let Err(e) = self
                .conn
                .client
                .publish_with_headers(reply.clone(), h, Bytes::new())
                .await
            {
                tracing::warn!(subject = %shown(reply.as_str()), error = %e, "sending a cast receipt failed");
            }
        }
        self.push(Held {
            msg,
            request,
            origin,
        });
    }

    async fn subscribe_topic(&self) -> Result<Subscriber> {
        self.conn
            .client
            .queue_subscribe(self.subjects.topic.clone(), self.subjects.topic.clone())
            .await
            .map_err(|e| errors::unavailable(format!("subscribing `{}`", self.subjects.topic), e))
    }
}

/// Starts a server's listener: subscriptions live at the server when this returns.
pub(crate) async fn listen(
    conn: Arc<Conn>,
    subjects: RpcSubjects,
) -> Result<(Arc<RpcCore>, RpcStream)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let core = Arc::new(RpcCore {
        backlog: conn.options.rpc_backlog,
        conn: conn.clone(),
        subjects,
        tx: Mutex::new(Some(tx)),
        stopped: AtomicBool::new(false),
        waiting: AtomicUsize::new(0),
        shed: AtomicBool::new(false),
        wake: Notify::new(),
    });
    let topic = core.subscribe_topic().await?;
    let direct = conn
        .client
        .subscribe(core.subjects.direct.clone())
        .await
        .map_err(|e| errors::unavailable(format!("subscribing `{}`", core.subjects.direct), e))?;
    let fanout = conn
        .client
        .subscribe(core.subjects.fanout.clone())
        .await
        .map_err(|e| errors::unavailable(format!("subscribing `{}`", core.subjects.fanout), e))?;
    conn.sync().await;
    tokio::spawn(pump(core.clone(), topic, direct, fanout));
    let stream = RpcStream {
        rx,
        core: core.clone(),
        ended: false,
    };
    Ok((core, stream))
}

async fn next_of(sub: &mut Option<Subscriber>) -> Option<Message> {
    match sub {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// Takes every message off the subscriptions at once (so async-nats's buffers never fill),
/// sheds the topic under a backlog, and on stop drains the subscriptions and gives back what
/// was still on its way.
async fn pump(core: Arc<RpcCore>, topic: Subscriber, direct: Subscriber, fanout: Subscriber) {
    let mut topic = Some(topic);
    let mut direct = Some(direct);
    let mut fanout = Some(fanout);
    // the topic subscription is draining (shedding): read it until it ends
    let mut topic_draining = false;
    loop {
        if core.stopped.load(Ordering::Acquire) || core.conn.is_closed() {
            break;
        }
        tokio::select! {
            () = core.wake.notified() => {
                if core.shed.load(Ordering::Acquire)
                    && !topic_draining
                    && topic.is_none()
                    && core.waiting.load(Ordering::Acquire) <= core.backlog / 2
                    && !core.stopped.load(Ordering::Acquire)
                {
                    match core.subscribe_topic().await {
                        Ok(s) => {
                            topic = Some(s);
                            core.shed.store(false, Ordering::Release);
                            tracing::info!(subject = core.subjects.topic, "backlog halved: back in the topic's queue group");
                        }
                        Err(e) => tracing::warn!(error = %e, "re-joining the topic's queue group failed"),
                    }
                }
            }
            m = next_of(&mut topic) => match m {
                Some(m) => core.accept(m, Origin::Topic).await,
                None => {
                    topic = None;
                    if !topic_draining {
                        break;
                    }
                    topic_draining = false;
                    // the backlog may have halved while the drain finished
                    core.wake.notify_one();
                }
            },
            m = next_of(&mut direct) => match m {
                Some(m) => core.accept(m, Origin::Direct).await,
                None => break,
            },
            m = next_of(&mut fanout) => match m {
                Some(m) => core.accept(m, Origin::Fanout).await,
                None => break,
            },
        }
        if !topic_draining
            && !core.shed.load(Ordering::Acquire)
            && core.waiting.load(Ordering::Acquire) >= core.backlog
            && let Some(s) = topic.as_mut()
        {
            tracing::warn!(
                subject = core.subjects.topic,
                backlog = core.backlog,
                "RPC backlog full: leaving the topic's queue group until it halves"
            );
            core.shed.store(true, Ordering::Release);
            match s.drain().await {
                Ok(()) => topic_draining = true,
                Err(e) => {
                    tracing::warn!(error = %e, "leaving the topic's queue group failed");
                    core.shed.store(false, Ordering::Release);
                }
            }
        }
    }
    // stopped (or the connection is gone): nothing more is taken; what is on its way
    // arrives before the drains complete and goes back
    core.stop();
    let mut rest = Vec::new();
    for (sub, origin) in [
        (topic, Origin::Topic),
        (direct, Origin::Direct),
        (fanout, Origin::Fanout),
    ] {
        let Some(mut sub) = sub else { continue };
        if origin != Origin::Topic || !topic_draining {
            let _ = sub.drain().await;
        }
        let deadline = tokio::time::sleep(Duration::from_secs(5));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                m = sub.next() => match m {
                    Some(msg) if msg.status.is_none() => match WireRequest::decode(&msg.payload) {
                        Ok(request) => rest.push(Held { msg, request, origin }),
                        Err(_) => continue,
                    },
                    Some(_) => continue,
                    None => break,
                },
                () = &mut deadline => break,
            }
        }
    }
    core.give_back(rest);
}

/// Stops an RPC listener.
#[derive(Debug)]
pub(crate) struct RpcStop(pub(crate) Arc<RpcCore>);

impl StopListening for RpcStop {
    fn stop(&self) {
        self.0.stop();
    }
}

/// The stream of an RPC listener.
pub(crate) struct RpcStream {
    rx: mpsc::UnboundedReceiver<Held>,
    core: Arc<RpcCore>,
    ended: bool,
}

impl RpcStream {
    fn give_back(&mut self) {
        let mut held = Vec::new();
        while let Ok(h) = self.rx.try_recv() {
            self.core.waiting.fetch_sub(1, Ordering::AcqRel);
            held.push(h);
        }
        self.core.give_back(held);
    }

    fn incoming(&self, h: Held) -> IncomingRequest {
        let Held { msg, request, .. } = h;
        // the call's NATS reply subject; a sender that set none gets `<_reply_q>.<msg_id>`
        let reply = request.call.as_ref().and_then(|c| {
            msg.reply
                .map(|r| r.to_string())
                .or_else(|| (!c.reply_q.is_empty()).then(|| format!("{}.{}", c.reply_q, c.msg_id)))
        });
        let responder = Arc::new(NatsResponder {
            conn: self.core.conn.clone(),
            reply,
        });
        IncomingRequest::from_wire(request, responder)
    }
}

impl Stream for RpcStream {
    type Item = IncomingRequest;
    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<IncomingRequest>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if self.core.stopped.load(Ordering::Acquire) {
            self.ended = true;
            self.give_back();
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(h)) => {
                let left = self.core.waiting.fetch_sub(1, Ordering::AcqRel) - 1;
                if self.core.shed.load(Ordering::Acquire) && left <= self.core.backlog / 2 {
                    self.core.wake.notify_one();
                }
                Poll::Ready(Some(self.incoming(h)))
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for RpcStream {
    fn drop(&mut self) {
        self.core.stop();
        self.give_back();
    }
}

/// Replies and heartbeats of one request: published to the call's reply subject.
struct NatsResponder {
    conn: Arc<Conn>,
    reply: Option<String>,
}

impl fmt::Debug for NatsResponder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsResponder")
            .field("reply", &self.reply)
            .finish()
    }
}

impl NatsResponder {
    async fn publish_reply(&self, reply: WireReply) -> Result<()> {
        let Some(subject) = &self.reply else {
            return Ok(());
        };
        let mut body = reply.encode()?;
        if body.len() > self.conn.client.max_payload() {
            // the caller gets an error rather than a timeout
            let f = Failure::new(
                "MessageTooLarge",
                "msg_driver_nats",
                format!(
                    "the reply is {} bytes, over the NATS server's max_payload of {} bytes",
                    body.len(),
                    self.conn.client.max_payload()
                ),
            );
            body = WireReply::failure(reply.msg_id, f).encode()?;
        }
        self.conn
            .client
            .publish(subject.clone(), Bytes::from(body))
            .await
            .map_err(|e| errors::unavailable(format!("sending a reply to `{}`", shown(subject)), e))
    }
}

/// A subject for an error or a log line: control characters escaped, at most 200
/// characters (a reply subject can come from a peer's `_reply_q`).
fn shown(subject: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = subject
        .chars()
        .take(MAX)
        .flat_map(char::escape_debug)
        .collect();
    if subject.chars().nth(MAX).is_some() {
        out.push_str("...");
    }
    out
}

#[async_trait]
impl Responder for NatsResponder {
    async fn ack(&self) -> Result<()> {
        // core NATS has nothing to acknowledge
        Ok(())
    }

    async fn send(&self, reply: WireReply) -> Result<()> {
        self.publish_reply(reply).await
    }
}
