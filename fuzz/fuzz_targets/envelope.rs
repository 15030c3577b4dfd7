//! The 2.0 envelope (`msg_core::codec::decode_object`, `envelope`).
//!
//! - Decoding any bytes returns, never panics.
//! - An object that decodes comes back the same when wrapped with `envelope` and decoded.
//! - The one-pass reader of the envelope as oslo writes it agrees with the general path: the
//!   input is taken as the escaped text of `oslo.message`, put in both key orders (only the
//!   first takes the one-pass reader) and both decodings must agree.

#![no_main]

use libfuzzer_sys::fuzz_target;
use msg_core::codec::{decode_object, envelope};
use msg_fuzz::assert_map_eq;

/// Whether `escaped` is the inside of one JSON string as far as the lexer sees: no quote
/// that isn't escaped, no lone backslash at the end.
fn is_one_string(escaped: &[u8]) -> bool {
    let mut bytes = escaped.iter();
    while let Some(b) = bytes.next() {
        match b {
            b'"' => return false,
            b'\\' if bytes.next().is_none() => return false,
            _ => {}
        }
    }
    true
}

fuzz_target!(|data: &[u8]| {
    if let Ok(object) = decode_object(data) {
        let inner = serde_json::to_vec(&object).expect("a decoded object serializes");
        let again = decode_object(&envelope(&inner).expect("serde_json writes UTF-8"))
            .expect("an enveloped object decodes");
        assert_map_eq("the object", &object, &again);
    }

    if is_one_string(data) {
        let wrap = |head: &[u8], tail: &[u8]| [head, data, tail].concat();
        let oslo_order = wrap(br#"{"oslo.version": "2.0", "oslo.message": ""#, br#""}"#);
        let other_order = wrap(br#"{"oslo.message": ""#, br#"", "oslo.version": "2.0"}"#);
        match (decode_object(&oslo_order), decode_object(&other_order)) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "the two key orders decode differently"),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("one key order decodes and the other not:\n  {a:?}\n  {b:?}"),
        }
    }
});
