//! Driver factories, the additive registry, and the transport handle.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{Capabilities, Driver, Error, Result, TransportUrl};

/// Makes drivers for the URL schemes it serves. A third-party crate implements this and the
/// application registers it: nothing in msg needs to know it exists.
#[async_trait]
pub trait DriverFactory: Send + Sync + fmt::Debug {
    /// The driver's name.
    fn name(&self) -> &'static str;
    /// The URL schemes it serves (`rabbit`, `amqp`, ...).
    fn schemes(&self) -> &[&'static str];
    /// Connects (or prepares to connect) a driver for the URL.
    async fn connect(&self, url: &TransportUrl) -> Result<Arc<dyn Driver>>;
    /// Checks one option of the URL's query on its own, without connecting: whether the
    /// driver knows the key and takes the value. A configuration reader calls it for each
    /// option of the driver's section, to warn about names the driver does not know and to
    /// say where a bad value was written. The default knows every key.
    fn check_option(&self, key: &str, value: &str) -> OptionCheck {
        let _ = (key, value);
        OptionCheck::Known
    }
}

/// What a driver says of one URL option ([`DriverFactory::check_option`]).
///
/// ```
/// use msg_core::OptionCheck;
/// let check = OptionCheck::Invalid("option `ssl` wants true or false, not `maybe`".into());
/// assert!(!matches!(check, OptionCheck::Known));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionCheck {
    /// The driver reads it, and the value is good (on its own).
    Known,
    /// The driver has no option of that name.
    Unknown,
    /// The driver reads it, but not that value: why.
    Invalid(String),
}

/// A driver linked into the program, found by [`DriverRegistry::linked`] and so by
/// [`Transport::open`]. A driver crate submits one with [`submit_driver!`](crate::submit_driver);
/// an application that depends on the crate (directly, or through a feature of the `msg`
/// facade) can then open its URLs without registering anything.
#[derive(Debug)]
pub struct LinkedDriver {
    /// Makes the driver's factory.
    pub factory: fn() -> Arc<dyn DriverFactory>,
}

inventory::collect!(LinkedDriver);

/// Submits a driver factory as linked into the program (see [`LinkedDriver`]).
///
/// ```ignore
/// msg_core::submit_driver!(my_driver::factory);
/// ```
#[macro_export]
macro_rules! submit_driver {
    ($factory:path) => {
        $crate::inventory::submit! {
            $crate::LinkedDriver { factory: || $factory() }
        }
    };
}

/// How to get the schemes of msg's own drivers that a build lacks.
const FEATURE_HINTS: [(&str, &str); 7] = [
    ("memory", "enable the `memory` feature of the `msg` crate"),
    (
        "kombu",
        "enable the `amqp` feature of the `msg` crate (the RabbitMQ driver)",
    ),
    (
        "rabbit",
        "enable the `amqp` feature of the `msg` crate (the RabbitMQ driver)",
    ),
    (
        "amqp",
        "enable the `amqp` feature of the `msg` crate (the RabbitMQ driver)",
    ),
    (
        "amqps",
        "enable the `amqp` feature of the `msg` crate (the RabbitMQ driver)",
    ),
    (
        "nats",
        "enable the `nats` feature of the `msg` crate (the NATS driver)",
    ),
    (
        "tls",
        "enable the `nats` feature of the `msg` crate (the NATS driver)",
    ),
];

/// The drivers a build knows, by scheme. Additive: registering a factory adds its schemes
/// and, for a scheme already present, takes its place.
///
/// ```
/// use msg_core::DriverRegistry;
/// let reg = DriverRegistry::new().with_hint("amqp", "enable the `amqp` feature of `msg`");
/// assert!(reg.schemes().is_empty());
/// ```
#[derive(Clone, Default)]
pub struct DriverRegistry {
    factories: Vec<Arc<dyn DriverFactory>>,
    hints: Vec<(String, String)>,
}

impl DriverRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The drivers linked into this program ([`LinkedDriver`]), with hints for msg's own
    /// drivers that are not.
    pub fn linked() -> Self {
        let mut registry = Self::new();
        for linked in inventory::iter::<LinkedDriver> {
            registry.register((linked.factory)());
        }
        for (scheme, hint) in FEATURE_HINTS {
            if registry.lookup(scheme).is_none() {
                registry = registry.with_hint(scheme, hint);
            }
        }
        registry
    }

    /// Adds a factory (its schemes override earlier ones).
    pub fn register(&mut self, factory: Arc<dyn DriverFactory>) -> &mut Self {
        self.factories.push(factory);
        self
    }

    /// This registry with one more factory.
    pub fn with(mut self, factory: Arc<dyn DriverFactory>) -> Self {
        self.register(factory);
        self
    }

    /// Says how to get a scheme this build lacks, for the error an unknown scheme gets.
    pub fn with_hint(mut self, scheme: impl Into<String>, hint: impl Into<String>) -> Self {
        self.hints.push((scheme.into(), hint.into()));
        self
    }

    /// The factory serving `scheme` (the latest registered wins).
    pub fn lookup(&self, scheme: &str) -> Option<&Arc<dyn DriverFactory>> {
        let scheme = scheme.to_ascii_lowercase();
        self.factories
            .iter()
            .rev()
            .find(|f| f.schemes().iter().any(|s| *s == scheme))
    }

    /// Every scheme served, sorted.
    pub fn schemes(&self) -> Vec<&'static str> {
        let mut s: Vec<&'static str> = self
            .factories
            .iter()
            .flat_map(|f| f.schemes().iter().copied())
            .collect();
        s.sort_unstable();
        s.dedup();
        s
    }

    /// Opens a transport for the URL.
    pub async fn open(&self, url: &str) -> Result<Transport> {
        let url = TransportUrl::parse(url)?;
        self.open_url(url).await
    }

    /// Opens a transport for a parsed URL.
    pub async fn open_url(&self, url: TransportUrl) -> Result<Transport> {
        let Some(factory) = self.lookup(url.scheme()) else {
            let supported = self.schemes();
            return Err(Error::UnknownScheme {
                scheme: url.scheme().to_string(),
                supported: if supported.is_empty() {
                    "no scheme".into()
                } else {
                    supported
                        .iter()
                        .map(|s| format!("{s}://"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                hint: self
                    .hints
                    .iter()
                    .find(|(s, _)| s.eq_ignore_ascii_case(url.scheme()))
                    .map(|(_, h)| h.clone()),
            });
        };
        let driver = factory.connect(&url).await?;
        Ok(Transport::new(driver, url))
    }
}

impl fmt::Debug for DriverRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DriverRegistry")
            .field("schemes", &self.schemes())
            .finish()
    }
}

/// A connected transport: a driver and the URL it was opened with. Cheap to clone; clients,
/// notifiers, servers and listeners share it.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<TransportInner>,
}

struct TransportInner {
    driver: Arc<dyn Driver>,
    url: TransportUrl,
    rpc_response_timeout: Option<Duration>,
}

/// oslo's `rpc_response_timeout` default: how long a call waits for its reply unless its
/// client or its transport says otherwise.
pub const DEFAULT_RPC_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

impl Transport {
    /// Opens a transport for a URL with the drivers linked into the program
    /// ([`DriverRegistry::linked`]: with the `msg` facade, those of its features).
    pub async fn open(url: &str) -> Result<Self> {
        Self::builder().open(url).await
    }

    /// A builder that also takes drivers of other crates.
    pub fn builder() -> TransportBuilder {
        TransportBuilder {
            registry: DriverRegistry::linked(),
        }
    }

    /// A transport over a driver.
    pub fn new(driver: Arc<dyn Driver>, url: TransportUrl) -> Self {
        Transport {
            inner: Arc::new(TransportInner {
                driver,
                url,
                rpc_response_timeout: Some(DEFAULT_RPC_RESPONSE_TIMEOUT),
            }),
        }
    }

    /// The call timeout clients made on this transport start with (oslo's transport option
    /// `rpc_response_timeout`, 60 s unless set; `None`: calls wait forever).
    pub fn rpc_response_timeout(&self) -> Option<Duration> {
        self.inner.rpc_response_timeout
    }

    /// The same connection, with another `rpc_response_timeout` for the clients made on it
    /// from now on (oslo's `[DEFAULT] rpc_response_timeout`); see `RpcClient::new`.
    pub fn with_rpc_response_timeout(&self, timeout: impl Into<Option<Duration>>) -> Self {
        Transport {
            inner: Arc::new(TransportInner {
                driver: self.inner.driver.clone(),
                url: self.inner.url.clone(),
                rpc_response_timeout: timeout.into(),
            }),
        }
    }

    /// The driver.
    pub fn driver(&self) -> &Arc<dyn Driver> {
        &self.inner.driver
    }

    /// The URL (its `Display` hides passwords).
    pub fn url(&self) -> &TransportUrl {
        &self.inner.url
    }

    /// What the driver can do.
    pub fn capabilities(&self) -> Capabilities {
        self.inner.driver.capabilities()
    }

    /// Closes the driver's connections.
    pub async fn cleanup(&self) -> Result<()> {
        self.inner.driver.cleanup().await
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("driver", &self.inner.driver.name())
            .field("url", &self.inner.url)
            .field("rpc_response_timeout", &self.inner.rpc_response_timeout)
            .finish()
    }
}

/// Opens transports with the linked drivers plus any added here.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let err = msg_core::Transport::builder().open("kafka://localhost").await.unwrap_err();
/// assert!(matches!(err, msg_core::Error::UnknownScheme { .. }));
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct TransportBuilder {
    registry: DriverRegistry,
}

impl TransportBuilder {
    /// Adds a driver factory; for a scheme already served, it takes its place.
    pub fn driver(mut self, factory: Arc<dyn DriverFactory>) -> Self {
        self.registry.register(factory);
        self
    }

    /// The registry it opens with.
    pub fn registry(&self) -> &DriverRegistry {
        &self.registry
    }

    /// Opens the transport.
    pub async fn open(self, url: &str) -> Result<Transport> {
        self.registry.open(url).await
    }
}
