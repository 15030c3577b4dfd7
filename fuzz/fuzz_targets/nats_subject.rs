//! NATS subject tokens, JetStream names and ack subjects (`msg_driver_nats`'s `subject`
//! module).
//!
//! The module is compiled here from its source file rather than through the
//! `msg-driver-nats` crate: that crate brings async-nats (rustls, ring, tokio-rustls, ...),
//! whose instrumented build alone takes four CPU-minutes, for code the module doesn't use.
//! So the module must keep depending on `msg_core`, `sha2` and `std` only.
//!
//! - Decoding any token, name or ack subject returns, never panics.
//! - Any text encodes to one token of `[A-Za-z0-9_%-]` that decodes back to it.
//! - Any parts encode to a JetStream name of `[A-Za-z0-9_-]`, at most 200 bytes, that decodes
//!   back to them unless it was shortened; two lists of parts never share a name; a name
//!   that decodes is the one its parts encode to.
//! - Every subject the layout makes from any names is tokens that NATS takes (not empty, no
//!   white space, no wildcard), and every stream and consumer name one JetStream takes.
//! - An ack subject made from a stream, a consumer and counts reads back as them, in both
//!   the short form and the form with a domain.

#![no_main]

#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/msg-driver-nats/src/subject.rs"]
mod subject;

use libfuzzer_sys::fuzz_target;
use msg_core::Priority;

use subject::{
    Layout, ack_consumer, decode_name, decode_token, delivered_count, encode_name, encode_token,
    stream_sequence,
};

/// The longest JetStream name the layout makes.
const MAX_NAME: usize = 200;

fn assert_subject(subject: &str) {
    for token in subject.split('.') {
        assert!(
            !token.is_empty()
                && !token.contains(|c: char| c.is_whitespace() || c == '*' || c == '>'),
            "subject {subject:?} has the token {token:?}"
        );
    }
}

fn assert_name(name: &str) {
    assert!(
        !name.is_empty()
            && name.len() <= MAX_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "JetStream name {name:?}"
    );
}

fn names(a: &str, b: &str, c: &str, other: &str) {
    let parts = [a, b, c];
    let name = encode_name(&parts);
    assert_name(&name);
    match decode_name(&name) {
        Ok(back) => assert_eq!(back, parts, "{name:?} decodes to other parts"),
        Err(_) => assert!(
            name.contains("_h"),
            "{name:?} doesn't decode and isn't shortened"
        ),
    }
    let others = [c, b, other];
    if others != parts {
        assert_ne!(
            encode_name(&others),
            name,
            "{others:?} and {parts:?} share a name"
        );
    }
    for text in [a, other] {
        if let Ok(parts) = decode_name(text) {
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            if text.len() <= MAX_NAME {
                assert_eq!(encode_name(&parts), text, "{text:?} decodes to {parts:?}");
            }
        }
    }
}

fn layout(prefix: &str, a: &str, b: &str, c: &str) {
    let Ok(layout) = Layout::new(prefix) else {
        return;
    };
    let subjects = [
        layout.rpc_topic(a, b),
        layout.rpc_server(a, b, c),
        layout.rpc_fanout(a),
        layout.notify_subject(a, b, Priority::Info),
        layout.dead_letter_subject(a, b, Priority::Error),
    ];
    for s in subjects.into_iter().flatten() {
        assert_subject(&s);
    }
    let names = [
        layout.notify_stream(a),
        layout.dead_letter_stream(a),
        layout.default_consumer(b, Priority::Warn),
        layout.pool_consumer(c, b, Priority::Sample),
    ];
    for n in names.into_iter().flatten() {
        assert_name(&n);
    }
}

fn ack_subjects(a: &str, b: &str, delivered: u64, sequence: u64) {
    for text in [a, b] {
        let _ = (
            ack_consumer(text),
            delivered_count(text),
            stream_sequence(text),
        );
    }
    let (stream, consumer) = (encode_name(&[a]), encode_name(&[b]));
    for subject in [
        format!("$JS.ACK.{stream}.{consumer}.{delivered}.{sequence}.7.1700000000000000000.0"),
        format!(
            "$JS.ACK.hub.ACC.{stream}.{consumer}.{delivered}.{sequence}.7.1700000000000000000.0.r4nd"
        ),
    ] {
        assert_eq!(
            ack_consumer(&subject),
            Some((stream.as_str(), consumer.as_str()))
        );
        assert_eq!(delivered_count(&subject), Some(delivered), "{subject}");
        assert_eq!(stream_sequence(&subject), Some(sequence), "{subject}");
    }
}

fuzz_target!(|input: (&str, &str, &str, &str, u64, u64)| {
    let (a, b, c, other, delivered, sequence) = input;
    let _ = decode_token(a);
    for text in [a, b, c] {
        let token = encode_token(text);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_%-".contains(&b)),
            "{text:?} encodes to {token:?}"
        );
        assert_eq!(decode_token(&token).ok().as_deref(), Some(text));
    }
    names(a, b, c, other);
    layout(other, a, b, c);
    ack_subjects(a, b, delivered, sequence);
});
