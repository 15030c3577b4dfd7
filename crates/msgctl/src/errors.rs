//! Exit codes, and the one place where a `msg::Error` becomes an exit code and a line.

use std::fmt;

use crate::output::human_duration;

/// Remote error, timeout, nobody answered, a failed send.
pub const EXIT_FAILED: u8 = 1;
/// Bad usage or bad input (clap's own errors exit 2 as well).
pub const EXIT_USAGE: u8 = 2;
/// The broker can't be reached or refuses us.
pub const EXIT_BROKER: u8 = 3;

/// A failure of msgctl: its exit code and the one line that goes to stderr after `msgctl: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// The exit code (1, 2 or 3).
    pub code: u8,
    /// What went wrong, on one line.
    pub line: String,
}

impl CliError {
    /// A failure with this exit code and message (newlines are flattened).
    pub fn new(code: u8, line: impl Into<String>) -> Self {
        CliError {
            code,
            line: one_line(&line.into()),
        }
    }

    /// Bad usage or bad input: exit 2.
    pub fn usage(line: impl Into<String>) -> Self {
        Self::new(EXIT_USAGE, line)
    }

    /// Something didn't go as asked: exit 1.
    pub fn failed(line: impl Into<String>) -> Self {
        Self::new(EXIT_FAILED, line)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

/// When an error happened: connecting (opening the transport) or afterwards. It words the
/// line; the exit code comes from the error's kind alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Opening the transport.
    Connect,
    /// Sending, calling, serving or listening.
    Run,
}

/// The exit code and the line for a `msg::Error`: the one place that decides them.
///
/// By the error's [`msg::ErrorKind`]:
/// - 1: a remote error, a timeout, nobody answered, a malformed reply, a message the broker
///   refused (nacked, no such queue or stream, blocked publishers);
/// - 2: bad input (an invalid URL, scheme, target, argument, option, version cap) and
///   something the driver can't do;
/// - 3: the broker can't be reached or refuses us: unavailable, the connection lost, access
///   refused, a closed transport, any other driver error.
pub fn classify(err: &msg::Error, phase: Phase) -> CliError {
    use msg::Error as E;
    use msg::ErrorKind as K;
    let code = match err.kind() {
        K::Refused
            if matches!(
                err,
                E::Refused {
                    reason: msg::Refusal::AccessRefused,
                    ..
                }
            ) =>
        {
            EXIT_BROKER
        }
        K::Timeout | K::Remote | K::NobodyListening | K::Malformed | K::Refused => EXIT_FAILED,
        K::BadInput | K::NotSupported => EXIT_USAGE,
        K::Unavailable | K::ConnectionLost | K::Closed | K::Other => EXIT_BROKER,
        _ => EXIT_FAILED,
    };
    let text = match err {
        E::Timeout { what, after } => {
            format!("timed out after {}: {what}", human_duration(*after))
        }
        E::Remote(r) => format!("remote error: {} ({}): {}", r.class, r.module, r.message),
        E::NoSuchMethod { .. } | E::UnsupportedVersion { .. } => format!("remote error: {err}"),
        E::NoResponders { .. } | E::Undeliverable { .. } => {
            format!("nobody answered: {}", with_sources(err))
        }
        // an unavailable broker says so itself
        _ if code == EXIT_BROKER
            && phase == Phase::Connect
            && err.kind() != msg::ErrorKind::Unavailable =>
        {
            format!("can't connect to the broker: {}", with_sources(err))
        }
        _ => with_sources(err),
    };
    CliError::new(code, text)
}

impl From<msg::Error> for CliError {
    fn from(err: msg::Error) -> Self {
        classify(&err, Phase::Run)
    }
}

/// The error's text followed by its sources' (those not already in it), `: `-separated.
fn with_sources(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !s_text.is_empty() && !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Newlines (and runs of whitespace around them) become single spaces.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn codes() {
        let remote = msg::Error::Remote(msg::RemoteError::new("ValueError", "builtins", "boom"));
        let e = classify(&remote, Phase::Run);
        assert_eq!(e.code, 1);
        assert_eq!(e.line, "remote error: ValueError (builtins): boom");

        let timeout = msg::Error::Timeout {
            what: "a reply".into(),
            after: Duration::from_millis(500),
        };
        assert_eq!(classify(&timeout, Phase::Run).code, 1);

        let nobody = msg::Error::NoResponders {
            destination: "openstack/t".into(),
        };
        let e = classify(&nobody, Phase::Run);
        assert_eq!(e.code, 1);
        assert!(e.line.starts_with("nobody answered"), "{}", e.line);

        let url = msg::Error::InvalidUrl {
            url: "x".into(),
            reason: "bad".into(),
        };
        assert_eq!(classify(&url, Phase::Connect).code, 2);

        let driver = msg::Error::driver("amqp", "connection refused", std::io::Error::other("os"));
        let e = classify(&driver, Phase::Connect);
        assert_eq!(e.code, 3);
        assert_eq!(
            e.line,
            "can't connect to the broker: amqp driver: connection refused: os"
        );
        let down = msg::Error::unavailable("connecting to 127.0.0.1:1", None);
        assert_eq!(classify(&down, Phase::Connect).code, 3);
        assert_eq!(classify(&down, Phase::Run).code, 3);
        let nack = msg::Error::refused(msg::Refusal::Nacked, "a cast", None);
        assert_eq!(classify(&nack, Phase::Run).code, 1);
        let denied = msg::Error::refused(msg::Refusal::AccessRefused, "vhost `/`", None);
        assert_eq!(classify(&denied, Phase::Connect).code, 3);
        assert_eq!(
            classify(&msg::Error::Closed("gone".into()), Phase::Run).code,
            3
        );
    }

    #[test]
    fn lines_are_one_line() {
        let e = CliError::usage("bad\n  input\n\nhere");
        assert_eq!(e.line, "bad input here");
    }
}
