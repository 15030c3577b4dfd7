//! Compressed bodies as kombu makes them (its `compression` header): zlib (named gzip) and
//! bzip2, decompressed as a stream and refused past a size ceiling, so a few kilobytes of
//! bomb can't become gigabytes in memory.

use std::io::{Read, Write};

use crate::{Error, Result};

/// The ceiling on a decompressed body unless a transport option says otherwise: 64 MiB.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// A compression kombu applies to a body.
///
/// ```
/// use msg_core::codec::Compression;
/// let c = Compression::from_content_type("application/x-bz2").unwrap();
/// let packed = c.compress(b"{\"a\": 1}").unwrap();
/// assert_eq!(c.decompress(&packed, 1024).unwrap(), b"{\"a\": 1}");
/// // past the ceiling: refused, not allocated
/// assert!(c.decompress(&c.compress(&[0; 4096]).unwrap(), 1024).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// zlib (kombu's `application/x-gzip`); a gzip stream is read too.
    Zlib,
    /// bzip2 (kombu's `application/x-bz2`).
    Bz2,
}

impl Compression {
    /// The compression a `compression` header names (kombu's content types, and the short
    /// names `gzip`, `zlib`, `bz2`, `bzip2`); an unknown one is malformed.
    pub fn from_content_type(name: &str) -> Result<Self> {
        match name {
            "application/x-gzip" | "gzip" | "zlib" | "application/x-zlib" => Ok(Compression::Zlib),
            "application/x-bz2" | "bz2" | "bzip2" => Ok(Compression::Bz2),
            other => Err(Error::malformed(format!(
                "unknown compression `{}`",
                other.chars().take(64).collect::<String>()
            ))),
        }
    }

    /// The content type kombu puts in the `compression` header.
    pub fn content_type(self) -> &'static str {
        match self {
            Compression::Zlib => "application/x-gzip",
            Compression::Bz2 => "application/x-bz2",
        }
    }

    /// Compresses a body.
    pub fn compress(self, body: &[u8]) -> Result<Vec<u8>> {
        let done = match self {
            Compression::Zlib => {
                let mut enc =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(body).and_then(|()| enc.finish())
            }
            Compression::Bz2 => {
                let mut enc =
                    bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
                enc.write_all(body).and_then(|()| enc.finish())
            }
        };
        done.map_err(|e| Error::malformed(format!("{self:?} compression failed: {e}")))
    }

    /// Decompresses a body as a stream, refusing it (malformed) as soon as it passes `limit`
    /// bytes. CPU-bound for large bodies: call it off the async workers.
    pub fn decompress(self, data: &[u8], limit: usize) -> Result<Vec<u8>> {
        let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        let reader: Box<dyn Read + '_> = match self {
            Compression::Zlib if data.starts_with(&[0x1f, 0x8b]) => {
                Box::new(flate2::read::GzDecoder::new(data))
            }
            Compression::Zlib => Box::new(flate2::read::ZlibDecoder::new(data)),
            Compression::Bz2 => Box::new(bzip2::read::BzDecoder::new(data)),
        };
        let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
        reader
            .take(cap)
            .read_to_end(&mut out)
            .map_err(|e| Error::malformed(format!("a {self:?} body can't be decompressed: {e}")))?;
        if out.len() > limit {
            return Err(Error::malformed(format!(
                "a {self:?} body decompresses to more than {limit} bytes (the ceiling)"
            )));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_gzip_streams_too() {
        for c in [Compression::Zlib, Compression::Bz2] {
            let body = br#"{"oslo.version": "2.0"}"#.repeat(20);
            let packed = c.compress(&body).unwrap();
            assert_ne!(packed, body);
            assert_eq!(c.decompress(&packed, body.len()).unwrap(), body);
            assert_eq!(Compression::from_content_type(c.content_type()).unwrap(), c);
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"{}").unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(Compression::Zlib.decompress(&gz, 10).unwrap(), b"{}");
    }

    #[test]
    fn a_bomb_is_refused_at_the_ceiling() {
        for c in [Compression::Zlib, Compression::Bz2] {
            let bomb = c.compress(&vec![0u8; 8 << 20]).unwrap();
            assert!(bomb.len() < 64 << 10, "{c:?}: {} bytes", bomb.len());
            let e = c.decompress(&bomb, 1 << 20).unwrap_err().to_string();
            assert!(e.contains("more than 1048576 bytes"), "{e}");
            assert_eq!(c.decompress(&bomb, 8 << 20).unwrap().len(), 8 << 20);
        }
    }

    #[test]
    fn garbage_and_unknown_kinds_are_malformed() {
        assert!(Compression::Zlib.decompress(b"not zlib", 100).is_err());
        assert!(Compression::Bz2.decompress(b"not bz2", 100).is_err());
        assert!(Compression::from_content_type("application/x-lzma").is_err());
    }
}
