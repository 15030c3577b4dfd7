//! The bounds every value read from the wire is held to before a driver or a server sees it.
//!
//! A body is hostile until checked: each routing value (`_msg_id`, `_reply_q`, `_unique_id`)
//! goes into broker names, subjects and headers, and the call-monitor timeout drives a timer.
//! A value out of bounds makes the whole message malformed (logged once, rejected without
//! requeue), never a panic further on.

use std::time::Duration;

use crate::{Error, Result};

/// The longest routing value taken from the wire, in bytes: AMQP's short-string limit, which
/// a reply queue name and a routing key must fit.
pub const MAX_ROUTING_BYTES: usize = 255;

/// The longest name-like value taken from the wire (method, namespace, version, event type,
/// publisher id, message id, timestamp), in bytes.
pub const MAX_NAME_BYTES: usize = 1024;

/// The longest call-monitor timeout taken from the wire: larger values are clamped to it
/// (a day; heartbeats then go every half day).
pub const MAX_CALL_MONITOR_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// A `_msg_id`: 1 to 255 of `[A-Za-z0-9_-]` (oslo sends a uuid4 in hex). It becomes a
/// subject token and a correlation key, so nothing else is taken.
pub(crate) fn msg_id(s: &str) -> Result<()> {
    routing_len("_msg_id", s)?;
    if s.is_empty() {
        return Err(Error::malformed("`_msg_id` is empty"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(Error::malformed(format!(
            "`_msg_id` holds {c:?}; only letters, digits, `_` and `-` are taken"
        )));
    }
    Ok(())
}

/// A `_reply_q`: empty (the transport's own reply address is used) or up to 255 bytes with no
/// white space, control character or subject wildcard (`*`, `>`).
pub(crate) fn reply_q(s: &str) -> Result<()> {
    routing_len("_reply_q", s)?;
    if let Some(c) = s
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '*' || *c == '>')
    {
        return Err(Error::malformed(format!(
            "`_reply_q` holds {c:?} (no white space, control characters, `*` or `>`)"
        )));
    }
    Ok(())
}

/// A `_unique_id`: up to 255 bytes, no control characters (it travels in headers such as
/// NATS's `Nats-Msg-Id`).
pub(crate) fn unique_id(s: &str) -> Result<()> {
    routing_len("_unique_id", s)?;
    no_control("_unique_id", s)
}

/// A name-like value: up to [`MAX_NAME_BYTES`], no control characters.
pub(crate) fn name(field: &str, s: &str) -> Result<()> {
    if s.len() > MAX_NAME_BYTES {
        return Err(Error::malformed(format!(
            "`{field}` is {} bytes long (at most {MAX_NAME_BYTES})",
            s.len()
        )));
    }
    no_control(field, s)
}

/// The call-monitor timeout a caller sent (`_timeout`, in seconds): `None` for none or zero,
/// an error for a negative or non-finite value, clamped to [`MAX_CALL_MONITOR_TIMEOUT`].
pub(crate) fn call_monitor_timeout(seconds: Option<f64>) -> Result<Option<Duration>> {
    let Some(s) = seconds else { return Ok(None) };
    if !s.is_finite() || s < 0.0 {
        return Err(Error::malformed(format!(
            "`_timeout` is {s}: a call-monitor timeout is a finite number of seconds >= 0"
        )));
    }
    if s == 0.0 {
        return Ok(None);
    }
    if s >= MAX_CALL_MONITOR_TIMEOUT.as_secs_f64() {
        return Ok(Some(MAX_CALL_MONITOR_TIMEOUT));
    }
    // finite, positive and below the clamp: always in range; under half a nanosecond it
    // rounds to zero, which means none
    Ok(Duration::try_from_secs_f64(s).ok().filter(|d| !d.is_zero()))
}

fn routing_len(field: &str, s: &str) -> Result<()> {
    if s.len() > MAX_ROUTING_BYTES {
        return Err(Error::malformed(format!(
            "`{field}` is {} bytes long (at most {MAX_ROUTING_BYTES})",
            s.len()
        )));
    }
    Ok(())
}

fn no_control(field: &str, s: &str) -> Result<()> {
    if s.chars().any(char::is_control) {
        return Err(Error::malformed(format!(
            "`{field}` holds a control character"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_monitor_timeouts_are_finite_non_negative_and_clamped() {
        assert_eq!(call_monitor_timeout(None).ok(), Some(None));
        assert_eq!(call_monitor_timeout(Some(0.0)).ok(), Some(None));
        assert_eq!(
            call_monitor_timeout(Some(2.5)).ok(),
            Some(Some(Duration::from_millis(2500)))
        );
        assert_eq!(
            call_monitor_timeout(Some(1e20)).ok(),
            Some(Some(MAX_CALL_MONITOR_TIMEOUT))
        );
        assert_eq!(
            call_monitor_timeout(Some(1.5e-9)).ok(),
            Some(Some(Duration::from_nanos(1)))
        );
        assert_eq!(call_monitor_timeout(Some(1e-10)).ok(), Some(None));
        for bad in [-1.0, -0.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(call_monitor_timeout(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn msg_ids_are_short_tokens() {
        assert!(msg_id("0123456789abcdef0123456789abcdef").is_ok());
        assert!(msg_id("").is_err());
        assert!(msg_id("a.b").is_err());
        assert!(msg_id("a b").is_err());
        assert!(msg_id(&"a".repeat(256)).is_err());
        assert!(msg_id(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn reply_queues_fit_a_short_string_and_hold_no_wildcard() {
        assert!(reply_q("").is_ok());
        assert!(reply_q("reply_0123abcd").is_ok());
        assert!(reply_q("reply_host:proc:1").is_ok());
        assert!(reply_q(&"q".repeat(300)).is_err());
        assert!(reply_q("a>").is_err());
        assert!(reply_q("a b").is_err());
        assert!(reply_q("a\nb").is_err());
    }

    #[test]
    fn names_are_bounded_and_printable() {
        assert!(name("method", "echo").is_ok());
        assert!(name("method", &"m".repeat(MAX_NAME_BYTES + 1)).is_err());
        assert!(name("method", "a\u{0}b").is_err());
        assert!(unique_id("a\r\nb").is_err());
    }
}
