//! async-nats's errors as msg's error kinds: by their kinds and JetStream's error codes,
//! never by their text.

use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
use async_nats::jetstream::stream::ConsumerErrorKind;
use async_nats::jetstream::{self, ErrorCode};
use msg_core::{Error, Refusal};

/// The refusal behind a JetStream API error code.
pub(crate) fn refusal(e: &jetstream::Error) -> Refusal {
    match e.error_code() {
        ErrorCode::STREAM_NOT_FOUND | ErrorCode::CONSUMER_NOT_FOUND => Refusal::NotFound,
        ErrorCode::STREAM_NAME_EXIST | ErrorCode::CONSUMER_NAME_EXIST => {
            Refusal::PreconditionFailed
        }
        code => Refusal::Other {
            code: Some(u32::try_from(code.0).unwrap_or(u32::MAX)),
        },
    }
}

/// What a JetStream API error kind says: the server's refusal, or no answer.
pub(crate) trait ApiErrorKind {
    /// The JetStream API error in it, when the server answered with one.
    fn api_error(&self) -> Option<&jetstream::Error>;
    /// Whether the request got no answer (timed out, the connection is down).
    fn no_answer(&self) -> bool;
}

impl ApiErrorKind for GetStreamErrorKind {
    fn api_error(&self) -> Option<&jetstream::Error> {
        match self {
            GetStreamErrorKind::JetStream(e) => Some(e),
            _ => None,
        }
    }
    fn no_answer(&self) -> bool {
        matches!(self, GetStreamErrorKind::Request)
    }
}

impl ApiErrorKind for CreateStreamErrorKind {
    fn api_error(&self) -> Option<&jetstream::Error> {
        match self {
            CreateStreamErrorKind::JetStream(e) => Some(e),
            _ => None,
        }
    }
    fn no_answer(&self) -> bool {
        matches!(
            self,
            CreateStreamErrorKind::TimedOut | CreateStreamErrorKind::JetStreamUnavailable
        )
    }
}

impl ApiErrorKind for ConsumerErrorKind {
    fn api_error(&self) -> Option<&jetstream::Error> {
        match self {
            ConsumerErrorKind::JetStream(e) => Some(e),
            _ => None,
        }
    }
    fn no_answer(&self) -> bool {
        matches!(
            self,
            ConsumerErrorKind::TimedOut | ConsumerErrorKind::Request
        )
    }
}

/// msg's error for a failed JetStream API request.
pub(crate) fn jetstream<K>(what: impl Into<String>, e: async_nats::error::Error<K>) -> Error
where
    K: ApiErrorKind + Clone + std::fmt::Debug + std::fmt::Display + PartialEq + Send + Sync,
    K: 'static,
{
    let kind = e.kind();
    if let Some(api) = kind.api_error() {
        return Error::refused(refusal(api), what, Some(Box::new(e)));
    }
    if kind.no_answer() {
        return Error::unavailable(what, Some(Box::new(e)));
    }
    Error::Driver {
        driver: "nats",
        message: what.into(),
        source: Some(Box::new(e)),
    }
}

/// msg's error for a core NATS operation that failed on the client's side (a publish or
/// subscribe the client could not queue: its connection is closed).
pub(crate) fn unavailable(
    what: impl Into<String>,
    e: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    Error::unavailable(what, Some(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use msg_core::ErrorKind;

    #[test]
    fn by_kind_and_code() {
        let e = jetstream(
            "creating the consumer",
            async_nats::error::Error::new(ConsumerErrorKind::TimedOut),
        );
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let e = jetstream(
            "looking up",
            async_nats::error::Error::new(GetStreamErrorKind::InvalidStreamName),
        );
        assert_eq!(e.kind(), ErrorKind::Other);
        let api: jetstream::Error = serde_json::from_str(
            r#"{"code":404,"err_code":10059,"description":"any text at all"}"#,
        )
        .unwrap();
        let e = jetstream(
            "looking up",
            async_nats::error::Error::new(GetStreamErrorKind::JetStream(api)),
        );
        assert!(matches!(
            e,
            Error::Refused {
                reason: Refusal::NotFound,
                ..
            }
        ));
    }
}
