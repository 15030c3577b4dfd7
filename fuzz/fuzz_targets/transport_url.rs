//! Transport URLs (`msg_core::TransportUrl::parse`).
//!
//! - Parsing any text returns, never panics.
//! - A URL that parses is written back (`to_string_with_password`) as text that parses to it.
//! - Its shown form (`Display`) parses to it with every password replaced by `****`.
//! - Its scheme is lower-case letters, digits, `+`, `-` and `.`, starting with a letter.

#![no_main]

use libfuzzer_sys::fuzz_target;
use msg_core::TransportUrl;

fuzz_target!(|text: &str| {
    let Ok(url) = TransportUrl::parse(text) else {
        return;
    };
    let scheme = url.scheme();
    assert!(
        scheme.starts_with(|c: char| c.is_ascii_lowercase())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b)),
        "scheme {scheme:?}"
    );

    let full = url.to_string_with_password();
    let back = TransportUrl::parse(&full).expect("a written URL parses");
    assert_eq!(back, url, "written as {full:?}");

    let shown = url.to_string();
    let shown_back = TransportUrl::parse(&shown).expect("a shown URL parses");
    assert_eq!(shown_back.hosts().len(), url.hosts().len());
    for (seen, host) in shown_back.hosts().iter().zip(url.hosts()) {
        assert_eq!(seen.hostname, host.hostname);
        assert_eq!(seen.port, host.port);
        assert_eq!(seen.username, host.username);
        assert_eq!(
            seen.password.as_deref(),
            host.password.as_ref().map(|_| "****")
        );
    }
    assert_eq!(shown_back.virtual_host(), url.virtual_host());
    assert_eq!(shown_back.query(), url.query());
});
