//! Message properties and bodies as oslo/kombu put them on the wire.

use std::io::Read;

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use msg_core::{Error, Result};

/// kombu's content type for zlib ("gzip") compression.
const GZIP: &str = "application/x-gzip";
/// kombu's content type for bz2 compression.
const BZ2: &str = "application/x-bz2";

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
        "bz2" => BZ2,
        _ => GZIP,
    }
}

/// Compresses an outgoing body as kombu does for `kombu_compression`.
pub(crate) fn compress(body: Vec<u8>, option: Option<&str>) -> Result<Vec<u8>> {
    use std::io::Write;
    match option {
        None => Ok(body),
        Some("bz2") => {
            let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
            enc.write_all(&body)
                .and_then(|()| enc.finish())
                .map_err(|e| Error::malformed(format!("bz2 compression failed: {e}")))
        }
        Some(_) => {
            let mut enc =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(&body)
                .and_then(|()| enc.finish())
                .map_err(|e| Error::malformed(format!("zlib compression failed: {e}")))
        }
    }
}

/// The body of a delivery, decompressed when kombu compressed it (`compression` header).
pub(crate) fn decompress<'a>(
    data: &'a [u8],
    properties: &BasicProperties,
) -> Result<std::borrow::Cow<'a, [u8]>> {
    let compression = properties.headers().as_ref().and_then(|h| {
        h.inner().get("compression").and_then(|v| match v {
            AMQPValue::LongString(s) => Some(s.to_string()),
            AMQPValue::ShortString(s) => Some(s.to_string()),
            _ => None,
        })
    });
    let Some(kind) = compression else {
        return Ok(std::borrow::Cow::Borrowed(data));
    };
    let mut out = Vec::with_capacity(data.len() * 4);
    let result = match kind.as_str() {
        GZIP | "gzip" | "zlib" | "application/x-zlib" => {
            if data.starts_with(&[0x1f, 0x8b]) {
                flate2::read::GzDecoder::new(data).read_to_end(&mut out)
            } else {
                flate2::read::ZlibDecoder::new(data).read_to_end(&mut out)
            }
        }
        BZ2 | "bz2" | "bzip2" => bzip2::read::BzDecoder::new(data).read_to_end(&mut out),
        other => {
            return Err(Error::malformed(format!("unknown compression `{other}`")));
        }
    };
    result.map_err(|e| Error::malformed(format!("{kind} body can't be decompressed: {e}")))?;
    Ok(std::borrow::Cow::Owned(out))
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
            assert_eq!(&*decompress(&packed, &props).unwrap(), &body[..]);
        }
        let plain = properties(Some(1500), None);
        assert_eq!(
            plain.expiration().as_ref().map(|e| e.as_str()),
            Some("1500")
        );
        assert_eq!(&*decompress(b"{}", &plain).unwrap(), b"{}");
    }
}
