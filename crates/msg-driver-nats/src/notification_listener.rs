//! Notification listeners: what the pull engine ([`crate::pull`]) takes off a listener's
//! consumers goes through a [`feed`] to the listener; acks after handling, progress acks
//! while a message is held, NAK (optionally delayed) for requeue, dead-lettering past
//! `max_deliveries`.
//!
//! On stop, what the listener holds but has not yielded is NAK'd, once its own pull requests
//! are over (see [`ListenerState::give_back`]), so nothing waits for the ack wait to come
//! back.

use msg_core::metrics::{InUse, PrefetchInUse};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use msg_core::codec::WireNotification;
use msg_core::feed::{Feed, Intake, feed, log_rejected};
use msg_core::{Acknowledger, IncomingNotification, NotificationListener, Priority, Result};
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::dead_letter::{dead_letter, exhausted};
use crate::errors;
use crate::pull::Engine;
use crate::topology::{ConsumerSpec, Topology};

/// One consumer a listener pulls from.
#[derive(Debug)]
pub(crate) struct SourceInfo {
    pub(crate) spec: ConsumerSpec,
    pub(crate) exchange: String,
    pub(crate) topic: String,
    pub(crate) priority: Priority,
}

/// A message held by the listener (in its feed, or yielded and not settled).
pub(crate) struct HeldEntry {
    pub(crate) ack: String,
    /// When it came, or was last reported in progress.
    pub(crate) since: Instant,
    /// Counted in the prefetch in use while held.
    _in_use: InUse,
}

/// What the engine, the feed's intake and the ackers share.
pub(crate) struct ListenerState {
    pub(crate) topo: Arc<Topology>,
    /// Wakes the engine: the listener stopped, or waits for messages.
    pub(crate) wake: Notify,
    /// The listener waits for a message: the engine asks for one even when it would rather
    /// wait to ask for a larger batch.
    pub(crate) hungry: AtomicBool,
    /// What the listener holds unsettled, by key.
    pub(crate) held: Mutex<HashMap<u64, HeldEntry>>,
    in_use: PrefetchInUse,
    next_key: AtomicU64,
    /// One message settled: its slot is free.
    settled_tx: mpsc::UnboundedSender<()>,
    /// NAKs held back while a stopped listener's pull requests may still be waiting at the
    /// server (`Some` from the stop until they are over). nats-server 2.9 loses a
    /// redelivery it hands to a pull request whose inbox has no interest any more (the
    /// message then waits for the ack wait), so a stopped listener NAKs only after its own
    /// pull requests ended.
    deferred: Mutex<Option<Vec<String>>>,
}

impl fmt::Debug for ListenerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerState")
            .field("held", &self.held.lock().len())
            .finish_non_exhaustive()
    }
}

impl ListenerState {
    pub(crate) async fn send_ack(&self, subject: &str, body: &'static [u8]) -> Result<()> {
        self.send_ack_to(subject.to_string(), body).await
    }

    /// [`Self::send_ack`] with the subject moved in (a message's last settlement).
    async fn send_ack_to(&self, subject: String, body: &'static [u8]) -> Result<()> {
        self.topo
            .conn
            .client
            .publish(subject, Bytes::from_static(body))
            .await
            .map_err(|e| errors::unavailable("settling a notification", e))
    }

    /// NAKs a message that goes back unhandled: at once while the listener runs (its pull
    /// requests are live) or once its pull requests are over; held back in between.
    pub(crate) fn give_back(self: &Arc<Self>, ack: String) {
        if let Some(list) = self.deferred.lock().as_mut() {
            list.push(ack);
            return;
        }
        let state = self.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = state.send_ack(&ack, b"-NAK").await;
            });
        }
    }

    /// Sends the held-back NAKs; from now on NAKs go out at once.
    pub(crate) async fn release_deferred(&self) {
        let list = self.deferred.lock().take().unwrap_or_default();
        if !list.is_empty() {
            tracing::debug!(
                count = list.len(),
                "a stopped listener gives back what it held"
            );
        }
        for ack in list {
            let _ = self.send_ack(&ack, b"-NAK").await;
        }
    }

    fn settled(&self, key: u64) {
        self.held.lock().remove(&key);
        let _ = self.settled_tx.send(());
    }

    /// Records a message taken off the wire; its acker settles it.
    pub(crate) fn hold(
        self: &Arc<Self>,
        source: Arc<SourceInfo>,
        ack: String,
        delivered: u64,
        payload: Bytes,
    ) -> JsAcker {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        self.held.lock().insert(
            key,
            HeldEntry {
                ack: ack.clone(),
                since: Instant::now(),
                _in_use: self.in_use.hold(),
            },
        );
        JsAcker {
            state: self.clone(),
            source,
            key,
            ack,
            delivered,
            payload,
            settled: false,
        }
    }
}

/// Settles one notification; dropped unsettled, it goes back (NAK'd).
pub(crate) struct JsAcker {
    state: Arc<ListenerState>,
    source: Arc<SourceInfo>,
    key: u64,
    ack: String,
    delivered: u64,
    /// The message as stored, for the dead-letter subject.
    payload: Bytes,
    settled: bool,
}

impl fmt::Debug for JsAcker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsAcker")
            .field("consumer", &self.source.spec.name)
            .field("delivered", &self.delivered)
            .finish()
    }
}

impl JsAcker {
    fn finish(&mut self) {
        if !self.settled {
            self.settled = true;
            self.state.settled(self.key);
        }
    }

    /// Terminates a message that can't be handled (never redelivered).
    fn terminate(mut self) {
        self.finish();
        let ack = std::mem::take(&mut self.ack);
        let state = self.state.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = state.send_ack_to(ack, b"+TERM").await;
            });
        }
    }
}

impl Drop for JsAcker {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // dropped unsettled (stop, or never handled): back for redelivery
        let ack = std::mem::take(&mut self.ack);
        self.state.give_back(ack);
        self.finish();
    }
}

#[async_trait]
impl Acknowledger for JsAcker {
    async fn ack(mut self: Box<Self>) -> Result<()> {
        // settled from here on: the drop gives nothing back
        self.finish();
        let ack = std::mem::take(&mut self.ack);
        self.state.send_ack_to(ack, b"+ACK").await
    }

    async fn requeue(mut self: Box<Self>, delay: Option<Duration>) -> Result<()> {
        let max = self.state.topo.conn.options.max_deliveries;
        let r = if exhausted(self.delivered, max) {
            let payload = std::mem::take(&mut self.payload);
            dead_letter(
                &self.state,
                &self.source,
                &self.ack,
                self.delivered,
                payload,
            )
            .await
        } else {
            match delay.filter(|d| !d.is_zero()) {
                None => self.state.send_ack(&self.ack, b"-NAK").await,
                Some(d) => {
                    let body = format!("-NAK {{\"delay\":{}}}", d.as_nanos());
                    self.state
                        .topo
                        .conn
                        .client
                        .publish(self.ack.clone(), Bytes::from(body))
                        .await
                        .map_err(|e| errors::unavailable("requeueing a notification", e))
                }
            }
        };
        self.finish();
        r
    }
}

/// A notification listener's intake: decodes what the engine pulled as it is yielded; what
/// is given back is NAK'd (by its acker's drop).
pub(crate) struct JsIntake(pub(crate) Arc<ListenerState>);

impl Intake for JsIntake {
    type Raw = JsAcker;
    type Item = IncomingNotification;

    fn decode(&self, acker: JsAcker) -> Option<IncomingNotification> {
        match WireNotification::decode(&acker.payload) {
            Ok(n) => Some(IncomingNotification::new(
                n.context,
                n.notification,
                n.unique_id,
                Box::new(acker),
            )),
            Err(e) => {
                let source = &acker.source;
                let from = format!("topic `{}` (consumer `{}`)", source.topic, source.spec.name);
                log_rejected("notification", &from, &e);
                acker.terminate();
                None
            }
        }
    }

    fn give_back(&self, raws: Vec<JsAcker>) {
        // each acker NAKs as it drops
        drop(raws);
    }

    fn stop(&self) {
        // NAKs wait for the pull requests to end (see `deferred`)
        *self.0.deferred.lock() = Some(Vec::new());
        self.0.wake.notify_one();
    }

    fn idle(&self) {
        if !self.0.hungry.swap(true, Ordering::AcqRel) {
            self.0.wake.notify_one();
        }
    }
}

/// Starts a notification listener over the given consumers (ensured by the caller).
pub(crate) async fn listen(
    topo: Arc<Topology>,
    sources: Vec<SourceInfo>,
    prefetch: u32,
) -> Result<NotificationListener> {
    let conn = topo.conn.clone();
    let inbox = conn.client.new_inbox();
    let sub = conn
        .client
        .subscribe(format!("{inbox}.*.*"))
        .await
        .map_err(|e| errors::unavailable("subscribing a listener's inbox", e))?;
    let (settled_tx, settled_rx) = mpsc::unbounded_channel();
    let state = Arc::new(ListenerState {
        topo,
        wake: Notify::new(),
        hungry: AtomicBool::new(true),
        held: Mutex::default(),
        in_use: PrefetchInUse::new(crate::DRIVER_NAME),
        next_key: AtomicU64::new(0),
        settled_tx,
        deferred: Mutex::new(None),
    });
    let (tx, listener): (Feed<JsIntake>, _) = feed(JsIntake(state));
    let engine = Engine::new(tx, sources, inbox, prefetch);
    tokio::spawn(engine.run(sub, settled_rx));
    Ok(listener)
}
