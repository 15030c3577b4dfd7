//! The `log` notify driver, as oslo's: each notification is logged under a target of its
//! event type, at the level of its priority, as JSON with every password masked.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use msg_core::{Context, Notification, Priority, Result, Retry};
use tracing::Level;

use crate::NotifyDriver;
use crate::event_loggers::{self, LOGGER_BASE};
use crate::mask::mask_value;

/// Writes notifications to the log (`tracing`), as oslo's `log` driver writes them to
/// Python's: under the target `oslo.messaging.notification.<event_type>` (so a filter can
/// pick event types), at the level of the priority (`critical` at ERROR), the message
/// (`message_id`, `publisher_id`, `event_type`, `priority`, `payload`, `timestamp`) as JSON
/// with passwords masked anywhere in it ([`mask_value`](crate::mask_value)). `audit` and
/// `sample` have no level: they are dropped, with a warning the first time.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use msg_client::{LogDriver, Notifier};
/// use std::sync::Arc;
/// let notifier = Notifier::without_transport().driver(Arc::new(LogDriver));
/// // logged at WARN under `oslo.messaging.notification.volume.attach`, `secret` as `***`
/// notifier
///     .warn(&msg_core::Context::new(), "volume.attach", serde_json::json!({"auth": "password=secret"}))
///     .await
///     .unwrap();
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct LogDriver;

static AUDIT_WARNED: AtomicBool = AtomicBool::new(false);
static SAMPLE_WARNED: AtomicBool = AtomicBool::new(false);

/// The level a priority is logged at; `None` for those that have none.
fn level(priority: Priority) -> Option<Level> {
    match priority {
        Priority::Debug => Some(Level::DEBUG),
        Priority::Info => Some(Level::INFO),
        Priority::Warn => Some(Level::WARN),
        Priority::Error | Priority::Critical => Some(Level::ERROR),
        Priority::Audit | Priority::Sample => None,
    }
}

#[async_trait]
impl NotifyDriver for LogDriver {
    fn name(&self) -> &str {
        "log"
    }

    async fn notify(&self, _: &Context, n: &Notification, _: &[String], _: Retry) -> Result<()> {
        let Some(level) = level(n.priority) else {
            let warned = if n.priority == Priority::Audit {
                &AUDIT_WARNED
            } else {
                &SAMPLE_WARNED
            };
            if !warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    target: LOGGER_BASE,
                    priority = n.priority.wire_name(),
                    "the log notification driver drops `{}` notifications (no log level \
                     matches it); this warning is given once",
                    n.priority.wire_name().to_ascii_lowercase()
                );
            }
            return Ok(());
        };
        let message = serde_json::json!({
            "message_id": n.message_id,
            "publisher_id": n.publisher_id,
            "event_type": n.event_type,
            "priority": n.priority.wire_name(),
            "payload": n.payload,
            "timestamp": n.timestamp,
        });
        event_loggers::log(&n.event_type, level, &mask_value(&message).to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::{Value, json};
    use tracing::Subscriber;
    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
    use tracing_subscriber::{EnvFilter, Layer};

    use super::*;
    use crate::Notifier;

    /// (target, level, message) of every event.
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<(String, Level, String)>>>);

    struct Message(String);

    impl Visit for Message {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }

    impl<S: Subscriber> Layer<S> for Recorded {
        fn on_event(&self, event: &tracing::Event<'_>, _: LayerContext<'_, S>) {
            let mut m = Message(String::new());
            event.record(&mut m);
            let meta = event.metadata();
            self.0
                .lock()
                .unwrap()
                .push((meta.target().to_string(), *meta.level(), m.0));
        }
    }

    impl Recorded {
        fn take(&self) -> Vec<(String, Level, String)> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    fn send(filter: &str, sends: &[(Priority, &str, Value)]) -> Vec<(String, Level, String)> {
        let recorded = Recorded::default();
        let subscriber = tracing_subscriber::registry()
            .with(EnvFilter::new(filter))
            .with(recorded.clone());
        tracing::subscriber::with_default(subscriber, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let notifier = Notifier::without_transport()
                    .publisher_id("compute.host-1")
                    .driver(Arc::new(LogDriver));
                let ctx = Context::new().with("auth_token", "ctx-s3cret");
                for (priority, event_type, payload) in sends {
                    notifier
                        .notify(&ctx, event_type, *priority, payload.clone())
                        .await
                        .unwrap();
                }
            });
        });
        recorded.take()
    }

    #[test]
    fn a_target_per_event_type_a_level_per_priority_and_passwords_masked() {
        let payload = json!({"admin_password": "pw1", "nested": {"token": "t"},
                             "cmd": "run --password pw2", "size": 3});
        let got = send(
            "debug",
            &[
                (Priority::Info, "compute.instance.create.end", payload),
                (Priority::Critical, "compute.instance.fault", json!({})),
                (Priority::Debug, "scheduler.select", json!({})),
            ],
        );
        assert_eq!(got.len(), 3, "{got:?}");
        let (target, level, message) = &got[0];
        assert_eq!(
            target,
            "oslo.messaging.notification.compute.instance.create.end"
        );
        assert_eq!(*level, Level::INFO);
        assert!(
            !message.contains("pw1") && !message.contains("pw2") && !message.contains("s3cret")
        );
        let logged: Value = serde_json::from_str(message).unwrap();
        assert_eq!(logged["priority"], "INFO");
        assert_eq!(logged["publisher_id"], "compute.host-1");
        assert_eq!(
            logged["payload"],
            json!({"admin_password": "***", "nested": {"token": "***"},
                   "cmd": "run --password ***", "size": 3})
        );
        assert!(logged.get("context").is_none());
        assert_eq!(got[1].1, Level::ERROR);
        assert_eq!(got[2].1, Level::DEBUG);
    }

    #[test]
    fn filters_pick_event_types() {
        let got = send(
            "oslo.messaging.notification=warn,oslo.messaging.notification.compute=info",
            &[
                (Priority::Info, "volume.attach", json!({})),
                (Priority::Warn, "volume.attach", json!({})),
                (Priority::Info, "compute.instance.update", json!({})),
            ],
        );
        let targets: Vec<(&str, Level)> = got.iter().map(|(t, l, _)| (t.as_str(), *l)).collect();
        assert_eq!(
            targets,
            [
                ("oslo.messaging.notification.volume.attach", Level::WARN),
                (
                    "oslo.messaging.notification.compute.instance.update",
                    Level::INFO
                ),
            ]
        );
    }

    #[test]
    fn audit_and_sample_are_dropped_with_one_warning() {
        AUDIT_WARNED.store(false, Ordering::Relaxed);
        let got = send(
            "debug",
            &[
                (Priority::Audit, "identity.authenticate", json!({})),
                (Priority::Audit, "identity.authenticate", json!({})),
            ],
        );
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, LOGGER_BASE);
        assert_eq!(got[0].1, Level::WARN);
        assert!(got[0].2.contains("`audit`"), "{got:?}");
    }
}
