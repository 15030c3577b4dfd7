//! The one error type of msg.

use std::time::Duration;

use crate::remote_error::{RemoteClass, RemoteError};

/// The most characters a [`Error::Malformed`] reason keeps.
pub const MAX_MALFORMED_REASON: usize = 200;

/// A boxed error from a driver's client library (lapin, async-nats, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, as one `#[non_exhaustive]` enum shared by every crate of msg.
///
/// Remote failures are data ([`RemoteError`]): a remote exception is never turned back into
/// code by its name.
///
/// ```
/// use msg_core::Error;
/// let err = Error::InvalidTarget { field: "topic", reason: "a server needs a topic".into() };
/// assert_eq!(err.to_string(), "invalid target: field `topic`: a server needs a topic");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No answer (or no call-monitor heartbeat) arrived in time.
    #[error("timed out after {after:?}: {what}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long it was waited for.
        after: Duration,
    },
    /// The broker can't be reached: connecting failed or timed out, the connection is down
    /// and the retries allowed ran out, or a send failed because the connection went. Worth
    /// retrying later ([`Error::is_transient`]).
    #[error("broker unavailable: {what}")]
    Unavailable {
        /// What could not be done, and where.
        what: String,
        /// The client library's error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The broker answered, and said no: a publish negatively acknowledged, a queue or stream
    /// that isn't there, a declaration that conflicts, a permission. Typed from the broker's
    /// own codes ([`Refusal`]), never from the text of a message.
    #[error("refused by the broker ({reason}): {what}")]
    Refused {
        /// Why, from the broker's code.
        reason: Refusal,
        /// What was refused, and where.
        what: String,
        /// The client library's error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The broker had nowhere to route the message (nothing bound, nobody listening).
    #[error("undeliverable: nothing is listening on {destination}")]
    Undeliverable {
        /// Where the message was sent.
        destination: String,
    },
    /// The broker says nobody listens on the call's destination (NATS "no responders").
    #[error("no responders on {destination}")]
    NoResponders {
        /// Where the call was sent.
        destination: String,
    },
    /// The connection to the broker was lost while waiting for an answer that can only come
    /// on it (a NATS call's reply): the request may or may not have been handled.
    #[error("connection lost: {what}")]
    ConnectionLost {
        /// What was waiting, and on which connection.
        what: String,
    },
    /// The remote side raised an error while handling the call.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// No endpoint exposes the method (or the access policy denies it).
    #[error("no such method `{method}`{}", namespace_suffix(namespace.as_deref()))]
    NoSuchMethod {
        /// The method that was asked for.
        method: String,
        /// The namespace of the request, if any.
        namespace: Option<String>,
    },
    /// No endpoint serves the requested namespace at a compatible version.
    #[error("unsupported version {version}{}", namespace_suffix(namespace.as_deref()))]
    UnsupportedVersion {
        /// The requested version.
        version: String,
        /// The namespace of the request, if any.
        namespace: Option<String>,
    },
    /// A version cap forbids sending this version.
    #[error("version {version} is above the version cap {cap}")]
    VersionCapExceeded {
        /// The version the message asked for.
        version: String,
        /// The client's cap.
        cap: String,
    },
    /// A target lacks a field its role needs, or combines fields that don't go together.
    #[error("invalid target: field `{field}`: {reason}")]
    InvalidTarget {
        /// The offending field.
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// A transport URL could not be parsed or names an unknown option.
    #[error("invalid transport URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL with any password redacted.
        url: String,
        /// Why it is invalid.
        reason: String,
    },
    /// No driver serves this URL scheme in this build.
    #[error("no driver for scheme `{scheme}`: this build supports {supported}{}", hint.as_deref().map(|h| format!("; {h}")).unwrap_or_default())]
    UnknownScheme {
        /// The scheme that was asked for.
        scheme: String,
        /// The schemes this build supports, comma separated.
        supported: String,
        /// How to get the missing one (a feature flag), when known.
        hint: Option<String>,
    },
    /// The driver can't do this (oslo's NotImplementedError from `require_features`).
    #[error("not supported by the {driver} driver: {feature}")]
    NotSupported {
        /// The driver's name.
        driver: &'static str,
        /// What was asked for.
        feature: String,
    },
    /// An argument given to msg is unusable (RPC arguments that aren't a JSON object, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A message (or a part of it) could not be decoded.
    #[error("malformed message: {reason}")]
    Malformed {
        /// What is wrong with it.
        reason: String,
    },
    /// A value could not be turned into JSON or back.
    #[error("serialization failed: {0}")]
    Serialization(#[from] serde_json::Error),
    /// The transport, client or listener was already closed or stopped.
    #[error("closed: {0}")]
    Closed(String),
    /// Bad configuration (an option's value, a routing file, ...).
    #[error("configuration: {0}")]
    Config(String),
    /// An error of the driver's client library that fits no other kind (a bug, a protocol
    /// violation, ...): [`ErrorKind::Other`].
    #[error("{driver} driver: {message}")]
    Driver {
        /// The driver's name.
        driver: &'static str,
        /// What happened.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

fn namespace_suffix(ns: Option<&str>) -> String {
    ns.map(|n| format!(" in namespace `{n}`"))
        .unwrap_or_default()
}

impl Error {
    /// A driver error with its source.
    pub fn driver(
        driver: &'static str,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Driver {
            driver,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A malformed-message error. The reason is cut to [`MAX_MALFORMED_REASON`] characters:
    /// it may quote a value from the wire (serde quotes a string of the wrong type), and it
    /// is logged, so it must never carry a body.
    ///
    /// ```
    /// let e = msg_core::Error::malformed("x".repeat(100_000));
    /// assert!(e.to_string().len() < 300);
    /// ```
    pub fn malformed(reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        if let Some((at, _)) = reason.char_indices().nth(MAX_MALFORMED_REASON) {
            reason.truncate(at);
            reason.push_str("...");
        }
        Error::Malformed { reason }
    }

    /// A broker that can't be reached (see [`Error::Unavailable`]).
    pub fn unavailable(what: impl Into<String>, source: Option<BoxError>) -> Self {
        Error::Unavailable {
            what: what.into(),
            source,
        }
    }

    /// A broker's refusal (see [`Error::Refused`]).
    pub fn refused(reason: Refusal, what: impl Into<String>, source: Option<BoxError>) -> Self {
        Error::Refused {
            reason,
            what: what.into(),
            source,
        }
    }

    /// What kind of error this is: the one thing callers branch on.
    ///
    /// ```
    /// use msg_core::{Error, ErrorKind, Refusal};
    /// let nack = Error::refused(Refusal::Nacked, "a cast to `compute`", None);
    /// assert_eq!(nack.kind(), ErrorKind::Refused);
    /// assert!(nack.is_transient());
    /// let denied = Error::refused(Refusal::AccessRefused, "vhost `/`", None);
    /// assert!(!denied.is_transient());
    /// let bad = Error::InvalidArgument("args must be an object".into());
    /// assert_eq!(bad.kind(), ErrorKind::BadInput);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::ConnectionLost { .. } => ErrorKind::ConnectionLost,
            Error::Refused { .. } => ErrorKind::Refused,
            Error::Undeliverable { .. } | Error::NoResponders { .. } => ErrorKind::NobodyListening,
            Error::Remote(_) | Error::NoSuchMethod { .. } | Error::UnsupportedVersion { .. } => {
                ErrorKind::Remote
            }
            Error::VersionCapExceeded { .. }
            | Error::InvalidTarget { .. }
            | Error::InvalidUrl { .. }
            | Error::UnknownScheme { .. }
            | Error::InvalidArgument(_)
            | Error::Serialization(_)
            | Error::Config(_) => ErrorKind::BadInput,
            Error::NotSupported { .. } => ErrorKind::NotSupported,
            Error::Malformed { .. } => ErrorKind::Malformed,
            Error::Closed(_) => ErrorKind::Closed,
            Error::Driver { .. } => ErrorKind::Other,
        }
    }

    /// Whether trying again later may work: the broker was unreachable, the connection went,
    /// no answer came in time, nobody listened yet, or the broker refused for a passing
    /// reason ([`Refusal::is_transient`]). Bad input, remote errors, missing support and
    /// malformed messages are not.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Refused { reason, .. } => reason.is_transient(),
            _ => matches!(
                self.kind(),
                ErrorKind::Timeout
                    | ErrorKind::Unavailable
                    | ErrorKind::ConnectionLost
                    | ErrorKind::NobodyListening
            ),
        }
    }

    /// Whether the remote side raised `C`: a [`Error::Remote`] of that module and class, or
    /// oslo's `NoSuchMethod` / `UnsupportedVersion` (module `oslo_messaging.rpc.dispatcher`),
    /// which msg gives as variants of their own.
    ///
    /// ```
    /// use msg_core::{Error, RemoteClass, RemoteError};
    ///
    /// struct InstanceNotFound;
    /// impl RemoteClass for InstanceNotFound {
    ///     const MODULE: &'static str = "nova.exception";
    ///     const CLASS: &'static str = "InstanceNotFound";
    /// }
    /// struct NoSuchMethod;
    /// impl RemoteClass for NoSuchMethod {
    ///     const MODULE: &'static str = "oslo_messaging.rpc.dispatcher";
    ///     const CLASS: &'static str = "NoSuchMethod";
    /// }
    ///
    /// let e = Error::from(RemoteError::new("InstanceNotFound", "nova.exception", "gone"));
    /// match &e {
    ///     e if e.remote_is::<InstanceNotFound>() => {} // a 404 for our API
    ///     other => panic!("unexpected: {other}"),
    /// }
    /// assert_eq!(e.remote().map(|r| r.message.as_str()), Some("gone"));
    /// let missing = Error::NoSuchMethod { method: "reboot".into(), namespace: None };
    /// assert!(missing.remote_is::<NoSuchMethod>() && !missing.remote_is::<InstanceNotFound>());
    /// ```
    pub fn remote_is<C: RemoteClass>(&self) -> bool {
        match self {
            Error::Remote(r) => r.is::<C>(),
            Error::NoSuchMethod { .. } => {
                C::MODULE == crate::codec::DISPATCHER_MODULE && C::CLASS == "NoSuchMethod"
            }
            Error::UnsupportedVersion { .. } => {
                C::MODULE == crate::codec::DISPATCHER_MODULE && C::CLASS == "UnsupportedVersion"
            }
            _ => false,
        }
    }

    /// The remote error, when the remote side raised something other than oslo's
    /// `NoSuchMethod` / `UnsupportedVersion`.
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            Error::Remote(r) => Some(r),
            _ => None,
        }
    }

    /// Whether this error is a timeout (a call that got no reply or no heartbeat in time).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// Whether the connection was lost while waiting (see [`Error::ConnectionLost`]).
    ///
    /// ```
    /// let e = msg_core::Error::ConnectionLost { what: "a reply".into() };
    /// assert!(e.is_connection_lost() && !e.is_timeout());
    /// ```
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, Error::ConnectionLost { .. })
    }
}

/// What kind of [`Error`] this is ([`Error::kind`]): stable categories to branch on, each
/// holding several variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No reply or heartbeat in time ([`Error::Timeout`]).
    Timeout,
    /// The broker can't be reached ([`Error::Unavailable`]).
    Unavailable,
    /// The connection went while an answer was awaited on it ([`Error::ConnectionLost`]).
    ConnectionLost,
    /// The broker said no ([`Error::Refused`]).
    Refused,
    /// Nobody listens where the message went ([`Error::Undeliverable`],
    /// [`Error::NoResponders`]).
    NobodyListening,
    /// The remote side failed the call ([`Error::Remote`], [`Error::NoSuchMethod`],
    /// [`Error::UnsupportedVersion`]).
    Remote,
    /// What the caller gave is unusable: a target, URL, argument, option, version cap, or a
    /// value that can't be serialized.
    BadInput,
    /// The driver can't do this ([`Error::NotSupported`]).
    NotSupported,
    /// A message from the wire could not be decoded ([`Error::Malformed`]).
    Malformed,
    /// Already closed or stopped ([`Error::Closed`]).
    Closed,
    /// Anything else from a driver ([`Error::Driver`]).
    Other,
}

/// Why a broker refused, from its protocol's codes (AMQP reply codes, JetStream error
/// codes), never from the text of its message.
///
/// ```
/// use msg_core::Refusal;
/// assert_eq!(Refusal::NotFound.to_string(), "not found");
/// assert!(Refusal::Nacked.is_transient() && !Refusal::PreconditionFailed.is_transient());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// A published message was negatively acknowledged (RabbitMQ `basic.nack`: a quorum
    /// queue without a leader, an overflowing queue).
    Nacked,
    /// What was named does not exist (AMQP 404 NOT_FOUND, a JetStream stream or consumer
    /// not found).
    NotFound,
    /// It exists with other properties, or the operation doesn't fit its state (AMQP 406
    /// PRECONDITION_FAILED, a JetStream configuration mismatch).
    PreconditionFailed,
    /// Credentials or permissions (AMQP 403 ACCESS_REFUSED, a NATS authorization violation).
    AccessRefused,
    /// Another connection holds it (AMQP 405 RESOURCE_LOCKED: an exclusive queue).
    Locked,
    /// The broker is blocking publishers for now (a RabbitMQ memory or disk alarm).
    Blocked,
    /// The message is larger than the broker takes.
    TooLarge,
    /// Any other refusal, with the broker's code when it gave one.
    Other {
        /// The broker's numeric code.
        code: Option<u32>,
    },
}

impl Refusal {
    /// Whether the same request may succeed later without anybody changing anything: a nack
    /// (a new leader is elected), a lock (its holder goes), a block (the alarm clears).
    pub fn is_transient(self) -> bool {
        matches!(self, Refusal::Nacked | Refusal::Locked | Refusal::Blocked)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Nacked => f.write_str("nacked"),
            Refusal::NotFound => f.write_str("not found"),
            Refusal::PreconditionFailed => f.write_str("precondition failed"),
            Refusal::AccessRefused => f.write_str("access refused"),
            Refusal::Locked => f.write_str("locked"),
            Refusal::Blocked => f.write_str("blocking publishers"),
            Refusal::TooLarge => f.write_str("too large"),
            Refusal::Other { code: Some(c) } => write!(f, "code {c}"),
            Refusal::Other { code: None } => f.write_str("other"),
        }
    }
}

/// The result type of msg.
pub type Result<T, E = Error> = std::result::Result<T, E>;
