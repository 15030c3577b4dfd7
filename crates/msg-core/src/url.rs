//! Transport URLs: where a transport connects, in oslo.messaging's `TransportURL` syntax.
//!
//! ```text
//! scheme://[user[:pass]@]host[:port][,[user2[:pass2]@]host2[:port2]...][/virtual_host][?k=v&k2=v2...]
//! ```
//!
//! - The scheme is required and is lower-cased; it starts with a letter and contains only
//!   letters, digits, `+`, `-` and `.`.
//! - Hosts are separated by `,`; each may carry its own credentials. The credentials of a host
//!   end at its last `@` and are split into user and password at their first `:`. User names,
//!   passwords, host names and the virtual host are percent-decoded (`%40` is `@`).
//! - An IPv6 address goes in brackets (`[::1]:5672`); it is stored without them.
//! - A URL may have no host at all (`memory://`, `rabbit:///vh`).
//! - The virtual host is the path after its first `/`: `/vh` is `vh`, `//` and `/%2F` are `/`,
//!   no path or a lone `/` is no virtual host.
//! - The query is `k=v` pairs split on `&`, decoded like Python's `parse_qsl` (`+` is a space);
//!   repeated keys are kept in order ([`TransportUrl::options`] joins their values with `,`,
//!   as oslo does).
//! - Fragments (`#`), whitespace and control characters are rejected.
//!
//! Passwords never appear in [`Display`](std::fmt::Display) or [`Debug`] output, nor in parse
//! errors: they are shown as `****`. Only [`TransportUrl::to_string_with_password`] writes them.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::error::{Error, Result};

/// What a password is replaced with wherever a URL is shown.
const REDACTED: &str = "****";

/// Characters escaped in user names and passwords (the WHATWG userinfo set, plus `%` and `,`).
const USERINFO: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b',')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Characters escaped in host names: the userinfo set but `:` (only written inside brackets).
const HOST: &AsciiSet = &USERINFO.remove(b':');

/// Characters escaped in the virtual host (the WHATWG path set, plus `%`).
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Characters escaped in query keys and values.
const QUERY: &AsciiSet = &PATH.add(b'&').add(b'=').add(b'+');

/// A parsed transport URL: scheme, hosts (each with its own credentials), virtual host and
/// query options.
///
/// ```
/// use msg_core::TransportUrl;
///
/// let url: TransportUrl = "rabbit://guest:s3cret@h1:5672,h2/vh?ssl=true".parse()?;
/// assert_eq!(url.scheme(), "rabbit");
/// assert_eq!(url.hosts().len(), 2);
/// assert_eq!(url.hosts()[0].password.as_deref(), Some("s3cret"));
/// assert_eq!(url.hosts()[1].port_or(url.default_port().unwrap_or(5672)), 5672);
/// assert_eq!(url.virtual_host(), Some("vh"));
/// assert_eq!(url.query_value("ssl"), Some("true"));
/// // Shown without the password.
/// assert_eq!(url.to_string(), "rabbit://guest:****@h1:5672,h2/vh?ssl=true");
/// # Ok::<(), msg_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TransportUrl {
    scheme: String,
    hosts: Vec<TransportHost>,
    virtual_host: Option<String>,
    query: Vec<(String, String)>,
}

/// One host of a [`TransportUrl`], with its own optional credentials.
///
/// Its [`Debug`] output shows the password as `****`.
///
/// ```
/// use msg_core::TransportUrl;
///
/// let url = TransportUrl::parse("nats://u:p%40ss@[::1]:4222")?;
/// let host = &url.hosts()[0];
/// assert_eq!(host.hostname, "::1");
/// assert_eq!(host.port, Some(4222));
/// assert_eq!(host.username.as_deref(), Some("u"));
/// assert_eq!(host.password.as_deref(), Some("p@ss"));
/// assert!(!format!("{host:?}").contains("p@ss"));
/// # Ok::<(), msg_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TransportHost {
    /// The host name, percent-decoded; an IPv6 address is stored without its brackets.
    /// Empty when a host item has credentials but no name (`rabbit://user:pass@/`).
    pub hostname: String,
    /// The port, if the URL gives one.
    pub port: Option<u16>,
    /// The user name, percent-decoded, if the host item has credentials (`user@` or `user:pass@`).
    pub username: Option<String>,
    /// The password, percent-decoded, if the credentials have a `:`.
    pub password: Option<String>,
}

impl TransportHost {
    /// The port, or `default` when the URL gives none.
    ///
    /// ```
    /// use msg_core::TransportUrl;
    ///
    /// let url = TransportUrl::parse("amqps://broker")?;
    /// assert_eq!(url.default_port(), Some(5671));
    /// assert_eq!(url.hosts()[0].port_or(5671), 5671);
    /// # Ok::<(), msg_core::Error>(())
    /// ```
    pub fn port_or(&self, default: u16) -> u16 {
        self.port.unwrap_or(default)
    }
}

impl TransportUrl {
    /// Parses a transport URL (see the [module documentation](self) for the grammar).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] when `s` is not a valid transport URL; its `url` is `s` with every
    /// password replaced by `****`.
    ///
    /// ```
    /// use msg_core::TransportUrl;
    ///
    /// let url = TransportUrl::parse("rabbit://guest:guest@localhost:5672//")?;
    /// assert_eq!(url.virtual_host(), Some("/"));
    /// assert!(TransportUrl::parse("localhost:5672").is_err());
    /// # Ok::<(), msg_core::Error>(())
    /// ```
    pub fn parse(s: &str) -> Result<Self> {
        Parser { input: s }.parse()
    }

    /// The scheme, lower-cased (`rabbit`, `nats`, `memory`, `kombu+memory`, ...).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The hosts, in the order of the URL; empty for a hostless URL such as `memory://`.
    pub fn hosts(&self) -> &[TransportHost] {
        &self.hosts
    }

    /// The virtual host, percent-decoded: `None` when the URL has no path or just `/`.
    pub fn virtual_host(&self) -> Option<&str> {
        self.virtual_host.as_deref()
    }

    /// Every query pair, in order, percent-decoded, repeated keys kept.
    pub fn query(&self) -> &[(String, String)] {
        &self.query
    }

    /// Every value of the query key `key`, in order.
    ///
    /// ```
    /// use msg_core::TransportUrl;
    ///
    /// let url = TransportUrl::parse("rabbit://h?k=1&k=2")?;
    /// assert_eq!(url.query_values("k").collect::<Vec<_>>(), ["1", "2"]);
    /// assert_eq!(url.query_value("k"), Some("2"));
    /// # Ok::<(), msg_core::Error>(())
    /// ```
    pub fn query_values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The options the query sets, as oslo reads them: each key once, in the order of its
    /// first appearance, a repeated key's values joined with `,` (oslo parses the query with
    /// `parse_qs` and joins the lists). Drivers read their options from here.
    ///
    /// ```
    /// use msg_core::TransportUrl;
    ///
    /// let url = TransportUrl::parse("rabbit://h?a=1&b=x&a=2")?;
    /// let options = url.options();
    /// assert_eq!(options, [("a".to_string(), "1,2".to_string()), ("b".into(), "x".into())]);
    /// # Ok::<(), msg_core::Error>(())
    /// ```
    pub fn options(&self) -> Vec<(String, String)> {
        let mut options: Vec<(String, String)> = Vec::with_capacity(self.query.len());
        for (key, value) in &self.query {
            match options.iter_mut().find(|(k, _)| k == key) {
                Some((_, joined)) => {
                    joined.push(',');
                    joined.push_str(value);
                }
                None => options.push((key.clone(), value.clone())),
            }
        }
        options
    }

    /// The last value of the query key `key`, if it is present.
    pub fn query_value(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// This URL with `defaults` added to its query where it does not set the key itself
    /// (they go first, so the URL's own values still win for readers that take the last
    /// value): how options from configuration files reach a driver.
    ///
    /// ```
    /// use msg_core::TransportUrl;
    ///
    /// let url = TransportUrl::parse("rabbit://h/?ssl=false")?
    ///     .with_query_defaults([("ssl", "true"), ("amqp_durable_queues", "true")]);
    /// assert_eq!(url.query_value("ssl"), Some("false"));
    /// assert_eq!(url.to_string(), "rabbit://h?amqp_durable_queues=true&ssl=false");
    /// # Ok::<(), msg_core::Error>(())
    /// ```
    pub fn with_query_defaults<I, K, V>(mut self, defaults: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut added: Vec<(String, String)> = Vec::new();
        for (k, v) in defaults {
            let k = k.into();
            if !self.query.iter().any(|(q, _)| *q == k) && !added.iter().any(|(a, _)| *a == k) {
                added.push((k, v.into()));
            }
        }
        added.append(&mut self.query);
        self.query = added;
        self
    }

    /// The default port of the scheme: 5672 for `rabbit` and `amqp`, 5671 for `amqps`, 4222 for
    /// `nats` and `tls`, `None` for any other scheme.
    pub fn default_port(&self) -> Option<u16> {
        match self.scheme.as_str() {
            "rabbit" | "kombu" | "amqp" => Some(5672),
            "amqps" => Some(5671),
            "nats" | "tls" => Some(4222),
            _ => None,
        }
    }

    /// The full URL, passwords included, percent-encoded so that it parses back to an equal
    /// value. Meant for handing to a driver's client library; never log it (use
    /// [`Display`](fmt::Display), which redacts passwords).
    ///
    /// ```
    /// use msg_core::TransportUrl;
    ///
    /// let url = TransportUrl::parse("nats://u:p%40ss@[::1]:4222")?;
    /// let full = url.to_string_with_password();
    /// assert_eq!(full, "nats://u:p%40ss@[::1]:4222");
    /// assert_eq!(TransportUrl::parse(&full)?, url);
    /// # Ok::<(), msg_core::Error>(())
    /// ```
    pub fn to_string_with_password(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_to(&mut out, true);
        out
    }

    fn write_to(&self, out: &mut impl fmt::Write, with_passwords: bool) -> fmt::Result {
        out.write_str(&self.scheme)?;
        out.write_str("://")?;
        for (i, host) in self.hosts.iter().enumerate() {
            if i > 0 {
                out.write_char(',')?;
            }
            host.write_to(out, with_passwords)?;
        }
        if let Some(vhost) = &self.virtual_host {
            write!(out, "/{}", utf8_percent_encode(vhost, PATH))?;
        }
        for (i, (key, value)) in self.query.iter().enumerate() {
            out.write_char(if i == 0 { '?' } else { '&' })?;
            write!(
                out,
                "{}={}",
                utf8_percent_encode(key, QUERY),
                utf8_percent_encode(value, QUERY)
            )?;
        }
        Ok(())
    }
}

impl TransportHost {
    fn write_to(&self, out: &mut impl fmt::Write, with_password: bool) -> fmt::Result {
        if self.username.is_some() || self.password.is_some() {
            if let Some(user) = &self.username {
                write!(out, "{}", utf8_percent_encode(user, USERINFO))?;
            }
            if let Some(password) = &self.password {
                out.write_char(':')?;
                if with_password {
                    write!(out, "{}", utf8_percent_encode(password, USERINFO))?;
                } else {
                    out.write_str(REDACTED)?;
                }
            }
            out.write_char('@')?;
        }
        let hostname = utf8_percent_encode(&self.hostname, HOST);
        if self.hostname.contains(':') {
            write!(out, "[{hostname}]")?;
        } else {
            write!(out, "{hostname}")?;
        }
        if let Some(port) = self.port {
            write!(out, ":{port}")?;
        }
        Ok(())
    }
}

impl FromStr for TransportUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// The URL with every password shown as `****`; safe to log.
impl fmt::Display for TransportUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f, false)
    }
}

impl fmt::Debug for TransportUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportUrl")
            .field("scheme", &self.scheme)
            .field("hosts", &self.hosts)
            .field("virtual_host", &self.virtual_host)
            .field("query", &self.query)
            .finish()
    }
}

impl fmt::Debug for TransportHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportHost")
            .field("hostname", &self.hostname)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| Redacted))
            .finish()
    }
}

/// Shows as `****` in [`Debug`] output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Percent-decodes `s`; `None` when the result is not UTF-8.
fn decode(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(Cow::into_owned)
}

/// Warns, as oslo does, when some hosts carry a user and password and others don't (those
/// get the driver's default credentials, which is rarely meant). Names hosts only.
fn warn_mixed_credentials(hosts: &[TransportHost]) {
    let complete = |h: &&TransportHost| h.username.is_some() && h.password.is_some();
    let with = hosts.iter().filter(complete).count();
    if with > 0 && with < hosts.len() {
        let without: Vec<&str> = hosts
            .iter()
            .filter(|h| !complete(h))
            .map(|h| h.hostname.as_str())
            .collect();
        tracing::warn!(
            ?without,
            "some hosts of the transport URL have a user name and password and others don't: \
             those without get the driver's default credentials; give all or none"
        );
    }
}

/// Decodes a query key or value like Python's `parse_qsl`: `+` is a space, then percent-decoding.
fn decode_query(s: &str) -> Option<String> {
    if s.contains('+') {
        decode(&s.replace('+', " "))
    } else {
        decode(s)
    }
}

/// The parse of one input, which every error refers to.
struct Parser<'a> {
    input: &'a str,
}

impl Parser<'_> {
    fn parse(&self) -> Result<TransportUrl> {
        let input = self.input;
        if input.is_empty() {
            return Err(self.fail("the URL is empty (expected scheme://...)"));
        }
        if let Some((at, c)) = input
            .char_indices()
            .find(|&(_, c)| c.is_whitespace() || c.is_control())
        {
            return Err(self.fail(format!(
                "whitespace or control character U+{:04X} at byte {at} is not allowed \
                 (percent-encode it)",
                u32::from(c)
            )));
        }

        let (scheme, rest) = match input.split_once(':') {
            Some((scheme, after)) => match after.strip_prefix("//") {
                Some(rest) => (scheme, rest),
                None => return Err(self.fail("missing scheme (expected scheme://...)")),
            },
            None => return Err(self.fail("missing scheme (expected scheme://...)")),
        };
        if scheme.is_empty() {
            return Err(self.fail("the scheme before `://` is empty (expected scheme://...)"));
        }
        let mut chars = scheme.chars();
        let valid_scheme = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !valid_scheme {
            return Err(self.fail_quoting(
                scheme,
                format!(
                    "invalid scheme `{scheme}` (a scheme starts with a letter and contains only \
                     letters, digits, `+`, `-` and `.`)"
                ),
                "invalid scheme (a scheme starts with a letter and contains only letters, \
                 digits, `+`, `-` and `.`)",
            ));
        }
        if input.contains('#') {
            return Err(self.fail(
                "fragments are not allowed (percent-encode a `#` in a user name, password or \
                 virtual host as %23)",
            ));
        }

        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let (path, query) = match tail.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (tail, None),
        };

        let mut hosts = Vec::new();
        if !authority.is_empty() {
            let count = authority.split(',').count();
            for (i, item) in authority.split(',').enumerate() {
                hosts.push(self.parse_host(i + 1, count, item)?);
            }
        }
        warn_mixed_credentials(&hosts);

        let virtual_host = match path.strip_prefix('/') {
            Some(vhost) if !vhost.is_empty() => Some(decode(vhost).ok_or_else(|| {
                self.fail("the virtual host is not valid UTF-8 after percent-decoding")
            })?),
            _ => None,
        };

        let mut pairs = Vec::new();
        for (i, pair) in query
            .unwrap_or("")
            .split('&')
            .enumerate()
            .filter(|(_, pair)| !pair.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode_query(key).ok_or_else(|| {
                self.fail(format!(
                    "the key of query parameter {} is not valid UTF-8 after percent-decoding",
                    i + 1
                ))
            })?;
            let value = decode_query(value).ok_or_else(|| {
                self.fail(format!(
                    "the value of query parameter {} is not valid UTF-8 after percent-decoding",
                    i + 1
                ))
            })?;
            pairs.push((key, value));
        }

        Ok(TransportUrl {
            scheme: scheme.to_ascii_lowercase(),
            hosts,
            virtual_host,
            query: pairs,
        })
    }

    /// Parses host item number `n` (1-based) of `count`.
    fn parse_host(&self, n: usize, count: usize, item: &str) -> Result<TransportHost> {
        let which = if count == 1 {
            "the host".to_owned()
        } else {
            format!("host {n} of {count}")
        };
        if item.is_empty() {
            return Err(self.fail(format!("{which} is empty (look for a stray `,`)")));
        }
        // Whatever quotes `hostport` falls back to this when the quote might show a password.
        let malformed = format!(
            "{which} is malformed (percent-encode any `,`, `/`, `?`, `#` or `@` in a user name or \
             password)"
        );

        let (credentials, hostport) = match item.rsplit_once('@') {
            Some((credentials, hostport)) => (Some(credentials), hostport),
            None => (None, item),
        };
        let (username, password) = match credentials {
            None => (None, None),
            Some(credentials) => {
                let (user, password) = match credentials.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (credentials, None),
                };
                let user = decode(user).ok_or_else(|| {
                    self.fail(format!(
                        "the user name of {which} is not valid UTF-8 after percent-decoding"
                    ))
                })?;
                let password = match password {
                    Some(password) => Some(decode(password).ok_or_else(|| {
                        self.fail(format!(
                            "the password of {which} is not valid UTF-8 after percent-decoding"
                        ))
                    })?),
                    None => None,
                };
                (Some(user), password)
            }
        };

        let (raw_name, raw_port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let Some((name, after)) = bracketed.split_once(']') else {
                return Err(self.fail_quoting(
                    hostport,
                    format!("{which} `{hostport}` has an unclosed `[`"),
                    &malformed,
                ));
            };
            if name.is_empty() {
                return Err(self.fail(format!("{which} has an empty address in brackets `[]`")));
            }
            if name.contains('[') {
                return Err(self.fail_quoting(
                    hostport,
                    format!("{which} `{hostport}` has a `[` inside brackets"),
                    &malformed,
                ));
            }
            let port = if after.is_empty() {
                None
            } else if let Some(port) = after.strip_prefix(':') {
                Some(port)
            } else {
                return Err(self.fail_quoting(
                    hostport,
                    format!(
                        "{which} `{hostport}` has unexpected text after `]` (expected `:port` \
                         or nothing)"
                    ),
                    &malformed,
                ));
            };
            (name, port)
        } else {
            if hostport.contains(['[', ']']) {
                return Err(self.fail_quoting(
                    hostport,
                    format!(
                        "{which} `{hostport}` has a `[` or `]` that does not enclose an IPv6 \
                         address (as in `[::1]:5672`)"
                    ),
                    &malformed,
                ));
            }
            match hostport.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (hostport, None),
            }
        };

        let port = match raw_port {
            None => None,
            Some("") => {
                return Err(self.fail_quoting(
                    hostport,
                    format!("{which} `{hostport}` has an empty port after `:`"),
                    &malformed,
                ));
            }
            Some(port) if !port.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(self.fail_quoting(
                    hostport,
                    format!(
                        "{which} `{hostport}` has an invalid port `{port}` (expected a number \
                         from 1 to 65535)"
                    ),
                    &malformed,
                ));
            }
            Some(port) => match port.parse::<u16>() {
                Ok(number) if number != 0 => Some(number),
                _ => {
                    return Err(self.fail_quoting(
                        hostport,
                        format!(
                            "{which} `{hostport}` has port `{port}`, which is out of range \
                             (expected 1 to 65535)"
                        ),
                        &malformed,
                    ));
                }
            },
        };

        let hostname = decode(raw_name).ok_or_else(|| {
            self.fail(format!(
                "the host name of {which} is not valid UTF-8 after percent-decoding"
            ))
        })?;

        Ok(TransportHost {
            hostname,
            port,
            username,
            password,
        })
    }

    /// An [`Error::InvalidUrl`] for the input (redacted) with `reason`, which must not quote
    /// the input.
    fn fail(&self, reason: impl Into<String>) -> Error {
        Error::InvalidUrl {
            url: redact_input(self.input),
            reason: reason.into(),
        }
    }

    /// Like [`fail`](Self::fail), for a reason that quotes `quoted`, a part of the input: when
    /// the redacted input does not show `quoted` in full (it may hold a password that was not
    /// percent-encoded), the error gives `fallback` instead.
    fn fail_quoting(&self, quoted: &str, reason: String, fallback: &str) -> Error {
        let url = redact_input(self.input);
        let reason = if url.contains(quoted) {
            reason
        } else {
            fallback.to_owned()
        };
        Error::InvalidUrl { url, reason }
    }
}

/// The input of a failed parse with its passwords replaced by `****`, best effort, erring on
/// the side of hiding too much; control characters are escaped.
///
/// Credentials end at an `@`: of several `@` with no `,` between them, the last (a password may
/// hold `@`). The credentials of the first host start at the authority; those of a later one
/// after the first `,` following the previous credentials. The password runs from their first
/// `:` to their `@`. The authority is what follows the first `://` (or the whole input when
/// there is none) up to a `/`, `?` or `#` -- unless an `@` follows, in which case a password
/// may hold one of those, and the whole rest counts.
fn redact_input(input: &str) -> String {
    let start = input.find("://").map_or(0, |i| i + 3);
    let (head, rest) = input.split_at(start);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let region_end = if rest[authority_end..].contains('@') {
        rest.len()
    } else {
        authority_end
    };
    let (region, after) = rest.split_at(region_end);

    let ats: Vec<usize> = region.match_indices('@').map(|(i, _)| i).collect();
    let mut out = String::with_capacity(input.len());
    out.push_str(head);
    let mut copied = 0;
    let mut credentials_start = 0;
    for (k, &at) in ats.iter().enumerate() {
        if let Some(&next) = ats.get(k + 1)
            && !region
                .get(at..next)
                .is_some_and(|between| between.contains(','))
        {
            continue;
        }
        if let Some(colon) = region
            .get(credentials_start..at)
            .and_then(|credentials| credentials.find(':'))
            && let Some(kept) = region.get(copied..=credentials_start + colon)
        {
            out.push_str(kept);
            out.push_str(REDACTED);
            copied = at;
        }
        credentials_start = region
            .get(at..)
            .and_then(|rest| rest.find(','))
            .map_or(region.len(), |comma| at + comma + 1);
    }
    out.push_str(region.get(copied..).unwrap_or(""));
    out.push_str(after);
    escape_controls(&out)
}

/// `s` with its control characters escaped (`\n`, `\u{7f}`, ...), for a one-line message.
fn escape_controls(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> TransportUrl {
        match TransportUrl::parse(s) {
            Ok(url) => url,
            Err(err) => panic!("{s:?} should parse: {err}"),
        }
    }

    fn parse_err(s: &str) -> (String, String) {
        match TransportUrl::parse(s) {
            Ok(url) => panic!("{s:?} should not parse, got {url:?}"),
            Err(Error::InvalidUrl { url, reason }) => (url, reason),
            Err(other) => panic!("{s:?}: unexpected error {other:?}"),
        }
    }

    fn host(
        hostname: &str,
        port: Option<u16>,
        user: Option<&str>,
        pw: Option<&str>,
    ) -> TransportHost {
        TransportHost {
            hostname: hostname.to_owned(),
            port,
            username: user.map(str::to_owned),
            password: pw.map(str::to_owned),
        }
    }

    fn assert_roundtrip(url: &TransportUrl) {
        let full = url.to_string_with_password();
        match TransportUrl::parse(&full) {
            Ok(back) => assert_eq!(&back, url, "via {full:?}"),
            Err(err) => panic!("{full:?} does not parse back: {err}"),
        }
    }

    #[test]
    fn two_hosts_with_own_credentials_vhost_and_query() {
        let url =
            parse("rabbit://a:b@h1:5672,c:d@h2:5673/vh?rabbit_qos_prefetch_count=10&ssl=true");
        assert_eq!(url.scheme(), "rabbit");
        assert_eq!(
            url.hosts(),
            [
                host("h1", Some(5672), Some("a"), Some("b")),
                host("h2", Some(5673), Some("c"), Some("d")),
            ]
        );
        assert_eq!(url.virtual_host(), Some("vh"));
        assert_eq!(
            url.query(),
            [
                ("rabbit_qos_prefetch_count".to_owned(), "10".to_owned()),
                ("ssl".to_owned(), "true".to_owned()),
            ]
        );
        assert_eq!(url.query_value("rabbit_qos_prefetch_count"), Some("10"));
        assert_eq!(url.query_value("ssl"), Some("true"));
        assert_eq!(url.query_value("nope"), None);
        assert_eq!(url.default_port(), Some(5672));
        assert_eq!(
            url.to_string(),
            "rabbit://a:****@h1:5672,c:****@h2:5673/vh?rabbit_qos_prefetch_count=10&ssl=true"
        );
        assert_eq!(
            url.to_string_with_password(),
            "rabbit://a:b@h1:5672,c:d@h2:5673/vh?rabbit_qos_prefetch_count=10&ssl=true"
        );
        assert_roundtrip(&url);
    }

    #[test]
    fn trailing_slash_is_no_virtual_host() {
        let url = parse("rabbit://guest:guest@localhost:5672/");
        assert_eq!(
            url.hosts(),
            [host("localhost", Some(5672), Some("guest"), Some("guest"))]
        );
        assert_eq!(url.virtual_host(), None);
        assert!(url.query().is_empty());
        assert_eq!(url.to_string(), "rabbit://guest:****@localhost:5672");
        assert_roundtrip(&url);
    }

    #[test]
    fn double_slash_is_the_root_virtual_host() {
        let url = parse("rabbit://guest:guest@localhost:5672//");
        assert_eq!(url.virtual_host(), Some("/"));
        assert_eq!(url.to_string(), "rabbit://guest:****@localhost:5672//");
        assert_roundtrip(&url);
        assert_eq!(parse("rabbit://h/%2F").virtual_host(), Some("/"));
        assert_eq!(parse("rabbit://h/%2F"), url_with_vhost("/"));
        assert_eq!(parse("rabbit://h/a/b").virtual_host(), Some("a/b"));
        assert_eq!(parse("rabbit://h/my%20vh").virtual_host(), Some("my vh"));
        assert_eq!(parse("rabbit://h").virtual_host(), None);
        assert_eq!(parse("rabbit://h?x=1").virtual_host(), None);
        assert_eq!(parse("rabbit://h/?x=1").virtual_host(), None);
    }

    fn url_with_vhost(vhost: &str) -> TransportUrl {
        TransportUrl {
            scheme: "rabbit".into(),
            hosts: vec![host("h", None, None, None)],
            virtual_host: Some(vhost.into()),
            query: Vec::new(),
        }
    }

    #[test]
    fn default_ports() {
        let url = parse("amqps://h");
        assert_eq!(url.hosts(), [host("h", None, None, None)]);
        assert_eq!(url.default_port(), Some(5671));
        assert_eq!(url.hosts()[0].port_or(5671), 5671);
        assert_eq!(parse("amqps://h:1234").hosts()[0].port_or(5671), 1234);
        assert_eq!(parse("amqp://h").default_port(), Some(5672));
        assert_eq!(parse("rabbit://h").default_port(), Some(5672));
        assert_eq!(parse("nats://h").default_port(), Some(4222));
        assert_eq!(parse("tls://h").default_port(), Some(4222));
        assert_eq!(parse("memory://").default_port(), None);
        assert_eq!(parse("kafka://h").default_port(), None);
    }

    #[test]
    fn ipv6_with_encoded_password() {
        let url = parse("nats://u:p%40ss@[::1]:4222");
        assert_eq!(url.scheme(), "nats");
        assert_eq!(
            url.hosts(),
            [host("::1", Some(4222), Some("u"), Some("p@ss"))]
        );
        assert_eq!(url.to_string(), "nats://u:****@[::1]:4222");
        assert_eq!(url.to_string_with_password(), "nats://u:p%40ss@[::1]:4222");
        assert_roundtrip(&url);
        assert_eq!(
            parse("nats://[::1]").hosts(),
            [host("::1", None, None, None)]
        );
        assert_eq!(
            parse("nats://[fe80::1%25eth0]:4222").hosts(),
            [host("fe80::1%eth0", Some(4222), None, None)]
        );
    }

    #[test]
    fn credentials_split_and_decoding() {
        // The password ends at the last `@` and starts after the first `:`.
        let url = parse("rabbit://us%3Aer:pa:ss@wo@rd@h");
        assert_eq!(
            url.hosts(),
            [host("h", None, Some("us:er"), Some("pa:ss@wo@rd"))]
        );
        assert_roundtrip(&url);
        // A user without a password; an empty user with a password.
        assert_eq!(
            parse("rabbit://u@h").hosts(),
            [host("h", None, Some("u"), None)]
        );
        assert_eq!(
            parse("rabbit://:p@h").hosts(),
            [host("h", None, Some(""), Some("p"))]
        );
        // A literal `%` that is not an escape stays as it is, like Python's unquote.
        assert_eq!(
            parse("rabbit://u:100%zz@h").hosts()[0].password.as_deref(),
            Some("100%zz")
        );
    }

    #[test]
    fn credentials_without_hostname() {
        let url = parse("rabbit://user:pass@/");
        assert_eq!(url.hosts(), [host("", None, Some("user"), Some("pass"))]);
        assert_eq!(url.virtual_host(), None);
        assert_roundtrip(&url);
        let url = parse("rabbit://:5672");
        assert_eq!(url.hosts(), [host("", Some(5672), None, None)]);
        assert_roundtrip(&url);
    }

    #[test]
    fn memory_urls() {
        let url = parse("memory://");
        assert_eq!(url.scheme(), "memory");
        assert!(url.hosts().is_empty());
        assert_eq!(url.virtual_host(), None);
        assert_eq!(url.to_string(), "memory://");
        assert_roundtrip(&url);

        let url = parse("memory://bus-1");
        assert_eq!(url.hosts(), [host("bus-1", None, None, None)]);
        assert_eq!(url.to_string(), "memory://bus-1");
        assert_roundtrip(&url);

        let url = parse("rabbit:///vh");
        assert!(url.hosts().is_empty());
        assert_eq!(url.virtual_host(), Some("vh"));
        assert_roundtrip(&url);
    }

    #[test]
    fn repeated_query_keys() {
        let url = parse("rabbit://h?k=1&k=2");
        assert_eq!(url.query_values("k").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(url.query_value("k"), Some("2"));
        assert_eq!(url.query().len(), 2);
        assert_eq!(url.options(), [("k".to_string(), "1,2".to_string())]);
        assert_eq!(url.to_string(), "rabbit://h?k=1&k=2");
        assert_roundtrip(&url);
    }

    #[test]
    fn query_decoding() {
        let url = parse("rabbit://h?a=x+y%2Bz&flag&&b=&c=1=2&%26=%3D");
        assert_eq!(
            url.query(),
            [
                ("a".to_owned(), "x y+z".to_owned()),
                ("flag".to_owned(), String::new()),
                ("b".to_owned(), String::new()),
                ("c".to_owned(), "1=2".to_owned()),
                ("&".to_owned(), "=".to_owned()),
            ]
        );
        assert_roundtrip(&url);
    }

    #[test]
    fn schemes() {
        let url = parse("kombu+memory://");
        assert_eq!(url.scheme(), "kombu+memory");
        assert_eq!(url.to_string(), "kombu+memory://");
        assert_eq!(parse("RaBbIt://h").scheme(), "rabbit");
        assert_eq!(parse("a.b-c+d1://h").scheme(), "a.b-c+d1");
        assert_eq!(
            "memory://x".parse::<TransportUrl>().ok(),
            Some(parse("memory://x"))
        );
    }

    #[test]
    fn hostnames_are_decoded_and_reencoded() {
        let url = parse("memory://a%2Cb%40c");
        assert_eq!(url.hosts()[0].hostname, "a,b@c");
        assert_eq!(url.to_string(), "memory://a%2Cb%40c");
        assert_roundtrip(&url);
        // A decoded `:` needs brackets to be written back.
        let url = parse("memory://a%3Ab");
        assert_eq!(url.hosts()[0].hostname, "a:b");
        assert_eq!(url.to_string(), "memory://[a:b]");
        assert_roundtrip(&url);
    }

    #[test]
    fn display_and_debug_redact_passwords() {
        let url = parse("rabbit://guest:s3cret@h1,other:s3cret@h2/vh");
        let shown = url.to_string();
        assert!(shown.contains("****"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        let debug = format!("{url:?}");
        assert!(debug.contains("****"), "{debug}");
        assert!(!debug.contains("s3cret"), "{debug}");
        let debug = format!("{:?}", url.hosts()[0]);
        assert!(debug.contains("****"), "{debug}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(url.to_string_with_password().contains("s3cret"));
    }

    #[test]
    fn errors_redact_passwords() {
        for input in [
            "rabbit://guest:s3cret@h:abc",
            "rabbit://guest:s3cret@h:99999/vh",
            "rabbit://guest:s3cret@h#frag",
            "rabbit://guest:s3cret@h,,h2",
            "rabbit://guest:s3cret@[::1",
            "rabbit://guest:s3cret@h/%FF",
            "rabbit://guest:s3cret@h o",
            "rabbit://guest:s3cret@h\n",
            "rabbit//guest:s3cret@h",
            "guest:s3cret@h",
            "rabbit://guest:s3c,ret@h:abc",
            "rabbit://guest:s3c/ret@h:abc",
            "rabbit://guest:s3c?ret@h:abc",
            "rabbit://guest:s3c#ret@h",
            "rabbit://guest:s3cret@h1:1,guest:s3cret@h2:x",
        ] {
            let err = match TransportUrl::parse(input) {
                Ok(url) => panic!("{input:?} should not parse, got {url:?}"),
                Err(err) => err,
            };
            let message = err.to_string();
            let debug = format!("{err:?}");
            for fragment in ["s3cret", "s3c,ret", "ret@h"] {
                if input.contains(fragment) {
                    assert!(!message.contains(fragment), "{input:?}: {message}");
                    assert!(!debug.contains(fragment), "{input:?}: {debug}");
                }
            }
            assert!(message.contains("****"), "{input:?}: {message}");
        }
    }

    #[test]
    fn error_messages_name_the_problem() {
        let (url, reason) = parse_err("rabbit://h:99999");
        assert_eq!(url, "rabbit://h:99999");
        assert!(reason.contains("`99999`"), "{reason}");
        let (_, reason) = parse_err("rabbit://h:abc");
        assert!(reason.contains("`abc`"), "{reason}");
        let (_, reason) = parse_err("rabbit://h:0");
        assert!(reason.contains("`0`"), "{reason}");
        let (_, reason) = parse_err("localhost:5672");
        assert_eq!(reason, "missing scheme (expected scheme://...)");
        let (_, reason) = parse_err("rabbit//h");
        assert_eq!(reason, "missing scheme (expected scheme://...)");
        let (_, reason) = parse_err("rabbit://h#frag");
        assert!(reason.starts_with("fragments are not allowed"), "{reason}");
        let (_, reason) = parse_err("rabbit://h1,,h2");
        assert!(reason.contains("host 2 of 3 is empty"), "{reason}");
        let (_, reason) = parse_err("rabbit://[::1:5672");
        assert!(reason.contains("unclosed `[`"), "{reason}");
        let (_, reason) = parse_err("rabbit://h:");
        assert!(reason.contains("empty port"), "{reason}");
        let (_, reason) = parse_err("rabbit://h/%FF");
        assert!(reason.contains("virtual host"), "{reason}");
        let (_, reason) = parse_err("1x://h");
        assert!(reason.contains("`1x`"), "{reason}");
        let (url, reason) = parse_err("rabbit://h\no");
        assert_eq!(url, "rabbit://h\\no");
        assert!(reason.contains("U+000A"), "{reason}");
    }

    #[test]
    fn malformed_urls_are_errors() {
        for input in [
            "localhost:5672",
            "rabbit//h",
            "rabbit://h:99999",
            "rabbit://h:abc",
            "rabbit://h1,,h2",
            "rabbit://[::1:5672",
            "rabbit://h:",
            "rabbit://h/%FF",
            "rabbit://h#frag",
            "rabbit://h o",
            "",
            "://h",
            "rabbit:/h",
            "rabbit://h:0",
            "rabbit://h:+1",
            "rabbit://h:-1",
            "rabbit://h:1:2",
            "rabbit://::1",
            "rabbit://[]",
            "rabbit://[::1]x",
            "rabbit://[::1]:",
            "rabbit://h]",
            "rabbit://h1,",
            "rabbit://,h1",
            "rabbit://h?k=%FF",
            "rabbit://h?%FF=1",
            "rabbit://u%FF:p@h",
            "rabbit://u:p%FF@h",
            "rabbit://h%FF",
            "rab bit://h",
            "1abc://h",
            "rabbit://h\t",
            "rabbit://h\u{7f}",
            "rabbit://h\u{a0}",
        ] {
            assert!(
                TransportUrl::parse(input).is_err(),
                "{input:?} should not parse"
            );
        }
    }

    /// Printable characters, including the URL's delimiters.
    fn printable() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[ -~\u{a0}-\u{2ff}@:/,%?#\\[\\]]{0,12}")
            .unwrap_or_else(|err| panic!("bad regex: {err}"))
    }

    fn nonempty_printable() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[ -~\u{a0}-\u{2ff}@:/,%?#\\[\\]]{1,12}")
            .unwrap_or_else(|err| panic!("bad regex: {err}"))
    }

    fn hostname() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => proptest::string::string_regex("[a-z0-9.-]{1,20}")
                .unwrap_or_else(|err| panic!("bad regex: {err}")),
            1 => Just("::1".to_owned()),
        ]
    }

    fn credentials() -> impl Strategy<Value = (Option<String>, Option<String>)> {
        prop_oneof![
            Just((None, None)),
            printable().prop_map(|user| (Some(user), None)),
            (printable(), printable()).prop_map(|(user, pw)| (Some(user), Some(pw))),
        ]
    }

    fn transport_host() -> impl Strategy<Value = TransportHost> {
        (
            hostname(),
            proptest::option::of(1..=u16::MAX),
            credentials(),
        )
            .prop_map(|(hostname, port, (username, password))| TransportHost {
                hostname,
                port,
                username,
                password,
            })
    }

    fn transport_url() -> impl Strategy<Value = TransportUrl> {
        (
            prop_oneof![
                Just("rabbit"),
                Just("amqps"),
                Just("nats"),
                Just("memory"),
                Just("kombu+memory"),
            ],
            proptest::collection::vec(transport_host(), 0..4),
            proptest::option::of(nonempty_printable()),
            proptest::collection::vec((printable(), printable()), 0..4),
        )
            .prop_map(|(scheme, hosts, virtual_host, query)| TransportUrl {
                scheme: scheme.to_owned(),
                hosts,
                virtual_host,
                query,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            if let Ok(url) = TransportUrl::parse(&s) {
                assert_roundtrip(&url);
            }
        }

        #[test]
        fn parse_never_panics_after_a_scheme(s in any::<String>()) {
            if let Ok(url) = TransportUrl::parse(&format!("rabbit://{s}")) {
                assert_roundtrip(&url);
            }
        }

        #[test]
        fn parse_never_panics_on_url_like_input(
            s in "[a-z0-9:@/,%?#&=+.\\[\\] -]{0,40}",
        ) {
            let _ = TransportUrl::parse(&s);
            if let Ok(url) = TransportUrl::parse(&format!("rabbit://{s}")) {
                assert_roundtrip(&url);
            }
        }

        #[test]
        fn to_string_with_password_roundtrips(url in transport_url()) {
            let full = url.to_string_with_password();
            let back = TransportUrl::parse(&full);
            prop_assert!(back.is_ok(), "{:?} does not parse: {:?}", full, back);
            prop_assert_eq!(back.ok(), Some(url));
        }

        #[test]
        fn display_never_shows_passwords(
            mut url in transport_url(),
            password in "[a-zA-Z]{4,12}",
            index in any::<prop::sample::Index>(),
        ) {
            if url.hosts.is_empty() {
                url.hosts.push(host("h", None, None, None));
            }
            let i = index.index(url.hosts.len());
            if url.hosts[i].username.is_none() {
                url.hosts[i].username = Some("user".to_owned());
            }
            url.hosts[i].password = Some(password.clone());
            // The password must not be part of what Display shows anyway.
            let mut without = url.clone();
            for host in &mut without.hosts {
                host.password = None;
            }
            prop_assume!(!without.to_string().contains(&password));
            prop_assume!(!format!("{without:?}").contains(&password));

            let shown = url.to_string();
            prop_assert!(!shown.contains(&password), "{} shows {}", shown, password);
            prop_assert!(shown.contains(REDACTED));
            let debug = format!("{url:?}");
            prop_assert!(!debug.contains(&password), "{} shows {}", debug, password);
            prop_assert!(url.to_string_with_password().contains(&password));
        }

        #[test]
        fn errors_never_show_passwords(
            password in "[a-zA-Z]{6,12}",
            junk in "[a-z0-9:@/,%?#&=.\\[\\] -]{0,10}",
            prefix in "[a-z:@,]{0,6}",
        ) {
            let input = format!("rabbit://{prefix}user:{password}@host{junk}");
            prop_assume!(!format!("rabbit://{prefix}user:@host{junk}").contains(&password));
            if let Err(err) = TransportUrl::parse(&input) {
                let message = err.to_string();
                prop_assert!(!message.contains(&password), "{}", message);
            }
        }
    }
}
