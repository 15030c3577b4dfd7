//! A `tracing` target per notification event type, as oslo's log driver has a Python logger
//! per event type (`oslo.messaging.notification.<event_type>`), so a log filter can pick
//! event types: `RUST_LOG=oslo.messaging.notification.compute.instance=info`.
//!
//! `tracing` targets are fixed where a macro is written; these are made at run time, one
//! callsite per (event type, level), kept for the life of the program. Past
//! [`MAX_LOGGERS`] of them (event types are the program's own, so that is a program naming
//! event types without end), notifications are logged under the base target alone.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, OnceLock};

use tracing::callsite::{Callsite, Identifier};
use tracing::field::FieldSet;
use tracing::metadata::Kind;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata};

/// oslo's logger name, and the target every one here starts with.
pub const LOGGER_BASE: &str = "oslo.messaging.notification";
/// How many (event type, level) targets are made at most.
const MAX_LOGGERS: usize = 1024;
/// The longest event type that gets a target of its own.
const MAX_EVENT_TYPE: usize = 255;

const FIELDS: &[&str] = &["message", "event_type"];

/// A callsite made at run time for one (event type, level).
struct EventTypeCallsite {
    meta: OnceLock<Metadata<'static>>,
}

impl Callsite for EventTypeCallsite {
    fn set_interest(&self, _: Interest) {}

    fn metadata(&self) -> &Metadata<'_> {
        match self.meta.get() {
            Some(meta) => meta,
            // set before the callsite is registered or used: never reached
            None => base_metadata(),
        }
    }
}

static LOGGERS: LazyLock<Mutex<HashMap<(String, Level), &'static Metadata<'static>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The base target's metadata, for event types past the limits.
fn base_metadata() -> &'static Metadata<'static> {
    tracing::callsite! {
        name: "notification",
        kind: Kind::EVENT,
        target: LOGGER_BASE,
        level: Level::INFO,
        fields: message, event_type
    }
    .metadata()
}

/// The metadata of `<base>.<event_type>` at `level`, made and registered the first time.
fn metadata_for(event_type: &str, level: Level) -> Option<&'static Metadata<'static>> {
    if event_type.len() > MAX_EVENT_TYPE {
        return None;
    }
    let mut loggers = LOGGERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(meta) = loggers.get(&(event_type.to_string(), level)) {
        return Some(meta);
    }
    if loggers.len() >= MAX_LOGGERS {
        return None;
    }
    let target: &'static str = Box::leak(format!("{LOGGER_BASE}.{event_type}").into_boxed_str());
    let callsite: &'static EventTypeCallsite = Box::leak(Box::new(EventTypeCallsite {
        meta: OnceLock::new(),
    }));
    let meta = callsite.meta.get_or_init(|| {
        Metadata::new(
            "notification",
            target,
            level,
            None,
            None,
            Some(module_path!()),
            FieldSet::new(FIELDS, Identifier(callsite)),
            Kind::EVENT,
        )
    });
    loggers.insert((event_type.to_string(), level), meta);
    // registering calls into the subscribers, which may log: not under the lock
    drop(loggers);
    tracing::callsite::register(callsite);
    Some(meta)
}

/// Logs `message` at `level` under `oslo.messaging.notification.<event_type>`.
pub(crate) fn log(event_type: &str, level: Level, message: &str) {
    let Some(meta) = metadata_for(event_type, level) else {
        log_under_base(event_type, level, message);
        return;
    };
    if !tracing::dispatcher::get_default(|d| d.enabled(meta)) {
        return;
    }
    let fields = meta.fields();
    let (Some(message_field), Some(event_type_field)) =
        (fields.field("message"), fields.field("event_type"))
    else {
        return;
    };
    let message = tracing::field::display(message);
    let values: [(&tracing::field::Field, Option<&dyn tracing::Value>); 2] = [
        (&message_field, Some(&message)),
        (&event_type_field, Some(&event_type)),
    ];
    Event::dispatch(meta, &fields.value_set(&values));
}

fn log_under_base(event_type: &str, level: Level, message: &str) {
    match level {
        Level::ERROR => tracing::error!(target: LOGGER_BASE, event_type, "{message}"),
        Level::WARN => tracing::warn!(target: LOGGER_BASE, event_type, "{message}"),
        Level::INFO => tracing::info!(target: LOGGER_BASE, event_type, "{message}"),
        _ => tracing::debug!(target: LOGGER_BASE, event_type, "{message}"),
    }
}
