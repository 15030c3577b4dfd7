//! What the fuzz targets share: equality of decoded values up to float rounding, and the
//! bounds of `msg_core::codec` restated from its documentation, to check what decodes.
//!
//! serde_json's default float parsing is not always correctly rounded (its `float_roundtrip`
//! feature is off), so a float that is written and read back may come back a unit in the
//! last place off. A round trip is exact everywhere else.

use std::time::Duration;

use msg_core::codec::{MAX_NAME_BYTES, MAX_ROUTING_BYTES};
use serde_json::{Map, Number, Value};

/// Whether two floats are equal or neighbours (at most 2 units in the last place apart).
pub fn f64_close(a: f64, b: f64) -> bool {
    a == b
        || (a.is_sign_negative() == b.is_sign_negative() && a.to_bits().abs_diff(b.to_bits()) <= 2)
}

fn number_eq(a: &Number, b: &Number) -> bool {
    if a == b {
        return true;
    }
    if a.is_f64() && b.is_f64() {
        return matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if f64_close(x, y));
    }
    false
}

/// Whether two JSON values are equal, floats up to [`f64_close`].
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_eq(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| json_eq(v, w))
        }
        (Value::Object(x), Value::Object(y)) => map_eq(x, y),
        _ => a == b,
    }
}

/// Whether two JSON objects hold the same keys with [`json_eq`] values.
pub fn map_eq(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| json_eq(v, w)))
}

/// Equality of a decoded value with itself written and read back.
pub trait Close {
    /// Whether `self` and `other` are the same up to float rounding.
    fn close(&self, other: &Self) -> bool;
}

impl Close for f64 {
    fn close(&self, other: &Self) -> bool {
        f64_close(*self, *other)
    }
}

/// Durations travel as float seconds: a nanosecond apart is the same.
impl Close for Duration {
    fn close(&self, other: &Self) -> bool {
        self.abs_diff(*other) <= Duration::from_nanos(1)
    }
}

impl<T: Close> Close for Option<T> {
    fn close(&self, other: &Self) -> bool {
        match (self, other) {
            (Some(a), Some(b)) => a.close(b),
            (None, None) => true,
            _ => false,
        }
    }
}

/// Panics, naming both sides, unless `a` and `b` are [`json_eq`].
#[track_caller]
pub fn assert_json_eq(what: &str, a: &Value, b: &Value) {
    assert!(
        json_eq(a, b),
        "{what} changed in a round trip:\n  {a}\n  {b}"
    );
}

/// Panics, naming both sides, unless `a` and `b` are [`map_eq`].
#[track_caller]
pub fn assert_map_eq(what: &str, a: &Map<String, Value>, b: &Map<String, Value>) {
    assert!(
        map_eq(a, b),
        "{what} changed in a round trip:\n  {a:?}\n  {b:?}"
    );
}

/// A name-like value (method, namespace, version, event type, ...): at most
/// `MAX_NAME_BYTES`, no control character.
#[track_caller]
pub fn assert_name(field: &str, value: &str) {
    assert!(
        value.len() <= MAX_NAME_BYTES && !value.chars().any(char::is_control),
        "`{field}` decoded out of bounds: {value:?}"
    );
}

/// A `_unique_id`: at most `MAX_ROUTING_BYTES`, no control character.
#[track_caller]
pub fn assert_unique_id(value: &str) {
    assert!(
        value.len() <= MAX_ROUTING_BYTES && !value.chars().any(char::is_control),
        "`_unique_id` decoded out of bounds: {value:?}"
    );
}

/// A `_msg_id`: 1 to `MAX_ROUTING_BYTES` of `[A-Za-z0-9_-]`.
#[track_caller]
pub fn assert_msg_id(value: &str) {
    assert!(
        (1..=MAX_ROUTING_BYTES).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "`_msg_id` decoded out of bounds: {value:?}"
    );
}

/// A `_reply_q`: at most `MAX_ROUTING_BYTES`, no white space, control character, `*` or `>`.
#[track_caller]
pub fn assert_reply_q(value: &str) {
    assert!(
        value.len() <= MAX_ROUTING_BYTES
            && !value
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '*' || c == '>'),
        "`_reply_q` decoded out of bounds: {value:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_a_rounding_apart_are_equal_and_nothing_else() {
        let x = 0.1_f64;
        let next = f64::from_bits(x.to_bits() + 1);
        assert!(json_eq(&json!({"a": [x]}), &json!({"a": [next]})));
        assert!(!json_eq(&json!(0.1), &json!(0.2)));
        assert!(!json_eq(&json!(1), &json!(1.0)));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!f64_close(0.0, -f64::MIN_POSITIVE));
        let d = Duration::from_millis(1500);
        assert!(Some(d).close(&Some(d + Duration::from_nanos(1))));
        assert!(!Some(d).close(&Some(d + Duration::from_nanos(2))));
        assert!(!Some(d).close(&None));
    }
}
