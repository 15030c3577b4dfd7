//! Sending: `XADD` of an encoded body (field `b`) onto a stream, retried as `Retry` says when
//! the connection fails.
//!
//! RPC messages go only to streams that exist: a server creates its streams (with their
//! group) when it starts listening, so a cast to a topic no server ever listened on is
//! dropped (or, with `at_least_once`, fails as undeliverable) instead of creating a stream
//! nobody reads, as RabbitMQ drops a message no queue is bound for. A notification makes
//! its stream and the default group itself: store and forward.

use std::sync::LazyLock;
use std::time::Duration;

use msg_core::{Result, Retry};
use redis::Script;
use redis::aio::ConnectionManager;

use crate::entry::BODY_FIELD;
use crate::errors::{self, from_redis};

/// `XADD` to KEYS[1] only if it exists; ARGV: body, max length (0: none). The new id, or
/// nil when there is no such stream.
static ADD_IF_EXISTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[2] ~= '0' then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', '{BODY_FIELD}', ARGV[1])
end
return redis.call('XADD', KEYS[1], '*', '{BODY_FIELD}', ARGV[1])"#
    ))
});

/// Creates group ARGV[2] on KEYS[1] (and the stream) if missing, then `XADD`s ARGV[1].
static ADD_WITH_GROUP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[2], '$', 'MKSTREAM')
return redis.call('XADD', KEYS[1], '*', '{BODY_FIELD}', ARGV[1])"#
    ))
});

async fn with_retry<T, F, Fut>(retry: Retry, what: &str, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    let mut tries: u32 = 0;
    let mut wait = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                tries = tries.saturating_add(1);
                let more = retry.max_attempts().is_none_or(|max| tries < max);
                if !errors::is_transient(&e) || !more {
                    return Err(from_redis(what, e));
                }
                tracing::debug!(error = %e, attempt = tries, "{what} failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Adds `body` to the stream `key` if it exists; `false` when it doesn't.
pub(crate) async fn add_if_exists(
    conn: &ConnectionManager,
    key: &str,
    body: &[u8],
    max_len: u32,
    retry: Retry,
) -> Result<bool> {
    with_retry(retry, "sending a message", || {
        let mut conn = conn.clone();
        async move {
            let id: Option<String> = ADD_IF_EXISTS
                .key(key)
                .arg(body)
                .arg(max_len)
                .invoke_async(&mut conn)
                .await?;
            Ok(id.is_some())
        }
    })
    .await
}

/// Adds `body` to the stream `key`, creating it and `group` first if missing.
pub(crate) async fn add_with_group(
    conn: &ConnectionManager,
    key: &str,
    group: &str,
    body: &[u8],
    retry: Retry,
) -> Result<()> {
    with_retry(retry, "sending a notification", || {
        let mut conn = conn.clone();
        async move {
            let _: String = ADD_WITH_GROUP
                .key(key)
                .arg(body)
                .arg(group)
                .invoke_async(&mut conn)
                .await?;
            Ok(())
        }
    })
    .await
}
