//! Single-pass decoding: the body's keys go straight into typed fields (no intermediate
//! JSON map), and the envelope is recognised in the same pass as a bare message.

use std::borrow::Cow;
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
    if let Some(message) = plain_envelope(bytes).and_then(|m| String::from_utf8(m).ok()) {
        // checked as UTF-8 once: the inner parse then reads its strings unchecked
        let inner: Inner<F> = serde_json::from_str(&message)
            .map_err(|e| Error::malformed(format!("`oslo.message`: {e}")))?;
        return Ok(inner.0);
    }
    let outer: Outer<F> =
        serde_json::from_slice(bytes).map_err(|e| Error::malformed(format!("body: {e}")))?;
    match (outer.version, outer.message) {
        // both keys make an envelope, as in Python's `deserialize_msg`
        (Some(version), Some(message)) => {
            let version = version.as_str().ok_or_else(|| {
                Error::malformed(format!(
                    "`oslo.version` is {}, not a string",
                    kind(&version)
                ))
            })?;
            check_envelope_version(version)?;
            let message = message.as_str().ok_or_else(|| {
                Error::malformed(format!(
                    "`oslo.message` is {}, not a string holding JSON",
                    kind(&message)
                ))
            })?;
            let inner: Inner<F> = serde_json::from_str(message)
                .map_err(|e| Error::malformed(format!("`oslo.message`: {e}")))?;
            Ok(inner.0)
        }
        _ => Ok(outer.fields),
    }
}

/// The envelope as oslo.messaging and msg write it (`{"oslo.version": "2.0", "oslo.message":
/// "..."}`, with or without the spaces): its message, unescaped in one pass over the body.
/// `None` for any other shape (other keys, another order or version, an escape this pass
/// doesn't take): [`decode`] then takes the general path, which also reports what is wrong.
fn plain_envelope(bytes: &[u8]) -> Option<Vec<u8>> {
    const HEADS: [&[u8]; 2] = [
        br#"{"oslo.version": "2.0", "oslo.message": ""#,
        br#"{"oslo.version":"2.0","oslo.message":""#,
    ];
    let body = bytes.trim_ascii();
    let rest = HEADS.iter().find_map(|h| body.strip_prefix(*h))?;
    let escaped = rest.strip_suffix(br#""}"#)?;
    unescape(escaped)
}

/// Unescapes a JSON string's contents; `None` on an unescaped quote or control character, a
/// bad escape or a lone surrogate. UTF-8 is not checked here: the inner parse checks every
/// string it reads, and bytes outside strings must be JSON's ASCII.
///
/// One pass with a table of the bytes that need a look (as serde_json's own reader does);
/// the runs between escapes are copied whole.
fn unescape(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let (mut i, mut run) = (0, 0);
    while let Some(&b) = s.get(i) {
        if !SPECIAL[usize::from(b)] {
            i += 1;
            continue;
        }
        if b != b'\\' {
            // an unescaped quote or control character
            return None;
        }
        out.extend_from_slice(&s[run..i]);
        let esc = *s.get(i + 1)?;
        i += 2;
        let byte = match esc {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let (c, used) = unicode_escape(&s[i..])?;
                i += used;
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                run = i;
                continue;
            }
            _ => return None,
        };
        out.push(byte);
        run = i;
    }
    out.extend_from_slice(&s[run..]);
    Some(out)
}

/// The bytes [`unescape`] stops at: a backslash, a quote, a control character.
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// The character of a `\uXXXX` escape (after its `\u`), with a surrogate pair's second half;
/// and how many bytes it took.
fn unicode_escape(s: &[u8]) -> Option<(char, usize)> {
    let hex = |b: &[u8]| -> Option<u32> {
        let b = b.get(..4).filter(|b| b.iter().all(u8::is_ascii_hexdigit))?;
        u32::from_str_radix(std::str::from_utf8(b).ok()?, 16).ok()
    };
    let first = hex(s)?;
    if (0xD800..0xDC00).contains(&first) {
        let low = s
            .get(4..6)
            .filter(|p| *p == br"\u")
            .and_then(|_| hex(&s[6..]))?;
        if !(0xDC00..0xE000).contains(&low) {
            return None;
        }
        let c = 0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00);
        return Some((char::from_u32(c)?, 10));
    }
    Some((char::from_u32(first)?, 4))
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
    version: Option<Value>,
    message: Option<Value>,
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
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match &*key.0 {
                        VERSION_KEY => out.version = Some(map.next_value()?),
                        MESSAGE_KEY => out.message = Some(map.next_value()?),
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
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    if !fields.field(&key.0, &mut map)? {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Inner(fields))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// A string borrowed from the input when it has no escapes (serde's own `Cow<str>` always
/// copies): object keys, read without an allocation each.
pub(crate) struct Str<'de>(pub(crate) Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(
                self,
                s: &'de str,
            ) -> std::result::Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> std::result::Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// What kind of JSON value this is, for an error message (never the value itself).
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What serde_json makes of the same string contents.
    fn by_serde(escaped: &[u8]) -> Option<Vec<u8>> {
        let mut quoted = b"\"".to_vec();
        quoted.extend_from_slice(escaped);
        quoted.push(b'"');
        serde_json::from_slice::<String>(&quoted)
            .ok()
            .map(String::into_bytes)
    }

    #[test]
    fn unescapes_what_json_escapes() {
        let cases: [&[u8]; 7] = [
            br#"{\"a\": 1}"#,
            br#"tab\tnl\nq\"bs\\sl\/"#,
            br"caf\u00e9 \ud83d\ude00",
            br"\b\f\r",
            b"",
            "raw é".as_bytes(),
            br"\\",
        ];
        for c in cases {
            assert_eq!(unescape(c), by_serde(c), "{}", String::from_utf8_lossy(c));
        }
    }

    #[test]
    fn leaves_the_odd_ones_to_the_general_path() {
        for c in [
            &br#"a"b"#[..],
            br"\x",
            br"\",
            br"\u12",
            br"\u+123",
            br"\ud83d",
            br"\ud83d\u0041",
            b"a\nb",
        ] {
            assert_eq!(unescape(c), None, "{}", String::from_utf8_lossy(c));
        }
    }

    #[test]
    fn recognises_both_spacings_only() {
        let inner = |b: &[u8]| plain_envelope(b).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(
            inner(br#" {"oslo.version": "2.0", "oslo.message": "{\"a\": 1}"} "#).as_deref(),
            Some(r#"{"a": 1}"#)
        );
        assert_eq!(
            inner(br#"{"oslo.version":"2.0","oslo.message":"{}"}"#).as_deref(),
            Some("{}")
        );
        // another order, version or key: the general path
        assert_eq!(
            inner(br#"{"oslo.message": "{}", "oslo.version": "2.0"}"#),
            None
        );
        assert_eq!(
            inner(br#"{"oslo.version": "2.1", "oslo.message": "{}"}"#),
            None
        );
        assert_eq!(
            inner(br#"{"oslo.version": "2.0", "oslo.message": "{}", "x": "y"}"#),
            None
        );
    }

    proptest! {
        #[test]
        fn agrees_with_serde_on_what_it_takes(s in any::<String>()) {
            let escaped = serde_json::to_string(&s).unwrap();
            let escaped = &escaped.as_bytes()[1..escaped.len() - 1];
            prop_assert_eq!(unescape(escaped), Some(s.into_bytes()));
        }

        #[test]
        fn never_accepts_what_serde_refuses(
            chars in proptest::collection::vec(
                prop::sample::select(vec!['\\', '"', 'u', 'd', '8', '3', 'D', 'c', '0', 'n', '/', 'x', '\n', '\u{1}', 'é']),
                0..48,
            )
        ) {
            let b: String = chars.into_iter().collect();
            if let Some(out) = unescape(b.as_bytes()) {
                prop_assert_eq!(Some(out), by_serde(b.as_bytes()));
            }
        }
    }
}
