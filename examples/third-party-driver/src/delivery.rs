//! One message a listener took from a stream, and its settlement: ack, requeue, or (dropped
//! unsettled) give back. A [`Delivery`] that is dropped without being settled goes back to
//! its group, never acked, as a closed channel requeues on a broker that has one.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use msg_core::Result;
use parking_lot::{Mutex, MutexGuard};
use redis::aio::ConnectionManager;
use tokio::sync::OwnedSemaphorePermit;

use crate::entry::Entry;
use crate::errors::from_redis;
use crate::redelivery::{self, ClaimSettings};

/// Where a group listener's deliveries go: decoded and queued for its stream, or (when it
/// can't be decoded) logged and removed. Given back when the stream is gone.
pub(crate) type Sink = Box<dyn Fn(Delivery) + Send + Sync>;

/// What the deliveries of one listener's group share.
pub(crate) struct Group {
    pub(crate) conn: ConnectionManager,
    pub(crate) settings: ClaimSettings,
    /// Dead-letter stream by source stream.
    pub(crate) dead_letters: Vec<(Arc<str>, String)>,
    /// Streams whose entries are deleted once acked (read by this one group only).
    pub(crate) delete_on_ack: bool,
    /// The entries this consumer holds, by stream: renewed so no sweep takes them.
    held: Mutex<HashSet<(Arc<str>, String)>>,
    sink: Sink,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Group {
    pub(crate) fn new(
        conn: ConnectionManager,
        settings: ClaimSettings,
        dead_letters: Vec<(Arc<str>, String)>,
        delete_on_ack: bool,
        sink: Sink,
    ) -> Self {
        Group {
            conn,
            settings,
            dead_letters,
            delete_on_ack,
            held: Mutex::new(HashSet::new()),
            sink,
        }
    }

    fn held(&self) -> MutexGuard<'_, HashSet<(Arc<str>, String)>> {
        self.held.lock()
    }

    /// Notes an entry as held (from its read or claim until it is settled); `false` when it
    /// already was (a sweep took back one of this listener's own, still in its hands).
    pub(crate) fn hold(&self, e: &Entry) -> bool {
        self.held().insert((e.key.clone(), e.id.clone()))
    }

    fn forget(&self, key: &Arc<str>, id: &str) {
        self.held().remove(&(key.clone(), id.to_string()));
    }

    /// The held entries of `key`.
    pub(crate) fn held_in(&self, key: &Arc<str>) -> Vec<String> {
        self.held()
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, id)| id.clone())
            .collect()
    }

    pub(crate) fn dead_letter_of(&self, key: &Arc<str>) -> &str {
        self.dead_letters
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, d)| d.as_str())
    }

    /// Hands an entry to the listener.
    pub(crate) fn deliver(self: &Arc<Self>, entry: Entry, permit: Option<OwnedSemaphorePermit>) {
        let d = Delivery {
            entry,
            permit,
            group: Some(self.clone()),
            settled: false,
        };
        (self.sink)(d);
    }

    /// Gives entries back to the group at once (a sweep of any listener takes them).
    pub(crate) async fn give_back(&self, key: &Arc<str>, ids: Vec<String>) {
        for id in &ids {
            self.forget(key, id);
        }
        let mut conn = self.conn.clone();
        if let Err(e) =
            redelivery::release(&mut conn, &self.settings, key, &ids, Duration::ZERO).await
        {
            tracing::warn!(stream = &**key, error = %e, "giving messages back failed; they come back after claim_idle");
        }
    }
}

/// One message taken from a stream. Unsettled when dropped: given back to its group.
pub(crate) struct Delivery {
    pub(crate) entry: Entry,
    permit: Option<OwnedSemaphorePermit>,
    /// `None` for an entry read outside any group (fanout): nothing to settle.
    group: Option<Arc<Group>>,
    settled: bool,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("stream", &&*self.entry.key)
            .field("id", &self.entry.id)
            .field("deliveries", &self.entry.deliveries)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// A delivery read outside any group (a fanout cast): settling it does nothing.
    pub(crate) fn ungrouped(entry: Entry) -> Self {
        Delivery {
            entry,
            permit: None,
            group: None,
            settled: false,
        }
    }

    /// Acknowledges: the group forgets it (and the stream too, for single-group streams).
    pub(crate) async fn ack(self) -> Result<()> {
        self.settle(false).await
    }

    /// Removes a message nobody can read (every group would refuse it): acked and deleted.
    pub(crate) async fn discard(self) -> Result<()> {
        self.settle(true).await
    }

    async fn settle(mut self, delete: bool) -> Result<()> {
        self.settled = true;
        let Some(g) = self.group.take() else {
            return Ok(());
        };
        g.forget(&self.entry.key, &self.entry.id);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("XACK")
            .arg(&*self.entry.key)
            .arg(&g.settings.group)
            .arg(&self.entry.id)
            .ignore();
        if delete || g.delete_on_ack {
            pipe.cmd("XDEL")
                .arg(&*self.entry.key)
                .arg(&self.entry.id)
                .ignore();
        }
        let mut conn = g.conn.clone();
        pipe.exec_async(&mut conn)
            .await
            .map_err(|e| from_redis("acknowledging a message", e))
    }

    /// Sends it back for redelivery: at once to this listener (a delivery more, so it can
    /// be dead-lettered), or after `delay` to any listener of its group.
    pub(crate) async fn requeue(mut self, delay: Option<Duration>) -> Result<()> {
        self.settled = true;
        let Some(g) = self.group.take() else {
            return Ok(());
        };
        let key = self.entry.key.clone();
        let id = std::mem::take(&mut self.entry.id);
        let mut conn = g.conn.clone();
        match delay.filter(|d| !d.is_zero()) {
            None => {
                let again = redelivery::claim_again(
                    &mut conn,
                    &g.settings,
                    &key,
                    g.dead_letter_of(&key),
                    &id,
                )
                .await;
                match again {
                    Ok(entries) => {
                        if entries.is_empty() {
                            g.forget(&key, &id);
                        }
                        let mut permit = self.permit.take();
                        for e in entries {
                            g.deliver(e, permit.take());
                        }
                        Ok(())
                    }
                    Err(e) => {
                        g.give_back(&key, vec![id]).await;
                        Err(from_redis("requeueing a message", e))
                    }
                }
            }
            Some(delay) => {
                g.forget(&key, &id);
                if delay < g.settings.claim_idle {
                    redelivery::release(&mut conn, &g.settings, &key, &[id], delay)
                        .await
                        .map_err(|e| from_redis("requeueing a message", e))
                } else {
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        g.give_back(&key, vec![id]).await;
                    });
                    Ok(())
                }
            }
        }
    }
}

/// Gives deliveries back to their groups: one `XCLAIM` per group and stream (dropping them
/// one by one would send one each).
pub(crate) fn give_back_all(deliveries: Vec<Delivery>) {
    let mut batches: Vec<(Arc<Group>, Arc<str>, Vec<String>)> = Vec::new();
    for mut d in deliveries {
        d.settled = true;
        let Some(g) = d.group.take() else { continue };
        let id = std::mem::take(&mut d.entry.id);
        match batches
            .iter_mut()
            .find(|(bg, key, _)| Arc::ptr_eq(bg, &g) && *key == d.entry.key)
        {
            Some((_, _, ids)) => ids.push(id),
            None => batches.push((g, d.entry.key.clone(), vec![id])),
        }
    }
    if batches.is_empty() {
        return;
    }
    // outside a runtime they stay pending, and a sweep takes them after claim_idle
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            for (g, key, ids) in batches {
                g.give_back(&key, ids).await;
            }
        });
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let Some(g) = self.group.take() else {
            return;
        };
        let key = self.entry.key.clone();
        let id = std::mem::take(&mut self.entry.id);
        // outside a runtime it stays pending, and a sweep takes it after claim_idle
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { g.give_back(&key, vec![id]).await });
        }
    }
}
