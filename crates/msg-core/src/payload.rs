//! A JSON value that stays the text it came as until someone asks for it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, DeserializeOwned, Deserializer};
use serde::ser::{Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::codec::Str;

/// A notification's payload or an RPC request's keyword arguments: JSON that is kept as the
/// text it arrived as (checked to be JSON, not parsed into a tree) until a handler asks for
/// it, so a handler that wants a struct gets it straight from the bytes, and one that never
/// looks costs nothing. One built on the sending side holds what it was built from.
///
/// Typed access first: [`deserialize`](Payload::deserialize) into any `Deserialize` type
/// (borrowing strings from the payload where the type borrows), then
/// [`to_value`](Payload::to_value) for a [`Value`], [`get`](Payload::get) for one key, and
/// [`raw`](Payload::raw) for the JSON text itself.
///
/// ```
/// use msg_core::Payload;
///
/// #[derive(serde::Deserialize)]
/// struct Created<'a> { id: u32, state: &'a str }
///
/// let p = Payload::from_json(r#"{"id": 12, "state": "active"}"#)?;
/// let c: Created<'_> = p.deserialize()?;
/// assert_eq!((c.id, c.state), (12, "active"));
/// assert_eq!(p.get("id"), Some(serde_json::json!(12)));
/// assert_eq!(p, serde_json::json!({"state": "active", "id": 12})); // compared as JSON values
/// assert_eq!(p.raw(), r#"{"id": 12, "state": "active"}"#);
///
/// // the sending side: anything Serialize, or a Value
/// let sent = Payload::from_serialize(&[1, 2, 3])?;
/// assert_eq!(sent.raw(), "[1,2,3]");
/// assert_eq!(Payload::from(serde_json::json!(null)), Payload::default());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone)]
pub struct Payload(Repr);

#[derive(Clone)]
enum Repr {
    /// As it came off the wire (or as serialized by the sender): valid JSON text.
    Raw(Box<RawValue>),
    /// As built from a [`Value`].
    Value(Value),
}

impl Payload {
    /// JSON text, checked (not parsed into a tree).
    pub fn from_json(json: &str) -> serde_json::Result<Self> {
        RawValue::from_string(json.to_owned()).map(|r| Payload(Repr::Raw(r)))
    }

    /// JSON text already checked by serde_json (what a decoder holds).
    pub fn from_raw(raw: Box<RawValue>) -> Self {
        Payload(Repr::Raw(raw))
    }

    /// Anything `Serialize`, serialized now into JSON text (no [`Value`] tree in between).
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Self> {
        serde_json::value::to_raw_value(value).map(|r| Payload(Repr::Raw(r)))
    }

    /// Deserializes the payload into `T`, straight from its JSON text; `T` may borrow
    /// strings from it. The error says where the payload and the type differ.
    pub fn deserialize<'a, T: Deserialize<'a>>(&'a self) -> serde_json::Result<T> {
        match &self.0 {
            Repr::Raw(r) => serde_json::from_str(r.get()),
            Repr::Value(v) => T::deserialize(v),
        }
    }

    /// Deserializes the payload into an owned `T`, consuming it (a payload built from a
    /// [`Value`] is not copied).
    pub fn into_deserialized<T: DeserializeOwned>(self) -> serde_json::Result<T> {
        match self.0 {
            Repr::Raw(r) => serde_json::from_str(r.get()),
            Repr::Value(v) => serde_json::from_value(v),
        }
    }

    /// The payload as a [`Value`] (parsed now when it is still text).
    pub fn to_value(&self) -> serde_json::Result<Value> {
        match &self.0 {
            Repr::Raw(r) => serde_json::from_str(r.get()),
            Repr::Value(v) => Ok(v.clone()),
        }
    }

    /// The payload as a [`Value`], consuming it.
    pub fn into_value(self) -> serde_json::Result<Value> {
        match self.0 {
            Repr::Raw(r) => serde_json::from_str(r.get()),
            Repr::Value(v) => Ok(v),
        }
    }

    /// The value of `key` when the payload is a JSON object that has it (only that entry is
    /// parsed into a [`Value`]).
    pub fn get(&self, key: &str) -> Option<Value> {
        match &self.0 {
            Repr::Raw(r) => {
                let entries = Entries::parse(r.get())?;
                // a repeated key: the last one wins, as in a Value
                let (_, v) = entries.into_iter().rev().find(|(k, _)| k == key)?;
                serde_json::from_str(v.get()).ok()
            }
            Repr::Value(v) => v.get(key).cloned(),
        }
    }

    /// The string value of `key` when the payload is a JSON object that has it as a string;
    /// calls `f` with it (for filters, which match strings without copying them).
    pub fn with_str<R>(&self, key: &str, f: impl FnOnce(&str) -> R) -> Option<R> {
        match &self.0 {
            Repr::Raw(r) => {
                let entries = Entries::parse(r.get())?;
                let (_, v) = entries.into_iter().rev().find(|(k, _)| k == key)?;
                let s: Str<'_> = serde_json::from_str(v.get()).ok()?;
                Some(f(&s.0))
            }
            Repr::Value(v) => v.get(key).and_then(Value::as_str).map(f),
        }
    }

    /// Whether the payload is a JSON object.
    pub fn is_object(&self) -> bool {
        match &self.0 {
            Repr::Raw(r) => r.get().trim_start().starts_with('{'),
            Repr::Value(v) => v.is_object(),
        }
    }

    /// Whether the payload is a JSON object without entries (`{}`).
    pub fn is_empty_object(&self) -> bool {
        match &self.0 {
            Repr::Raw(r) => r
                .get()
                .trim()
                .strip_prefix('{')
                .is_some_and(|rest| rest.trim_start() == "}"),
            Repr::Value(v) => v.as_object().is_some_and(serde_json::Map::is_empty),
        }
    }

    /// Whether the payload is JSON `null`.
    pub fn is_null(&self) -> bool {
        match &self.0 {
            Repr::Raw(r) => r.get().trim() == "null",
            Repr::Value(v) => v.is_null(),
        }
    }

    /// The payload's JSON text: as received (spacing and key order kept), or serialized now
    /// for one built from a [`Value`].
    pub fn raw(&self) -> Cow<'_, str> {
        match &self.0 {
            Repr::Raw(r) => Cow::Borrowed(r.get()),
            Repr::Value(v) => Cow::Owned(v.to_string()),
        }
    }
}

/// The entries of a JSON object, in order, their values left as text.
struct Entries;

impl Entries {
    fn parse(json: &str) -> Option<Vec<(Cow<'_, str>, &RawValue)>> {
        serde_json::from_str::<ObjectEntries<'_>>(json)
            .ok()
            .map(|e| e.0)
    }
}

struct ObjectEntries<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for ObjectEntries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ObjectEntries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<Str<'de>>()? {
                    out.push((k.0, map.next_value::<&'de RawValue>()?));
                }
                Ok(ObjectEntries(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl Default for Payload {
    /// JSON `null`.
    fn default() -> Self {
        Payload(Repr::Value(Value::Null))
    }
}

impl From<Value> for Payload {
    fn from(v: Value) -> Self {
        Payload(Repr::Value(v))
    }
}

impl From<serde_json::Map<String, Value>> for Payload {
    fn from(m: serde_json::Map<String, Value>) -> Self {
        Payload(Repr::Value(Value::Object(m)))
    }
}

impl From<Box<RawValue>> for Payload {
    fn from(r: Box<RawValue>) -> Self {
        Payload(Repr::Raw(r))
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Repr::Raw(r) => r.serialize(s),
            Repr::Value(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Payload {
    /// Keeps the JSON text (needs serde_json's deserializer, as `RawValue` does).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(Payload::from_raw)
    }
}

impl PartialEq for Payload {
    /// Equal as JSON values (the same text is equal without parsing).
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Raw(a), Repr::Raw(b)) if a.get() == b.get() => true,
            (Repr::Value(a), Repr::Value(b)) => a == b,
            _ => match (self.to_value(), other.to_value()) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            },
        }
    }
}

impl PartialEq<Value> for Payload {
    fn eq(&self, other: &Value) -> bool {
        match &self.0 {
            Repr::Value(v) => v == other,
            Repr::Raw(_) => self.to_value().is_ok_and(|v| &v == other),
        }
    }
}

impl PartialEq<Payload> for Value {
    fn eq(&self, other: &Payload) -> bool {
        other == self
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Raw(r) => write!(f, "Payload({})", r.get()),
            Repr::Value(v) => write!(f, "Payload({v})"),
        }
    }
}

impl fmt::Display for Payload {
    /// The JSON text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Raw(r) => f.write_str(r.get()),
            Repr::Value(v) => write!(f, "{v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn raw_and_value_payloads_agree() {
        let raw = Payload::from_json(r#"{"a": "x", "b": {"c": [1, 2]}, "a": "y"}"#).unwrap();
        let built = Payload::from(json!({"a": "y", "b": {"c": [1, 2]}}));
        assert_eq!(raw, built);
        assert_eq!(raw.get("a"), Some(json!("y")));
        assert_eq!(built.get("a"), Some(json!("y")));
        assert_eq!(raw.get("b"), Some(json!({"c": [1, 2]})));
        assert_eq!(raw.get("zz"), None);
        assert_eq!(raw.with_str("a", str::len), Some(1));
        assert_eq!(raw.with_str("b", str::len), None);
        assert!(raw.is_object() && built.is_object());
        assert_eq!(raw.to_value().unwrap(), built.into_value().unwrap());
    }

    #[test]
    fn escaped_strings_are_unescaped_for_filters() {
        let raw = Payload::from_json(r#"{"state": "act\u0069ve\n"}"#).unwrap();
        assert_eq!(
            raw.with_str("state", |s| s.to_string()),
            Some("active\n".into())
        );
    }

    #[test]
    fn not_an_object() {
        for text in ["[1]", "\"s\"", "3", "null"] {
            let p = Payload::from_json(text).unwrap();
            assert_eq!(p.get("a"), None, "{text}");
            assert!(!p.is_object());
        }
        assert!(Payload::from_json("null").unwrap().is_null());
        assert!(Payload::from_json("{").is_err());
    }

    #[test]
    fn serializes_as_its_text() {
        let p = Payload::from_json(r#"{"a": 1}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&json!({"p": p})).unwrap(),
            r#"{"p":{"a":1}}"#
        );
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::new(&mut out);
        p.serialize(&mut ser).unwrap();
        assert_eq!(out, br#"{"a": 1}"#);
    }
}
