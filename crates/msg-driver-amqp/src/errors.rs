//! lapin's errors as msg's error kinds: by their AMQP reply codes and lapin's typed kinds,
//! never by their text.

use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
use msg_core::{Error, Refusal};

/// The broker's refusal in an AMQP error, when it is one.
pub(crate) fn refusal(e: &lapin::Error) -> Option<Refusal> {
    let lapin::ErrorKind::ProtocolError(amqp) = e.kind() else {
        return None;
    };
    Some(match amqp.kind() {
        AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => Refusal::NotFound,
        AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) => Refusal::PreconditionFailed,
        AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)
        | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => Refusal::AccessRefused,
        AMQPErrorKind::Soft(AMQPSoftError::RESOURCELOCKED) => Refusal::Locked,
        AMQPErrorKind::Soft(AMQPSoftError::CONTENTTOOLARGE)
        | AMQPErrorKind::Hard(AMQPHardError::FRAMEERROR) => Refusal::TooLarge,
        other => Refusal::Other {
            code: Some(u32::from(other.get_id())),
        },
    })
}

/// Whether the error is AMQP 406 PRECONDITION_FAILED.
pub(crate) fn is_precondition_failed(e: &lapin::Error) -> bool {
    refusal(e) == Some(Refusal::PreconditionFailed)
}

/// Whether the error is AMQP 404 NOT_FOUND.
pub(crate) fn is_not_found(e: &lapin::Error) -> bool {
    refusal(e) == Some(Refusal::NotFound)
}

/// Whether an error means the connection (not just a channel) is gone.
pub(crate) fn is_connection_error(e: &lapin::Error) -> bool {
    use lapin::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::IOError(_)
            | ErrorKind::InvalidConnectionState(_)
            | ErrorKind::InvalidChannelState(..)
            | ErrorKind::InvalidChannel(_)
            | ErrorKind::RuntimeShutdownError(_)
            | ErrorKind::MissingHeartbeatError
    ) || e.is_amqp_hard_error()
        || !e.is_amqp_soft_error()
}

/// msg's error for a failed lapin operation: a refusal when the broker said no (a soft
/// error, or a hard one naming a refusal), unavailable when the connection or channel went,
/// otherwise an error of the driver.
pub(crate) fn classify(what: impl Into<String>, e: lapin::Error) -> Error {
    let what = what.into();
    match refusal(&e) {
        Some(Refusal::Other { .. } | Refusal::TooLarge) if e.is_amqp_hard_error() => {
            // a hard error closes the connection: CONNECTION_FORCED (a node going down),
            // INTERNAL_ERROR, ...; what was asked may work on the next connection
            Error::unavailable(what, Some(Box::new(e)))
        }
        Some(reason) => Error::refused(reason, what, Some(Box::new(e))),
        None if is_connection_error(&e) => Error::unavailable(what, Some(Box::new(e))),
        None => Error::Driver {
            driver: "amqp",
            message: what,
            source: Some(Box::new(e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::protocol::AMQPError;
    use msg_core::ErrorKind;

    fn protocol(kind: AMQPErrorKind) -> lapin::Error {
        lapin::ErrorKind::ProtocolError(AMQPError::new(kind, "text that is never read".into()))
            .into()
    }

    #[test]
    fn codes_not_texts() {
        let e = classify(
            "declaring",
            protocol(AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)),
        );
        assert!(matches!(
            e,
            Error::Refused {
                reason: Refusal::PreconditionFailed,
                ..
            }
        ));
        let e = classify(
            "consuming",
            protocol(AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND)),
        );
        assert!(matches!(
            e,
            Error::Refused {
                reason: Refusal::NotFound,
                ..
            }
        ));
        let e = classify(
            "opening",
            protocol(AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED)),
        );
        assert!(matches!(
            e,
            Error::Refused {
                reason: Refusal::AccessRefused,
                ..
            }
        ));
        let e = classify(
            "publishing",
            protocol(AMQPErrorKind::Hard(AMQPHardError::CONNECTIONFORCED)),
        );
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_transient());
        let io: lapin::Error = std::io::Error::from(std::io::ErrorKind::ConnectionReset).into();
        let e = classify("publishing", io);
        assert_eq!(e.kind(), ErrorKind::Unavailable);
    }
}
