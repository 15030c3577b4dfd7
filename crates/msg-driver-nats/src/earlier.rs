//! The stream and consumer names of earlier releases, kept only to find what those releases
//! made and go on with it (docs/nats.md, "Names of earlier releases").
//!
//! Earlier releases joined subject tokens ([`encode_token`]: `%XX` escapes) with `~`, and
//! wrote a prefix's dots as `%2E`; a name over 200 bytes kept its first 180 bytes followed by
//! `~h` and the 16 hex digits of the FNV-1a 64 hash of the full name.

use msg_core::Priority;

use crate::subject::{Layout, encode_token};

/// Joins parts the earlier way.
fn name(parts: &[&str]) -> String {
    let full = parts.join("~");
    if full.len() <= 200 {
        return full;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in full.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // the name is ASCII (encoded tokens), so any byte index is a char boundary
    format!("{}~h{hash:016x}", full.get(..180).unwrap_or_default())
}

fn prefix(layout: &Layout) -> String {
    layout.prefix().replace('.', "%2E")
}

/// The earlier name of an exchange's notification stream: `<prefix>~notify~<exchange>`.
pub(crate) fn notify_stream(layout: &Layout, exchange: &str) -> String {
    name(&[&prefix(layout), "notify", &encode_token(exchange)])
}

/// The earlier name of an exchange's dead-letter stream: `<prefix>~dlq~<exchange>`.
pub(crate) fn dead_letter_stream(layout: &Layout, exchange: &str) -> String {
    name(&[&prefix(layout), "dlq", &encode_token(exchange)])
}

/// The earlier name of a consumer: `default~<topic>~<priority>` without a pool,
/// `pool~<pool>~<topic>~<priority>` with one.
pub(crate) fn consumer(pool: Option<&str>, topic: &str, priority: Priority) -> String {
    match pool {
        Some(p) => name(&[
            "pool",
            &encode_token(p),
            &encode_token(topic),
            priority.routing_name(),
        ]),
        None => name(&["default", &encode_token(topic), priority.routing_name()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_names_are_as_they_were() {
        let l = Layout::new("a.b").unwrap();
        assert_eq!(notify_stream(&l, "x.y"), "a%2Eb~notify~x%2Ey");
        assert_eq!(dead_letter_stream(&l, "x"), "a%2Eb~dlq~x");
        assert_eq!(consumer(None, "a.b", Priority::Info), "default~a%2Eb~info");
        assert_eq!(
            consumer(Some("p@1"), "t", Priority::Error),
            "pool~p%401~t~error"
        );
        let long = consumer(None, &"t".repeat(300), Priority::Info);
        assert_eq!(long.len(), 198);
        assert!(long.contains("~h"));
    }
}
