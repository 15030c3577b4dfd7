//! RPC servers: a server reads its topic's stream and its `topic.server` stream in the
//! group `rpc` (so the servers of a topic share the load, and servers of one name share
//! theirs) and its topic's fanout stream on its own. Requests are acked (and deleted, as no
//! other group reads them) when the server says so, on receipt; replies and heartbeats go
//! onto the caller's reply list.

use std::sync::Arc;

use parking_lot::Mutex;

use async_trait::async_trait;
use msg_core::codec::{WireReply, WireRequest};
use msg_core::{Error, IncomingRequest, ListenOptions, Responder, Result, RpcListener, Target};
use redis::aio::ConnectionManager;
use tokio::sync::Semaphore;

use crate::connection;
use crate::delivery::{Delivery, Group};
use crate::driver::Shared;
use crate::errors::from_redis;
use crate::listener::{self, Decode};
use crate::reader::{FanoutReader, GroupReader};
use crate::redelivery::ClaimSettings;
use crate::topology::{FANOUT_ANCHOR_GROUP, RPC_GROUP};
use crate::{reply, unusable};

/// Starts an RPC server's listener.
pub(crate) async fn listen(
    shared: &Shared,
    target: &Target,
    options: &ListenOptions,
) -> Result<RpcListener> {
    let topic = target.require_topic()?;
    let server = target.server.as_deref().ok_or(Error::InvalidTarget {
        field: "server",
        reason: "an RPC server needs a server name".into(),
    })?;
    let exchange = shared.exchange(target);
    let topic_key: Arc<str> = Arc::from(shared.keys.rpc_topic(exchange, topic));
    let server_key: Arc<str> = Arc::from(shared.keys.rpc_server(exchange, topic, server));
    let fanout_key: Arc<str> = Arc::from(shared.keys.fanout(topic));
    let mut conn = shared.conn.clone();
    for key in [&topic_key, &server_key] {
        connection::ensure_group(&mut conn, key, RPC_GROUP, "$").await?;
    }
    // the fanout stream must exist for casts to be sent to it; its group is never read
    connection::ensure_group(&mut conn, &fanout_key, FANOUT_ANCHOR_GROUP, "$").await?;
    // fanout casts sent from now on: the stream's last entry, or its start
    let last: Vec<(String, redis::Value)> = redis::cmd("XREVRANGE")
        .arg(&*fanout_key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await
        .map_err(|e| from_redis("reading the fanout stream", e))?;
    let fanout_from = last
        .into_iter()
        .next()
        .map_or_else(|| "0-0".to_string(), |(id, _)| id);
    let group_conn = connection::blocking(&shared.client).await?;
    let fanout_conn = connection::blocking(&shared.client).await?;

    let (feed, stop, listener) = listener::channel(decoder(
        shared.conn.clone(),
        shared.opts.reply_ttl,
        shared.keys.clone(),
    ));
    let group = Arc::new(Group::new(
        shared.conn.clone(),
        ClaimSettings {
            group: RPC_GROUP.to_string(),
            consumer: shared.consumer_name(),
            claim_idle: shared.opts.claim_idle,
            max_deliveries: shared.opts.max_deliveries,
            dead_letter_max_len: shared.opts.dead_letter_max_len,
        },
        [&topic_key, &server_key]
            .into_iter()
            .map(|k| (k.clone(), shared.keys.dead_letter(k)))
            .collect(),
        true,
        Box::new({
            let feed = feed.clone();
            move |d| {
                feed.push(d);
            }
        }),
    ));
    tokio::spawn(
        GroupReader {
            group,
            keys: vec![topic_key, server_key],
            permits: (options.prefetch > 0)
                .then(|| Arc::new(Semaphore::new(options.prefetch as usize))),
            conn: group_conn,
            stop: stop.clone(),
        }
        .run(),
    );
    tokio::spawn(
        FanoutReader {
            key: fanout_key,
            last_id: fanout_from,
            conn: fanout_conn,
            shared: shared.conn.clone(),
            stop,
            deliver: Box::new(move |d| {
                feed.push(d);
            }),
        }
        .run(),
    );
    Ok(listener)
}

fn decoder(
    conn: ConnectionManager,
    reply_ttl: std::time::Duration,
    keys: crate::Keys,
) -> Decode<IncomingRequest> {
    Box::new(move |d: Delivery| {
        let decoded = crate::body(&d).and_then(WireRequest::decode);
        match decoded {
            Ok(req) => {
                let reply_list = req.call.as_ref().map(|c| keys.reply(&c.reply_q));
                let responder = Arc::new(RedisResponder {
                    delivery: Mutex::new(Some(d)),
                    reply_list,
                    conn: conn.clone(),
                    reply_ttl,
                });
                Some(IncomingRequest::from_wire(req, responder))
            }
            Err(e) => {
                unusable("request", d, &e);
                None
            }
        }
    })
}

/// Acks one request and sends its replies.
#[derive(Debug)]
struct RedisResponder {
    delivery: Mutex<Option<Delivery>>,
    reply_list: Option<String>,
    conn: ConnectionManager,
    reply_ttl: std::time::Duration,
}

#[async_trait]
impl Responder for RedisResponder {
    async fn ack(&self) -> Result<()> {
        let d = self.delivery.lock().take();
        match d {
            Some(d) => d.ack().await,
            None => Ok(()),
        }
    }

    async fn send(&self, reply: WireReply) -> Result<()> {
        let Some(list) = &self.reply_list else {
            return Ok(());
        };
        let mut conn = self.conn.clone();
        reply::send(&mut conn, list, self.reply_ttl, &reply).await
    }
}
