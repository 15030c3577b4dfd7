//! Single-pass decoding: the body's keys go straight into typed fields (no intermediate
//! JSON map), and the envelope is recognised in the same pass as a bare message.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::{Error, Result};

use super::{CONTEXT_PREFIX, MESSAGE_KEY, VERSION_KEY};

/// A message's fields, filled key by key.
pub(super) trait Fields: Default {
    /// Takes the value of `key` when it is one of ours (returns `true`), else leaves it.
    fn field<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error>;
}

/// Decodes a body, enveloped or bare, into `F` (envelope versions other than 2.x refused).
pub(super) fn decode<F: Fields>(bytes: &[u8]) -> Result<F> {
    let outer: Outer<F> =
        serde_json::from_slice(bytes).map_err(|e| Error::malformed(format!("body: {e}")))?;
    match (outer.version, outer.message) {
        (Some(version), Some(message)) => {
            check_envelope_version(&version)?;
            let inner: Inner<F> = serde_json::from_str(&message)
                .map_err(|e| Error::malformed(format!("`oslo.message`: {e}")))?;
            Ok(inner.0)
        }
        _ => Ok(outer.fields),
    }
}

fn check_envelope_version(v: &str) -> Result<()> {
    let ok = v
        .split_once('.')
        .map(|(major, _)| major == "2")
        .unwrap_or(v == "2");
    if ok {
        Ok(())
    } else {
        Err(Error::malformed(format!(
            "unsupported envelope version `{v}` (expected 2.x)"
        )))
    }
}

/// The outer object: the envelope's two keys, and the fields of a bare message.
struct Outer<F> {
    version: Option<String>,
    message: Option<String>,
    fields: F,
}

struct Inner<F>(F);

impl<'de, F: Fields> de::Deserialize<'de> for Outer<F> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<F>(PhantomData<F>);
        impl<'de, F: Fields> Visitor<'de> for V<F> {
            type Value = Outer<F>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Outer<F>, A::Error> {
                let mut out = Outer {
                    version: None,
                    message: None,
                    fields: F::default(),
                };
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        VERSION_KEY => out.version = string_or_skip(&mut map)?,
                        MESSAGE_KEY => out.message = string_or_skip(&mut map)?,
                        k => {
                            if !out.fields.field(k, &mut map)? {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

impl<'de, F: Fields> de::Deserialize<'de> for Inner<F> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<F>(PhantomData<F>);
        impl<'de, F: Fields> Visitor<'de> for V<F> {
            type Value = Inner<F>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Inner<F>, A::Error> {
                let mut fields = F::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if !fields.field(&key, &mut map)? {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Inner(fields))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// A string value; anything else is kept as `None` (an envelope key that isn't a string
/// makes the object a bare message, as Python's check).
fn string_or_skip<'de, A: MapAccess<'de>>(
    map: &mut A,
) -> std::result::Result<Option<String>, A::Error> {
    match map.next_value::<Value>()? {
        Value::String(s) => Ok(Some(s)),
        _ => Ok(None),
    }
}

/// A string or null.
pub(super) fn opt_string<'de, A: MapAccess<'de>>(
    key: &str,
    map: &mut A,
) -> std::result::Result<Option<String>, A::Error> {
    map.next_value::<Option<String>>()
        .map_err(|e| de::Error::custom(format!("`{key}` is not a string: {e}")))
}

/// Takes a `_context_<key>` entry into a context map.
pub(super) fn context_entry<'de, A: MapAccess<'de>>(
    key: &str,
    map: &mut A,
    context: &mut Map<String, Value>,
) -> std::result::Result<bool, A::Error> {
    match key.strip_prefix(CONTEXT_PREFIX) {
        Some(k) => {
            context.insert(k.to_string(), map.next_value::<Value>()?);
            Ok(true)
        }
        None => Ok(false),
    }
}
