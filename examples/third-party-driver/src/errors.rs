//! Redis errors as msg's kinds, by what redis-rs and Redis say they are (redis-rs's error
//! kinds, and the code Redis puts first in an error reply, its protocol's error code), never
//! by the text of a message.

use msg_core::{Error, Refusal};
use redis::{ErrorKind as RedisKind, RedisError, ServerErrorKind};

/// A failed Redis command (`what`: what was being done) as msg's error.
pub(crate) fn from_redis(what: &str, e: RedisError) -> Error {
    let what = what.to_string();
    if is_transient(&e) {
        return Error::unavailable(what, Some(Box::new(e)));
    }
    let refusal = match e.kind() {
        RedisKind::AuthenticationFailed => Some(Refusal::AccessRefused),
        RedisKind::Server(ServerErrorKind::NoPerm) => Some(Refusal::AccessRefused),
        RedisKind::Server(ServerErrorKind::ReadOnly) => Some(Refusal::PreconditionFailed),
        _ => match e.code() {
            // an ACL user without the right (NOAUTH: no AUTH at all, WRONGPASS: a bad one)
            Some("NOAUTH" | "WRONGPASS") => Some(Refusal::AccessRefused),
            // a consumer group (or its stream) that isn't there
            Some("NOGROUP") => Some(Refusal::NotFound),
            Some("BUSYGROUP") => Some(Refusal::PreconditionFailed),
            // over maxmemory: writes are refused until memory is freed
            Some("OOM") => Some(Refusal::Blocked),
            _ => None,
        },
    };
    match refusal {
        Some(reason) => Error::refused(reason, what, Some(Box::new(e))),
        None => Error::driver(crate::connection::DRIVER, what, e),
    }
}

/// Whether the failure is of the connection or of a server that can't serve for now (still
/// loading its data, a primary gone): trying again later may work.
pub(crate) fn is_transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            RedisKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ClusterDown
            )
        )
}

#[cfg(test)]
mod tests {
    use msg_core::ErrorKind;

    use super::*;

    #[test]
    fn kinds_come_from_redis_codes() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(from_redis("x", io).kind(), ErrorKind::Unavailable);
        let parsed = |reply: &str| {
            redis::parse_redis_value(reply.as_bytes())
                .and_then(|v| v.extract_error())
                .unwrap_err()
        };
        let e = from_redis(
            "x",
            parsed("-NOGROUP No such key 'k' or consumer group 'g'\r\n"),
        );
        assert!(
            matches!(
                e,
                Error::Refused {
                    reason: Refusal::NotFound,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = from_redis("x", parsed("-WRONGPASS invalid username-password pair\r\n"));
        assert!(
            matches!(
                e,
                Error::Refused {
                    reason: Refusal::AccessRefused,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = from_redis(
            "x",
            parsed("-LOADING Redis is loading the dataset in memory\r\n"),
        );
        assert!(e.is_transient(), "{e:?}");
        let e = from_redis("x", parsed("-ERR unknown command\r\n"));
        assert_eq!(e.kind(), ErrorKind::Other);
    }
}
