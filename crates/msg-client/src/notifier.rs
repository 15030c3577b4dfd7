//! The notifier and its notify drivers.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use msg_core::{
    Context, EnvelopeVersion, Error, Notification, Payload, Priority, Result, Retry, Target,
    Transport,
};
use serde::Serialize;

use crate::tracing_spans;

/// How long a send may take by default before it gives up (unlike Python's forever).
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a notification goes once made: a broker (`messagingv2`, `messaging`), the log,
/// nowhere, a capture for tests, or a routing of its own.
#[async_trait]
pub trait NotifyDriver: Send + Sync + fmt::Debug {
    /// The driver's name (`messagingv2`, `log`, ...).
    fn name(&self) -> &str;
    /// Sends one notification to each topic.
    async fn notify(
        &self,
        context: &Context,
        notification: &Notification,
        topics: &[String],
        retry: Retry,
    ) -> Result<()>;
    /// Whether it sends anywhere (`noop` doesn't).
    fn is_enabled(&self) -> bool {
        true
    }
}

/// Sends notifications: one method per priority, through one or more notify drivers.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use msg_client::{Notifier, TestNotifications};
/// use msg_core::{Context, Priority};
/// let captured = TestNotifications::default();
/// let notifier = Notifier::without_transport()
///     .publisher_id("compute.host1")
///     .driver(captured.driver());
/// notifier.info(&Context::new(), "compute.instance.create.end", serde_json::json!({"id": 12})).await.unwrap();
/// let sent = captured.take();
/// assert_eq!(sent[0].notification.priority, Priority::Info);
/// assert_eq!(sent[0].topics, vec!["notifications".to_string()]);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Notifier {
    transport: Option<Transport>,
    publisher_id: String,
    topics: Vec<String>,
    retry: Option<Retry>,
    send_timeout: Duration,
    drivers: Arc<Vec<Arc<dyn NotifyDriver>>>,
}

impl Notifier {
    /// A notifier on a transport, with the `messagingv2` driver and topic `notifications`.
    pub fn new(transport: impl Into<Transport>) -> Self {
        let transport = transport.into();
        let v2: Arc<dyn NotifyDriver> =
            Arc::new(MessagingDriver::new(transport.clone(), EnvelopeVersion::V2));
        Notifier {
            transport: Some(transport),
            drivers: Arc::new(vec![v2]),
            ..Self::without_transport()
        }
    }

    /// A notifier with no driver yet and no transport: for the `log`, `noop`, `test` and
    /// `routing` drivers.
    pub fn without_transport() -> Self {
        Notifier {
            transport: None,
            publisher_id: String::new(),
            topics: vec!["notifications".into()],
            retry: None,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            drivers: Arc::new(Vec::new()),
        }
    }

    /// A copy to modify (publisher id, retry, topics), sharing the loaded drivers.
    pub fn prepare(&self) -> Self {
        self.clone()
    }

    /// Sets who sends (`compute.host1`).
    pub fn publisher_id(mut self, publisher_id: impl Into<String>) -> Self {
        self.publisher_id = publisher_id.into();
        self
    }

    /// Sets the topics (default `notifications`).
    pub fn topics<I: IntoIterator<Item = S>, S: Into<String>>(mut self, topics: I) -> Self {
        self.topics = topics.into_iter().map(Into::into).collect();
        self
    }

    /// Reconnect attempts for a send. Without it a send gives up after the send timeout;
    /// `Retry::Forever` set here keeps oslo's retry-forever.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = Some(retry);
        self
    }

    /// How long a send may take when no explicit `Retry::Forever` is set (default 30 s).
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// Replaces the drivers with one.
    pub fn driver(self, driver: Arc<dyn NotifyDriver>) -> Self {
        self.drivers([driver])
    }

    /// Replaces the drivers.
    pub fn drivers(mut self, drivers: impl IntoIterator<Item = Arc<dyn NotifyDriver>>) -> Self {
        self.drivers = Arc::new(drivers.into_iter().collect());
        self
    }

    /// Replaces the drivers by oslo's names: `messagingv2`, `messaging`, `log`, `noop`,
    /// `routing:<path to the routing file>` (the test driver is [`TestNotifications`]).
    pub fn driver_names<I: IntoIterator<Item = S>, S: AsRef<str>>(self, names: I) -> Result<Self> {
        let drivers = names
            .into_iter()
            .map(|n| named_driver(n.as_ref(), self.transport.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        Ok(self.drivers(drivers))
    }

    /// Whether one of the drivers has this name (`log`, `messagingv2`, ...).
    pub fn has_driver(&self, name: &str) -> bool {
        self.drivers.iter().any(|d| d.name() == name)
    }

    /// Whether any driver sends anywhere.
    pub fn is_enabled(&self) -> bool {
        self.drivers.iter().any(|d| d.is_enabled())
    }

    /// Sends a notification at `priority`. Every driver gets it; the first failure is
    /// returned (after the others were tried), never swallowed.
    pub async fn notify(
        &self,
        context: &Context,
        event_type: &str,
        priority: Priority,
        payload: impl Serialize,
    ) -> Result<()> {
        let payload = Payload::from_serialize(&payload)?;
        let notification = Notification::new(&self.publisher_id, event_type, priority, payload);
        let context = context.redacted();
        let retry = self.retry.unwrap_or(Retry::Forever);
        let mut first_error = None;
        for driver in self.drivers.iter() {
            let send = driver.notify(&context, &notification, &self.topics, retry);
            let result = match self.retry {
                Some(Retry::Forever) => send.await,
                _ => match tokio::time::timeout(self.send_timeout, send).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::Timeout {
                        what: format!(
                            "sending notification `{event_type}` through {}",
                            driver.name()
                        ),
                        after: self.send_timeout,
                    }),
                },
            };
            if driver.is_enabled() {
                crate::metrics::notification_sent(priority, result.is_ok());
            }
            if let Err(e) = result {
                tracing::warn!(driver = driver.name(), event_type, error = %e, "notification not sent");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// `audit` priority.
    pub async fn audit(
        &self,
        ctx: &Context,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        self.notify(ctx, event_type, Priority::Audit, payload).await
    }
    /// `debug` priority.
    pub async fn debug(
        &self,
        ctx: &Context,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        self.notify(ctx, event_type, Priority::Debug, payload).await
    }
    /// `info` priority.
    pub async fn info(
        &self,
        ctx: &Context,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        self.notify(ctx, event_type, Priority::Info, payload).await
    }
    /// `warn` priority.
    pub async fn warn(
        &self,
        ctx: &Context,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        self.notify(ctx, event_type, Priority::Warn, payload).await
    }
    /// `warn` priority (oslo's alias).
    pub async fn warning(
        &self,
        ctx: &Context,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        self.notify(ctx, event_type, Priority::Warn, payload).await
    }
    /// `error` priority.
    pub async fn error(
        &self,
        ctx: &Context,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        self.notify(ctx, event_type, Priority::Error, payload).await
    }
    /// `critical` priority.
    pub async fn critical(
        &self,
        ctx: &Context,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        self.notify(ctx, event_type, Priority::Critical, payload)
            .await
    }
    /// `sample` priority.
    pub async fn sample(
        &self,
        ctx: &Context,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        self.notify(ctx, event_type, Priority::Sample, payload)
            .await
    }
}

fn named_driver(name: &str, transport: Option<&Transport>) -> Result<Arc<dyn NotifyDriver>> {
    let need_transport = || {
        transport
            .cloned()
            .ok_or_else(|| Error::Config(format!("the `{name}` notify driver needs a transport")))
    };
    Ok(match name {
        "messagingv2" => Arc::new(MessagingDriver::new(need_transport()?, EnvelopeVersion::V2)),
        "messaging" => Arc::new(MessagingDriver::new(need_transport()?, EnvelopeVersion::V1)),
        "log" => Arc::new(crate::LogDriver),
        "noop" => Arc::new(NoopDriver),
        other => match other.strip_prefix("routing:") {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::Config(format!("can't read the routing file `{path}`: {e}"))
                })?;
                Arc::new(RoutingConfig::from_yaml(&text)?.into_driver(transport)?)
            }
            None => {
                return Err(Error::Config(format!(
                    "unknown notify driver `{other}` (known: messagingv2, messaging, log, noop, routing:<file>)"
                )));
            }
        },
    })
}

/// Sends through the transport: `messagingv2` (envelope 2.0) or `messaging` (1.0, bare).
#[derive(Debug)]
pub struct MessagingDriver {
    transport: Transport,
    version: EnvelopeVersion,
}

impl MessagingDriver {
    /// A messaging driver on a transport with an envelope version.
    pub fn new(transport: Transport, version: EnvelopeVersion) -> Self {
        MessagingDriver { transport, version }
    }
}

#[async_trait]
impl NotifyDriver for MessagingDriver {
    fn name(&self) -> &str {
        match self.version {
            EnvelopeVersion::V1 => "messaging",
            EnvelopeVersion::V2 => "messagingv2",
        }
    }

    async fn notify(
        &self,
        context: &Context,
        notification: &Notification,
        topics: &[String],
        retry: Retry,
    ) -> Result<()> {
        // every topic gets it, as oslo's driver tries each; the first failure is returned
        let driver = self.transport.driver();
        let mut first_error = None;
        for topic in topics {
            let span =
                tracing_spans::notify(driver.messaging_system(), topic, notification, context);
            let traced = tracing_spans::traced_context(&span, context);
            let target = Target::topic(topic);
            let send = driver.send_notification(
                &target,
                traced.as_ref().unwrap_or(context),
                notification,
                self.version,
                retry,
            );
            if let Err(e) = tracing_spans::traced(span, send).await {
                tracing::warn!(topic, error = %e, "notification not sent to this topic");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Sends nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopDriver;

#[async_trait]
impl NotifyDriver for NoopDriver {
    fn name(&self) -> &str {
        "noop"
    }
    async fn notify(&self, _: &Context, _: &Notification, _: &[String], _: Retry) -> Result<()> {
        Ok(())
    }
    fn is_enabled(&self) -> bool {
        false
    }
}

/// One captured notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Captured {
    /// The context as it would have travelled (redacted).
    pub context: Context,
    /// The notification.
    pub notification: Notification,
    /// The topics it was sent to.
    pub topics: Vec<String>,
}

/// The `test` notify driver: captures notifications in memory for users' own tests.
#[derive(Debug, Clone, Default)]
pub struct TestNotifications {
    captured: Arc<Mutex<Vec<Captured>>>,
}

impl TestNotifications {
    /// The driver that captures into this.
    pub fn driver(&self) -> Arc<dyn NotifyDriver> {
        Arc::new(TestDriver(self.clone()))
    }

    /// What was captured so far, emptying the capture.
    pub fn take(&self) -> Vec<Captured> {
        std::mem::take(&mut *self.captured.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// How many were captured.
    pub fn len(&self) -> usize {
        self.captured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Whether nothing was captured.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug)]
struct TestDriver(TestNotifications);

#[async_trait]
impl NotifyDriver for TestDriver {
    fn name(&self) -> &str {
        "test"
    }
    async fn notify(
        &self,
        context: &Context,
        n: &Notification,
        topics: &[String],
        _: Retry,
    ) -> Result<()> {
        self.0
            .captured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Captured {
                context: context.clone(),
                notification: n.clone(),
                topics: topics.to_vec(),
            });
        Ok(())
    }
}

/// oslo's routing notifier configuration: groups of driver names, each with
/// `accepted_events` and/or `accepted_priorities` glob lists.
///
/// ```
/// let cfg = msg_client::RoutingConfig::from_yaml("
/// group_1:
///   log:
///     accepted_events: ['compute.instance.*']
///   noop:
///     accepted_priorities: [error, critical]
/// ").unwrap();
/// assert_eq!(cfg.drivers_for("compute.instance.create.end", msg_core::Priority::Info), vec!["log"]);
/// assert_eq!(cfg.drivers_for("volume.create", msg_core::Priority::Error), vec!["noop"]);
/// ```
#[derive(Debug, Clone)]
pub struct RoutingConfig {
    rules: Vec<Rule>,
}

/// (driver name, event patterns, priority patterns); `None` means the key was absent.
type Rule = (String, Option<Vec<regex::Regex>>, Option<Vec<regex::Regex>>);

#[derive(serde::Deserialize)]
struct RuleFile {
    accepted_events: Option<Vec<String>>,
    accepted_priorities: Option<Vec<String>>,
}

impl RoutingConfig {
    /// Reads the YAML routing file's text.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let groups: BTreeMap<String, BTreeMap<String, RuleFile>> = serde_norway::from_str(text)
            .map_err(|e| Error::Config(format!("routing file: {e}")))?;
        let globs = |ps: Option<Vec<String>>, lower: bool| -> Result<Option<Vec<regex::Regex>>> {
            ps.map(|ps| {
                ps.iter()
                    .map(|p| glob_regex(&if lower { p.to_lowercase() } else { p.clone() }))
                    .collect()
            })
            .transpose()
        };
        let mut rules = Vec::new();
        for drivers in groups.into_values() {
            for (driver, rule) in drivers {
                rules.push((
                    driver,
                    globs(rule.accepted_events, false)?,
                    globs(rule.accepted_priorities, true)?,
                ));
            }
        }
        Ok(RoutingConfig { rules })
    }

    /// The drivers a notification goes to: every rule present must accept it (oslo).
    pub fn drivers_for(&self, event_type: &str, priority: Priority) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .rules
            .iter()
            .filter(|(_, events, prios)| {
                events
                    .as_ref()
                    .is_none_or(|es| es.iter().any(|r| r.is_match(event_type)))
                    && prios
                        .as_ref()
                        .is_none_or(|ps| ps.iter().any(|r| r.is_match(priority.routing_name())))
            })
            .map(|(d, _, _)| d.as_str())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The routing driver: loads each named driver once (`messagingv2`, `messaging`, `log`,
    /// `noop`; a transport is needed for the messaging ones).
    pub fn into_driver(self, transport: Option<&Transport>) -> Result<RoutingDriver> {
        let mut drivers = BTreeMap::new();
        for (name, _, _) in &self.rules {
            if !drivers.contains_key(name) {
                drivers.insert(name.clone(), named_driver(name, transport)?);
            }
        }
        Ok(RoutingDriver {
            config: self,
            drivers,
        })
    }

    /// The routing driver with drivers given by name (for tests: a [`TestNotifications`]
    /// driver per name).
    pub fn with_drivers(self, drivers: BTreeMap<String, Arc<dyn NotifyDriver>>) -> RoutingDriver {
        RoutingDriver {
            config: self,
            drivers,
        }
    }
}

/// `fnmatch` glob to an anchored regex (`*`, `?`, `[...]`).
fn glob_regex(glob: &str) -> Result<regex::Regex> {
    let mut re = String::from("^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '[' => {
                let mut class = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == ']' && !class.is_empty() {
                        closed = true;
                        break;
                    }
                    class.push(c);
                }
                if closed {
                    let class = class
                        .strip_prefix('!')
                        .map_or(class.clone(), |c| format!("^{c}"));
                    re.push('[');
                    re.push_str(&class.replace('\\', "\\\\"));
                    re.push(']');
                } else {
                    re.push_str(&regex::escape(&format!("[{class}")));
                }
            }
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).map_err(|e| Error::Config(format!("bad glob `{glob}`: {e}")))
}

/// The `routing` notify driver: sends each notification to the drivers its rules accept.
#[derive(Debug)]
pub struct RoutingDriver {
    config: RoutingConfig,
    drivers: BTreeMap<String, Arc<dyn NotifyDriver>>,
}

#[async_trait]
impl NotifyDriver for RoutingDriver {
    fn name(&self) -> &str {
        "routing"
    }

    async fn notify(
        &self,
        ctx: &Context,
        n: &Notification,
        topics: &[String],
        retry: Retry,
    ) -> Result<()> {
        // every driver the rules name gets it; the first failure is returned
        let mut first_error = None;
        for name in self.config.drivers_for(&n.event_type, n.priority) {
            match self.drivers.get(name) {
                Some(d) => {
                    if let Err(e) = d.notify(ctx, n, topics, retry).await {
                        tracing::warn!(driver = name, error = %e, "notification not sent through this driver");
                        first_error.get_or_insert(e);
                    }
                }
                None => tracing::warn!(
                    driver = name,
                    "the routing file names a driver that isn't loaded"
                ),
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_follow_fnmatch() {
        let r = glob_regex("compute.*.start").unwrap();
        assert!(r.is_match("compute.instance.start"));
        assert!(!r.is_match("compute.instance.start.x"));
        assert!(glob_regex("a?c").unwrap().is_match("abc"));
        assert!(glob_regex("[!x]b").unwrap().is_match("ab"));
        assert!(!glob_regex("[!x]b").unwrap().is_match("xb"));
        assert!(glob_regex("[ab").unwrap().is_match("[ab"));
    }

    #[tokio::test]
    async fn routing_driver_follows_its_file() {
        let cfg = RoutingConfig::from_yaml(
            "g1:\n  a:\n    accepted_events: ['compute.*']\n    accepted_priorities: [INFO]\n  b:\n    accepted_priorities: ['warn', 'error']\ng2:\n  c:\n    accepted_events: ['*.delete.*']\n",
        )
        .unwrap();
        let caps: BTreeMap<String, TestNotifications> = ["a", "b", "c"]
            .into_iter()
            .map(|n| (n.to_string(), TestNotifications::default()))
            .collect();
        let driver = cfg.with_drivers(caps.iter().map(|(k, v)| (k.clone(), v.driver())).collect());
        let notifier = Notifier::without_transport().driver(Arc::new(driver));
        let ctx = Context::new();
        notifier
            .info(&ctx, "compute.instance.create", 1)
            .await
            .unwrap();
        notifier
            .warn(&ctx, "compute.instance.create", 2)
            .await
            .unwrap();
        notifier.info(&ctx, "volume.delete.end", 3).await.unwrap();
        notifier
            .error(&ctx, "compute.instance.delete.end", 4)
            .await
            .unwrap();
        let got = |n: &str| -> Vec<i64> {
            caps[n]
                .take()
                .iter()
                .map(|c| c.notification.payload.deserialize::<i64>().unwrap())
                .collect()
        };
        assert_eq!(got("a"), vec![1]);
        assert_eq!(got("b"), vec![2, 4]);
        assert_eq!(got("c"), vec![3, 4]);
    }

    #[derive(Debug)]
    struct Failing;
    #[async_trait]
    impl NotifyDriver for Failing {
        fn name(&self) -> &str {
            "failing"
        }
        async fn notify(
            &self,
            _: &Context,
            _: &Notification,
            _: &[String],
            _: Retry,
        ) -> Result<()> {
            Err(Error::unavailable("the failing driver fails", None))
        }
    }

    #[tokio::test]
    async fn a_failing_routed_driver_does_not_stop_the_next() {
        let cfg = RoutingConfig::from_yaml("g:\n  a: {}\n  b: {}\n").unwrap();
        let cap = TestNotifications::default();
        let drivers: BTreeMap<String, Arc<dyn NotifyDriver>> = [
            ("a".to_string(), Arc::new(Failing) as Arc<dyn NotifyDriver>),
            ("b".to_string(), cap.driver()),
        ]
        .into();
        let notifier = Notifier::without_transport().driver(Arc::new(cfg.with_drivers(drivers)));
        let err = notifier.info(&Context::new(), "e", 1).await.unwrap_err();
        assert!(err.is_transient(), "the first failure comes back: {err}");
        assert_eq!(
            cap.take().len(),
            1,
            "the driver after the failing one got it"
        );
    }

    #[tokio::test]
    async fn a_failing_topic_does_not_stop_the_next() {
        let transport = msg_core::DriverRegistry::new()
            .with(msg_driver_memory::factory())
            .open("memory://")
            .await
            .unwrap();
        let mut listener = transport
            .driver()
            .listen_for_notifications(
                &[(Target::topic("ok"), Priority::Info)],
                None,
                &msg_core::ListenOptions::default(),
            )
            .await
            .unwrap();
        // an empty topic is refused (InvalidTarget); the next topic still gets the notification
        let notifier = Notifier::new(transport.clone()).topics(["", "ok"]);
        let err = notifier.info(&Context::new(), "e", 1).await.unwrap_err();
        assert!(matches!(err, Error::InvalidTarget { .. }), "{err:?}");
        let got = tokio::time::timeout(
            Duration::from_secs(5),
            futures::StreamExt::next(&mut listener),
        )
        .await
        .expect("the next topic got nothing")
        .expect("the listener ended");
        let (_, notification, _, ack) = got.into_parts();
        assert_eq!(notification.event_type, "e");
        ack.ack().await.unwrap();
    }

    #[derive(Debug)]
    struct Hanging;
    #[async_trait]
    impl NotifyDriver for Hanging {
        fn name(&self) -> &str {
            "hanging"
        }
        async fn notify(
            &self,
            _: &Context,
            _: &Notification,
            _: &[String],
            _: Retry,
        ) -> Result<()> {
            futures::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_that_hangs_gives_up_after_its_bound() {
        let n = Notifier::without_transport().driver(Arc::new(Hanging));
        let start = tokio::time::Instant::now();
        let err = n.info(&Context::new(), "e", 1).await.unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert_eq!(start.elapsed(), DEFAULT_SEND_TIMEOUT);
        let n = n.send_timeout(Duration::from_secs(2));
        let start = tokio::time::Instant::now();
        assert!(n.info(&Context::new(), "e", 1).await.is_err());
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn secrets_are_redacted_and_noop_is_disabled() {
        let cap = TestNotifications::default();
        let n = Notifier::without_transport().drivers([cap.driver()]);
        assert!(n.is_enabled());
        n.audit(&Context::new().with("auth_token", "SECRET"), "e", 1)
            .await
            .unwrap();
        assert_eq!(
            cap.take()[0].context.get("auth_token"),
            Some(&serde_json::Value::Null)
        );
        assert!(
            !Notifier::without_transport()
                .driver(Arc::new(NoopDriver))
                .is_enabled()
        );
        assert!(
            Notifier::without_transport()
                .driver_names(["bogus"])
                .is_err()
        );
        assert!(
            Notifier::without_transport()
                .driver_names(["messagingv2"])
                .is_err()
        );
    }
}
