//! The connection: async-nats's client across the URL's servers, its events (reconnects,
//! slow consumers), the server's version, and the waits that `retry` allows.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, Event, ServerAddr};
use msg_core::{Error, Refusal, Result, Retry, TransportUrl};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::options::{NatsOptions, display_url};

/// The oldest nats-server this driver works with: single-subject consumer filters, the
/// `CONSUMER.CREATE.<stream>.<consumer>.<filter>` API, interest checks on pull requests.
pub const MIN_SERVER_VERSION: (u64, u64, u64) = (2, 9, 0);

/// What happened on a driver's connection since it opened; from
/// [`NatsDriver::stats`](crate::NatsDriver::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsStats {
    /// Connections made (the first one and every reconnect).
    pub connects: u64,
    /// Times the connection was lost.
    pub disconnects: u64,
    /// Slow-consumer events: messages async-nats dropped because a subscription's buffer
    /// was full (should stay 0: the driver drains its subscriptions at once).
    pub slow_consumers: u64,
    /// Errors the server reported (permissions, ...).
    pub server_errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connects: AtomicU64,
    disconnects: AtomicU64,
    slow_consumers: AtomicU64,
    server_errors: AtomicU64,
}

/// One NATS connection shared by a driver's clients and listeners.
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) js: async_nats::jetstream::Context,
    pub(crate) options: Arc<NatsOptions>,
    /// `$JS.API` or `$JS.<domain>.API`.
    pub(crate) api_prefix: String,
    /// Bumped on every (re)connect: listeners re-issue what the server forgot.
    generation: watch::Sender<u64>,
    connected: watch::Sender<bool>,
    /// Bumped every time the connection is lost: what waits for a reply on it fails.
    lost: watch::Sender<u64>,
    /// Set when async-nats closed the connection (after a drain).
    shut: watch::Sender<bool>,
    counters: Arc<Counters>,
    pub(crate) server_version: String,
    /// JetStream answered at the server, as last seen.
    jetstream: AtomicBool,
    /// When JetStream was last looked for.
    jetstream_probed: Mutex<Instant>,
    closed: AtomicBool,
    label: String,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("url", &self.label)
            .field("server_version", &self.server_version)
            .field("jetstream", &self.has_jetstream())
            .finish_non_exhaustive()
    }
}

fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.trim_start_matches('v');
    let core = core.split(['-', '+']).next()?;
    let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((it.next()??, it.next()??, it.next().flatten().unwrap_or(0)))
}

fn read_secret(what: &str, path: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::Config(format!("can't read the {what} `{path}`: {e}")))
}

impl Conn {
    /// Connects to the first of the URL's servers that answers, tried in a random order.
    pub(crate) async fn connect(url: &TransportUrl) -> Result<Arc<Self>> {
        let options = Arc::new(NatsOptions::from_url(url)?);
        let label = display_url(url);
        let scheme = if options.tls { "tls" } else { "nats" };
        let mut addrs = Vec::new();
        let mut credentials: Option<(Option<String>, Option<String>)> = None;
        let hosts = url.hosts();
        for h in hosts {
            let host = if h.hostname.is_empty() {
                "127.0.0.1"
            } else {
                h.hostname.as_str()
            };
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_string()
            };
            let addr: ServerAddr = format!("{scheme}://{host}:{}", h.port_or(4222))
                .parse()
                .map_err(|e: std::io::Error| Error::InvalidUrl {
                    url: label.clone(),
                    reason: e.to_string(),
                })?;
            addrs.push(addr);
            if h.username.is_some() || h.password.is_some() {
                let these = (h.username.clone(), h.password.clone());
                match &credentials {
                    Some(c) if *c != these => {
                        return Err(Error::InvalidUrl {
                            url: label,
                            reason: "every server of a nats:// URL must have the same credentials \
                                     (the client authenticates one way)"
                                .into(),
                        });
                    }
                    _ => credentials = Some(these),
                }
            }
        }
        if addrs.is_empty() {
            addrs.push(
                format!("{scheme}://127.0.0.1:4222")
                    .parse()
                    .map_err(|e: std::io::Error| Error::Config(e.to_string()))?,
            );
        }

        let counters = Arc::new(Counters::default());
        let (generation, _) = watch::channel(0u64);
        let (connected, _) = watch::channel(false);
        let (lost, _) = watch::channel(0u64);
        let (shut, _) = watch::channel(false);
        let mut co = ConnectOptions::new()
            .connection_timeout(options.connection_timeout)
            .ping_interval(options.ping_interval)
            .subscription_capacity(options.subscription_capacity)
            .request_timeout(Some(options.jetstream_timeout));
        // async-nats tries the servers in a random order (as oslo shuffles a URL's hosts:
        // clients spread over a cluster's nodes), those that failed least first, one after
        // the other with no delay within a round
        let delays = options.clone();
        let servers = addrs.len();
        co = co.reconnect_delay_callback(move |attempts| delays.connect_delay(attempts, servers));
        if options.max_reconnects > 0 {
            co = co.max_reconnects(options.max_reconnects);
        } else {
            co = co.max_reconnects(None);
        }
        if let Some(name) = &options.connection_name {
            co = co.name(name);
        } else {
            co = co.name(format!("msg:{}", std::process::id()));
        }
        if let Some(p) = &options.inbox_prefix {
            co = co.custom_inbox_prefix(p);
        }
        if options.tls {
            co = co.require_tls(true);
        }
        if options.tls_first {
            co = co.tls_first();
        }
        if let Some(ca) = &options.tls_ca_file {
            co = co.add_root_certificates(ca.into());
        }
        if let (Some(cert), Some(key)) = (&options.tls_cert_file, &options.tls_key_file) {
            co = co.add_client_certificate(cert.into(), key.into());
        }
        match credentials {
            Some((Some(user), Some(pass))) if !user.is_empty() => {
                co = co.user_and_password(user, pass);
            }
            // `nats://:TOKEN@host` (the password is never shown) or `nats://TOKEN@host`
            Some((_, Some(token))) | Some((Some(token), None)) => co = co.token(token),
            _ => {}
        }
        if let Some(path) = &options.token_file {
            co = co.token(read_secret("token_file", path)?);
        }
        if let Some(path) = &options.nkey_file {
            co = co.nkey(read_secret("nkey_file", path)?);
        }
        if let Some(path) = &options.creds_file {
            co = co
                .credentials_file(path)
                .await
                .map_err(|e| Error::Config(format!("can't read the creds_file `{path}`: {e}")))?;
        }

        let events = EventSink {
            generation: generation.clone(),
            connected: connected.clone(),
            lost: lost.clone(),
            shut: shut.clone(),
            counters: counters.clone(),
            label: label.clone(),
        };
        co = co.event_callback(move |event| {
            let events = events.clone();
            async move { events.on(event) }
        });

        let client = co.connect(addrs).await.map_err(|e| {
            let what = format!("can't connect to NATS at {label}");
            match e.kind() {
                async_nats::ConnectErrorKind::Authentication
                | async_nats::ConnectErrorKind::AuthorizationViolation => {
                    Error::refused(Refusal::AccessRefused, what, Some(Box::new(e)))
                }
                _ => Error::unavailable(what, Some(Box::new(e))),
            }
        })?;
        connected.send_replace(true);
        let info = client.server_info();
        let version = info.version.clone();
        match parse_version(&version) {
            Some(v) if v >= MIN_SERVER_VERSION => {}
            _ => {
                let _ = client.drain().await;
                let (a, b, c) = MIN_SERVER_VERSION;
                return Err(Error::NotSupported {
                    driver: "nats",
                    feature: format!(
                        "nats-server {version} at {label}: msg needs nats-server {a}.{b}.{c} or newer"
                    ),
                });
            }
        }
        let (mut js, api_prefix) = match &options.jetstream_domain {
            Some(d) => (
                async_nats::jetstream::with_domain(client.clone(), d),
                format!("$JS.{d}.API"),
            ),
            None => (
                async_nats::jetstream::new(client.clone()),
                "$JS.API".to_string(),
            ),
        };
        js.set_timeout(options.jetstream_timeout);
        let jetstream = jetstream_enabled(&client, &api_prefix).await;
        tracing::info!(url = %label, server_version = %version, jetstream, "connected to NATS");
        Ok(Arc::new(Conn {
            client,
            js,
            options,
            api_prefix,
            generation,
            connected,
            lost,
            shut,
            counters,
            server_version: version,
            jetstream: AtomicBool::new(jetstream),
            jetstream_probed: Mutex::new(Instant::now()),
            closed: AtomicBool::new(false),
            label,
        }))
    }

    /// What happened on the connection so far.
    pub(crate) fn stats(&self) -> NatsStats {
        let c = &self.counters;
        NatsStats {
            connects: c.connects.load(Ordering::Relaxed).max(1),
            disconnects: c.disconnects.load(Ordering::Relaxed),
            slow_consumers: c.slow_consumers.load(Ordering::Relaxed),
            server_errors: c.server_errors.load(Ordering::Relaxed),
        }
    }

    /// Watches (re)connects.
    pub(crate) fn generations(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Watches losses of the connection: `changed` returns once it is lost after this call.
    pub(crate) fn losses(&self) -> watch::Receiver<u64> {
        self.lost.subscribe()
    }

    /// The URL as it may be shown.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// Whether the server has JetStream, as last seen.
    pub(crate) fn has_jetstream(&self) -> bool {
        self.jetstream.load(Ordering::Acquire)
    }

    /// Whether the server has JetStream, looked for again (at most once a second) while it
    /// seemed off: a cluster whose JetStream had no leader yet when the client connected
    /// doesn't answer, and serves a little later.
    pub(crate) async fn jetstream_now(&self) -> bool {
        if self.has_jetstream() {
            return true;
        }
        {
            let mut probed = self.jetstream_probed.lock();
            if probed.elapsed() < Duration::from_secs(1) {
                return false;
            }
            *probed = Instant::now();
        }
        let on = jetstream_enabled(&self.client, &self.api_prefix).await;
        if on && !self.jetstream.swap(true, Ordering::AcqRel) {
            tracing::info!(url = %self.label, "the NATS server's JetStream answers now");
        }
        on
    }

    /// Open and connected now: [`Conn::wait_connected`] would return at once.
    pub(crate) fn is_ready(&self) -> bool {
        !self.closed.load(Ordering::Acquire) && self.client.connection_state() == State::Connected
    }

    /// Waits until connected, as far as `retry` allows: no retry fails at once when
    /// disconnected; `n` retries wait up to `n` reconnect delays (at least a second each);
    /// forever waits as long as it takes.
    pub(crate) async fn wait_connected(&self, retry: Retry) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed("the transport was closed".into()));
        }
        if self.client.connection_state() == State::Connected {
            return Ok(());
        }
        let bound = match retry {
            Retry::Attempts(0) => {
                return Err(Error::unavailable(
                    format!("not connected to NATS at {} (no retry)", self.label),
                    None,
                ));
            }
            Retry::Attempts(n) => Some(
                self.options
                    .reconnect_wait_max
                    .max(Duration::from_secs(1))
                    .saturating_mul(n),
            ),
            Retry::Forever => None,
        };
        let mut rx = self.connected.subscribe();
        let wait = async {
            loop {
                if *rx.borrow_and_update() || self.client.connection_state() == State::Connected {
                    return Ok(());
                }
                if self.closed.load(Ordering::Acquire) || rx.changed().await.is_err() {
                    return Err(Error::Closed("the transport was closed".into()));
                }
            }
        };
        match bound {
            Some(b) => tokio::time::timeout(b, wait).await.map_err(|_| {
                Error::unavailable(
                    format!(
                        "not connected to NATS at {} (retry exhausted after {b:?})",
                        self.label
                    ),
                    None,
                )
            })?,
            None => wait.await,
        }
    }

    /// Returns once the server has processed everything this connection sent before (a
    /// subscription is live at the server after it): a request nobody answers, whose
    /// "no responders" comes back in order.
    pub(crate) async fn sync(&self) {
        let subject = self.client.new_inbox();
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            self.client.request(subject, bytes::Bytes::new()),
        )
        .await;
        if let Ok(Ok(_)) = r {
            tracing::debug!("a sync request got an answer; ignored");
        }
    }

    /// Whether `close` was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Closes the connection for good: what was published is flushed, subscriptions are
    /// drained, and the connection is closed (each step bounded).
    pub(crate) async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.connected.send_modify(|_| {});
        let bound = Duration::from_secs(5);
        if self.client.connection_state() == State::Connected
            && tokio::time::timeout(bound, self.client.flush())
                .await
                .is_err()
        {
            tracing::debug!("flushing the NATS connection timed out");
        }
        let mut shut = self.shut.subscribe();
        match tokio::time::timeout(bound, self.client.drain()).await {
            Ok(Ok(())) => {
                let _ = tokio::time::timeout(bound, shut.wait_for(|s| *s)).await;
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "draining the NATS connection failed"),
            Err(_) => tracing::debug!("draining the NATS connection timed out"),
        }
    }

    /// A check that a message fits the server's `max_payload`, before it is sent.
    pub(crate) fn check_size(&self, what: &str, size: usize) -> Result<()> {
        let max = self.client.max_payload();
        if size > max {
            return Err(Error::InvalidArgument(format!(
                "the {what} is {size} bytes, over the NATS server's max_payload of {max} bytes"
            )));
        }
        Ok(())
    }
}

/// Whether the server has JetStream on: an account-info request answers.
async fn jetstream_enabled(client: &Client, api_prefix: &str) -> bool {
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        client.request(format!("{api_prefix}.INFO"), bytes::Bytes::new()),
    )
    .await;
    match r {
        Ok(Ok(msg)) => {
            // `{"type": "io.nats.jetstream.api.v1.account_info_response", ...}` without `error`
            match serde_json::from_slice::<serde_json::Value>(&msg.payload) {
                Ok(v) => v.get("error").is_none(),
                Err(_) => false,
            }
        }
        _ => false,
    }
}

#[derive(Clone)]
struct EventSink {
    generation: watch::Sender<u64>,
    connected: watch::Sender<bool>,
    lost: watch::Sender<u64>,
    shut: watch::Sender<bool>,
    counters: Arc<Counters>,
    label: String,
}

impl EventSink {
    fn on(&self, event: Event) {
        match event {
            Event::Connected => {
                let n = self.counters.connects.fetch_add(1, Ordering::Relaxed) + 1;
                if n > 1 {
                    msg_core::metrics::reconnected(crate::DRIVER_NAME);
                    tracing::info!(url = %self.label, connects = n, "reconnected to NATS");
                }
                self.connected.send_replace(true);
                self.generation.send_modify(|g| *g += 1);
            }
            Event::Disconnected => {
                self.counters.disconnects.fetch_add(1, Ordering::Relaxed);
                self.connected.send_replace(false);
                self.lost.send_modify(|n| *n = n.wrapping_add(1));
                tracing::warn!(url = %self.label, "lost the NATS connection; reconnecting");
            }
            Event::SlowConsumer(sid) => {
                let n = self.counters.slow_consumers.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    sid,
                    slow_consumers = n,
                    "NATS slow consumer: async-nats dropped messages of a subscription whose buffer was full"
                );
            }
            Event::ServerError(e) => {
                self.counters.server_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %self.label, error = %e, "the NATS server reported an error");
            }
            Event::ClientError(e) => {
                tracing::warn!(url = %self.label, error = %e, "NATS client error");
            }
            Event::LameDuckMode => {
                tracing::info!(url = %self.label, "the NATS server entered lame duck mode");
            }
            Event::Closed => {
                self.connected.send_replace(false);
                self.shut.send_replace(true);
                tracing::debug!(url = %self.label, "NATS connection closed");
            }
            Event::Draining => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_parsed() {
        assert_eq!(parse_version("2.9.10"), Some((2, 9, 10)));
        assert_eq!(parse_version("v2.10.0-beta.1"), Some((2, 10, 0)));
        assert_eq!(parse_version("2.11"), Some((2, 11, 0)));
        assert_eq!(parse_version("x"), None);
        assert!(parse_version("2.8.4").unwrap() < MIN_SERVER_VERSION);
        assert!(parse_version("2.9.10").unwrap() >= MIN_SERVER_VERSION);
    }
}
