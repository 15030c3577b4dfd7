//! Replies: each driver that makes calls has a reply list (`msg:reply:ID`, `ID` being the
//! `_reply_q` its requests carry), read by one task with `BLPOP` on a connection of its own.
//! Servers push replies and call-monitor heartbeats onto it and renew its expiry, so a list
//! whose caller went away vanishes after `reply_ttl`. Replies are correlated by `_msg_id`
//! through msg-core's [`ReplyWaiters`].

use std::sync::Arc;
use std::time::Duration;

use msg_core::codec::{self, WireReply};
use msg_core::{Error, ReplyWaiters, Result};
use redis::aio::ConnectionManager;
use tokio::sync::watch;

use crate::connection::{self, BLOCK};
use crate::errors::from_redis;

/// A driver's reply list and the task reading it.
#[derive(Debug)]
pub(crate) struct ReplyQueue {
    /// The `_reply_q` of this driver's calls.
    pub(crate) name: String,
    pub(crate) key: String,
    pub(crate) waiters: Arc<ReplyWaiters>,
    stop: watch::Sender<bool>,
}

impl ReplyQueue {
    /// Starts reading a new reply list.
    pub(crate) async fn start(client: &redis::Client, keys: &crate::Keys) -> Result<Self> {
        let name = format!("reply_{}", codec::new_unique_id());
        let key = keys.reply(&name);
        let waiters = Arc::new(ReplyWaiters::default());
        let conn = connection::blocking(client).await?;
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(read(conn, key.clone(), waiters.clone(), stop_rx));
        Ok(ReplyQueue {
            name,
            key,
            waiters,
            stop,
        })
    }

    /// Stops reading, fails the calls still waiting and deletes the list.
    pub(crate) async fn close(&self, conn: &mut ConnectionManager) {
        self.stop.send_replace(true);
        self.waiters
            .fail_all(|| Error::Closed("the transport was closed".into()));
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&self.key).query_async(conn).await;
    }
}

impl Drop for ReplyQueue {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        self.waiters
            .fail_all(|| Error::Closed("the transport was closed".into()));
    }
}

async fn read(
    mut conn: ConnectionManager,
    key: String,
    waiters: Arc<ReplyWaiters>,
    mut stop: watch::Receiver<bool>,
) {
    let block = BLOCK.as_secs_f64();
    let mut failing = false;
    while !*stop.borrow() {
        let r: redis::RedisResult<Option<(Vec<u8>, Vec<u8>)>> = redis::cmd("BLPOP")
            .arg(&key)
            .arg(block)
            .query_async(&mut conn)
            .await;
        match r {
            Ok(None) => failing = false,
            Ok(Some((_, body))) => {
                failing = false;
                match WireReply::decode(&body) {
                    Ok(reply) => {
                        let msg_id = reply.msg_id.clone();
                        if !waiters.deliver(reply) {
                            tracing::debug!(
                                msg_id,
                                "a reply nobody waits for (late or duplicate) dropped"
                            );
                        }
                    }
                    Err(e) => {
                        tracing::warn!(reply_q = key, error = %e, "dropped a reply that can't be decoded");
                    }
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(reply_q = key, error = %e, "reading replies failed; retrying");
                    failing = true;
                }
                let _ = tokio::time::timeout(Duration::from_millis(500), stop.changed()).await;
            }
        }
    }
}

/// Pushes a reply (or heartbeat) onto a caller's reply list and renews its expiry.
pub(crate) async fn send(
    conn: &mut ConnectionManager,
    list: &str,
    ttl: Duration,
    reply: &WireReply,
) -> Result<()> {
    let body = reply.encode()?;
    redis::pipe()
        .atomic()
        .cmd("RPUSH")
        .arg(list)
        .arg(body)
        .ignore()
        .cmd("EXPIRE")
        .arg(list)
        .arg(ttl.as_secs().max(1))
        .ignore()
        .exec_async(conn)
        .await
        .map_err(|e| from_redis("sending a reply", e))
}
