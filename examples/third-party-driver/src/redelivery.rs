//! Redelivery without a negative ack. Redis has no "reject and requeue": a message read in a
//! group stays in the group's pending list (PEL), owned by the consumer that read it, until
//! it is acked. So:
//!
//! - **crash recovery**: every listener sweeps its streams each second with `XAUTOCLAIM`
//!   (min-idle `claim_idle`): what a dead consumer held comes to a live one;
//! - **live listeners renew** what they hold (`XCLAIM ... JUSTID`, only for entries they
//!   still own) every third of `claim_idle`, so a slow handler's message isn't taken over;
//! - **give back** (a listener stops with messages it never yielded, or a message is
//!   dropped unsettled): the entry's idle time is set past `claim_idle`, so the next sweep of
//!   any listener of the group takes it;
//! - **immediate requeue**: the listener claims the entry again for itself (`XCLAIM`, which
//!   counts a delivery) and yields it again at once;
//! - **requeue after a delay**: the idle time is set to `claim_idle - delay`, so a sweep takes
//!   it once the delay is over (a timer for delays longer than `claim_idle`);
//! - **delivery counts** are the group's own (`XPENDING`), and past `max_deliveries` a
//!   message is dead-lettered (see [`crate::dead_letter`]) instead of coming back.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;

use crate::dead_letter::SETTLE_LUA;
use crate::entry::{self, Entry};

/// How often a listener sweeps its streams for entries to take over.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How many entries one sweep of one stream takes at most.
pub(crate) const SWEEP_COUNT: usize = 100;

/// `XAUTOCLAIM` from a cursor, then settle (dead-letter or return with counts).
/// ARGV: group, consumer, max deliveries, dead-letter max len, min idle ms, count, cursor.
/// Returns `{next cursor, {{id, fields, deliveries}, ...}}`.
static SWEEP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{SETTLE_LUA}
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[5], ARGV[7], 'COUNT', ARGV[6])
return {{r[1], settle(r[2])}}"
    ))
});

/// `XCLAIM` one entry for this consumer (a delivery more), then settle.
/// ARGV: group, consumer, max deliveries, dead-letter max len, id.
static CLAIM_AGAIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{SETTLE_LUA}
return settle(redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[5]))"
    ))
});

/// Renews the entries (ARGV[3..]) that consumer ARGV[2] of group ARGV[1] still owns.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if type(p[1]) == 'table' and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n"#,
    )
});

/// What a listener's group needs to claim and settle entries.
#[derive(Debug, Clone)]
pub(crate) struct ClaimSettings {
    pub(crate) group: String,
    pub(crate) consumer: String,
    pub(crate) claim_idle: Duration,
    pub(crate) max_deliveries: u32,
    pub(crate) dead_letter_max_len: u32,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Takes over up to [`SWEEP_COUNT`] entries of `key` idle for `claim_idle`, from `cursor`;
/// returns the next cursor and the entries (the ones delivered too often are dead-lettered).
pub(crate) async fn sweep(
    conn: &mut ConnectionManager,
    s: &ClaimSettings,
    key: &Arc<str>,
    dead_letter: &str,
    cursor: &str,
) -> redis::RedisResult<(String, Vec<Entry>)> {
    let v: redis::Value = SWEEP
        .key(&**key)
        .key(dead_letter)
        .arg(&s.group)
        .arg(&s.consumer)
        .arg(s.max_deliveries)
        .arg(s.dead_letter_max_len)
        .arg(ms(s.claim_idle))
        .arg(SWEEP_COUNT)
        .arg(cursor)
        .invoke_async(conn)
        .await?;
    let redis::Value::Array(mut parts) = v else {
        return Ok(("0-0".into(), Vec::new()));
    };
    let entries = if parts.len() == 2 { parts.pop() } else { None };
    let next = match parts.pop() {
        Some(redis::Value::BulkString(b)) => String::from_utf8(b).unwrap_or_else(|_| "0-0".into()),
        _ => "0-0".into(),
    };
    Ok((
        next,
        entries.map(|e| entry::claimed(key, e)).unwrap_or_default(),
    ))
}

/// Claims one held entry again for this consumer: the entry to yield again (with its new
/// delivery count), or nothing when it was dead-lettered or is no longer pending.
pub(crate) async fn claim_again(
    conn: &mut ConnectionManager,
    s: &ClaimSettings,
    key: &Arc<str>,
    dead_letter: &str,
    id: &str,
) -> redis::RedisResult<Vec<Entry>> {
    let v: redis::Value = CLAIM_AGAIN
        .key(&**key)
        .key(dead_letter)
        .arg(&s.group)
        .arg(&s.consumer)
        .arg(s.max_deliveries)
        .arg(s.dead_letter_max_len)
        .arg(id)
        .invoke_async(conn)
        .await?;
    Ok(entry::claimed(key, v))
}

/// Makes held entries claimable by any listener's sweep after `after` (at once for zero).
pub(crate) async fn release(
    conn: &mut ConnectionManager,
    s: &ClaimSettings,
    key: &str,
    ids: &[String],
    after: Duration,
) -> redis::RedisResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let idle = if after.is_zero() {
        // well past claim_idle: the next sweep takes it whatever its clock says
        s.claim_idle + Duration::from_secs(3600)
    } else {
        s.claim_idle.saturating_sub(after)
    };
    redis::cmd("XCLAIM")
        .arg(key)
        .arg(&s.group)
        .arg(&s.consumer)
        .arg(0)
        .arg(ids)
        .arg("IDLE")
        .arg(ms(idle))
        .arg("JUSTID")
        .exec_async(conn)
        .await
}

/// Renews the entries this consumer still owns, so no sweep takes them over.
pub(crate) async fn renew(
    conn: &mut ConnectionManager,
    s: &ClaimSettings,
    key: &str,
    ids: &[String],
) -> redis::RedisResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut inv = RENEW.key(key);
    inv.arg(&s.group).arg(&s.consumer);
    for id in ids {
        inv.arg(id);
    }
    let _: i64 = inv.invoke_async(conn).await?;
    Ok(())
}
