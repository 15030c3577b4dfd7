//! Message properties and bodies as oslo/kombu put them on the wire.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use msg_core::codec::Compression;
use msg_core::{Error, Result};

/// The properties of every message (WIRE.md): JSON, utf-8, persistent, priority 0, empty
/// headers; an RPC call adds its timeout as `expiration`.
pub(crate) fn properties(
    expiration_ms: Option<u128>,
    compression: Option<&str>,
) -> BasicProperties {
    if expiration_ms.is_none() && compression.is_none() {
        // the common case, built once
        static PLAIN: std::sync::OnceLock<BasicProperties> = std::sync::OnceLock::new();
        return PLAIN.get_or_init(|| build(None, None)).clone();
    }
    build(expiration_ms, compression)
}

fn build(expiration_ms: Option<u128>, compression: Option<&str>) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(c) = compression {
        headers.insert(
            "compression".into(),
            AMQPValue::LongString(content_type_of(c).into()),
        );
    }
    let p = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2)
        .with_priority(0)
        .with_headers(headers);
    match expiration_ms {
        Some(ms) => p.with_expiration(ms.to_string().into()),
        None => p,
    }
}

fn content_type_of(option: &str) -> &'static str {
    match option {
        "bz2" => Compression::Bz2.content_type(),
        _ => Compression::Zlib.content_type(),
    }
}

/// Compresses an outgoing body as kombu does for `kombu_compression`.
pub(crate) fn compress(body: Vec<u8>, option: Option<&str>) -> Result<Vec<u8>> {
    match option {
        None => Ok(body),
        Some("bz2") => Compression::Bz2.compress(&body),
        Some(_) => Compression::Zlib.compress(&body),
    }
}

/// The compression kombu's `compression` header names, if any (an unknown one is malformed).
pub(crate) fn compression(properties: &BasicProperties) -> Option<Result<Compression>> {
    let headers = properties.headers().as_ref()?;
    let name = match headers.inner().get("compression")? {
        AMQPValue::LongString(s) => s.to_string(),
        AMQPValue::ShortString(s) => s.to_string(),
        _ => {
            return Some(Err(Error::malformed(
                "the `compression` header is not a string",
            )));
        }
    };
    Some(Compression::from_content_type(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_round_trips() {
        for c in ["gzip", "bz2"] {
            let body = br#"{"oslo.version": "2.0"}"#.repeat(20);
            let packed = compress(body.clone(), Some(c)).unwrap();
            assert_ne!(packed, body);
            let props = properties(None, Some(c));
            let kind = compression(&props).unwrap().unwrap();
            assert_eq!(kind.decompress(&packed, 1 << 20).unwrap(), body);
        }
        let plain = properties(Some(1500), None);
        assert_eq!(
            plain.expiration().as_ref().map(|e| e.as_str()),
            Some("1500")
        );
        assert!(compression(&plain).is_none());
    }
}
