//! Subjects, stream names and consumer names: where every message of the driver goes (see
//! `docs/nats.md`).
//!
//! NATS subject tokens can't hold `.`, `*`, `>` or whitespace, and JetStream names can't hold
//! those nor `/` and `\`, while oslo topics and server names (host names) hold dots. Every
//! name that comes from a target, a pool or an exchange is therefore encoded into one token
//! by [`encode_token`], reversibly ([`decode_token`]).

use std::borrow::Cow;
use std::fmt::Write as _;

use msg_core::{Error, Priority, Result};

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

/// The longest stream or consumer name made (longer ones are shortened with a hash).
const MAX_NAME: usize = 200;

/// Joins name parts with `~` (never produced by [`encode_token`]); a name longer than 200
/// bytes keeps its first 180 bytes and ends with `~h` and the 16 hex digits of the FNV-1a 64
/// hash of the full name.
fn name(parts: &[&str]) -> String {
    let full = parts.join("~");
    if full.len() <= MAX_NAME {
        return full;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in full.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // the name is ASCII (encoded tokens), so any byte index is a char boundary
    format!("{}~h{hash:016x}", &full[..180])
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
/// assert_eq!(l.notify_stream("openstack").unwrap(), "msg~notify~openstack");
/// assert_eq!(l.default_consumer("notifications", Priority::Info).unwrap(), "default~notifications~info");
/// assert_eq!(l.pool_consumer("workers", "notifications", Priority::Info).unwrap(), "pool~workers~notifications~info");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    prefix: String,
    prefix_name: String,
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
            prefix_name: prefix.replace('.', "%2E"),
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

    /// The notification stream of an exchange: `<prefix>~notify~<exchange>`.
    pub fn notify_stream(&self, exchange: &str) -> Result<String> {
        check_not_empty("exchange", exchange)?;
        Ok(name(&[
            &self.prefix_name,
            "notify",
            &encode_token(exchange),
        ]))
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

    /// The dead-letter stream of an exchange: `<prefix>~dlq~<exchange>`.
    pub fn dead_letter_stream(&self, exchange: &str) -> Result<String> {
        check_not_empty("exchange", exchange)?;
        Ok(name(&[&self.prefix_name, "dlq", &encode_token(exchange)]))
    }

    /// The subjects of an exchange's dead-letter stream: `<prefix>.dlq.<exchange>.>`.
    pub fn dead_letter_stream_subjects(&self, exchange: &str) -> Result<String> {
        check_not_empty("exchange", exchange)?;
        Ok(format!("{}.dlq.{}.>", self.prefix, encode_token(exchange)))
    }

    /// The durable consumer of the default group (listeners without a pool) of one
    /// (topic, priority): `default~<topic>~<priority>`.
    pub fn default_consumer(&self, topic: &str, priority: Priority) -> Result<String> {
        check_not_empty("topic", topic)?;
        Ok(name(&[
            "default",
            &encode_token(topic),
            priority.routing_name(),
        ]))
    }

    /// The durable consumer of a pool for one (topic, priority):
    /// `pool~<pool>~<topic>~<priority>`.
    pub fn pool_consumer(&self, pool: &str, topic: &str, priority: Priority) -> Result<String> {
        check_not_empty("topic", topic)?;
        if pool.is_empty() {
            return Err(Error::InvalidArgument("a pool name can't be empty".into()));
        }
        Ok(name(&[
            "pool",
            &encode_token(pool),
            &encode_token(topic),
            priority.routing_name(),
        ]))
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

    #[test]
    fn encoding_is_injective_across_parts() {
        let l = Layout::new("msg").unwrap();
        let a = l.pool_consumer("a~b", "c", Priority::Info).unwrap();
        let b = l.pool_consumer("a", "b~c", Priority::Info).unwrap();
        assert_ne!(a, b);
        assert_ne!(
            l.rpc_server("x", "a.b", "c").unwrap(),
            l.rpc_server("x", "a", "b.c").unwrap()
        );
    }

    #[test]
    fn long_names_are_hashed() {
        let l = Layout::new("msg").unwrap();
        let long = "t".repeat(300);
        let n1 = l.pool_consumer("p", &long, Priority::Info).unwrap();
        let n2 = l
            .pool_consumer("p", &format!("{long}x"), Priority::Info)
            .unwrap();
        assert!(n1.len() <= 200 && n2.len() <= 200);
        assert_ne!(n1, n2);
        assert!(n1.contains("~h"));
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(Layout::new("a.b-c_d").is_ok());
        for bad in ["", ".", "a..b", "a.*", "a b", "a.>"] {
            assert!(Layout::new(bad).is_err(), "{bad}");
        }
        let l = Layout::new("a.b").unwrap();
        assert_eq!(l.notify_stream("x").unwrap(), "a%2Eb~notify~x");
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
