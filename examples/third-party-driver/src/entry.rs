//! Stream entries as Redis returns them, read by hand: an entry anyone could have added
//! (`XADD` with any fields) must never make a whole read fail, or it would come back for
//! ever. Whatever can't be read here is an entry without a body, which its listener logs
//! and removes.

use std::sync::Arc;

use redis::Value;

/// The field of an entry that holds the message.
pub(crate) const BODY_FIELD: &str = "b";
/// The longest entry id Redis makes (`<u64>-<u64>`).
const MAX_ID_LEN: usize = 41;

/// One stream entry.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The stream it is in.
    pub(crate) key: Arc<str>,
    /// Its id.
    pub(crate) id: String,
    /// The `b` field, or `None` when the entry has none (or isn't one Redis makes).
    pub(crate) body: Option<Vec<u8>>,
    /// How often its group delivered it, this time included.
    pub(crate) deliveries: u64,
}

fn text(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn id_of(v: &Value) -> Option<String> {
    let b = text(v)?;
    if b.is_empty() || b.len() > MAX_ID_LEN || !b.iter().all(|c| c.is_ascii_digit() || *c == b'-') {
        return None;
    }
    String::from_utf8(b.to_vec()).ok()
}

fn body_of(fields: &Value) -> Option<Vec<u8>> {
    let Value::Array(fields) = fields else {
        return None;
    };
    fields
        .chunks(2)
        .find(|kv| text(&kv[0]) == Some(BODY_FIELD.as_bytes()))
        .and_then(|kv| kv.get(1))
        .and_then(text)
        .map(<[u8]>::to_vec)
}

/// One `[id, [field, value, ...]]` (plus, from our scripts, a delivery count).
fn entry(key: &Arc<str>, v: Value) -> Option<Entry> {
    let Value::Array(parts) = v else {
        return None;
    };
    let id = id_of(parts.first()?)?;
    let body = parts.get(1).and_then(body_of);
    let deliveries = match parts.get(2) {
        Some(Value::Int(n)) => u64::try_from(*n).unwrap_or(1),
        // a first delivery (`XREADGROUP ... >`) carries no count
        _ => 1,
    };
    Some(Entry {
        key: key.clone(),
        id,
        body,
        deliveries,
    })
}

/// The entries of an `XREADGROUP` / `XREAD` reply, by stream (`keys` are the streams read,
/// so the stream's name comes from what was asked, not from the reply).
pub(crate) fn read_reply(keys: &[Arc<str>], v: Value) -> Vec<Entry> {
    let Value::Array(streams) = v else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in streams {
        let Value::Array(mut pair) = s else { continue };
        if pair.len() != 2 {
            continue;
        }
        let entries = pair.pop();
        let name = pair.pop();
        let Some(key) = name
            .as_ref()
            .and_then(text)
            .and_then(|n| keys.iter().find(|k| k.as_bytes() == n))
        else {
            continue;
        };
        if let Some(Value::Array(entries)) = entries {
            out.extend(entries.into_iter().filter_map(|e| entry(key, e)));
        }
    }
    out
}

/// The entries one of our claim scripts returns: `[[id, fields, deliveries], ...]`.
pub(crate) fn claimed(key: &Arc<str>, v: Value) -> Vec<Entry> {
    match v {
        Value::Array(entries) => entries.into_iter().filter_map(|e| entry(key, e)).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &[u8]) -> Value {
        Value::BulkString(s.to_vec())
    }

    #[test]
    fn odd_entries_are_kept_without_a_body_and_bad_ids_dropped() {
        let key: Arc<str> = Arc::from("k");
        let reply = Value::Array(vec![Value::Array(vec![
            bulk(b"k"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk(b"1-1"),
                    Value::Array(vec![bulk(b"b"), bulk(b"{}")]),
                ]),
                // no `b` field, an odd number of fields, a body that isn't a string
                Value::Array(vec![bulk(b"1-2"), Value::Array(vec![bulk(b"x")])]),
                Value::Array(vec![
                    bulk(b"1-3"),
                    Value::Array(vec![bulk(b"b"), Value::Int(5)]),
                ]),
                // a deleted entry, then garbage
                Value::Array(vec![bulk(b"1-4"), Value::Nil]),
                Value::Array(vec![bulk(b"not an id"), Value::Nil]),
                Value::Int(3),
            ]),
        ])]);
        let got = read_reply(std::slice::from_ref(&key), reply);
        let ids: Vec<_> = got
            .iter()
            .map(|e| (e.id.as_str(), e.body.is_some()))
            .collect();
        assert_eq!(
            ids,
            [
                ("1-1", true),
                ("1-2", false),
                ("1-3", false),
                ("1-4", false)
            ]
        );
        assert!(read_reply(std::slice::from_ref(&key), Value::Nil).is_empty());
        // a stream that wasn't asked for is ignored
        let other = Value::Array(vec![Value::Array(vec![bulk(b"zz"), Value::Array(vec![])])]);
        assert!(read_reply(&[key], other).is_empty());
    }

    #[test]
    fn claimed_entries_carry_their_delivery_count() {
        let key: Arc<str> = Arc::from("k");
        let v = Value::Array(vec![Value::Array(vec![
            bulk(b"5-0"),
            Value::Array(vec![bulk(b"b"), bulk(b"x")]),
            Value::Int(4),
        ])]);
        let got = claimed(&key, v);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].deliveries, 4);
        assert_eq!(got[0].body.as_deref(), Some(&b"x"[..]));
    }
}
