//! Notification listeners: one stream per (exchange, topic, priority); listeners without a
//! pool read in the group `default` (which the notifier creates too: store and forward),
//! each pool in a group of its own (created when its first listener starts, as a pool's
//! queue is on RabbitMQ). The prefetch bounds how many unsettled notifications a listener
//! holds. Notifications are acked when handled; a requeue goes back as
//! [`crate::redelivery`] says.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use msg_core::codec::WireNotification;
use msg_core::{
    Acknowledger, Error, IncomingNotification, ListenOptions, NotificationListener, Priority,
    Result, Target,
};
use tokio::sync::Semaphore;

use crate::connection;
use crate::delivery::{Delivery, Group};
use crate::driver::Shared;
use crate::listener;
use crate::reader::GroupReader;
use crate::redelivery::ClaimSettings;
use crate::topology::Keys;
use crate::unusable;

/// Starts a notification listener.
pub(crate) async fn listen(
    shared: &Shared,
    subscriptions: &[(Target, Priority)],
    pool: Option<&str>,
    options: &ListenOptions,
) -> Result<NotificationListener> {
    if subscriptions.is_empty() {
        return Err(Error::InvalidArgument(
            "a notification listener needs at least one target".into(),
        ));
    }
    let group_name = Keys::pool_group(pool);
    let mut keys: Vec<Arc<str>> = Vec::new();
    for (target, priority) in subscriptions {
        let topic = target.require_topic()?;
        let key = shared
            .keys
            .notify(shared.exchange(target), topic, *priority);
        if !keys.iter().any(|k| **k == *key) {
            keys.push(Arc::from(key));
        }
    }
    let mut conn = shared.conn.clone();
    for key in &keys {
        connection::ensure_group(&mut conn, key, &group_name, "$").await?;
    }
    let reader_conn = connection::blocking(&shared.client).await?;
    let (feed, stop, listener) = listener::channel(Box::new(decode));
    let group = Arc::new(Group::new(
        shared.conn.clone(),
        ClaimSettings {
            group: group_name,
            consumer: shared.consumer_name(),
            claim_idle: shared.opts.claim_idle,
            max_deliveries: shared.opts.max_deliveries,
            dead_letter_max_len: shared.opts.dead_letter_max_len,
        },
        keys.iter()
            .map(|k| (k.clone(), shared.keys.dead_letter(k)))
            .collect(),
        false,
        Box::new(move |d| {
            feed.push(d);
        }),
    ));
    tokio::spawn(
        GroupReader {
            group,
            keys,
            permits: (options.prefetch > 0)
                .then(|| Arc::new(Semaphore::new(options.prefetch as usize))),
            conn: reader_conn,
            stop,
        }
        .run(),
    );
    Ok(listener)
}

fn decode(d: Delivery) -> Option<IncomingNotification> {
    let decoded = crate::body(&d).and_then(WireNotification::decode);
    match decoded {
        Ok(n) => Some(IncomingNotification::new(
            n.context,
            n.notification,
            n.unique_id,
            Box::new(RedisAcker(d)),
        )),
        Err(e) => {
            unusable("notification", d, &e);
            None
        }
    }
}

/// Settles one notification.
#[derive(Debug)]
struct RedisAcker(Delivery);

#[async_trait]
impl Acknowledger for RedisAcker {
    async fn ack(self: Box<Self>) -> Result<()> {
        self.0.ack().await
    }

    async fn requeue(self: Box<Self>, delay: Option<Duration>) -> Result<()> {
        self.0.requeue(delay).await
    }
}
