//! The reader tasks that feed a listener: one per group listener, reading its streams with
//! `XREADGROUP` on a connection of its own, sweeping them for entries to take over and
//! renewing what it holds; and one per RPC server for its topic's fanout stream (`XREAD`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::connection::BLOCK;
use crate::delivery::{Delivery, Group};
use crate::entry::{self, Entry};
use crate::redelivery::{self, SWEEP_EVERY};
use crate::retention;

/// How many entries one read asks for at most (per stream).
const READ_COUNT: usize = 100;
/// How long a reader waits after a failed command before the next (doubling up to 5 s).
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Back-off after failures; logs the first failure of a run and the recovery.
struct Backoff {
    next: Duration,
    failing: bool,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            next: BACKOFF_MIN,
            failing: false,
        }
    }

    async fn failed(
        &mut self,
        what: &str,
        e: &redis::RedisError,
        stop: &mut watch::Receiver<bool>,
    ) {
        if !self.failing {
            tracing::warn!(error = %e, "{what} failed; retrying");
            self.failing = true;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        let _ = tokio::time::timeout(wait, stop.changed()).await;
    }

    fn ok(&mut self, what: &str) {
        if self.failing {
            tracing::info!("{what} works again");
        }
        self.failing = false;
        self.next = BACKOFF_MIN;
    }
}

/// Reads a group's streams for one listener until it stops.
pub(crate) struct GroupReader {
    pub(crate) group: Arc<Group>,
    pub(crate) keys: Vec<Arc<str>>,
    /// The prefetch bound (`None`: unbounded).
    pub(crate) permits: Option<Arc<Semaphore>>,
    pub(crate) conn: ConnectionManager,
    pub(crate) stop: watch::Receiver<bool>,
}

impl GroupReader {
    pub(crate) async fn run(mut self) {
        let mut backlog: VecDeque<Entry> = VecDeque::new();
        let mut cursors: HashMap<Arc<str>, String> = HashMap::new();
        let renew_every = (self.group.settings.claim_idle / 3).max(Duration::from_millis(500));
        let mut next_sweep = Instant::now();
        let mut next_renew = Instant::now() + renew_every;
        let mut next_tidy = Instant::now() + retention::TIDY_EVERY;
        let mut backoff = Backoff::new();
        let mut shared = self.group.conn.clone();
        while !*self.stop.borrow() {
            let now = Instant::now();
            if now >= next_sweep {
                next_sweep = now + SWEEP_EVERY;
                for key in &self.keys {
                    let cursor = cursors.get(key).map_or("0-0", String::as_str).to_string();
                    match redelivery::sweep(
                        &mut shared,
                        &self.group.settings,
                        key,
                        self.group.dead_letter_of(key),
                        &cursor,
                    )
                    .await
                    {
                        Ok((next, entries)) => {
                            cursors.insert(key.clone(), next);
                            for e in entries {
                                if self.group.hold(&e) {
                                    backlog.push_back(e);
                                }
                            }
                        }
                        Err(e) => tracing::debug!(stream = &**key, error = %e, "sweep failed"),
                    }
                }
            }
            if now >= next_renew {
                next_renew = now + renew_every;
                for key in &self.keys {
                    let ids = self.group.held_in(key);
                    if let Err(e) =
                        redelivery::renew(&mut shared, &self.group.settings, key, &ids).await
                    {
                        tracing::debug!(stream = &**key, error = %e, "renewing held messages failed");
                    }
                }
            }
            if now >= next_tidy {
                next_tidy = now + retention::TIDY_EVERY;
                for key in &self.keys {
                    match retention::tidy(&mut shared, key).await {
                        Ok((trimmed, reaped)) if trimmed > 0 || reaped > 0 => {
                            tracing::debug!(stream = &**key, trimmed, reaped, "tidied a stream");
                        }
                        Ok(_) => {}
                        Err(e) => tracing::debug!(stream = &**key, error = %e, "tidying failed"),
                    }
                }
            }
            // what was read or claimed goes out as far as the prefetch allows
            while !backlog.is_empty() {
                let permit = match &self.permits {
                    None => None,
                    Some(p) => match p.clone().try_acquire_owned() {
                        Ok(permit) => Some(permit),
                        Err(_) => break,
                    },
                };
                if let Some(e) = backlog.pop_front() {
                    self.group.deliver(e, permit);
                }
            }
            let count = match &self.permits {
                None => READ_COUNT,
                Some(p) => {
                    if p.available_permits() == 0 || !backlog.is_empty() {
                        // wait for an ack (or the next sweep, or the stop)
                        let wait = next_sweep.saturating_duration_since(Instant::now());
                        tokio::select! {
                            p = p.clone().acquire_owned() => drop(p),
                            _ = tokio::time::sleep(wait) => {}
                            _ = self.stop.changed() => {}
                        }
                        continue;
                    }
                    p.available_permits().min(READ_COUNT)
                }
            };
            let mut cmd = redis::cmd("XREADGROUP");
            cmd.arg("GROUP")
                .arg(&self.group.settings.group)
                .arg(&self.group.settings.consumer)
                .arg("COUNT")
                .arg(count)
                .arg("BLOCK")
                .arg(u64::try_from(BLOCK.as_millis()).unwrap_or(1000))
                .arg("STREAMS");
            for k in &self.keys {
                cmd.arg(&**k);
            }
            for _ in &self.keys {
                cmd.arg(">");
            }
            match cmd.query_async::<redis::Value>(&mut self.conn).await {
                Ok(v) => {
                    backoff.ok("reading");
                    for e in entry::read_reply(&self.keys, v) {
                        let _ = self.group.hold(&e);
                        backlog.push_back(e);
                    }
                }
                Err(e) if e.code() == Some("NOGROUP") => {
                    // the stream or group was deleted (FLUSHDB, an operator): make it again
                    for key in &self.keys {
                        let _ = crate::connection::ensure_group(
                            &mut shared,
                            key,
                            &self.group.settings.group,
                            "$",
                        )
                        .await;
                    }
                    backoff
                        .failed("reading (group missing)", &e, &mut self.stop)
                        .await;
                }
                Err(e) => backoff.failed("reading", &e, &mut self.stop).await,
            }
        }
        // stopped: what was read and never yielded goes back
        let mut by_key: HashMap<Arc<str>, Vec<String>> = HashMap::new();
        for e in backlog {
            by_key.entry(e.key).or_default().push(e.id);
        }
        for (key, ids) in by_key {
            self.group.give_back(&key, ids).await;
        }
    }
}

/// Reads a fanout stream (no group: each server reads it all) from where it was when the
/// server started.
pub(crate) struct FanoutReader {
    pub(crate) key: Arc<str>,
    pub(crate) last_id: String,
    pub(crate) conn: ConnectionManager,
    /// The driver's shared connection, for what doesn't block.
    pub(crate) shared: ConnectionManager,
    pub(crate) stop: watch::Receiver<bool>,
    pub(crate) deliver: Box<dyn Fn(Delivery) + Send + Sync>,
}

impl FanoutReader {
    pub(crate) async fn run(mut self) {
        let mut backoff = Backoff::new();
        let keys = [self.key.clone()];
        let mut next_anchor = Instant::now() + retention::TIDY_EVERY;
        while !*self.stop.borrow() {
            if Instant::now() >= next_anchor {
                // the stream must exist for fanout casts to be sent (a Redis that restarted
                // empty, a stream deleted by hand): make it again if it went
                next_anchor = Instant::now() + retention::TIDY_EVERY;
                let _ = crate::connection::ensure_group(
                    &mut self.shared,
                    &self.key,
                    crate::topology::FANOUT_ANCHOR_GROUP,
                    "$",
                )
                .await;
            }
            let r = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(READ_COUNT)
                .arg("BLOCK")
                .arg(u64::try_from(BLOCK.as_millis()).unwrap_or(1000))
                .arg("STREAMS")
                .arg(&*self.key)
                .arg(&self.last_id)
                .query_async::<redis::Value>(&mut self.conn)
                .await;
            match r {
                Ok(v) => {
                    backoff.ok("reading fanout");
                    for e in entry::read_reply(&keys, v) {
                        self.last_id.clone_from(&e.id);
                        if *self.stop.borrow() {
                            break;
                        }
                        (self.deliver)(Delivery::ungrouped(e));
                    }
                }
                Err(e) => backoff.failed("reading fanout", &e, &mut self.stop).await,
            }
        }
    }
}
