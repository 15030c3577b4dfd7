//! The driver's options, read from the transport URL: where Redis is, how to log in, which
//! database, and the query options.

use std::path::PathBuf;
use std::time::Duration;

use msg_core::{Error, Result, TransportUrl};

/// The port Redis listens on when the URL gives none.
pub const DEFAULT_PORT: u16 = 6379;
/// The exchange used when a target names none, as oslo's `control_exchange`.
pub const DEFAULT_EXCHANGE: &str = "openstack";

/// Everything the driver reads from its URL.
///
/// `redis://[user:password@]host[:port][/db][?option=value&...]`, or `rediss://` for TLS.
///
/// ```
/// use msg_core::TransportUrl;
/// use msg_driver_redis::Options;
/// let url = TransportUrl::parse("redis://app:s3cret@127.0.0.1/2?max_deliveries=5").unwrap();
/// let o = Options::from_url(&url).unwrap();
/// assert_eq!((o.port, o.db, o.max_deliveries), (6379, 2, 5));
/// assert!(!o.tls);
/// ```
#[derive(Clone, PartialEq)]
pub struct Options {
    /// The host name or address.
    pub host: String,
    /// The port (6379 by default).
    pub port: u16,
    /// TLS (`rediss://`).
    pub tls: bool,
    /// The ACL user name (`AUTH user password`), if any.
    pub username: Option<String>,
    /// The password (`AUTH [user] password`), if any.
    pub password: Option<String>,
    /// The database index, from the URL's path (`/0` by default).
    pub db: u32,
    /// `prefix`: the first part of every key the driver makes (`msg`).
    pub prefix: String,
    /// `control_exchange`: the exchange of targets that name none (`openstack`).
    pub control_exchange: String,
    /// `claim_idle` (seconds): how long a message taken by a listener may go without a sign
    /// of life before another listener of its group takes it over (30 s). Live listeners
    /// renew what they hold, so this bounds crash recovery, not handling time.
    pub claim_idle: Duration,
    /// `max_deliveries`: after this many deliveries a message goes to the dead-letter stream
    /// instead of back to a listener (`0`, the default: never).
    pub max_deliveries: u32,
    /// `reply_ttl` (seconds): how long a reply waits in a caller's reply list that nobody
    /// reads any more (60 s).
    pub reply_ttl: Duration,
    /// `fanout_max_len`: about how many fanout casts a topic's fanout stream keeps (1000).
    pub fanout_max_len: u32,
    /// `dead_letter_max_len`: about how many messages a dead-letter stream keeps (10000).
    pub dead_letter_max_len: u32,
    /// `ssl_ca_file`: the CA certificates (PEM) to trust instead of the system's.
    pub ssl_ca_file: Option<PathBuf>,
    /// `ssl_cert_file`: a client certificate (PEM), with `ssl_key_file`.
    pub ssl_cert_file: Option<PathBuf>,
    /// `ssl_key_file`: the client certificate's key (PEM).
    pub ssl_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "****"))
            .field("db", &self.db)
            .field("prefix", &self.prefix)
            .field("control_exchange", &self.control_exchange)
            .field("claim_idle", &self.claim_idle)
            .field("max_deliveries", &self.max_deliveries)
            .field("reply_ttl", &self.reply_ttl)
            .field("fanout_max_len", &self.fanout_max_len)
            .field("dead_letter_max_len", &self.dead_letter_max_len)
            .field("ssl_ca_file", &self.ssl_ca_file)
            .field("ssl_cert_file", &self.ssl_cert_file)
            .field("ssl_key_file", &self.ssl_key_file)
            .finish()
    }
}

const KNOWN: &str = "prefix, control_exchange, claim_idle, max_deliveries, reply_ttl, \
                     fanout_max_len, dead_letter_max_len, ssl_ca_file, ssl_cert_file, ssl_key_file";

impl Options {
    /// Reads the options of a `redis://` or `rediss://` URL. Redis Cluster and Sentinel are
    /// not supported: a URL with more than one host is refused.
    pub fn from_url(url: &TransportUrl) -> Result<Self> {
        let bad = |reason: String| Error::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        let tls = match url.scheme() {
            "redis" => false,
            "rediss" => true,
            other => return Err(bad(format!("scheme `{other}` is not redis or rediss"))),
        };
        let host = match url.hosts() {
            [] => return Err(bad("no host: redis://HOST[:PORT]/".into())),
            [h] => h,
            _ => {
                return Err(bad(
                    "more than one host: Redis Cluster and Sentinel are not supported".into(),
                ));
            }
        };
        let db = match url.virtual_host() {
            None => 0,
            Some(path) => path.trim_matches('/').parse::<u32>().map_err(|_| {
                bad(format!(
                    "the path `/{path}` is not a database index (`/0`, `/1`, ...)"
                ))
            })?,
        };
        let mut o = Options {
            host: if host.hostname.is_empty() {
                "127.0.0.1".into()
            } else {
                host.hostname.clone()
            },
            port: host.port_or(DEFAULT_PORT),
            tls,
            username: host.username.clone().filter(|u| !u.is_empty()),
            password: host.password.clone(),
            db,
            prefix: "msg".into(),
            control_exchange: DEFAULT_EXCHANGE.into(),
            claim_idle: Duration::from_secs(30),
            max_deliveries: 0,
            reply_ttl: Duration::from_secs(60),
            fanout_max_len: 1000,
            dead_letter_max_len: 10_000,
            ssl_ca_file: None,
            ssl_cert_file: None,
            ssl_key_file: None,
        };
        for (key, value) in &url.options() {
            o.set(key, value).map_err(bad)?;
        }
        if o.ssl_cert_file.is_some() != o.ssl_key_file.is_some() {
            return Err(bad(
                "ssl_cert_file and ssl_key_file go together (a client certificate and its key)"
                    .into(),
            ));
        }
        if !o.tls && (o.ssl_ca_file.is_some() || o.ssl_cert_file.is_some()) {
            return Err(bad("ssl_* options need rediss://".into()));
        }
        Ok(o)
    }

    fn set(&mut self, key: &str, value: &str) -> std::result::Result<(), String> {
        match key {
            "prefix" => {
                if value.is_empty() {
                    return Err("option `prefix` is empty".into());
                }
                self.prefix = value.to_string();
            }
            "control_exchange" => {
                if value.is_empty() {
                    return Err("option `control_exchange` is empty".into());
                }
                self.control_exchange = value.to_string();
            }
            "claim_idle" => self.claim_idle = seconds(key, value, 1)?,
            "max_deliveries" => self.max_deliveries = number(key, value)?,
            "reply_ttl" => self.reply_ttl = seconds(key, value, 1)?,
            "fanout_max_len" => self.fanout_max_len = number(key, value)?.max(1),
            "dead_letter_max_len" => self.dead_letter_max_len = number(key, value)?.max(1),
            "ssl_ca_file" => self.ssl_ca_file = Some(PathBuf::from(value)),
            "ssl_cert_file" => self.ssl_cert_file = Some(PathBuf::from(value)),
            "ssl_key_file" => self.ssl_key_file = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown option `{key}` (known: {KNOWN})")),
        }
        Ok(())
    }
}

fn number(key: &str, value: &str) -> std::result::Result<u32, String> {
    value
        .parse::<u32>()
        .map_err(|_| format!("option `{key}` wants a whole number, not `{value}`"))
}

/// Whole seconds, at least `min`, at most a day.
fn seconds(key: &str, value: &str, min: u64) -> std::result::Result<Duration, String> {
    let s = value
        .parse::<u64>()
        .map_err(|_| format!("option `{key}` wants whole seconds, not `{value}`"))?;
    if !(min..=86_400).contains(&s) {
        return Err(format!(
            "option `{key}` is {s} s; it must be from {min} s to a day"
        ));
    }
    Ok(Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Options> {
        Options::from_url(&TransportUrl::parse(s)?)
    }

    #[test]
    fn auth_tls_and_database_come_from_the_url() {
        let o = parse("rediss://app:p%40ss@cache.example:6380/3").unwrap();
        assert!(o.tls);
        assert_eq!(o.host, "cache.example");
        assert_eq!(o.port, 6380);
        assert_eq!(o.username.as_deref(), Some("app"));
        assert_eq!(o.password.as_deref(), Some("p@ss"));
        assert_eq!(o.db, 3);
        assert!(!format!("{o:?}").contains("p@ss"));
        let o = parse("redis://:only-password@h/").unwrap();
        assert_eq!(
            (o.username, o.password.as_deref()),
            (None, Some("only-password"))
        );
        assert_eq!(o.db, 0);
    }

    #[test]
    fn bad_urls_name_what_is_wrong() {
        let e = parse("redis://h/zero").unwrap_err().to_string();
        assert!(e.contains("database index"), "{e}");
        let e = parse("redis://h1,h2/").unwrap_err().to_string();
        assert!(e.contains("Cluster"), "{e}");
        let e = parse("redis://h/?colour=red").unwrap_err().to_string();
        assert!(e.contains("unknown option `colour`"), "{e}");
        let e = parse("redis://h/?claim_idle=0").unwrap_err().to_string();
        assert!(e.contains("claim_idle"), "{e}");
        let e = parse("redis://h/?ssl_ca_file=/x").unwrap_err().to_string();
        assert!(e.contains("rediss://"), "{e}");
        let e = parse("redis://u:secret@h/?max_deliveries=-1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_deliveries") && !e.contains("secret"), "{e}");
    }
}
