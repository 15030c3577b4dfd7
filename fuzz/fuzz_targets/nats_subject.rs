//! NATS subject tokens and the driver's subjects (`msg_driver_nats`'s `subject` module).
//!
//! The module is compiled here from its source file rather than through the
//! `msg-driver-nats` crate: that crate brings async-nats (rustls, ring, tokio-rustls, ...),
//! whose instrumented build alone takes four CPU-minutes, for code the module doesn't use.
//! So the module must keep depending on `msg_core` and `std` only.
//!
//! - Decoding any token returns, never panics.
//! - Any text encodes to one token of `[A-Za-z0-9_%-]` that decodes back to it.
//! - Every subject the layout makes from any names is tokens that NATS takes: not empty, no
//!   white space, no wildcard; every stream and consumer name is one JetStream takes.

#![no_main]

#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/msg-driver-nats/src/subject.rs"]
mod subject;

use libfuzzer_sys::fuzz_target;
use msg_core::Priority;

use subject::{Layout, decode_token, encode_token};

fn assert_subject(subject: &str) {
    for token in subject.split('.') {
        assert!(
            !token.is_empty()
                && !token.contains(|c: char| c.is_whitespace() || c == '*' || c == '>'),
            "subject {subject:?} has the token {token:?}"
        );
    }
}

/// A JetStream stream or consumer name: printable, none of `.`, `*`, `>`, `/`, `\\`, white
/// space, at most 255 bytes.
fn assert_name(name: &str) {
    assert!(
        !name.is_empty()
            && name.len() <= 255
            && !name.contains(|c: char| {
                c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\')
            }),
        "JetStream name {name:?}"
    );
}

fuzz_target!(|input: (&str, &str, &str, &str)| {
    let (a, b, c, prefix) = input;
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
});
