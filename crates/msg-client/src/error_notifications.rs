//! A `tracing` layer that sends log events as notifications: oslo's `PublishErrorsHandler`
//! (ERROR events as `error_notification`) and `LoggingNotificationHandler` (events as
//! `logrecord`), guarded against feeding on itself.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use msg_core::{Context, Error, Priority, Result};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context as LayerContext;

use crate::Notifier;
use crate::mask::{mask_password, mask_value};

/// How many events may wait to be sent; past it new ones are dropped (and counted).
const QUEUE: usize = 1024;

/// Targets never sent by default: msg itself, oslo's notification loggers and the broker
/// clients, whose errors sending a notification would log more errors to send.
const IGNORED_TARGETS: &[&str] = &[
    "msg_",
    "msg::",
    "msgctl",
    "oslo.messaging",
    "lapin",
    "amq_protocol",
    "pinky_swear",
    "async_nats",
];

tokio::task_local! {
    /// Set while the layer's own task sends: whatever that logs is not sent again.
    static SENDING: ();
}

/// What an event becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `error_notification`, payload `{"error": message}` (oslo's `PublishErrorsHandler`).
    Errors,
    /// `logrecord`, payload the record's fields (oslo's `LoggingNotificationHandler`).
    Records,
}

/// A [`tracing_subscriber::Layer`] that sends log events as notifications, as oslo's logging
/// handlers do for Python services:
///
/// - [`publish_errors`](Self::publish_errors), oslo's `PublishErrorsHandler`: each ERROR event
///   becomes an `error` notification `error_notification` from `error.publisher` with payload
///   `{"error": <message>}`;
/// - [`log_records`](Self::log_records), oslo's `LoggingNotificationHandler`: each event at a
///   level or above becomes a `logrecord` notification at the event's priority, its payload
///   the record (`name`, `levelno`, `levelname`, `msg`, `pathname`, `lineno`, `funcName`,
///   `thread`, `processName`, `process`, `extra`).
///
/// Feedback loops are cut four ways: a notifier with the `log` driver sends nothing (as oslo's
/// handler: the notification would be logged, then sent, then logged...); events of msg, of
/// oslo's notification loggers and of the broker clients are never sent (more with
/// [`ignore_target`](Self::ignore_target)); whatever the sending task logs is not sent; and at
/// most 1,024 events wait, newer ones being dropped (counted by
/// [`dropped`](Self::dropped)). Passwords in messages and fields are masked
/// ([`mask_password`](crate::mask_password)). Sending runs on a task of its own, on the Tokio
/// runtime the layer was made in.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use msg_client::{NotificationLayer, Notifier, TestNotifications};
/// use tracing_subscriber::layer::SubscriberExt;
/// let captured = TestNotifications::default();
/// let notifier = Notifier::without_transport().driver(captured.driver());
/// let layer = NotificationLayer::publish_errors(notifier).unwrap();
/// let subscriber = tracing_subscriber::registry().with(layer.clone());
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::error!(target: "my_service", "disk full, password=hunter2");
/// });
/// layer.flush().await;
/// let sent = captured.take();
/// assert_eq!(sent[0].notification.event_type, "error_notification");
/// assert_eq!(sent[0].notification.payload.get("error").unwrap(), "disk full, password=***");
/// # });
/// ```
#[derive(Clone)]
pub struct NotificationLayer {
    inner: Arc<Inner>,
}

struct Inner {
    tx: Option<mpsc::Sender<Job>>,
    form: Form,
    level: Level,
    ignored: Vec<String>,
    dropped: AtomicU64,
}

enum Job {
    Send {
        priority: Priority,
        event_type: &'static str,
        payload: Value,
    },
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl NotificationLayer {
    /// oslo's `PublishErrorsHandler`: ERROR events as `error_notification`, from
    /// `error.publisher`.
    ///
    /// # Errors
    /// Outside a Tokio runtime (the layer sends from a task of its own).
    pub fn publish_errors(notifier: Notifier) -> Result<Self> {
        Self::start(
            notifier.publisher_id("error.publisher"),
            Form::Errors,
            Level::ERROR,
        )
    }

    /// oslo's `LoggingNotificationHandler`: events at `level` or above (ERROR, then WARN, ...)
    /// as `logrecord`, at the priority of their level.
    ///
    /// # Errors
    /// Outside a Tokio runtime (the layer sends from a task of its own).
    pub fn log_records(notifier: Notifier, level: Level) -> Result<Self> {
        Self::start(notifier, Form::Records, level)
    }

    /// Never sends events whose target starts with `prefix` (besides msg's own and the
    /// broker clients').
    pub fn ignore_target(self, prefix: impl Into<String>) -> Self {
        let mut ignored = self.inner.ignored.clone();
        ignored.push(prefix.into());
        NotificationLayer {
            inner: Arc::new(Inner {
                tx: self.inner.tx.clone(),
                form: self.inner.form,
                level: self.inner.level,
                ignored,
                dropped: AtomicU64::new(self.dropped()),
            }),
        }
    }

    /// How many events were dropped because too many waited.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Whether it sends anything (not with a notifier that has the `log` driver).
    pub fn is_enabled(&self) -> bool {
        self.inner.tx.is_some()
    }

    /// Waits until every event queued before this call was sent (or failed). A notifier that
    /// retries forever (oslo's `retry = -1`) makes this wait as long as the broker is away.
    pub async fn flush(&self) {
        let Some(tx) = &self.inner.tx else {
            return;
        };
        let (done, wait) = tokio::sync::oneshot::channel();
        if tx.send(Job::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    fn start(notifier: Notifier, form: Form, level: Level) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::Config("a notification layer is made inside a Tokio runtime".into())
        })?;
        let tx = if notifier.has_driver("log") {
            tracing::warn!(
                "the notification layer sends nothing: its notifier has the `log` driver, \
                 which would log each notification, to be sent again"
            );
            None
        } else {
            let (tx, rx) = mpsc::channel(QUEUE);
            runtime.spawn(SENDING.scope((), send_all(notifier, rx)));
            Some(tx)
        };
        Ok(NotificationLayer {
            inner: Arc::new(Inner {
                tx,
                form,
                level,
                ignored: IGNORED_TARGETS.iter().map(|s| s.to_string()).collect(),
                dropped: AtomicU64::new(0),
            }),
        })
    }
}

/// Sends what the layer queues, one at a time, until every layer is gone.
async fn send_all(notifier: Notifier, mut rx: mpsc::Receiver<Job>) {
    let context = Context::new();
    while let Some(job) = rx.recv().await {
        match job {
            Job::Send {
                priority,
                event_type,
                payload,
            } => {
                if let Err(e) = notifier
                    .notify(&context, event_type, priority, payload)
                    .await
                {
                    tracing::debug!(error = %e, "a log event was not sent as a notification");
                }
            }
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

impl<S: Subscriber> Layer<S> for NotificationLayer {
    fn on_event(&self, event: &Event<'_>, _: LayerContext<'_, S>) {
        let inner = &self.inner;
        let Some(tx) = &inner.tx else {
            return;
        };
        let meta = event.metadata();
        // a level is "above" another when it is more severe: ERROR < WARN in tracing's order
        if *meta.level() > inner.level
            || SENDING.try_with(|_| ()).is_ok()
            || inner
                .ignored
                .iter()
                .any(|p| meta.target().starts_with(p.as_str()))
        {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message = mask_password(&fields.message);
        let (priority, event_type, payload) = match inner.form {
            Form::Errors => (
                Priority::Error,
                "error_notification",
                json!({"error": message}),
            ),
            Form::Records => (
                priority(*meta.level()),
                "logrecord",
                json!({
                    "name": meta.target(),
                    "levelno": levelno(*meta.level()),
                    "levelname": levelname(*meta.level()),
                    "exc_info": null,
                    "pathname": meta.file(),
                    "lineno": meta.line(),
                    "msg": message,
                    "funcName": meta.module_path(),
                    "thread": std::thread::current().name(),
                    "processName": process_name(),
                    "process": std::process::id(),
                    "extra": mask_value(&Value::Object(fields.extra)),
                }),
            ),
        };
        let job = Job::Send {
            priority,
            event_type,
            payload,
        };
        if tx.try_send(job).is_err() {
            inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl fmt::Debug for NotificationLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationLayer")
            .field("form", &self.inner.form)
            .field("level", &self.inner.level)
            .field("enabled", &self.is_enabled())
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// An event's message and its other fields.
#[derive(Default)]
struct Fields {
    message: String,
    extra: Map<String, Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.extra
                .insert(field.name().to_string(), Value::String(value.to_string()));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.extra.insert(field.name().to_string(), json!(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.extra.insert(field.name().to_string(), json!(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.extra.insert(field.name().to_string(), json!(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.extra.insert(
                field.name().to_string(),
                Value::String(format!("{value:?}")),
            );
        }
    }
}

fn priority(level: Level) -> Priority {
    match level {
        Level::ERROR => Priority::Error,
        Level::WARN => Priority::Warn,
        Level::INFO => Priority::Info,
        _ => Priority::Debug,
    }
}

/// Python's logging level numbers.
fn levelno(level: Level) -> u8 {
    match level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        _ => 5,
    }
}

/// Python's logging level names.
fn levelname(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        _ => "TRACE",
    }
}

/// The program's file name (Python's `processName` is the process's name).
fn process_name() -> Option<String> {
    std::env::args_os().next().and_then(|a| {
        std::path::Path::new(&a)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use async_trait::async_trait;
    use msg_core::{Notification, Retry};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::{NotifyDriver, TestNotifications};

    /// A driver that logs an error each time it sends, as a failing broker client would.
    #[derive(Debug, Default)]
    struct Loud(AtomicUsize);

    #[async_trait]
    impl NotifyDriver for Loud {
        fn name(&self) -> &str {
            "loud"
        }
        async fn notify(
            &self,
            _: &Context,
            _: &Notification,
            _: &[String],
            _: Retry,
        ) -> Result<()> {
            self.0.fetch_add(1, Ordering::Relaxed);
            tracing::error!(target: "some_client", "send failed");
            Ok(())
        }
    }

    fn run<F: Future<Output = ()>>(f: impl FnOnce() -> F) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f());
    }

    #[test]
    fn what_the_sending_logs_is_not_sent_again() {
        run(|| async {
            let loud = Arc::new(Loud::default());
            let notifier = Notifier::without_transport().driver(loud.clone());
            let layer = NotificationLayer::publish_errors(notifier).unwrap();
            let _guard = tracing::subscriber::set_default(
                tracing_subscriber::registry().with(layer.clone()),
            );
            tracing::error!(target: "app", "first");
            layer.flush().await;
            layer.flush().await;
            assert_eq!(loud.0.load(Ordering::Relaxed), 1);
        });
    }

    #[test]
    fn msgs_own_events_lower_levels_and_a_log_driver_are_never_sent() {
        run(|| async {
            let captured = TestNotifications::default();
            let notifier = Notifier::without_transport().driver(captured.driver());
            let layer = NotificationLayer::publish_errors(notifier)
                .unwrap()
                .ignore_target("noisy");
            let _guard = tracing::subscriber::set_default(
                tracing_subscriber::registry().with(layer.clone()),
            );
            tracing::error!(target: "msg_driver_amqp::connection", "lost");
            tracing::error!(target: "oslo.messaging.notification.x", "logged notification");
            tracing::error!(target: "noisy::thing", "ignored too");
            tracing::warn!(target: "app", "only a warning");
            tracing::error!(target: "app", user = "admin", "sent");
            layer.flush().await;
            let sent = captured.take();
            assert_eq!(sent.len(), 1, "{sent:?}");
            assert_eq!(sent[0].notification.publisher_id, "error.publisher");
            assert_eq!(sent[0].notification.payload, json!({"error": "sent"}));

            let with_log = Notifier::without_transport()
                .driver_names(["log", "noop"])
                .unwrap();
            assert!(
                !NotificationLayer::publish_errors(with_log)
                    .unwrap()
                    .is_enabled()
            );
        });
    }

    #[test]
    fn log_records_carry_the_record_at_its_priority() {
        run(|| async {
            let captured = TestNotifications::default();
            let notifier = Notifier::without_transport()
                .publisher_id("svc")
                .driver(captured.driver());
            let layer = NotificationLayer::log_records(notifier, Level::WARN).unwrap();
            let _guard = tracing::subscriber::set_default(
                tracing_subscriber::registry().with(layer.clone()),
            );
            tracing::info!(target: "app", "not sent");
            tracing::warn!(target: "app", volume = 7, password = "pw", "slow disk");
            layer.flush().await;
            let sent = captured.take();
            assert_eq!(sent.len(), 1, "{sent:?}");
            let n = &sent[0].notification;
            assert_eq!(
                (n.event_type.as_str(), n.priority),
                ("logrecord", Priority::Warn)
            );
            let payload = n.payload.to_value().unwrap();
            assert_eq!(payload["name"], "app");
            assert_eq!(payload["levelname"], "WARNING");
            assert_eq!(payload["levelno"], 30);
            assert_eq!(payload["msg"], "slow disk");
            assert_eq!(payload["extra"], json!({"volume": 7, "password": "***"}));
            assert_eq!(payload["process"], std::process::id());
        });
    }

    #[test]
    fn it_needs_a_runtime() {
        let err = NotificationLayer::publish_errors(Notifier::without_transport()).unwrap_err();
        assert!(err.to_string().contains("Tokio"), "{err}");
    }
}
