//! The connection supervisor: one pair of connections at a time (one consumes, one publishes)
//! across the URL's hosts (shuffled once, then round robin, as oslo), reconnection with
//! back-off, re-declaration of every exchange, queue and binding from our own record, and
//! resumption of every consumer; RabbitMQ's flow control (`connection.blocked`) watched and
//! logged.
//! lapin's own recovery is not used: it knows one URI and gives up.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use lapin::options::{ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::FieldTable;
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{Channel, Connection, ConnectionProperties};
use msg_core::{Error, Refusal, Result, TransportUrl};

pub(crate) use crate::errors::is_connection_error;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::options::RabbitOptions;
use crate::topology::Decl;

mod retrying;

pub(crate) use retrying::Bound;

/// One live pair of connections to a host: one consumes (and declares, and acks), the other
/// publishes, on a channel with publisher confirms. RabbitMQ blocks a connection that
/// publishes during a memory or disk alarm (it stops reading from it), so consumption and
/// acknowledgements go on while sends wait; oslo sends on connections of their own too.
pub(crate) struct Conn {
    pub(crate) connection: Connection,
    pub(crate) publish_connection: Connection,
    /// The publishing channel now; replaced by a fresh one after a nack (see
    /// [`Conn::renew_publisher`]).
    publisher: RwLock<Publisher>,
    /// One renewal of the publishing channel at a time.
    renewing: tokio::sync::Mutex<()>,
    /// When the pair was opened.
    pub(crate) opened: tokio::time::Instant,
    pub(crate) generation: u64,
    /// `host:port`, for logs.
    pub(crate) host: String,
    /// Why RabbitMQ blocks the publishing connection, while it does (woken on a change).
    blocked: watch::Sender<Option<String>>,
    /// Set once the supervisor gave the pair up (lost or closed). Work waiting on it stops
    /// waiting: lapin resolves nothing more on a connection we close while its peer is
    /// silent (closing stops its heartbeat monitor, and the close-ok never comes), so a
    /// publish waiting for its confirm there would wait forever.
    lost: watch::Sender<bool>,
}

/// A publishing channel (publisher confirms on) and its number on its connection: 0 for the
/// first, then one more for each renewal.
#[derive(Clone)]
pub(crate) struct Publisher {
    pub(crate) channel: Channel,
    pub(crate) serial: u64,
}

/// Opens a channel with publisher confirms on `connection`.
async fn open_publisher(connection: &Connection) -> Result<Channel> {
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| amqp_err("opening the publishing channel", e))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| amqp_err("enabling publisher confirms", e))?;
    Ok(channel)
}

impl Conn {
    /// The publishing channel now.
    pub(crate) fn publisher(&self) -> Publisher {
        self.publisher.read().clone()
    }

    /// Replaces the publishing channel `serial` by a fresh one (unless another publish did
    /// already). RabbitMQ keeps a session per channel and quorum queue (its
    /// `rabbit_fifo_client` state): one set up while the queue had no leader, after a node
    /// was lost, refuses every later publish on that channel although the queue has elected
    /// a new leader since; a new channel starts a new session. The old channel closes once
    /// the publishes still waiting for their confirms on it drop it.
    pub(crate) async fn renew_publisher(&self, serial: u64) -> Result<()> {
        let _one = self.renewing.lock().await;
        if self.publisher().serial != serial {
            return Ok(());
        }
        let channel = tokio::select! {
            opened = open_publisher(&self.publish_connection) => opened?,
            () = self.until_lost() => {
                return Err(Error::unavailable(
                    "the connection was lost while opening a publishing channel",
                    None,
                ));
            }
        };
        let serial = serial.saturating_add(1);
        *self.publisher.write() = Publisher { channel, serial };
        tracing::debug!(
            host = self.host,
            generation = self.generation,
            serial,
            "a new publishing channel replaces the one the broker nacked on"
        );
        Ok(())
    }

    /// Returns once the supervisor gave this pair up; `work` and this race in every wait
    /// on the connection that has no deadline of its own.
    pub(crate) async fn until_lost(&self) {
        let mut lost = self.lost.subscribe();
        // the sender lives as long as `self`: `wait_for` can only end with `true`
        let _ = lost.wait_for(|l| *l).await;
    }

    /// Marks the pair given up (see [`Conn::until_lost`]).
    fn give_up(&self) {
        self.lost.send_replace(true);
    }

    /// Whether the supervisor gave this pair up.
    pub(crate) fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Why RabbitMQ blocks publishing, if it does.
    pub(crate) fn blocked(&self) -> Option<String> {
        if !self.publish_connection.status().blocked() {
            return None;
        }
        Some(
            self.blocked
                .borrow()
                .clone()
                .unwrap_or_else(|| "no reason given".into()),
        )
    }

    /// Waits until publishing is not blocked, until `deadline` at most; `Err` with the
    /// broker's reason when it still is then.
    pub(crate) async fn wait_unblocked(
        &self,
        deadline: Option<tokio::time::Instant>,
    ) -> std::result::Result<(), String> {
        let mut changes = self.blocked.subscribe();
        loop {
            let Some(reason) = self.blocked() else {
                return Ok(());
            };
            let changed = match deadline {
                Some(d) => match tokio::time::timeout_at(d, changes.changed()).await {
                    Ok(changed) => changed,
                    Err(_) => return Err(reason),
                },
                None => changes.changed().await,
            };
            if changed.is_err() {
                // the connection is gone: the publish fails on its own
                return Ok(());
            }
        }
    }

    /// Closes both connections, each bounded.
    async fn close(&self, code: u16, text: &str) {
        let bound = Duration::from_secs(5);
        let _ = tokio::time::timeout(bound, self.connection.close(code, text.into())).await;
        let _ = tokio::time::timeout(bound, self.publish_connection.close(code, text.into())).await;
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// Something that consumes and must be resumed on every new connection.
pub(crate) trait Resumable: Send + Sync {
    fn resume(self: Arc<Self>, conn: Arc<Conn>) -> BoxFuture<'static, Result<()>>;
    /// Sends the acknowledgements still held back (before the connection closes).
    fn flush_acks(self: Arc<Self>) -> BoxFuture<'static, ()>;
}

struct Host {
    uri: AMQPUri,
    /// `host:port`, for logs (no credentials).
    label: String,
}

/// The connection supervisor shared by a driver's clients and listeners.
pub(crate) struct Supervisor {
    hosts: Vec<Host>,
    next_host: AtomicUsize,
    pub(crate) options: Arc<RabbitOptions>,
    tls: Option<OwnedTLSConfig>,
    url_label: String,
    current: RwLock<Option<Arc<Conn>>>,
    generation_tx: watch::Sender<u64>,
    generations: AtomicU64,
    reconnecting: AtomicBool,
    closed: AtomicBool,
    pub(crate) declared: Mutex<(Vec<Decl>, HashSet<String>)>,
    /// Exchanges we asked for durable but found non-durable (oslo then declares the queues
    /// bound to them non-durable too).
    pub(crate) non_durable_fallback: Mutex<HashSet<String>>,
    consumers: Mutex<Vec<Weak<dyn Resumable>>>,
    /// Our queues that stopped listeners leave behind (their fanout queues), to delete: in
    /// the background, and before the connection closes.
    doomed: Mutex<Vec<String>>,
    /// One deletion of the doomed queues at a time: the close waits for one under way.
    deleting: tokio::sync::Mutex<()>,
    /// The runtime the driver was opened on (lapin calls consumer delegates outside it).
    pub(crate) runtime: tokio::runtime::Handle,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("url", &self.url_label)
            .field("generation", &*self.generation_tx.borrow())
            .finish()
    }
}

pub(crate) fn amqp_err(what: &str, e: lapin::Error) -> Error {
    crate::errors::classify(what, e)
}

impl Supervisor {
    /// Parses hosts and TLS settings; connects to the first host that answers.
    pub(crate) async fn connect(url: &TransportUrl, base: RabbitOptions) -> Result<Arc<Self>> {
        let options = base.with_url(url)?;
        let tls = if options.ssl {
            Some(tls_config(&options)?)
        } else {
            None
        };
        let scheme = || {
            if options.ssl {
                AMQPScheme::AMQPS
            } else {
                AMQPScheme::AMQP
            }
        };
        let default_port = if options.ssl { 5671 } else { 5672 };
        let vhost = url.virtual_host().unwrap_or("/").to_string();
        let mut hosts: Vec<Host> = if url.hosts().is_empty() {
            vec![(
                "localhost".to_string(),
                default_port,
                "guest".to_string(),
                "guest".to_string(),
            )]
        } else {
            url.hosts()
                .iter()
                .map(|h| {
                    (
                        if h.hostname.is_empty() {
                            "localhost".into()
                        } else {
                            h.hostname.clone()
                        },
                        h.port_or(default_port),
                        h.username.clone().unwrap_or_else(|| "guest".into()),
                        h.password.clone().unwrap_or_else(|| "guest".into()),
                    )
                })
                .collect()
        }
        .into_iter()
        .map(|(host, port, username, password)| Host {
            label: format!("{host}:{port}"),
            uri: AMQPUri {
                scheme: scheme(),
                authority: AMQPAuthority {
                    userinfo: AMQPUserInfo { username, password },
                    host,
                    port,
                },
                vhost: vhost.clone(),
                query: AMQPQueryString {
                    heartbeat: Some(options.heartbeat_timeout_threshold),
                    connection_timeout: Some((options.connection_timeout * 1000.0) as u64),
                    ..AMQPQueryString::default()
                },
            },
        })
        .collect();
        shuffle_hosts(&mut hosts);
        let (generation_tx, _) = watch::channel(0);
        let sup = Arc::new(Supervisor {
            hosts,
            next_host: AtomicUsize::new(0),
            options: Arc::new(options),
            tls,
            url_label: url.to_string(),
            current: RwLock::new(None),
            generation_tx,
            generations: AtomicU64::new(0),
            reconnecting: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            declared: Mutex::default(),
            non_durable_fallback: Mutex::default(),
            consumers: Mutex::default(),
            doomed: Mutex::default(),
            deleting: tokio::sync::Mutex::new(()),
            runtime: tokio::runtime::Handle::current(),
        });
        // first connection: every host once; a broker that is down is a clear error
        let mut last = None;
        for _ in 0..sup.hosts.len() {
            match sup.open_next().await {
                Ok(conn) => {
                    sup.install(conn);
                    return Ok(sup);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Config("no host in the URL".into())))
    }

    /// Opens a connection to the next host in the rotation.
    async fn open_next(self: &Arc<Self>) -> Result<Arc<Conn>> {
        let idx = self.next_host.fetch_add(1, Ordering::Relaxed) % self.hosts.len();
        let host = &self.hosts[idx];
        let props = ConnectionProperties::default();
        let name = self.options.connection_name.clone().unwrap_or_else(|| {
            format!(
                "msg:{}:{}",
                hostname::get()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                std::process::id()
            )
        });
        let limit = self.options.connect_timeout();
        let connection = self
            .open_connection(
                host,
                props.clone().with_connection_name(name.clone().into()),
                limit,
            )
            .await?;
        let publish_connection = match self
            .open_connection(
                host,
                props.with_connection_name(format!("{name}:publish").into()),
                limit,
            )
            .await
        {
            Ok(c) => c,
            Err(e) => {
                let _ = connection.close(200, "OK".into()).await;
                return Err(e);
            }
        };
        let publisher = match tokio::time::timeout(limit, open_publisher(&publish_connection))
            .await
            .unwrap_or_else(|_| {
                Err(Error::unavailable(
                    format!(
                        "opening the publishing channel on {} timed out after {limit:?}",
                        host.label
                    ),
                    None,
                ))
            }) {
            Ok(p) => p,
            Err(e) => {
                let _ = connection.close(200, "OK".into()).await;
                let _ = publish_connection.close(200, "OK".into()).await;
                return Err(e);
            }
        };
        let generation = self.generations.fetch_add(1, Ordering::AcqRel) + 1;
        let conn = Conn {
            connection,
            publish_connection,
            publisher: RwLock::new(Publisher {
                channel: publisher,
                serial: 0,
            }),
            renewing: tokio::sync::Mutex::new(()),
            opened: tokio::time::Instant::now(),
            generation,
            host: host.label.clone(),
            blocked: watch::channel(None).0,
            lost: watch::channel(false).0,
        };
        tracing::info!(host = host.label, generation, "connected to RabbitMQ");
        Ok(Arc::new(conn))
    }

    /// Opens one connection to `host`, within `limit`.
    async fn open_connection(
        &self,
        host: &Host,
        props: ConnectionProperties,
        limit: Duration,
    ) -> Result<Connection> {
        let connect = async {
            match &self.tls {
                Some(tls) => {
                    let runtime =
                        lapin::runtime::default_runtime().map_err(|e| amqp_err("no runtime", e))?;
                    Connection::connect_uri_with_config(
                        host.uri.clone(),
                        props,
                        tls.clone(),
                        runtime,
                    )
                    .await
                    .map_err(|e| connect_error(&host.label, e))
                }
                None => Connection::connect_uri(host.uri.clone(), props)
                    .await
                    .map_err(|e| connect_error(&host.label, e)),
            }
        };
        tokio::time::timeout(limit, connect).await.map_err(|_| {
            Error::unavailable(
                format!("connecting to {} timed out after {limit:?}", host.label),
                None,
            )
        })?
    }

    /// Makes a connection current and watches it: for failure, and for RabbitMQ blocking
    /// and unblocking its publishing connection.
    fn install(self: &Arc<Self>, conn: Arc<Conn>) {
        let generation = conn.generation;
        let statuses = [
            conn.connection.status().clone(),
            conn.publish_connection.status().clone(),
        ];
        let consuming = conn.connection.events_listener().map(|e| (0, e));
        let publishing = conn.publish_connection.events_listener().map(|e| (1, e));
        let mut events = futures::stream::select(consuming, publishing).boxed();
        let watched = Arc::downgrade(&conn);
        let host = conn.host.clone();
        *self.current.write() = Some(conn);
        self.reconnecting.store(false, Ordering::Release);
        self.generation_tx.send_replace(generation);
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some((index, event)) = events.next().await {
                let which = if index == 0 {
                    "consuming"
                } else {
                    "publishing"
                };
                match event {
                    // lapin reports a channel the broker closed (a refused declaration) as an
                    // error of its connection too; the connection is still connected then
                    lapin::Event::Error(e)
                        if statuses.get(index).is_some_and(|s| s.connected()) =>
                    {
                        tracing::debug!(error = %e, connection = which, "the broker closed a channel");
                    }
                    lapin::Event::Error(e) => {
                        let Some(sup) = weak.upgrade() else { return };
                        if sup.closed.load(Ordering::Acquire) {
                            return;
                        }
                        tracing::warn!(
                            error = %e,
                            generation,
                            host,
                            connection = which,
                            "the RabbitMQ connection failed"
                        );
                        sup.connection_lost(generation);
                        return;
                    }
                    lapin::Event::ConnectionBlocked(reason) => {
                        tracing::warn!(
                            reason,
                            generation,
                            host,
                            connection = which,
                            "RabbitMQ blocks our publishing (a memory or disk alarm): sends wait \
                             for it to lift, and fail when their timeout passes"
                        );
                        if let Some(conn) = watched.upgrade() {
                            conn.blocked.send_replace(Some(reason));
                        }
                    }
                    lapin::Event::ConnectionUnblocked => {
                        tracing::info!(
                            generation,
                            host,
                            connection = which,
                            "RabbitMQ unblocked our publishing"
                        );
                        if let Some(conn) = watched.upgrade() {
                            conn.blocked.send_replace(None);
                        }
                    }
                    _ => {}
                }
            }
            if let Some(sup) = weak.upgrade()
                && !sup.closed.load(Ordering::Acquire)
            {
                sup.connection_lost(generation);
            }
        });
    }

    /// The generation of the newest connection opened (current, or being restored).
    pub(crate) fn newest_generation(&self) -> u64 {
        self.generations.load(Ordering::Acquire)
    }

    /// The current connection, if any.
    pub(crate) fn current(&self) -> Option<Arc<Conn>> {
        self.current.read().clone()
    }

    /// Reports that a connection failed; starts reconnecting if it was the current one.
    pub(crate) fn connection_lost(self: &Arc<Self>, generation: u64) {
        let lost = {
            let mut cur = self.current.write();
            match &*cur {
                Some(c) if c.generation == generation => cur.take(),
                _ => return,
            }
        };
        if let Some(lost) = lost {
            lost.give_up();
            // one of the pair failed: the other goes too (consumers resume on the next pair)
            tokio::spawn(async move { lost.close(320, "the other connection failed").await });
        }
        if self.reconnecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let sup = self.clone();
        tokio::spawn(async move { sup.reconnect_loop().await });
    }

    async fn reconnect_loop(self: Arc<Self>) {
        let mut attempt = 0u32;
        tokio::time::sleep(crate::options::seconds_or(
            self.options.kombu_reconnect_delay.max(0.0),
            Duration::from_secs(1),
        ))
        .await;
        loop {
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            match self.open_next().await {
                Ok(conn) => {
                    match tokio::time::timeout(self.restore_limit(), self.restore(&conn)).await {
                        Ok(Ok(())) => {
                            self.install(conn);
                            msg_core::metrics::reconnected(crate::DRIVER_NAME);
                            return;
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "restoring topology after a reconnect failed");
                            conn.close(320, "restore failed").await;
                        }
                        Err(_) => {
                            tracing::warn!(
                                host = conn.host,
                                limit = ?self.restore_limit(),
                                "restoring topology after a reconnect took too long; trying again"
                            );
                            conn.close(320, "restore timed out").await;
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, attempt, "reconnecting to RabbitMQ failed"),
            }
            let delay = self.options.reconnect_delay(attempt);
            attempt = attempt.saturating_add(1);
            tokio::time::sleep(delay).await;
        }
    }

    /// How long re-declaring and resuming on a new connection may take before it is given up
    /// (a node that accepts connections but does not answer must not stall reconnecting).
    fn restore_limit(&self) -> Duration {
        self.options
            .connect_timeout()
            .max(Duration::from_secs(10))
            .saturating_mul(3)
    }

    /// Re-declares everything and resumes every consumer on a new connection.
    async fn restore(&self, conn: &Arc<Conn>) -> Result<()> {
        let decls = self.declared.lock().0.clone();
        self.declare_on(conn, &decls).await?;
        let consumers: Vec<Arc<dyn Resumable>> = {
            let mut list = self.consumers.lock();
            list.retain(|w| w.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        for c in consumers {
            c.resume(conn.clone()).await?;
        }
        Ok(())
    }

    /// Registers a consumer to resume on every new connection, and starts it now if
    /// connected; a connection lost meanwhile is waited for as `bound` allows.
    pub(crate) async fn add_consumer(
        self: &Arc<Self>,
        consumer: Arc<dyn Resumable>,
        bound: Bound,
    ) -> Result<()> {
        self.consumers.lock().push(Arc::downgrade(&consumer));
        if self.current().is_none() {
            // resumed with the rest when the connection is restored
            return Ok(());
        }
        self.on_connection("consuming", bound, |conn| consumer.clone().resume(conn))
            .await
    }

    /// Deletes `queue` (a stopped listener's own fanout queue) now in the background, and in
    /// any case before the connection closes: a process that stops its server and closes
    /// its transport right after (a clean SIGTERM) leaves nothing behind.
    pub(crate) fn delete_when_stopped(self: &Arc<Self>, queue: String) {
        self.doomed.lock().push(queue);
        let sup = self.clone();
        self.runtime.spawn(async move { sup.delete_doomed().await });
    }

    /// Deletes the queues stopped listeners left behind.
    async fn delete_doomed(&self) {
        let _one = self.deleting.lock().await;
        let queues = std::mem::take(&mut *self.doomed.lock());
        for queue in queues {
            self.delete_queue(&queue).await;
        }
    }

    /// Forgets and deletes a queue (our own fanout or reply queue on a clean close).
    pub(crate) async fn delete_queue(&self, name: &str) {
        {
            let mut guard = self.declared.lock();
            guard.0.retain(|d| d.queue_name() != Some(name));
            guard
                .1
                .retain(|k| k.split('\0').nth(1).is_none_or(|q| q != name));
        }
        let Some(conn) = self.current() else { return };
        let delete = async {
            if let Ok(ch) = open_channel(&conn).await {
                if let Err(e) = ch
                    .queue_delete(name.into(), QueueDeleteOptions::default())
                    .await
                {
                    tracing::debug!(queue = name, error = %e, "deleting a queue failed");
                }
                let _ = ch.close(200, "OK".into()).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(5), delete)
            .await
            .is_err()
        {
            tracing::debug!(
                queue = name,
                "deleting a queue took too long; left to its TTL"
            );
        }
    }

    /// How many consumers `queue` has now: `None` when it does not exist, or when that can't
    /// be told (no connection, no answer within 5 s).
    pub(crate) async fn consumers_of(&self, queue: &str) -> Option<u32> {
        let conn = self.current()?;
        let ask = async {
            let ch = open_channel(&conn).await.ok()?;
            // passive: only asks; a missing queue closes the channel (404)
            let got = ch
                .queue_declare(
                    queue.into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .ok()
                .map(|q| q.consumer_count());
            if got.is_some() {
                let _ = ch.close(200, "OK".into()).await;
            }
            got
        };
        tokio::time::timeout(Duration::from_secs(5), ask)
            .await
            .ok()
            .flatten()
    }

    /// Closes the connection for good, once the queues of stopped listeners are deleted.
    pub(crate) async fn close(&self) {
        self.delete_doomed().await;
        self.closed.store(true, Ordering::Release);
        let conn = self.current.write().take();
        self.generation_tx.send_modify(|_| {});
        // acks held back for batching go out first: an RPC request acked on receipt must
        // not come back to the next server because the process closed right after
        let consumers: Vec<Arc<dyn Resumable>> = self
            .consumers
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let bound = Duration::from_secs(5);
        for c in consumers {
            let _ = tokio::time::timeout(bound, c.flush_acks()).await;
        }
        if let Some(conn) = conn {
            conn.give_up();
            // a close-ok that never comes must not hang the caller's cleanup
            conn.close(200, "OK").await;
        }
    }

    /// Whether `close` was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// Puts the URL's hosts in random order whenever there are several, as oslo does (its
/// `Connection` shuffles `url.hosts` before kombu sees them, whatever
/// `kombu_failover_strategy` says), so the processes of a deployment spread over a cluster's
/// nodes instead of piling onto the first; the rotation then goes round in that order.
fn shuffle_hosts<T>(hosts: &mut [T]) {
    use rand::seq::SliceRandom;
    if hosts.len() > 1 {
        hosts.shuffle(&mut rand::rng());
    }
}

fn connect_error(host: &str, e: lapin::Error) -> Error {
    let reason = match e.kind() {
        // something answered that doesn't speak AMQP 0-9-1 (an HTTP or NATS port, a typo)
        lapin::ErrorKind::ParsingError(_) | lapin::ErrorKind::InvalidProtocolVersion(_) => {
            format!(
                "not an AMQP server at {host}? (can't connect to RabbitMQ there: its answer \
                 isn't AMQP 0-9-1: {e})"
            )
        }
        _ => format!("can't connect to RabbitMQ at {host}: {e}"),
    };
    match crate::errors::refusal(&e) {
        // wrong credentials (403 ACCESS_REFUSED) or vhost (530 NOT_ALLOWED)
        Some(r @ Refusal::AccessRefused) => Error::refused(r, reason, Some(Box::new(e))),
        _ => Error::unavailable(reason, Some(Box::new(e))),
    }
}

pub(crate) async fn open_channel(conn: &Conn) -> Result<Channel> {
    conn.connection
        .create_channel()
        .await
        .map_err(|e| amqp_err("opening a channel", e))
}

fn tls_config(o: &RabbitOptions) -> Result<OwnedTLSConfig> {
    let read = |what: &str, path: &str| {
        std::fs::read(path).map_err(|e| Error::Config(format!("can't read {what} `{path}`: {e}")))
    };
    let cert_chain = match &o.ssl_ca_file {
        Some(p) => Some(
            String::from_utf8(read("ssl_ca_file", p)?)
                .map_err(|_| Error::Config(format!("ssl_ca_file `{p}` is not PEM text")))?,
        ),
        None => None,
    };
    let identity = match (&o.ssl_cert_file, &o.ssl_key_file) {
        (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
            pem: read("ssl_cert_file", cert)?,
            key: read("ssl_key_file", key)?,
        }),
        (None, None) => None,
        _ => {
            return Err(Error::Config(
                "ssl_cert_file and ssl_key_file go together".into(),
            ));
        }
    };
    Ok(OwnedTLSConfig {
        identity,
        cert_chain,
    })
}

#[cfg(test)]
mod tests {
    use super::shuffle_hosts;

    #[test]
    fn several_hosts_come_in_every_order_one_stays_as_it_is() {
        let mut first = [0usize; 3];
        for _ in 0..300 {
            let mut hosts = ["a", "b", "c"];
            shuffle_hosts(&mut hosts);
            let mut sorted = hosts;
            sorted.sort_unstable();
            assert_eq!(sorted, ["a", "b", "c"], "a shuffle keeps every host once");
            let i = ["a", "b", "c"]
                .iter()
                .position(|h| *h == hosts[0])
                .unwrap_or_default();
            if let Some(n) = first.get_mut(i) {
                *n += 1;
            }
        }
        // each host leads about a third of the time; none never does
        assert!(first.iter().all(|n| *n > 30), "{first:?}");
        let mut one = ["only"];
        shuffle_hosts(&mut one);
        assert_eq!(one, ["only"]);
    }
}
