//! Compressed bodies as kombu sends them (`msg_core::codec::Compression`).
//!
//! The first byte picks the compression, the next two a ceiling (up to 64 KiB, so bombs are
//! cheap to try); the rest is the body.
//!
//! - Decompressing any bytes returns, never panics, and never gives more than the ceiling.
//! - The ceiling is exact: what decompresses under one ceiling decompresses the same under
//!   any higher one and is refused under one byte less.
//! - Any body compresses, and decompresses back to itself under a ceiling of its own length.
//! - Any `compression` header text parses or is refused, never panics; the content type of a
//!   compression parses back to it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use msg_core::codec::Compression;

fuzz_target!(|data: &[u8]| {
    let [pick, hi, lo, body @ ..] = data else {
        return;
    };
    let kind = if pick & 1 == 0 {
        Compression::Zlib
    } else {
        Compression::Bz2
    };
    let limit = usize::from(u16::from_be_bytes([*hi, *lo]));

    if let Ok(text) = std::str::from_utf8(body) {
        let _ = Compression::from_content_type(text);
    }
    assert_eq!(
        Compression::from_content_type(kind.content_type()).ok(),
        Some(kind)
    );

    if let Ok(out) = kind.decompress(body, limit) {
        assert!(
            out.len() <= limit,
            "{} bytes under a ceiling of {limit}",
            out.len()
        );
        let higher = kind.decompress(body, limit.saturating_add(1 << 16));
        assert_eq!(
            higher.ok().as_ref(),
            Some(&out),
            "a higher ceiling gives another body"
        );
        if let Some(less) = out.len().checked_sub(1) {
            assert!(
                kind.decompress(body, less).is_err(),
                "{} bytes taken under a ceiling of {less}",
                out.len()
            );
        }
    }

    // compressing costs more than decompressing (bzip2 sets up its blocks): only every
    // other input, and only short ones
    if pick & 2 == 0 && body.len() <= 1024 {
        let packed = kind.compress(body).expect("any body compresses");
        let back = kind
            .decompress(&packed, body.len())
            .expect("a compressed body decompresses under its own length");
        assert_eq!(back, body);
        if let Some(less) = body.len().checked_sub(1) {
            assert!(kind.decompress(&packed, less).is_err());
        }
    }
});
