//! The server side of RPC: a server's three subscriptions (its topic through a queue group,
//! its own subject, the topic's fanout), pumped at once into the listener's [`feed`] so
//! async-nats never drops a message for a slow consumer; past `rpc_backlog` waiting
//! requests the server leaves its topic's queue group (other servers take the topic's
//! messages) until half of them are taken.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::{HeaderMap, Message, Subscriber};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use msg_core::codec::{Failure, WireReply, WireRequest};
use msg_core::feed::{Feed, Intake, feed, log_rejected};
use msg_core::{IncomingRequest, Responder, Result, RpcListener};
use tokio::sync::Notify;

use crate::connection::Conn;
use crate::errors;
use crate::reply::RECEIPT_HEADER;

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

/// When a server leaves its topic's queue group and when it comes back: `limit` requests
/// waiting fill the backlog; half of them taken halve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Backlog {
    limit: usize,
}

impl Backlog {
    /// Whether `queued` waiting requests fill the backlog: the server sheds its topic.
    fn full(self, queued: usize) -> bool {
        queued >= self.limit
    }

    /// Whether the backlog is down to half: a server that shed its topic takes it again.
    fn halved(self, queued: usize) -> bool {
        queued <= self.limit / 2
    }
}

/// An RPC listener's intake: requests held at stop are published again to their subject,
/// fanout copies dropped.
struct RpcIntake {
    conn: Arc<Conn>,
    subjects: RpcSubjects,
    backlog: Backlog,
    /// Whether the server left its topic's queue group.
    shed: AtomicBool,
    /// Wakes the pump: stopped, or the backlog halved.
    wake: Notify,
}

impl Intake for RpcIntake {
    type Raw = Held;
    type Item = IncomingRequest;

    fn decode(&self, held: Held) -> Option<IncomingRequest> {
        let Held { msg, request, .. } = held;
        // the call's NATS reply subject; a sender that set none gets `<_reply_q>.<msg_id>`
        let reply = request.call.as_ref().and_then(|c| {
            msg.reply
                .map(|r| r.to_string())
                .or_else(|| (!c.reply_q.is_empty()).then(|| format!("{}.{}", c.reply_q, c.msg_id)))
        });
        let responder = Arc::new(NatsResponder {
            conn: self.conn.clone(),
            reply,
        });
        Some(IncomingRequest::from_wire(request, responder))
    }

    /// Requests held but not yielded go back to NATS: the topic's and the server's are
    /// published again to their subject (another server of the group takes them; a call
    /// nobody can take gets "no responders"), a fanout copy is dropped (every server has
    /// its own).
    fn give_back(&self, held: Vec<Held>) {
        let again = published_again(held);
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

    fn stop(&self) {
        self.wake.notify_one();
    }

    fn yielded(&self, queued: usize) {
        if self.shed.load(Ordering::Acquire) && self.backlog.halved(queued) {
            self.wake.notify_one();
        }
    }
}

/// What of the requests held at stop is published again: all but the fanout copies.
fn published_again(held: Vec<Held>) -> Vec<Message> {
    held.into_iter()
        .filter_map(|h| {
            if h.origin == Origin::Fanout {
                tracing::debug!(subject = %h.msg.subject, "a fanout request held at stop dropped");
                None
            } else {
                Some(h.msg)
            }
        })
        .collect()
}

impl RpcIntake {
    async fn subscribe_topic(&self) -> Result<Subscriber> {
        self.conn
            .client
            .queue_subscribe(self.subjects.topic.clone(), self.subjects.topic.clone())
            .await
            .map_err(|e| errors::unavailable(format!("subscribing `{}`", self.subjects.topic), e))
    }
}

/// Decodes what came off the wire, sends a receipt for an `at_least_once` cast, and queues
/// it.
async fn accept(feed: &Feed<RpcIntake>, msg: Message, origin: Origin) {
    if msg.status.is_some() {
        return;
    }
    let request = match WireRequest::decode(&msg.payload) {
        Ok(r) => r,
        Err(e) => {
            log_rejected("request", msg.subject.as_str(), &e);
            return;
        }
    };
    if request.call.is_none()
        && let Some(reply) = &msg.reply
    {
        let mut h = HeaderMap::new();
        h.insert(RECEIPT_HEADER, "1");
        if let Err(e) = feed
            .intake()
            .conn
            .client
            .publish_with_headers(reply.clone(), h, Bytes::new())
            .await
        {
            tracing::warn!(subject = %shown(reply.as_str()), error = %e, "sending a cast receipt failed");
        }
    }
    feed.push(Held {
        msg,
        request,
        origin,
    });
}

/// Starts a server's listener: subscriptions live at the server when this returns.
pub(crate) async fn listen(conn: Arc<Conn>, subjects: RpcSubjects) -> Result<RpcListener> {
    let intake = RpcIntake {
        backlog: Backlog {
            limit: conn.options.rpc_backlog,
        },
        conn: conn.clone(),
        subjects,
        shed: AtomicBool::new(false),
        wake: Notify::new(),
    };
    let topic = intake.subscribe_topic().await?;
    let direct = conn
        .client
        .subscribe(intake.subjects.direct.clone())
        .await
        .map_err(|e| errors::unavailable(format!("subscribing `{}`", intake.subjects.direct), e))?;
    let fanout = conn
        .client
        .subscribe(intake.subjects.fanout.clone())
        .await
        .map_err(|e| errors::unavailable(format!("subscribing `{}`", intake.subjects.fanout), e))?;
    conn.sync().await;
    let (tx, listener) = feed(intake);
    tokio::spawn(pump(tx, topic, direct, fanout));
    Ok(listener)
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
async fn pump(feed: Feed<RpcIntake>, topic: Subscriber, direct: Subscriber, fanout: Subscriber) {
    let core = feed.intake();
    let mut topic = Some(topic);
    let mut direct = Some(direct);
    let mut fanout = Some(fanout);
    // the topic subscription is draining (shedding): read it until it ends
    let mut topic_draining = false;
    loop {
        if feed.is_stopped() || core.conn.is_closed() {
            break;
        }
        tokio::select! {
            () = core.wake.notified() => {
                if core.shed.load(Ordering::Acquire)
                    && !topic_draining
                    && topic.is_none()
                    && core.backlog.halved(feed.queued())
                    && !feed.is_stopped()
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
                Some(m) => accept(&feed, m, Origin::Topic).await,
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
                Some(m) => accept(&feed, m, Origin::Direct).await,
                None => break,
            },
            m = next_of(&mut fanout) => match m {
                Some(m) => accept(&feed, m, Origin::Fanout).await,
                None => break,
            },
        }
        if !topic_draining
            && !core.shed.load(Ordering::Acquire)
            && core.backlog.full(feed.queued())
            && let Some(s) = topic.as_mut()
        {
            tracing::warn!(
                subject = core.subjects.topic,
                backlog = core.backlog.limit,
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
    feed.stop();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topic_is_shed_when_the_backlog_fills_and_taken_again_at_half() {
        let b = Backlog { limit: 10 };
        assert!(!b.full(9));
        assert!(b.full(10));
        assert!(b.full(11));
        assert!(!b.halved(6));
        assert!(b.halved(5));
        assert!(b.halved(0));
        // the smallest backlog: shed at one waiting request, back once it is taken
        let b = Backlog { limit: 1 };
        assert!(b.full(1));
        assert!(!b.halved(1));
        assert!(b.halved(0));
        // an odd limit rounds half down
        let b = Backlog { limit: 7 };
        assert!(b.halved(3));
        assert!(!b.halved(4));
        // between full and half the server stays as it is (no flapping)
        let b = Backlog { limit: 32768 };
        assert!((16385..32768).all(|q| !b.full(q) && !b.halved(q)));
    }

    #[test]
    fn requests_held_at_stop_go_back_but_fanout_copies() {
        let held = |subject: &str, origin| {
            let msg = Message {
                subject: subject.into(),
                reply: Some("_INBOX.x.1".into()),
                payload: Bytes::from_static(b"{}"),
                headers: None,
                status: None,
                description: None,
                length: 2,
            };
            let request = WireRequest::decode(
                br#"{"oslo.version":"2.0","oslo.message":"{\"method\":\"m\",\"args\":{}}"}"#,
            )
            .unwrap();
            Held {
                msg,
                request,
                origin,
            }
        };
        let again = published_again(vec![
            held("t", Origin::Topic),
            held("f", Origin::Fanout),
            held("d", Origin::Direct),
        ]);
        let subjects: Vec<&str> = again.iter().map(|m| m.subject.as_str()).collect();
        assert_eq!(subjects, ["t", "d"]);
        assert!(again.iter().all(|m| m.reply.is_some()), "replies kept");
    }

    #[test]
    fn subjects_are_shown_escaped_and_bounded() {
        assert_eq!(shown("a.b"), "a.b");
        assert_eq!(shown("a\nb"), "a\\nb");
        let long = "x".repeat(300);
        assert_eq!(shown(&long), format!("{}...", "x".repeat(200)));
    }
}
