//! oslo's `[oslo_messaging_rabbit]` options, read from the URL's query by the same names.

use std::time::Duration;

use msg_core::{Error, OptionCheck, Result, TransportUrl};

/// The RabbitMQ driver's options, named and defaulted as oslo.messaging's
/// `[oslo_messaging_rabbit]` group, so an operator can paste a Python service's
/// `transport_url` (`?rabbit_qos_prefetch_count=10&amqp_durable_queues=true&ssl=true`).
///
/// ```
/// use msg_driver_amqp::RabbitOptions;
/// let url = msg_core::TransportUrl::parse("rabbit://h/?rabbit_qos_prefetch_count=10&amqp_durable_queues=true").unwrap();
/// let o = RabbitOptions::from_url(&url).unwrap();
/// assert_eq!(o.rabbit_qos_prefetch_count, Some(10));
/// assert!(o.durable_queues());
/// let bad = msg_core::TransportUrl::parse("rabbit://h/?rabbit_qos_prefetch=10").unwrap();
/// assert!(RabbitOptions::from_url(&bad).unwrap_err().to_string().contains("rabbit_qos_prefetch"));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RabbitOptions {
    /// The exchange of targets that name none (oslo's `control_exchange`).
    pub control_exchange: String,
    /// `amqp_durable_queues`: durable exchanges and queues.
    pub amqp_durable_queues: bool,
    /// `amqp_auto_delete`: auto-delete exchanges and queues.
    pub amqp_auto_delete: bool,
    /// `rabbit_quorum_queue`: quorum queues for topics and notifications.
    pub rabbit_quorum_queue: bool,
    /// `rabbit_transient_quorum_queue`: quorum queues for reply and fanout queues.
    pub rabbit_transient_quorum_queue: bool,
    /// `rabbit_quorum_delivery_limit` (0: none).
    pub rabbit_quorum_delivery_limit: u32,
    /// `rabbit_quorum_max_memory_length` (0: none).
    pub rabbit_quorum_max_memory_length: u32,
    /// `rabbit_quorum_max_memory_bytes` (0: none).
    pub rabbit_quorum_max_memory_bytes: u64,
    /// `rabbit_ha_queues`: `x-ha-policy: all` on classic queues.
    pub rabbit_ha_queues: bool,
    /// `rabbit_transient_queues_ttl` in seconds: `x-expires` of reply and fanout queues (0:
    /// they never expire).
    pub rabbit_transient_queues_ttl: u32,
    /// `rabbit_qos_prefetch_count`; when set it overrides the listener's prefetch.
    pub rabbit_qos_prefetch_count: Option<u16>,
    /// `heartbeat_timeout_threshold` in seconds (0: no heartbeat).
    pub heartbeat_timeout_threshold: u16,
    /// `rabbit_retry_interval` in seconds.
    pub rabbit_retry_interval: f64,
    /// `rabbit_retry_backoff` in seconds.
    pub rabbit_retry_backoff: f64,
    /// `rabbit_interval_max` in seconds.
    pub rabbit_interval_max: f64,
    /// `kombu_reconnect_delay` in seconds.
    pub kombu_reconnect_delay: f64,
    /// `kombu_compression`: compress what we send (`gzip` or `bz2`); received bodies are
    /// decompressed whatever this says.
    pub kombu_compression: Option<String>,
    /// `kombu_failover_strategy`: `round-robin` (default) or `shuffle`. Either way the URL's
    /// hosts are shuffled when there are several (as oslo shuffles them before kombu sees
    /// them), then taken in rotation.
    pub kombu_failover_strategy: String,
    /// `kombu_missing_consumer_retry_timeout` in seconds: how long a reply whose reply queue
    /// is missing is published again (every 0.25 s) before it is given up, logged as an
    /// error, and the queue taken for gone (later replies to it are dropped at once).
    pub kombu_missing_consumer_retry_timeout: f64,
    /// `rabbit_stream_fanout`: fanout through one stream queue per topic, `<topic>_fanout`
    /// (`x-queue-type: stream`, `x-max-age` from `rabbit_transient_queues_ttl`), shared by
    /// every server of the topic; each consumer reads it from where it joined. Needs
    /// `rabbit_qos_prefetch_count` > 0 and `rabbit_transient_quorum_queue`, as in oslo.
    pub rabbit_stream_fanout: bool,
    /// `use_queue_manager`: name reply and fanout queues `<hostname>:<processname>:<n>`,
    /// `n` the lowest number no live process of those names on this host holds, so names are
    /// unique among live processes and the same after a restart.
    pub use_queue_manager: bool,
    /// `hostname`: the host part of a queue manager's names (default: the host's name).
    pub hostname: Option<String>,
    /// `processname`: the process part of a queue manager's names (default: the program's
    /// file name).
    pub processname: Option<String>,
    /// `direct_mandatory_flag`: replies are published mandatory.
    pub direct_mandatory_flag: bool,
    /// `ssl`: TLS on (`amqps://` implies it).
    pub ssl: bool,
    /// `ssl_ca_file`: PEM CA certificates to trust.
    pub ssl_ca_file: Option<String>,
    /// `ssl_cert_file`: PEM client certificate.
    pub ssl_cert_file: Option<String>,
    /// `ssl_key_file`: PEM client key.
    pub ssl_key_file: Option<String>,
    /// `connection_name` (ours): the name RabbitMQ shows for the connection.
    pub connection_name: Option<String>,
    /// `max_redeliveries` (ours): how often a notification may be requeued before it goes
    /// to the dead-letter queue `<queue>.dead-letter` instead of spinning forever.
    pub max_redeliveries: u32,
    /// `connection_timeout` (ours) in seconds: bound on one TCP + AMQP handshake.
    pub connection_timeout: f64,
    /// `max_decompressed_bytes` (ours): the ceiling on a received body that kombu compressed;
    /// a body that decompresses past it is rejected as malformed.
    pub max_decompressed_bytes: usize,
}

impl Default for RabbitOptions {
    fn default() -> Self {
        RabbitOptions {
            control_exchange: "openstack".into(),
            amqp_durable_queues: false,
            amqp_auto_delete: false,
            rabbit_quorum_queue: false,
            rabbit_transient_quorum_queue: false,
            rabbit_quorum_delivery_limit: 0,
            rabbit_quorum_max_memory_length: 0,
            rabbit_quorum_max_memory_bytes: 0,
            rabbit_ha_queues: false,
            rabbit_transient_queues_ttl: 1800,
            rabbit_qos_prefetch_count: None,
            heartbeat_timeout_threshold: 60,
            rabbit_retry_interval: 1.0,
            rabbit_retry_backoff: 2.0,
            rabbit_interval_max: 30.0,
            kombu_reconnect_delay: 1.0,
            kombu_compression: None,
            kombu_failover_strategy: "round-robin".into(),
            kombu_missing_consumer_retry_timeout: 60.0,
            rabbit_stream_fanout: false,
            use_queue_manager: false,
            hostname: None,
            processname: None,
            direct_mandatory_flag: true,
            ssl: false,
            ssl_ca_file: None,
            ssl_cert_file: None,
            ssl_key_file: None,
            connection_name: None,
            max_redeliveries: 10,
            connection_timeout: 10.0,
            max_decompressed_bytes: msg_core::codec::DEFAULT_MAX_DECOMPRESSED_BYTES,
        }
    }
}

/// Options oslo has that change nothing here (thread models, pools, login method names), and
/// `ssl_enforce_hostname_verification`, deprecated and unread in oslo 18.3: msg always checks
/// the broker's host name against its certificate (rustls). docs/porting.md lists each with
/// what msg does instead.
const ACCEPTED_AND_IGNORED: &[&str] = &[
    "ssl_enforce_hostname_verification",
    // lapin sends heartbeats at half of heartbeat_timeout_threshold and gives a connection up
    // after twice it without a frame: there is no rate to set
    "heartbeat_rate",
    "heartbeat_in_pthread",
    "rpc_conn_pool_size",
    "conn_pool_min_size",
    "conn_pool_ttl",
    "kombu_reconnect_splay",
    "rabbit_login_method",
    "ssl_version",
    "ssl_enforce_fips_mode",
    "enable_cancel_on_failover",
];

/// The longest `hostname` a queue manager takes (a host's name is at most 64 bytes).
pub(crate) const MAX_HOSTNAME: usize = 64;
/// The longest `processname` a queue manager takes.
pub(crate) const MAX_PROCESSNAME: usize = 32;

impl RabbitOptions {
    /// Reads the options from a URL's query; an unknown key is an error naming it.
    pub fn from_url(url: &TransportUrl) -> Result<Self> {
        RabbitOptions::default().with_url(url)
    }

    /// These options with the URL's query on top (the URL wins, as oslo lets the
    /// `transport_url` override the config file); `amqps://` switches TLS on.
    ///
    /// ```
    /// use msg_driver_amqp::RabbitOptions;
    /// let mut base = RabbitOptions::default();
    /// base.amqp_durable_queues = true;
    /// base.rabbit_qos_prefetch_count = Some(5);
    /// let url = msg_core::TransportUrl::parse("amqps://h/?rabbit_qos_prefetch_count=10").unwrap();
    /// let o = base.with_url(&url).unwrap();
    /// assert!(o.amqp_durable_queues && o.ssl);
    /// assert_eq!(o.rabbit_qos_prefetch_count, Some(10));
    /// ```
    pub fn with_url(self, url: &TransportUrl) -> Result<Self> {
        let mut o = self;
        if url.scheme() == "amqps" {
            o.ssl = true;
        }
        for (key, value) in &url.options() {
            let known = o.set(key, value).map_err(|reason| Error::InvalidUrl {
                url: url.to_string(),
                reason,
            })?;
            if !known {
                return Err(Error::InvalidUrl {
                    url: url.to_string(),
                    reason: format!("unknown option `{key}` for the rabbit driver"),
                });
            }
        }
        if o.rabbit_ha_queues && o.rabbit_quorum_queue {
            return Err(Error::InvalidUrl {
                url: url.to_string(),
                reason: "rabbit_quorum_queue and rabbit_ha_queues are both on: a queue is quorum \
                         or mirrored (HA), not both"
                    .into(),
            });
        }
        o.check().map_err(|reason| Error::InvalidUrl {
            url: url.to_string(),
            reason,
        })?;
        if let Some(c) = &o.kombu_compression
            && !matches!(c.as_str(), "gzip" | "bz2")
        {
            return Err(Error::InvalidUrl {
                url: url.to_string(),
                reason: format!("kombu_compression `{c}` is not one of gzip (zlib), bz2 (bzip2)"),
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
        /// Seconds: a finite number from 0 to a day.
        fn seconds(key: &str, v: &str) -> std::result::Result<f64, String> {
            let s: f64 = num(key, v)?;
            if !(0.0..=86_400.0).contains(&s) {
                return Err(format!(
                    "option `{key}` wants seconds from 0 to 86400, not `{v}`"
                ));
            }
            Ok(s)
        }
        fn text(v: &str) -> Option<String> {
            (!v.is_empty()).then(|| v.to_string())
        }
        match key {
            "control_exchange" => self.control_exchange = value.to_string(),
            "amqp_durable_queues" => self.amqp_durable_queues = flag(key, value)?,
            "amqp_auto_delete" => self.amqp_auto_delete = flag(key, value)?,
            "rabbit_quorum_queue" => self.rabbit_quorum_queue = flag(key, value)?,
            "rabbit_transient_quorum_queue" => {
                self.rabbit_transient_quorum_queue = flag(key, value)?
            }
            "rabbit_quorum_delivery_limit" => self.rabbit_quorum_delivery_limit = num(key, value)?,
            "rabbit_quorum_max_memory_length" => {
                self.rabbit_quorum_max_memory_length = num(key, value)?
            }
            "rabbit_quorum_max_memory_bytes" => {
                self.rabbit_quorum_max_memory_bytes = num(key, value)?
            }
            "rabbit_ha_queues" => self.rabbit_ha_queues = flag(key, value)?,
            "rabbit_transient_queues_ttl" => self.rabbit_transient_queues_ttl = num(key, value)?,
            "rabbit_qos_prefetch_count" => self.rabbit_qos_prefetch_count = Some(num(key, value)?),
            "heartbeat_timeout_threshold" => self.heartbeat_timeout_threshold = num(key, value)?,
            "rabbit_retry_interval" => self.rabbit_retry_interval = seconds(key, value)?,
            "rabbit_retry_backoff" => self.rabbit_retry_backoff = seconds(key, value)?,
            "rabbit_interval_max" => self.rabbit_interval_max = seconds(key, value)?,
            "kombu_reconnect_delay" => self.kombu_reconnect_delay = seconds(key, value)?,
            // kombu's names for the two (Python's `bz2` from oslo's help text fails in
            // kombu, which knows `bzip2`): kept as our `gzip` / `bz2`
            "kombu_compression" => {
                self.kombu_compression = text(value).map(|c| match c.as_str() {
                    "zlib" | "application/x-gzip" => "gzip".to_string(),
                    "bzip2" | "bzip" | "application/x-bz2" => "bz2".to_string(),
                    _ => c,
                })
            }
            "kombu_failover_strategy" => match value {
                "round-robin" | "shuffle" => self.kombu_failover_strategy = value.to_string(),
                _ => {
                    return Err(format!(
                        "kombu_failover_strategy `{value}` is not round-robin or shuffle"
                    ));
                }
            },
            // oslo's deprecated name for it
            "kombu_missing_consumer_retry_timeout" | "kombu_reconnect_timeout" => {
                self.kombu_missing_consumer_retry_timeout = seconds(key, value)?
            }
            "rabbit_stream_fanout" => self.rabbit_stream_fanout = flag(key, value)?,
            "use_queue_manager" => self.use_queue_manager = flag(key, value)?,
            "hostname" => self.hostname = Some(value.to_string()),
            "processname" => self.processname = Some(value.to_string()),
            "direct_mandatory_flag" => self.direct_mandatory_flag = flag(key, value)?,
            "ssl" => self.ssl = flag(key, value)?,
            "ssl_ca_file" => self.ssl_ca_file = text(value),
            "ssl_cert_file" => self.ssl_cert_file = text(value),
            "ssl_key_file" => self.ssl_key_file = text(value),
            "connection_name" => self.connection_name = text(value),
            "max_redeliveries" => self.max_redeliveries = num(key, value)?,
            "max_decompressed_bytes" => self.max_decompressed_bytes = num(key, value)?,
            "connection_timeout" => self.connection_timeout = seconds(key, value)?,
            k if ACCEPTED_AND_IGNORED.contains(&k) => {}
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks one option on its own (for a configuration file's `[oslo_messaging_rabbit]`):
    /// known with a good value, unknown, or known with a bad value.
    ///
    /// ```
    /// use msg_core::OptionCheck;
    /// use msg_driver_amqp::RabbitOptions;
    /// assert_eq!(RabbitOptions::check_option("ssl", "true"), OptionCheck::Known);
    /// assert_eq!(RabbitOptions::check_option("rabbit_pasword", "x"), OptionCheck::Unknown);
    /// assert!(matches!(RabbitOptions::check_option("ssl", "maybe"), OptionCheck::Invalid(_)));
    /// ```
    pub fn check_option(key: &str, value: &str) -> OptionCheck {
        match RabbitOptions::default().set(key, value) {
            Ok(true) => OptionCheck::Known,
            Ok(false) => OptionCheck::Unknown,
            Err(reason) => OptionCheck::Invalid(reason),
        }
    }

    /// What no single option shows: options that need others, names that can't be used.
    fn check(&self) -> std::result::Result<(), String> {
        if self.rabbit_stream_fanout && self.rabbit_qos_prefetch_count.unwrap_or(0) == 0 {
            return Err(
                "rabbit_stream_fanout needs rabbit_qos_prefetch_count set to a value \
                        greater than 0 (a stream is consumed with a prefetch)"
                    .into(),
            );
        }
        if self.rabbit_stream_fanout && !self.rabbit_transient_quorum_queue {
            return Err("rabbit_stream_fanout needs rabbit_transient_quorum_queue=true".into());
        }
        if let Some(h) = &self.hostname {
            queue_manager_part("hostname", h, MAX_HOSTNAME)?;
        }
        if let Some(p) = &self.processname {
            queue_manager_part("processname", p, MAX_PROCESSNAME)?;
        }
        Ok(())
    }

    /// The host part of a queue manager's names: `hostname`, else the host's name.
    ///
    /// ```
    /// let url = msg_core::TransportUrl::parse(
    ///     "rabbit://h/?use_queue_manager=true&hostname=node1&processname=nova-api",
    /// )
    /// .unwrap();
    /// let o = msg_driver_amqp::RabbitOptions::from_url(&url).unwrap();
    /// assert_eq!(o.queue_manager_hostname(), "node1");
    /// assert_eq!(o.queue_manager_processname(), "nova-api");
    /// // without them: this host's name and this program's file name
    /// let o = msg_driver_amqp::RabbitOptions::default();
    /// assert!(!o.queue_manager_hostname().is_empty());
    /// assert!(!o.queue_manager_processname().contains('/'));
    /// ```
    pub fn queue_manager_hostname(&self) -> String {
        match &self.hostname {
            Some(h) => h.clone(),
            None => default_part(
                hostname::get()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                "localhost",
                MAX_HOSTNAME,
            ),
        }
    }

    /// The process part of a queue manager's names: `processname`, else the program's file
    /// name (oslo: the base name of `sys.argv[0]`).
    pub fn queue_manager_processname(&self) -> String {
        match &self.processname {
            Some(p) => p.clone(),
            None => default_part(
                std::env::args_os()
                    .next()
                    .and_then(|a| {
                        std::path::Path::new(&a)
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                    })
                    .unwrap_or_default(),
                "msg",
                MAX_PROCESSNAME,
            ),
        }
    }

    /// Durable queues and exchanges (D in WIRE.md): `amqp_durable_queues` or quorum queues.
    pub fn durable_queues(&self) -> bool {
        self.amqp_durable_queues || self.rabbit_quorum_queue
    }

    /// The transient-queue TTL as `x-expires` milliseconds.
    pub fn transient_ttl_ms(&self) -> i64 {
        i64::from(self.rabbit_transient_queues_ttl) * 1000
    }

    /// The reconnect delay after `attempt` failures (oslo: interval + attempt x backoff,
    /// capped).
    pub fn reconnect_delay(&self, attempt: u32) -> Duration {
        let secs = (self.rabbit_retry_interval + f64::from(attempt) * self.rabbit_retry_backoff)
            .min(self.rabbit_interval_max)
            .max(0.05);
        seconds_or(secs, Duration::from_secs(1))
    }

    /// How long a reply to a missing reply queue is published again.
    pub fn missing_consumer_retry_timeout(&self) -> Duration {
        seconds_or(
            self.kombu_missing_consumer_retry_timeout.max(0.0),
            Duration::from_secs(60),
        )
    }

    /// The bound on one TCP + AMQP handshake (at least 100 ms).
    pub fn connect_timeout(&self) -> Duration {
        seconds_or(self.connection_timeout.max(0.1), Duration::from_secs(10))
    }
}

/// A `hostname` or `processname` as a queue manager takes it: 1 to `max` bytes, no `/` nor
/// NUL (it names a file too).
fn queue_manager_part(key: &str, v: &str, max: usize) -> std::result::Result<(), String> {
    if v.is_empty() || v.len() > max || v.contains(['/', '\0']) {
        return Err(format!(
            "option `{key}` wants 1 to {max} bytes without `/`, not `{}`",
            v.chars().take(80).collect::<String>()
        ));
    }
    Ok(())
}

/// A default name part made usable: `/` and NUL replaced, cut to `max` bytes, `fallback`
/// when empty.
fn default_part(v: String, fallback: &str, max: usize) -> String {
    let mut v: String = v
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    while v.len() > max {
        v.pop();
    }
    if v.is_empty() {
        fallback.to_string()
    } else {
        v
    }
}

/// Seconds as a duration, or `fallback` for a value no duration holds (the fields are public:
/// a caller may have set anything).
pub(crate) fn seconds_or(secs: f64, fallback: Duration) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osloish_options_that_change_nothing_are_accepted() {
        for key in ACCEPTED_AND_IGNORED {
            let url: TransportUrl = format!("rabbit://h/?{key}=true").parse().unwrap();
            assert!(RabbitOptions::from_url(&url).is_ok(), "{key}");
        }
        let url: TransportUrl = "rabbit://h/?ssl_enforce_hostname_verification=false"
            .parse()
            .unwrap();
        assert!(RabbitOptions::from_url(&url).is_ok());
        let url: TransportUrl = "rabbit://h/?no_such_option=1".parse().unwrap();
        assert!(RabbitOptions::from_url(&url).is_err());
    }

    #[test]
    fn a_repeated_option_is_read_as_oslo_joins_it() {
        // oslo joins a repeated key's values with `,`: `1,2` is no number of seconds
        let url: TransportUrl =
            "rabbit://h/?heartbeat_timeout_threshold=1&heartbeat_timeout_threshold=2"
                .parse()
                .unwrap();
        let err = RabbitOptions::from_url(&url).unwrap_err().to_string();
        assert!(err.contains("heartbeat_timeout_threshold"), "{err}");
        let url: TransportUrl = "rabbit://h/?hostname=a&hostname=b".parse().unwrap();
        assert_eq!(
            RabbitOptions::from_url(&url).ok().and_then(|o| o.hostname),
            Some("a,b".to_string())
        );
    }
}
