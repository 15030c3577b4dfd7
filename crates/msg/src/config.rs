//! oslo.config files: the options msg reads from a Python service's configuration
//! ([`Config`]), and the files themselves ([`ConfigFiles`]), read by oslo.config's rules.

use std::fmt;
use std::time::Duration;

use msg_client::{Notifier, RpcClient};
pub use msg_core::config::{ConfigError, ConfigFiles, ConfigValue, Origin};
use msg_core::{DriverRegistry, OptionCheck, Result, Retry, Target, Transport, TransportUrl};
use msg_server::{Executor, RpcServer, RpcServerBuilder};

/// The section of the notification options.
const NOTIFICATIONS: &str = "oslo_messaging_notifications";
/// The options of `[oslo_messaging_notifications]` msg knows (oslo 18.3's).
const NOTIFICATION_OPTIONS: &[&str] = &[
    "driver",
    "transport_url",
    "topics",
    "retry",
    "routing_config",
];
/// oslo's `transport_url` when no file sets one.
const DEFAULT_TRANSPORT_URL: &str = "rabbit://";

/// What msg reads from the oslo.config files of a Python OpenStack service, so that a Rust
/// service pointed at a copy of them connects to the same broker with the same exchange,
/// timeouts and notification drivers. With oslo's defaults where a file says nothing (no
/// notification `driver`: nothing is sent; `retry` -1: a notification is retried forever).
///
/// - `[DEFAULT]`: `transport_url` (else `rabbit://`), `control_exchange`,
///   `rpc_response_timeout` (60), `executor_thread_pool_size` (64, or its old name
///   `rpc_thread_pool_size`), `rpc_ping_enabled` (false);
/// - the section of the URL's driver (`[oslo_messaging_rabbit]` for `rabbit://`,
///   `[oslo_messaging_nats]` for `nats://`, `[oslo_messaging_<name>]` for a driver named
///   `<name>`): every option the driver takes in a URL's query; the URL's own query wins;
/// - `[oslo_messaging_notifications]`: `driver` (several), `transport_url` (else
///   `[DEFAULT]`'s), `topics` (`notifications`), `retry` (-1), `routing_config`.
///
/// An option of these sections that msg does not know is logged as a warning; a bad value is
/// an error naming the file and line (or environment variable), the section and the key.
/// Other sections are for the application: [`files`](Self::files) reads them by the same
/// rules. `docs/operations.md` lists every key.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use msg::{Config, Context, Target};
/// use msg::config::ConfigFiles;
/// let files = ConfigFiles::empty().text("my.conf", "\
/// [DEFAULT]
/// transport_url = memory://config-doc
/// control_exchange = nova
/// rpc_response_timeout = 30
/// [oslo_messaging_notifications]
/// driver = messagingv2
/// topics = notifications, audit
/// ")?;
/// let config = Config::load(files)?;
/// assert_eq!(config.rpc_response_timeout(), std::time::Duration::from_secs(30));
/// let transport = config.transport().await?;
/// assert_eq!(transport.url().query_value("control_exchange"), Some("nova"));
/// let client = config.rpc_client(&transport, Target::topic("compute"));
/// let notifier = config.notifier().await?.publisher_id("compute.host1");
/// assert!(notifier.is_enabled());
/// notifier.info(&Context::new(), "compute.instance.create.end", serde_json::json!({})).await?;
/// # let _ = client;
/// # Ok::<(), msg::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Config {
    files: ConfigFiles,
    registry: DriverRegistry,
    transport_url: TransportUrl,
    rpc_response_timeout: Duration,
    executor_thread_pool_size: usize,
    rpc_ping_enabled: bool,
    notification_transport_url: TransportUrl,
    notification_drivers: Vec<String>,
    notification_topics: Vec<String>,
    notification_retry: Retry,
}

impl Config {
    /// Reads msg's options from the files, for the drivers of this build
    /// ([`builtin_registry`](crate::builtin_registry)).
    pub fn load(files: ConfigFiles) -> Result<Config> {
        Config::load_with(files, crate::builtin_registry())
    }

    /// Reads msg's options from the files, for the drivers of `registry`.
    pub fn load_with(files: ConfigFiles, registry: DriverRegistry) -> Result<Config> {
        let control_exchange = match files.get("DEFAULT", "control_exchange")? {
            Some(v) if v.as_str().is_empty() => return Err(v.invalid("can't be empty").into()),
            other => other,
        };
        let rpc_url = files.get("DEFAULT", "transport_url")?;
        let transport_url = driver_url(
            &files,
            &registry,
            rpc_url.as_ref(),
            control_exchange.as_ref(),
            true,
        )?;
        let notify_url = files.get(NOTIFICATIONS, "transport_url")?;
        let notification_transport_url = match notify_url {
            Some(v) => {
                let same_driver = TransportUrl::parse(v.as_str())
                    .ok()
                    .is_some_and(|u| same_factory(&registry, u.scheme(), transport_url.scheme()));
                driver_url(
                    &files,
                    &registry,
                    Some(&v),
                    control_exchange.as_ref(),
                    !same_driver,
                )?
            }
            None => transport_url.clone(),
        };
        let rpc_response_timeout = match files.get("DEFAULT", "rpc_response_timeout")? {
            Some(v) => match v.to_int::<u32>()? {
                0 => return Err(v.invalid("wants seconds above 0").into()),
                s => Duration::from_secs(u64::from(s)),
            },
            None => Duration::from_secs(60),
        };
        let pool = match files.get("DEFAULT", "executor_thread_pool_size")? {
            Some(v) => Some(v),
            None => files.get("DEFAULT", "rpc_thread_pool_size")?,
        };
        let executor_thread_pool_size = match pool {
            Some(v) => match v.to_int::<usize>()? {
                0 => return Err(v.invalid("wants at least 1").into()),
                n => n,
            },
            None => 64,
        };
        let rpc_ping_enabled = match files.get("DEFAULT", "rpc_ping_enabled")? {
            Some(v) => v.to_bool()?,
            None => false,
        };
        for (key, origin) in files.keys(NOTIFICATIONS) {
            if !NOTIFICATION_OPTIONS.contains(&key.as_str()) {
                tracing::warn!(%origin, "[{NOTIFICATIONS}] {key}: msg has no such option; ignored");
            }
        }
        let routing_config = files.get(NOTIFICATIONS, "routing_config")?;
        let notification_drivers = files
            .get_multi(NOTIFICATIONS, "driver")?
            .iter()
            .map(|v| notify_driver_name(v, routing_config.as_ref()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let notification_topics = match files.get(NOTIFICATIONS, "topics")? {
            Some(v) => v.to_list(),
            None => vec!["notifications".to_string()],
        };
        let notification_retry = match files.get(NOTIFICATIONS, "retry")? {
            Some(v) => Retry::from_oslo(Some(v.to_int::<i64>()?)),
            None => Retry::Forever,
        };
        Ok(Config {
            files,
            registry,
            transport_url,
            rpc_response_timeout,
            executor_thread_pool_size,
            rpc_ping_enabled,
            notification_transport_url,
            notification_drivers,
            notification_topics,
            notification_retry,
        })
    }

    /// The files read, for the application's own sections (and other parts of msg that
    /// read sections of their own).
    pub fn files(&self) -> &ConfigFiles {
        &self.files
    }

    /// The files' `[oslo_messaging_tracing]` group ([`TracingOptions::from_files`]), for
    /// `msg::otel` (the `otel` feature).
    pub fn tracing_options(&self) -> Result<crate::TracingOptions> {
        crate::TracingOptions::from_files(&self.files)
    }

    /// The RPC transport's URL: `[DEFAULT] transport_url` with the driver section's options
    /// and `control_exchange` added to its query where it does not set them itself. Its
    /// `Display` hides passwords.
    pub fn transport_url(&self) -> &TransportUrl {
        &self.transport_url
    }

    /// The notifications' transport URL: `[oslo_messaging_notifications] transport_url`, else
    /// the RPC transport's.
    pub fn notification_transport_url(&self) -> &TransportUrl {
        &self.notification_transport_url
    }

    /// Another transport URL (given on a command line, say) with the files' options for its
    /// driver and `control_exchange` under its query, as [`transport_url`](Self::transport_url)
    /// has them.
    ///
    /// ```
    /// use msg::Config;
    /// use msg::config::ConfigFiles;
    /// let files = ConfigFiles::empty().text("a.conf", "[DEFAULT]\ncontrol_exchange = nova\n")?;
    /// let config = Config::load(files)?;
    /// let url = config.url_with_files("memory://elsewhere")?;
    /// assert_eq!(url.query_value("control_exchange"), Some("nova"));
    /// # Ok::<(), msg::Error>(())
    /// ```
    pub fn url_with_files(&self, url: &str) -> Result<TransportUrl> {
        let control_exchange = self.files.get("DEFAULT", "control_exchange")?;
        let url = TransportUrl::parse(url)?;
        // the section of the files' own URL was checked (and warned about) when loading
        let warn = !same_factory(&self.registry, url.scheme(), self.transport_url.scheme());
        with_files(
            &self.files,
            &self.registry,
            url,
            control_exchange.as_ref(),
            warn,
        )
    }

    /// Opens the RPC transport, with `rpc_response_timeout` as the timeout of the clients
    /// made on it ([`Transport::rpc_response_timeout`]).
    pub async fn transport(&self) -> Result<Transport> {
        let transport = self.registry.open_url(self.transport_url.clone()).await?;
        Ok(transport.with_rpc_response_timeout(self.rpc_response_timeout))
    }

    /// Opens the notifications' transport.
    pub async fn notification_transport(&self) -> Result<Transport> {
        let transport = self
            .registry
            .open_url(self.notification_transport_url.clone())
            .await?;
        Ok(transport.with_rpc_response_timeout(self.rpc_response_timeout))
    }

    /// `rpc_response_timeout`: how long a call waits for its reply.
    pub fn rpc_response_timeout(&self) -> Duration {
        self.rpc_response_timeout
    }

    /// `executor_thread_pool_size` as an executor: that many handlers at once.
    pub fn executor(&self) -> Executor {
        Executor::Pool(self.executor_thread_pool_size)
    }

    /// The notify drivers, by oslo's names (`routing` as `routing:<routing_config>`).
    pub fn notification_drivers(&self) -> &[String] {
        &self.notification_drivers
    }

    /// The notification topics.
    pub fn notification_topics(&self) -> &[String] {
        &self.notification_topics
    }

    /// How often a notification is sent again (`retry`; -1: forever).
    pub fn notification_retry(&self) -> Retry {
        self.notification_retry
    }

    /// An RPC client with `rpc_response_timeout` (whatever transport it is given).
    pub fn rpc_client(&self, transport: &Transport, target: Target) -> RpcClient {
        RpcClient::new(transport.clone(), target).timeout(self.rpc_response_timeout)
    }

    /// An RPC server builder with the `executor_thread_pool_size` executor, answering
    /// oslo's `oslo_rpc_server_ping` when `rpc_ping_enabled` is set.
    pub fn rpc_server(&self, transport: &Transport, target: Target) -> RpcServerBuilder {
        RpcServer::builder(transport.clone(), target)
            .executor(self.executor())
            .ping(self.rpc_ping_enabled)
    }

    /// A notifier with the configured drivers, topics and retry, opening the notifications'
    /// transport when a driver sends through one (`messaging`, `messagingv2`, `routing`).
    /// No driver: a notifier that sends nothing, as oslo's.
    pub async fn notifier(&self) -> Result<Notifier> {
        let needs_transport = self
            .notification_drivers
            .iter()
            .any(|d| d.starts_with("messaging") || d.starts_with("routing:"));
        let notifier = if needs_transport {
            Notifier::new(self.notification_transport().await?)
        } else {
            Notifier::without_transport()
        };
        self.configure(notifier)
    }

    /// oslo's `PublishErrorsHandler` for this service: a `tracing` layer that sends each
    /// ERROR event as an `error_notification` through [`notifier`](Self::notifier) (nothing
    /// when the drivers include `log`, or when there are none). Made inside a Tokio runtime.
    pub async fn publish_errors_layer(&self) -> Result<msg_client::NotificationLayer> {
        msg_client::NotificationLayer::publish_errors(self.notifier().await?)
    }

    /// A notifier on `transport` with the configured drivers, topics and retry.
    pub fn notifier_on(&self, transport: &Transport) -> Result<Notifier> {
        self.configure(Notifier::new(transport.clone()))
    }

    fn configure(&self, notifier: Notifier) -> Result<Notifier> {
        Ok(notifier
            .driver_names(&self.notification_drivers)?
            .topics(self.notification_topics.iter().cloned())
            .retry(self.notification_retry))
    }
}

/// Shows what was read, never a password.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("files", &self.files)
            .field("transport_url", &self.transport_url)
            .field("rpc_response_timeout", &self.rpc_response_timeout)
            .field("executor_thread_pool_size", &self.executor_thread_pool_size)
            .field("rpc_ping_enabled", &self.rpc_ping_enabled)
            .field(
                "notification_transport_url",
                &self.notification_transport_url,
            )
            .field("notification_drivers", &self.notification_drivers)
            .field("notification_topics", &self.notification_topics)
            .field("notification_retry", &self.notification_retry)
            .finish()
    }
}

/// The section of a driver's options: oslo's `oslo_messaging_rabbit` for the RabbitMQ
/// driver, `oslo_messaging_<name>` for any other.
fn driver_section(driver_name: &str) -> String {
    match driver_name {
        "amqp" | "rabbit" => "oslo_messaging_rabbit".to_string(),
        other => format!("oslo_messaging_{other}"),
    }
}

/// A transport URL as written in a file (else oslo's default), with its driver section's
/// options and `control_exchange` under its query.
fn driver_url(
    files: &ConfigFiles,
    registry: &DriverRegistry,
    url: Option<&ConfigValue>,
    control_exchange: Option<&ConfigValue>,
    warn_unknown: bool,
) -> Result<TransportUrl> {
    let parsed = match url {
        Some(v) => TransportUrl::parse(v.as_str()).map_err(|e| v.invalid(e.to_string()))?,
        None => TransportUrl::parse(DEFAULT_TRANSPORT_URL)?,
    };
    with_files(files, registry, parsed, control_exchange, warn_unknown)
}

/// Whether two schemes are served by the same driver (so by the same section).
fn same_factory(registry: &DriverRegistry, a: &str, b: &str) -> bool {
    match (registry.lookup(a), registry.lookup(b)) {
        (Some(x), Some(y)) => x.name() == y.name(),
        _ => false,
    }
}

/// `url` with its driver section's options (each checked by the driver, a bad one named
/// where it was written) and `control_exchange` under its own query.
fn with_files(
    files: &ConfigFiles,
    registry: &DriverRegistry,
    url: TransportUrl,
    control_exchange: Option<&ConfigValue>,
    warn_unknown: bool,
) -> Result<TransportUrl> {
    // a scheme this build lacks fails when the transport is opened, with its hint
    let Some(factory) = registry.lookup(url.scheme()) else {
        return Ok(url);
    };
    let section = driver_section(factory.name());
    let mut defaults: Vec<(String, String)> = Vec::new();
    if let Some(ex) = control_exchange {
        match factory.check_option("control_exchange", ex.as_str()) {
            OptionCheck::Known => defaults.push(("control_exchange".into(), ex.as_str().into())),
            OptionCheck::Unknown => {}
            OptionCheck::Invalid(reason) => return Err(ex.invalid(reason).into()),
        }
    }
    for (key, origin) in files.keys(&section) {
        let Some(value) = files.get(&section, &key)? else {
            continue;
        };
        match factory.check_option(&key, value.as_str()) {
            OptionCheck::Known => defaults.push((key, value.as_str().to_string())),
            OptionCheck::Unknown if warn_unknown => tracing::warn!(
                %origin,
                "[{section}] {key}: the {} driver has no such option; ignored",
                factory.name()
            ),
            OptionCheck::Unknown => {}
            OptionCheck::Invalid(reason) => return Err(value.invalid(reason).into()),
        }
    }
    Ok(url.with_query_defaults(defaults))
}

/// A `driver` value as [`Notifier::driver_names`] takes it.
fn notify_driver_name(
    v: &ConfigValue,
    routing_config: Option<&ConfigValue>,
) -> std::result::Result<String, ConfigError> {
    match v.as_str() {
        "messagingv2" | "messaging" | "log" | "noop" => Ok(v.as_str().to_string()),
        "routing" => match routing_config {
            Some(r) if !r.as_str().is_empty() => Ok(format!("routing:{}", r.as_str())),
            _ => Err(
                v.invalid("the routing driver needs [oslo_messaging_notifications] routing_config")
            ),
        },
        "test" => Err(v.invalid(
            "the test driver captures in memory for a program's own tests \
             (msg::notify::TestNotifications); it can't be chosen in a file",
        )),
        other => Err(v.invalid(format!(
            "unknown notification driver `{other}` (known: messagingv2, messaging, log, \
             noop, routing)"
        ))),
    }
}
