//! A notification, as listeners see it.

use crate::{Payload, Priority};

/// A notification: what a notifier sends and a listener receives.
///
/// ```
/// use msg_core::{Notification, Priority};
/// let n = Notification::new("compute.host1", "compute.instance.create.end", Priority::Info,
///                           serde_json::json!({"id": 12}));
/// assert_eq!(n.message_id.len(), 36); // a uuid4 with dashes
/// assert_eq!(n.timestamp.len(), "2026-11-23 03:36:41.159724".len());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// A uuid4 with dashes, made by the notifier.
    pub message_id: String,
    /// Who sent it (`compute.host1`).
    pub publisher_id: String,
    /// What happened (`compute.instance.create.end`).
    pub event_type: String,
    /// Its priority.
    pub priority: Priority,
    /// The payload, kept as the JSON text it came as: [`Payload::deserialize`] gives a typed
    /// value straight from it, [`Payload::to_value`] a `serde_json::Value`.
    pub payload: Payload,
    /// When it was sent: naive UTC, `YYYY-MM-DD HH:MM:SS.ffffff` (the fraction dropped when zero).
    pub timestamp: String,
}

impl Notification {
    /// A notification stamped now, with a fresh message id; `payload` is a
    /// `serde_json::Value` or a [`Payload`].
    pub fn new(
        publisher_id: impl Into<String>,
        event_type: impl Into<String>,
        priority: Priority,
        payload: impl Into<Payload>,
    ) -> Self {
        Notification {
            message_id: uuid::Uuid::new_v4().to_string(),
            publisher_id: publisher_id.into(),
            event_type: event_type.into(),
            priority,
            payload: payload.into(),
            timestamp: format_timestamp(chrono::Utc::now().naive_utc()),
        }
    }
}

/// Formats a naive UTC time as oslo's notifier does (`str(datetime)`): the fraction of a
/// second in microseconds, dropped when it is zero.
///
/// ```
/// use chrono::NaiveDate;
/// let t = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap().and_hms_micro_opt(3, 36, 41, 159724).unwrap();
/// assert_eq!(msg_core::format_timestamp(t), "2026-11-23 03:36:41.159724");
/// let whole = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap().and_hms_opt(3, 36, 41).unwrap();
/// assert_eq!(msg_core::format_timestamp(whole), "2026-11-23 03:36:41");
/// ```
pub fn format_timestamp(t: chrono::NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    // written by hand: chrono's formatter costs more than the rest of a notification's fields
    let micros = t.nanosecond() / 1000 % 1_000_000;
    let mut s = String::with_capacity(26);
    let _ = write!(
        s,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if micros != 0 {
        let _ = write!(s, ".{micros:06}");
    }
    s
}

/// Parses oslo's notification timestamp (with or without the fraction). A leap second
/// (`:60`) is refused, as Python's `datetime` refuses it: oslo never writes one, and
/// [`format_timestamp`] can't write it back.
pub fn parse_timestamp(s: &str) -> Option<chrono::NaiveDateTime> {
    use chrono::Timelike;
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .filter(|t| t.nanosecond() < 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_round_trip() {
        let n = Notification::new("p", "e", Priority::Info, serde_json::Value::Null);
        let t = parse_timestamp(&n.timestamp).unwrap();
        assert_eq!(format_timestamp(t), n.timestamp);
        assert!(parse_timestamp("2026-11-23 03:36:41").is_some());
        assert!(parse_timestamp("yesterday").is_none());
    }

    #[test]
    fn a_leap_second_is_refused() {
        // format_timestamp can't write a leap second back: it would move the time
        assert!(parse_timestamp("2026-11-23 03:34:60.159724").is_none());
        assert!(parse_timestamp("2026-11-23 23:59:60").is_none());
        let t = parse_timestamp("2026-11-23 03:34:59.159724").unwrap();
        assert_eq!(format_timestamp(t), "2026-11-23 03:34:59.159724");
    }
}
