//! The one error type of msg.

use std::time::Duration;

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
    /// A message could not be handed to the broker (or the broker refused it).
    #[error("delivery failed: {reason}")]
    Delivery {
        /// What happened, in words.
        reason: String,
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
    /// An error of the driver's client library or of the broker.
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

/// An error raised by the remote side of a call, as it travelled: never re-instantiated.
///
/// ```
/// use msg_core::RemoteError;
/// let e = RemoteError::new("ValueError", "builtins", "boom");
/// assert_eq!(e.to_string(), "remote error: ValueError: boom");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("remote error: {class}: {message}")]
pub struct RemoteError {
    /// The exception's class name (`ValueError`, `NoSuchMethod`, ...).
    pub class: String,
    /// The module the class lives in (`builtins`, `oslo_messaging.rpc.dispatcher`, ...).
    pub module: String,
    /// The exception's message.
    pub message: String,
    /// The remote traceback, one line per entry, as sent.
    pub traceback: Vec<String>,
}

impl RemoteError {
    /// A remote error without a traceback.
    pub fn new(
        class: impl Into<String>,
        module: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        RemoteError {
            class: class.into(),
            module: module.into(),
            message: message.into(),
            traceback: Vec::new(),
        }
    }
}

/// The result type of msg.
pub type Result<T, E = Error> = std::result::Result<T, E>;
