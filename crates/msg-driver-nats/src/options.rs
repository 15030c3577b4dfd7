//! The NATS driver's options, read from the URL's query.

use std::collections::BTreeSet;
use std::time::Duration;

use msg_core::{Error, OptionCheck, Result, TransportUrl};

/// The URL as it may be shown: passwords as `****` (as msg-core shows them) and a user
/// name without a password (NATS's `nats://TOKEN@host` form: a token) as `****` too.
pub(crate) fn display_url(url: &TransportUrl) -> String {
    let mut out = format!("{}://", url.scheme());
    for (i, h) in url.hosts().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match (&h.username, &h.password) {
            (Some(u), Some(_)) if !u.is_empty() => {
                out.push_str(u);
                out.push_str(":****@");
            }
            (None, None) => {}
            _ => out.push_str("****@"),
        }
        if h.hostname.contains(':') {
            out.push('[');
            out.push_str(&h.hostname);
            out.push(']');
        } else {
            out.push_str(&h.hostname);
        }
        if let Some(p) = h.port {
            out.push(':');
            out.push_str(&p.to_string());
        }
    }
    for (i, (k, v)) in url.query().iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Where a stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStorage {
    /// On disk (the default): survives a server restart.
    File,
    /// In memory.
    Memory,
}

/// When a notification stream lets go of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRetention {
    /// Once every consumer whose filter matches has acknowledged it (the default): like a
    /// RabbitMQ queue per consumer. The limits still apply.
    Interest,
    /// Only by the limits (age, bytes, count): consumers created later with `All` replay it.
    Limits,
}

/// The NATS driver's options, from the URL's query
/// (`nats://host:4222?ack_wait=60&stream_max_age=86400`). Durations are in seconds
/// (fractions allowed). An unknown key is an error naming it.
///
/// Credentials never travel in the query (it is shown in logs): a user and password, or a
/// token as the password of an empty user (`nats://:TOKEN@host`), go in the URL's user info
/// (whose password is never shown); nkey seeds, creds and tokens can also be read from
/// files (`nkey_file`, `creds_file`, `token_file`).
///
/// ```
/// use msg_driver_nats::NatsOptions;
/// let url = msg_core::TransportUrl::parse("nats://h:4222?ack_wait=60&max_deliveries=3").unwrap();
/// let o = NatsOptions::from_url(&url).unwrap();
/// assert_eq!(o.ack_wait, std::time::Duration::from_secs(60));
/// assert_eq!(o.max_deliveries, 3);
/// let bad = msg_core::TransportUrl::parse("nats://h?ackwait=1").unwrap();
/// assert!(NatsOptions::from_url(&bad).unwrap_err().to_string().contains("ackwait"));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NatsOptions {
    /// `control_exchange`: the exchange of targets that name none (`openstack`).
    pub control_exchange: String,
    /// `subject_prefix`: the first token(s) of every subject, stream and consumer name (`msg`).
    pub subject_prefix: String,
    /// `connection_name`: the name the server shows for the connection.
    pub connection_name: Option<String>,
    /// `connection_timeout`: bound on one connection handshake (5 s; above 0).
    pub connection_timeout: Duration,
    /// `ping_interval`: how often the client pings the server (20 s; above 0).
    pub ping_interval: Duration,
    /// `reconnect_wait`: the delay between reconnect attempts grows by this much per
    /// attempt (1 s) ...
    pub reconnect_wait: Duration,
    /// `reconnect_wait_max`: ... up to this (10 s).
    pub reconnect_wait_max: Duration,
    /// `max_reconnects`: give up after this many failed reconnects in a row (`0`, the
    /// default: never give up).
    pub max_reconnects: usize,
    /// `subscription_capacity`: messages async-nats buffers per subscription before it
    /// drops them as a slow consumer (65536; at least 1).
    pub subscription_capacity: usize,
    /// `rpc_backlog`: requests an RPC server holds waiting for an executor slot before it
    /// leaves its topic's queue group until half of them are taken (32768: a burst of casts
    /// waits in memory rather than being shed, since core NATS drops what a group without
    /// members is sent).
    pub rpc_backlog: usize,
    /// `cast_receipt_timeout`: how long an `at_least_once` cast waits for a server's receipt
    /// when the send sets no timeout (10 s).
    pub cast_receipt_timeout: Duration,
    /// `inbox_prefix`: the prefix of reply subjects (`_INBOX`).
    pub inbox_prefix: Option<String>,
    /// `jetstream_domain`: the JetStream domain, if any.
    pub jetstream_domain: Option<String>,
    /// `jetstream_timeout`: bound on one JetStream API request or publish ack (5 s; above 0).
    pub jetstream_timeout: Duration,
    /// `stream_retention`: `interest` (default) or `limits`.
    pub stream_retention: StreamRetention,
    /// `stream_storage`: `file` (default) or `memory`.
    pub stream_storage: StreamStorage,
    /// `stream_replicas`: replicas of each stream this client creates (1).
    pub stream_replicas: usize,
    /// `manage_streams`: update the limits of a stream that exists already (replicas, ages,
    /// sizes, duplicate window) to this client's (false, the default: a stream that exists is
    /// used as it is, and a difference from what the URL asks for is one warning per stream).
    pub manage_streams: bool,
    /// `stream_max_age`: notifications older than this are dropped (7 days).
    pub stream_max_age: Duration,
    /// `stream_max_bytes`: size cap of a notification stream, oldest dropped first (1 GiB;
    /// `-1`: none).
    pub stream_max_bytes: i64,
    /// `stream_max_msgs`: message cap of a notification stream (`-1`, the default: none).
    pub stream_max_msgs: i64,
    /// `duplicate_window`: how long a `Nats-Msg-Id` is remembered to drop a retried
    /// publish (120 s).
    pub duplicate_window: Duration,
    /// `ack_wait`: a delivered notification not acknowledged (nor progress-acked) in this
    /// time is redelivered (30 s).
    pub ack_wait: Duration,
    /// `max_ack_pending`: unacknowledged messages per consumer, all its listeners together
    /// (1000); also what a listener with prefetch 0 holds at most.
    pub max_ack_pending: i64,
    /// `max_deliveries`: how often a notification may be requeued before it goes to the
    /// dead-letter subject instead (10; `0`: no cap).
    pub max_deliveries: u64,
    /// `pull_expires`: how long one pull request waits at the server (5 s).
    pub pull_expires: Duration,
    /// `consumer_inactive_threshold`: the server deletes a durable consumer unused this long
    /// (`0`, the default: never).
    pub consumer_inactive_threshold: Duration,
    /// `tls`: require TLS (`tls://` implies it).
    pub tls: bool,
    /// `tls_first`: TLS handshake before the server's INFO (servers with `handshake_first`).
    pub tls_first: bool,
    /// `tls_ca_file`: PEM CA certificates to trust (`ssl_ca_file` too).
    pub tls_ca_file: Option<String>,
    /// `tls_cert_file`: PEM client certificate (`ssl_cert_file` too).
    pub tls_cert_file: Option<String>,
    /// `tls_key_file`: PEM client key (`ssl_key_file` too).
    pub tls_key_file: Option<String>,
    /// `creds_file`: a NATS credentials file (JWT and nkey seed).
    pub creds_file: Option<String>,
    /// `nkey_file`: a file holding an nkey seed.
    pub nkey_file: Option<String>,
    /// `token_file`: a file holding an auth token.
    pub token_file: Option<String>,
    /// The options the URL's query sets (the rest have their defaults).
    pub(crate) given: BTreeSet<String>,
}

impl Default for NatsOptions {
    fn default() -> Self {
        NatsOptions {
            control_exchange: "openstack".into(),
            subject_prefix: "msg".into(),
            connection_name: None,
            connection_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(20),
            reconnect_wait: Duration::from_secs(1),
            reconnect_wait_max: Duration::from_secs(10),
            max_reconnects: 0,
            subscription_capacity: 65536,
            rpc_backlog: 32768,
            cast_receipt_timeout: Duration::from_secs(10),
            inbox_prefix: None,
            jetstream_domain: None,
            jetstream_timeout: Duration::from_secs(5),
            stream_retention: StreamRetention::Interest,
            stream_storage: StreamStorage::File,
            stream_replicas: 1,
            manage_streams: false,
            stream_max_age: Duration::from_secs(7 * 24 * 3600),
            stream_max_bytes: 1 << 30,
            stream_max_msgs: -1,
            duplicate_window: Duration::from_secs(120),
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 1000,
            max_deliveries: 10,
            pull_expires: Duration::from_secs(5),
            consumer_inactive_threshold: Duration::ZERO,
            tls: false,
            tls_first: false,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            creds_file: None,
            nkey_file: None,
            token_file: None,
            given: BTreeSet::new(),
        }
    }
}

impl NatsOptions {
    /// Reads the options from a URL's query; an unknown key or a bad value is an error
    /// naming it.
    pub fn from_url(url: &TransportUrl) -> Result<Self> {
        let mut o = NatsOptions {
            tls: url.scheme() == "tls",
            ..NatsOptions::default()
        };
        for (key, value) in &url.options() {
            let known = o.set(key, value).map_err(|reason| Error::InvalidUrl {
                url: display_url(url),
                reason,
            })?;
            if !known {
                return Err(Error::InvalidUrl {
                    url: display_url(url),
                    reason: format!("unknown option `{key}` for the nats driver"),
                });
            }
            o.given.insert(key.to_string());
        }
        if o.tls_cert_file.is_some() != o.tls_key_file.is_some() {
            return Err(Error::InvalidUrl {
                url: display_url(url),
                reason: "tls_cert_file and tls_key_file go together".into(),
            });
        }
        if o.max_ack_pending == 0 || o.max_ack_pending < -1 {
            return Err(Error::InvalidUrl {
                url: display_url(url),
                reason: "max_ack_pending must be positive or -1".into(),
            });
        }
        if o.pull_expires < Duration::from_millis(100) || o.ack_wait < Duration::from_millis(100) {
            return Err(Error::InvalidUrl {
                url: display_url(url),
                reason: "pull_expires and ack_wait must be at least 0.1 s".into(),
            });
        }
        Ok(o)
    }

    /// Sets one option; `Ok(false)` when there is none of that name.
    fn set(&mut self, key: &str, value: &str) -> std::result::Result<bool, String> {
        fn flag(key: &str, v: &str) -> std::result::Result<bool, String> {
            match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(format!("option `{key}` wants true or false, not `{v}`")),
            }
        }
        fn num<T: std::str::FromStr>(key: &str, v: &str) -> std::result::Result<T, String> {
            v.parse()
                .map_err(|_| format!("option `{key}` wants a number, not `{v}`"))
        }
        fn secs(key: &str, v: &str) -> std::result::Result<Duration, String> {
            let s: f64 = num(key, v)?;
            Duration::try_from_secs_f64(s)
                .map_err(|_| format!("option `{key}` wants seconds (>= 0), not `{v}`"))
        }
        // a zero here would make async-nats or tokio panic (an interval of 0, a channel of
        // capacity 0) or fail every request at once with a misleading error
        fn positive_secs(key: &str, v: &str) -> std::result::Result<Duration, String> {
            let d = secs(key, v)?;
            if d.is_zero() {
                return Err(format!("option `{key}` wants seconds above 0, not `{v}`"));
            }
            Ok(d)
        }
        fn text(v: &str) -> Option<String> {
            (!v.is_empty()).then(|| v.to_string())
        }
        match key {
            "control_exchange" => {
                if value.is_empty() {
                    return Err("control_exchange can't be empty".into());
                }
                self.control_exchange = value.to_string();
            }
            "subject_prefix" => self.subject_prefix = value.to_string(),
            "connection_name" => self.connection_name = text(value),
            "connection_timeout" => self.connection_timeout = positive_secs(key, value)?,
            "ping_interval" => self.ping_interval = positive_secs(key, value)?,
            "reconnect_wait" => self.reconnect_wait = secs(key, value)?,
            "reconnect_wait_max" => self.reconnect_wait_max = secs(key, value)?,
            "max_reconnects" => self.max_reconnects = num(key, value)?,
            "subscription_capacity" => {
                self.subscription_capacity = num(key, value)?;
                if self.subscription_capacity == 0 {
                    return Err("option `subscription_capacity` wants at least 1, not `0`".into());
                }
            }
            "rpc_backlog" => self.rpc_backlog = num::<usize>(key, value)?.max(1),
            "cast_receipt_timeout" => self.cast_receipt_timeout = secs(key, value)?,
            "inbox_prefix" => self.inbox_prefix = text(value),
            "jetstream_domain" => self.jetstream_domain = text(value),
            "jetstream_timeout" => self.jetstream_timeout = positive_secs(key, value)?,
            "stream_retention" => {
                self.stream_retention = match value {
                    "interest" => StreamRetention::Interest,
                    "limits" => StreamRetention::Limits,
                    _ => {
                        return Err(format!(
                            "stream_retention `{value}` is not interest or limits"
                        ));
                    }
                }
            }
            "stream_storage" => {
                self.stream_storage = match value {
                    "file" => StreamStorage::File,
                    "memory" => StreamStorage::Memory,
                    _ => return Err(format!("stream_storage `{value}` is not file or memory")),
                }
            }
            "stream_replicas" => self.stream_replicas = num::<usize>(key, value)?.max(1),
            "manage_streams" => self.manage_streams = flag(key, value)?,
            "stream_max_age" => self.stream_max_age = secs(key, value)?,
            "stream_max_bytes" => self.stream_max_bytes = num(key, value)?,
            "stream_max_msgs" => self.stream_max_msgs = num(key, value)?,
            "duplicate_window" => self.duplicate_window = secs(key, value)?,
            "ack_wait" => self.ack_wait = secs(key, value)?,
            "max_ack_pending" => self.max_ack_pending = num(key, value)?,
            "max_deliveries" => self.max_deliveries = num(key, value)?,
            "pull_expires" => self.pull_expires = secs(key, value)?,
            "consumer_inactive_threshold" => self.consumer_inactive_threshold = secs(key, value)?,
            "tls" | "ssl" => self.tls = flag(key, value)?,
            "tls_first" => self.tls_first = flag(key, value)?,
            "tls_ca_file" | "ssl_ca_file" => self.tls_ca_file = text(value),
            "tls_cert_file" | "ssl_cert_file" => self.tls_cert_file = text(value),
            "tls_key_file" | "ssl_key_file" => self.tls_key_file = text(value),
            "creds_file" => self.creds_file = text(value),
            "nkey_file" => self.nkey_file = text(value),
            "token_file" => self.token_file = text(value),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks one option on its own (for a configuration file's `[oslo_messaging_nats]`):
    /// known with a good value, unknown, or known with a bad value.
    ///
    /// ```
    /// use msg_core::OptionCheck;
    /// use msg_driver_nats::NatsOptions;
    /// assert_eq!(NatsOptions::check_option("ack_wait", "60"), OptionCheck::Known);
    /// assert_eq!(NatsOptions::check_option("ackwait", "60"), OptionCheck::Unknown);
    /// assert!(matches!(NatsOptions::check_option("ack_wait", "x"), OptionCheck::Invalid(_)));
    /// ```
    pub fn check_option(key: &str, value: &str) -> OptionCheck {
        match NatsOptions::default().set(key, value) {
            Ok(true) => OptionCheck::Known,
            Ok(false) => OptionCheck::Unknown,
            Err(reason) => OptionCheck::Invalid(reason),
        }
    }

    /// Whether the URL's query sets the option `key`.
    pub fn is_given(&self, key: &str) -> bool {
        self.given.contains(key)
    }

    /// The most messages a listener holds unacknowledged when its prefetch is 0.
    pub(crate) fn unlimited_prefetch(&self) -> u32 {
        if self.max_ack_pending > 0 {
            u32::try_from(self.max_ack_pending).unwrap_or(u32::MAX)
        } else {
            10_000
        }
    }

    /// The delay async-nats waits before connection attempt number `attempts` (counted over
    /// every server tried since the last connection; 1 is the first) with `servers` servers
    /// to try: none within a round through them, so a dead server costs only its refusal;
    /// before each further round, [`Self::reconnect_delay`] of the round's number.
    pub(crate) fn connect_delay(&self, attempts: usize, servers: usize) -> Duration {
        let servers = servers.max(1);
        let tried = attempts.saturating_sub(1);
        if !tried.is_multiple_of(servers) {
            return Duration::ZERO;
        }
        self.reconnect_delay((tried / servers).saturating_add(1))
    }

    /// The delay before connection attempt number `attempts` (1 is the first: no delay).
    pub(crate) fn reconnect_delay(&self, attempts: usize) -> Duration {
        let n = u32::try_from(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
        self.reconnect_wait
            .saturating_mul(n)
            .min(self.reconnect_wait_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<NatsOptions> {
        NatsOptions::from_url(&TransportUrl::parse(&format!("nats://h/{q}")).unwrap())
    }

    #[test]
    fn defaults_and_values() {
        let o = parse("").unwrap();
        assert_eq!(o, NatsOptions::default());
        let o = parse("?stream_retention=limits&stream_storage=memory&pull_expires=0.5&tls=yes")
            .unwrap();
        assert_eq!(o.stream_retention, StreamRetention::Limits);
        assert_eq!(o.stream_storage, StreamStorage::Memory);
        assert_eq!(o.pull_expires, Duration::from_millis(500));
        assert!(o.tls);
        assert!(o.is_given("stream_storage") && !o.is_given("stream_replicas"));
        assert!(!o.manage_streams);
        assert!(parse("?manage_streams=true").unwrap().manage_streams);
        let tls = NatsOptions::from_url(&TransportUrl::parse("tls://h").unwrap()).unwrap();
        assert!(tls.tls);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (q, key) in [
            ("?ack_wait=x", "ack_wait"),
            ("?manage_streams=maybe", "manage_streams"),
            ("?stream_storage=disk", "stream_storage"),
            ("?tls_cert_file=a", "tls_key_file"),
            ("?nope=1", "nope"),
            ("?ack_wait=-1", "ack_wait"),
            ("?subscription_capacity=0", "subscription_capacity"),
            ("?ping_interval=0", "ping_interval"),
            ("?ping_interval=0.0", "ping_interval"),
            ("?jetstream_timeout=0", "jetstream_timeout"),
            ("?connection_timeout=0", "connection_timeout"),
            ("?ping_interval=inf", "ping_interval"),
            ("?jetstream_timeout=NaN", "jetstream_timeout"),
            ("?subscription_capacity=-1", "subscription_capacity"),
        ] {
            let e = parse(q).unwrap_err().to_string();
            assert!(e.contains(key), "{q}: {e}");
        }
    }

    #[test]
    fn shown_urls_hide_tokens_and_passwords() {
        let url = TransportUrl::parse("nats://tok3n@h1:4222,u:pw@h2,:t2@[::1]:1?x=1").unwrap();
        let shown = display_url(&url);
        assert_eq!(shown, "nats://****@h1:4222,u:****@h2,****@[::1]:1?x=1");
    }

    #[test]
    fn reconnect_delay_grows_and_caps() {
        let o = NatsOptions::default();
        assert_eq!(o.reconnect_delay(0), Duration::ZERO);
        assert_eq!(o.reconnect_delay(1), Duration::ZERO);
        assert_eq!(o.reconnect_delay(4), Duration::from_secs(3));
        assert_eq!(o.reconnect_delay(100), Duration::from_secs(10));
    }

    #[test]
    fn a_round_through_the_servers_has_no_delay() {
        let o = NatsOptions::default();
        let three: Vec<Duration> = (1..=7).map(|a| o.connect_delay(a, 3)).collect();
        let s = Duration::from_secs;
        assert_eq!(three, [s(0), s(0), s(0), s(1), s(0), s(0), s(2)]);
        assert_eq!(o.connect_delay(0, 0), s(0));
        assert_eq!(o.connect_delay(3, 1), o.reconnect_delay(3));
        assert_eq!(o.connect_delay(usize::MAX, 2), s(10));
    }
}
