//! Subjects, stream names and consumer names: where every message of the driver goes (see
//! `docs/nats.md`).
//!
//! NATS subject tokens can't hold `.`, `*`, `>` or whitespace, while oslo topics and server
//! names (host names) hold dots. Every name that comes from a target, a pool or an exchange
//! is therefore encoded into one subject token by [`encode_token`], reversibly
//! ([`decode_token`]). JetStream stream and consumer names are narrower still: nats-server
//! writes them into ack subjects, and releases before 2.9.16 (and clusters, for some
//! characters) mangle anything but letters, digits, `_` and `-` there. They are made by
//! [`encode_name`], an injective encoding into those characters alone.

use std::borrow::Cow;
use std::fmt::Write as _;

use msg_core::{Error, Priority, Result};
use sha2::{Digest, Sha256};

/// Whether a byte stays as it is in a token: ASCII letters, digits, `_` and `-`.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Encodes a string into one subject token that is also a valid JetStream name: ASCII
/// letters, digits, `_` and `-` stay, every other byte of the UTF-8 text becomes `%XX`
/// (upper-case hex). Reversible with [`decode_token`].
///
/// ```
/// use msg_driver_nats::{decode_token, encode_token};
/// assert_eq!(encode_token("compute"), "compute");
/// assert_eq!(encode_token("host-1.example.org"), "host-1%2Eexample%2Eorg");
/// assert_eq!(encode_token("a b*>%"), "a%20b%2A%3E%25");
/// assert_eq!(decode_token(&encode_token("növa.x")).unwrap(), "növa.x");
/// ```
pub fn encode_token(s: &str) -> Cow<'_, str> {
    if !s.is_empty() && s.bytes().all(is_plain) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if is_plain(b) {
            out.push(char::from(b));
        } else {
            // writing into a String cannot fail
            let _ = write!(out, "%{b:02X}");
        }
    }
    Cow::Owned(out)
}

/// Decodes a token made by [`encode_token`].
///
/// # Errors
///
/// [`Error::Malformed`] for a `%` not followed by two hex digits, or bytes that aren't UTF-8.
pub fn decode_token(token: &str) -> Result<String> {
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = token
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::malformed(format!("bad escape in token `{token}`")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::malformed(format!("token `{token}` is not UTF-8")))
}

/// The longest stream or consumer name made; longer ones are shortened with a hash.
/// JetStream allows 255 bytes, and the names become directory names of the server's store.
const MAX_NAME: usize = 200;

/// How much of a name a shortened one keeps before its hash.
const SHORTENED_KEEP: usize = 160;

/// Writes one part of a JetStream name: ASCII letters and digits stay, `_` becomes `__`,
/// `-` becomes `_-`, every other byte of the UTF-8 text becomes `_XX` (upper-case hex).
fn push_name_part(out: &mut String, part: &str) {
    for b in part.bytes() {
        match b {
            b'_' => out.push_str("__"),
            b'-' => out.push_str("_-"),
            b if b.is_ascii_alphanumeric() => out.push(char::from(b)),
            // writing into a String cannot fail
            b => {
                let _ = write!(out, "_{b:02X}");
            }
        }
    }
}

/// The length of the escape or character that starts `rest` (an encoded name), so a name
/// is shortened between units and never inside an escape.
fn unit_len(rest: &[u8]) -> usize {
    match rest {
        [b'_', b'_' | b'-', ..] => 2,
        [b'_', ..] => 3,
        _ => 1,
    }
}

/// Encodes name parts into one JetStream stream or consumer name made of ASCII letters,
/// digits, `_` and `-` only: in each part letters and digits stay, `_` is written `__`,
/// `-` is `_-` and any other byte of the UTF-8 text `_XX` (upper-case hex); parts are joined
/// by a bare `-`. The encoding is injective: [`decode_name`] gives the parts back.
///
/// A name over 200 bytes keeps its first 160 bytes or fewer (never cutting an escape),
/// followed by `_h` and 32 lower-case hex digits, the first 128 bits of the SHA-256 of the
/// full name. `_h` is no escape, so a shortened name never equals an unshortened one; two
/// shortened names are equal only when 128-bit hashes collide.
///
/// ```
/// use msg_driver_nats::{decode_name, encode_name};
/// assert_eq!(encode_name(&["msg", "notify", "openstack"]), "msg-notify-openstack");
/// assert_eq!(encode_name(&["default", "a.b", "info"]), "default-a_2Eb-info");
/// assert_eq!(encode_name(&["pool", "my_pool", "cinder-volume@host:1", "info"]),
///            "pool-my__pool-cinder_-volume_40host_3A1-info");
/// assert_eq!(decode_name("default-a_2Eb-info").unwrap(), ["default", "a.b", "info"]);
/// ```
pub fn encode_name(parts: &[&str]) -> String {
    let mut full = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum::<usize>() + 8);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            full.push('-');
        }
        push_name_part(&mut full, part);
    }
    if full.len() <= MAX_NAME {
        return full;
    }
    let bytes = full.as_bytes();
    let mut keep = 0;
    while let Some(rest) = bytes.get(keep..) {
        let next = keep + unit_len(rest);
        if rest.is_empty() || next > SHORTENED_KEEP {
            break;
        }
        keep = next;
    }
    let digest = Sha256::digest(full.as_bytes());
    let mut out = String::with_capacity(keep + 34);
    // the name is ASCII, so any byte index is a char boundary
    out.push_str(full.get(..keep).unwrap_or_default());
    out.push_str("_h");
    for b in digest.iter().take(16) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Decodes a name made by [`encode_name`] into its parts.
///
/// # Errors
///
/// [`Error::Malformed`] for a name [`encode_name`] can't have made, or a shortened one
/// (its tail is a hash).
pub fn decode_name(name: &str) -> Result<Vec<String>> {
    let bad = |why: &str| Error::malformed(format!("JetStream name `{name}`: {why}"));
    let mut parts = Vec::new();
    let mut part: Vec<u8> = Vec::new();
    let mut rest = name.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'-' => parts.push(std::mem::take(&mut part)),
            b'_' => match rest {
                [c @ (b'_' | b'-'), tail @ ..] => {
                    part.push(*c);
                    rest = tail;
                }
                [b'h', ..] => return Err(bad("a shortened name (its tail is a hash)")),
                [hi, lo, tail @ ..] => {
                    let byte = hex_upper(*hi)
                        .zip(hex_upper(*lo))
                        .map(|(h, l)| h << 4 | l)
                        .ok_or_else(|| bad("bad escape"))?;
                    if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
                        return Err(bad("an escape of a byte that is written as it is"));
                    }
                    part.push(byte);
                    rest = tail;
                }
                _ => return Err(bad("an escape cut short")),
            },
            b if b.is_ascii_alphanumeric() => part.push(b),
            _ => return Err(bad("a byte other than letters, digits, `_` and `-`")),
        }
    }
    parts.push(part);
    parts
        .into_iter()
        .map(|p| String::from_utf8(p).map_err(|_| bad("a part that is not UTF-8")))
        .collect()
}

/// The value of an upper-case hex digit.
fn hex_upper(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn check_not_empty(field: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::InvalidTarget {
            field,
            reason: "NATS subjects can't have an empty token".into(),
        });
    }
    Ok(())
}

/// The driver's subjects and names under one prefix (`subject_prefix`, default `msg`).
///
/// ```
/// use msg_core::Priority;
/// use msg_driver_nats::Layout;
/// let l = Layout::new("msg").unwrap();
/// assert_eq!(l.rpc_topic("openstack", "compute").unwrap(), "msg.rpc.openstack.compute");
/// assert_eq!(l.rpc_server("openstack", "compute", "host.a").unwrap(), "msg.rpc.openstack.compute.host%2Ea");
/// assert_eq!(l.rpc_fanout("compute").unwrap(), "msg.fanout.compute");
/// assert_eq!(l.notify_subject("openstack", "notifications", Priority::Info).unwrap(), "msg.notify.openstack.notifications.info");
/// assert_eq!(l.notify_stream("openstack").unwrap(), "msg-notify-openstack");
/// assert_eq!(l.default_consumer("notifications", Priority::Info).unwrap(), "default-notifications-info");
/// assert_eq!(l.pool_consumer("workers", "a.b", Priority::Info).unwrap(), "pool-workers-a_2Eb-info");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    /// A layout under `prefix`: one or more subject tokens separated by `.` (letters,
    /// digits, `_` and `-` only).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the prefix isn't such tokens.
    pub fn new(prefix: &str) -> Result<Self> {
        if prefix.is_empty()
            || prefix
                .split('.')
                .any(|t| t.is_empty() || !t.bytes().all(is_plain))
        {
            return Err(Error::Config(format!(
                "subject_prefix `{prefix}` must be dot-separated tokens of letters, digits, `_` and `-`"
            )));
        }
        Ok(Layout {
            prefix: prefix.to_string(),
        })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Where casts and calls to a topic go, shared by its servers through a queue group of
    /// the same name: `<prefix>.rpc.<exchange>.<topic>`.
    pub fn rpc_topic(&self, exchange: &str, topic: &str) -> Result<String> {
        check_not_empty("exchange", exchange)?;
        check_not_empty("topic", topic)?;
        Ok(format!(
            "{}.rpc.{}.{}",
            self.prefix,
            encode_token(exchange),
            encode_token(topic)
        ))
    }

    /// Where messages to one server go: `<prefix>.rpc.<exchange>.<topic>.<server>`.
    pub fn rpc_server(&self, exchange: &str, topic: &str, server: &str) -> Result<String> {
        check_not_empty("server", server)?;
        let mut s = self.rpc_topic(exchange, topic)?;
        s.push('.');
        s.push_str(&encode_token(server));
        Ok(s)
    }

    /// Where fanout casts go, every server of the topic whatever its exchange (as oslo's
    /// `<topic>_fanout` exchange): `<prefix>.fanout.<topic>`.
    pub fn rpc_fanout(&self, topic: &str) -> Result<String> {
        check_not_empty("topic", topic)?;
        Ok(format!("{}.fanout.{}", self.prefix, encode_token(topic)))
    }

    /// Where notifications go (a JetStream subject):
    /// `<prefix>.notify.<exchange>.<topic>.<priority>`.
    pub fn notify_subject(
        &self,
        exchange: &str,
        topic: &str,
        priority: Priority,
    ) -> Result<String> {
        check_not_empty("exchange", exchange)?;
        check_not_empty("topic", topic)?;
        Ok(format!(
            "{}.notify.{}.{}.{}",
            self.prefix,
            encode_token(exchange),
            encode_token(topic),
            priority.routing_name()
        ))
    }

    /// The notification stream of an exchange: `<prefix>-notify-<exchange>` (each part as
    /// [`encode_name`] writes it).
    pub fn notify_stream(&self, exchange: &str) -> Result<String> {
        check_not_empty("exchange", exchange)?;
        Ok(encode_name(&[&self.prefix, "notify", exchange]))
    }

    /// The subjects of an exchange's notification stream: `<prefix>.notify.<exchange>.>`.
    pub fn notify_stream_subjects(&self, exchange: &str) -> Result<String> {
        check_not_empty("exchange", exchange)?;
        Ok(format!(
            "{}.notify.{}.>",
            self.prefix,
            encode_token(exchange)
        ))
    }

    /// Where dead-lettered notifications go: `<prefix>.dlq.<exchange>.<topic>.<priority>`.
    pub fn dead_letter_subject(
        &self,
        exchange: &str,
        topic: &str,
        priority: Priority,
    ) -> Result<String> {
        check_not_empty("exchange", exchange)?;
        check_not_empty("topic", topic)?;
        Ok(format!(
            "{}.dlq.{}.{}.{}",
            self.prefix,
            encode_token(exchange),
            encode_token(topic),
            priority.routing_name()
        ))
    }

    /// The dead-letter stream of an exchange: `<prefix>-dlq-<exchange>`.
    pub fn dead_letter_stream(&self, exchange: &str) -> Result<String> {
        check_not_empty("exchange", exchange)?;
        Ok(encode_name(&[&self.prefix, "dlq", exchange]))
    }

    /// The subjects of an exchange's dead-letter stream: `<prefix>.dlq.<exchange>.>`.
    pub fn dead_letter_stream_subjects(&self, exchange: &str) -> Result<String> {
        check_not_empty("exchange", exchange)?;
        Ok(format!("{}.dlq.{}.>", self.prefix, encode_token(exchange)))
    }

    /// The durable consumer of the default group (listeners without a pool) of one
    /// (topic, priority): `default-<topic>-<priority>`.
    pub fn default_consumer(&self, topic: &str, priority: Priority) -> Result<String> {
        check_not_empty("topic", topic)?;
        Ok(encode_name(&["default", topic, priority.routing_name()]))
    }

    /// The durable consumer of a pool for one (topic, priority):
    /// `pool-<pool>-<topic>-<priority>`.
    pub fn pool_consumer(&self, pool: &str, topic: &str, priority: Priority) -> Result<String> {
        check_not_empty("topic", topic)?;
        if pool.is_empty() {
            return Err(Error::InvalidArgument("a pool name can't be empty".into()));
        }
        Ok(encode_name(&["pool", pool, topic, priority.routing_name()]))
    }
}

/// The delivery count of a JetStream message from its ack subject
/// (`$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`, or the form with
/// a domain and account hash, `$JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>...`).
pub(crate) fn delivered_count(ack_subject: &str) -> Option<u64> {
    let tokens: Vec<&str> = ack_subject.split('.').collect();
    if tokens.len() < 2 || tokens[0] != "$JS" || tokens[1] != "ACK" {
        return None;
    }
    let idx = match tokens.len() {
        9 => 4,
        n if n >= 12 => 6,
        _ => return None,
    };
    tokens.get(idx)?.parse().ok()
}

/// The stream and consumer of a JetStream message from its ack subject.
pub(crate) fn ack_consumer(ack_subject: &str) -> Option<(&str, &str)> {
    let tokens: Vec<&str> = ack_subject.split('.').collect();
    if tokens.len() < 2 || tokens[0] != "$JS" || tokens[1] != "ACK" {
        return None;
    }
    match tokens.len() {
        9 => Some((tokens[2], tokens[3])),
        n if n >= 12 => Some((tokens[4], tokens[5])),
        _ => None,
    }
}

/// The stream sequence of a JetStream message from its ack subject.
pub(crate) fn stream_sequence(ack_subject: &str) -> Option<u64> {
    let tokens: Vec<&str> = ack_subject.split('.').collect();
    let idx = match tokens.len() {
        9 => 5,
        n if n >= 12 => 7,
        _ => return None,
    };
    tokens.get(idx)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_valid() {
        for s in [
            "a",
            "compute.host-1",
            "x y\tz\r\n",
            "*>%~/\\$",
            "ünïcode.名前",
            "already%2E",
        ] {
            let t = encode_token(s);
            assert!(
                t.bytes().all(|b| is_plain(b) || b == b'%'),
                "{s:?} -> {t:?}"
            );
            assert_eq!(decode_token(&t).unwrap(), s);
        }
        assert!(decode_token("%zz").is_err());
        assert!(decode_token("%4").is_err());
        assert!(decode_token("%FF").is_err());
    }

    fn is_name_byte(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
    }

    #[test]
    fn names_hold_only_letters_digits_underscores_and_dashes() {
        let l = Layout::new("a.b").unwrap();
        for (name, want) in [
            (l.notify_stream("x").unwrap(), "a_2Eb-notify-x"),
            (l.dead_letter_stream("x:y").unwrap(), "a_2Eb-dlq-x_3Ay"),
            (
                l.default_consumer("a.b", Priority::Info).unwrap(),
                "default-a_2Eb-info",
            ),
            (
                l.pool_consumer("p@h-1", "t~%", Priority::Error).unwrap(),
                "pool-p_40h_-1-t_7E_25-error",
            ),
        ] {
            assert_eq!(name, want);
            assert!(name.bytes().all(is_name_byte), "{name}");
        }
    }

    #[test]
    fn encoding_is_injective_across_parts() {
        let l = Layout::new("msg").unwrap();
        // a separator inside a part, an escape-looking part, dashes and underscores
        for (a, b) in [
            (("a-b", "c"), ("a", "b-c")),
            (("a_", "c"), ("a", "_c")),
            (("a_2E", "c"), ("a.", "c")),
            (("a__", "c"), ("a_", "_c")),
            (("a", "-c"), ("a-", "c")),
        ] {
            assert_ne!(
                l.pool_consumer(a.0, a.1, Priority::Info).unwrap(),
                l.pool_consumer(b.0, b.1, Priority::Info).unwrap(),
                "{a:?} {b:?}"
            );
        }
        assert_ne!(
            l.rpc_server("x", "a.b", "c").unwrap(),
            l.rpc_server("x", "a", "b.c").unwrap()
        );
    }

    #[test]
    fn bad_names_are_refused_by_the_decoder() {
        for bad in [
            "a_", "a_2", "a_2e", "a_41", "a_5F", "a_2D", "a.b", "a~b", "a_hx", "a_FF",
        ] {
            assert!(decode_name(bad).is_err(), "{bad}");
        }
        assert_eq!(decode_name("").unwrap(), [""]);
        assert_eq!(decode_name("a--b").unwrap(), ["a", "", "b"]);
    }

    #[test]
    fn long_names_are_shortened_with_a_hash() {
        let l = Layout::new("msg").unwrap();
        let long = "t".repeat(300);
        let n1 = l.pool_consumer("p", &long, Priority::Info).unwrap();
        let n2 = l
            .pool_consumer("p", &format!("{long}x"), Priority::Info)
            .unwrap();
        assert!(n1.len() <= MAX_NAME && n2.len() <= MAX_NAME);
        assert_ne!(n1, n2);
        assert!(n1.contains("_h"));
        assert!(decode_name(&n1).is_err());
        // never cut inside an escape
        let dots = l
            .pool_consumer("p", &".".repeat(100), Priority::Info)
            .unwrap();
        let head = dots.split("_h").next().unwrap();
        assert!(head.ends_with("_2E"), "{dots}");
        assert!(dots.bytes().all(is_name_byte));
    }

    proptest::proptest! {
        #[test]
        fn names_decode_to_their_parts(parts in proptest::collection::vec(".{0,12}", 1..5)) {
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            let name = encode_name(&refs);
            proptest::prop_assert!(name.bytes().all(is_name_byte));
            proptest::prop_assert!(name.len() <= MAX_NAME);
            if name.contains("_h") && decode_name(&name).is_err() {
                // shortened
                proptest::prop_assert!(name.len() > 32);
            } else {
                proptest::prop_assert_eq!(decode_name(&name).unwrap(), parts);
            }
        }

        #[test]
        fn decoded_names_encode_back(name in "[A-Za-z0-9_-]{0,40}") {
            if let Ok(parts) = decode_name(&name) {
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                proptest::prop_assert_eq!(encode_name(&refs), name);
            }
        }
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(Layout::new("a.b-c_d").is_ok());
        for bad in ["", ".", "a..b", "a.*", "a b", "a.>"] {
            assert!(Layout::new(bad).is_err(), "{bad}");
        }
        let l = Layout::new("a.b").unwrap();
        assert!(l.rpc_topic("", "t").is_err());
    }

    #[test]
    fn ack_subjects_are_parsed() {
        let v1 = "$JS.ACK.S.C.3.10.2.1700000000000000000.5";
        assert_eq!(delivered_count(v1), Some(3));
        assert_eq!(stream_sequence(v1), Some(10));
        let v2 = "$JS.ACK.dom.hash.S.C.4.11.2.1700000000000000000.5.tok";
        assert_eq!(delivered_count(v2), Some(4));
        assert_eq!(stream_sequence(v2), Some(11));
        assert_eq!(delivered_count("_INBOX.x"), None);
        assert_eq!(ack_consumer(v1), Some(("S", "C")));
        assert_eq!(ack_consumer(v2), Some(("S", "C")));
    }
}
