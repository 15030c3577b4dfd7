//! Letting go of what every group is done with. Redis's own trimming (`MAXLEN`, `MINID`)
//! ignores consumer groups, so each listener tidies its streams now and then: it trims
//! below the floor of all the stream's groups (the oldest entry still pending in any group,
//! or the last one a group was given) and removes the consumers that hold nothing and were
//! not seen for an hour (each listener reads as a consumer of its own, so a group would
//! otherwise keep one per listener that ever ran). A group that never reads (a pool whose
//! listeners are all gone, the default group of notifications nobody listens to) keeps
//! everything from where it stands: that is store and forward.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;

/// How often a listener tidies its streams.
pub(crate) const TIDY_EVERY: Duration = Duration::from_secs(10);
/// How long a consumer that holds nothing may go unseen before it is removed.
pub(crate) const REAP_AFTER: Duration = Duration::from_secs(3600);

/// KEYS[1] the stream; ARGV[1] the reap age in ms. Returns `{trimmed, reaped}`.
static TIDY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local function older(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local function fields(flat)
  local t = {}
  for i = 1, #flat - 1, 2 do t[flat[i]] = flat[i + 1] end
  return t
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0} end
local floor = nil
local reaped = 0
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = fields(g)
  local low = info['last-delivered-id']
  if info['pending'] > 0 then
    low = redis.call('XPENDING', KEYS[1], info['name'])[2]
  end
  if floor == nil or older(low, floor) then floor = low end
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], info['name'])) do
    local ci = fields(c)
    if ci['pending'] == 0 and ci['idle'] > tonumber(ARGV[1]) then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], info['name'], ci['name'])
      reaped = reaped + 1
    end
  end
end
local trimmed = 0
if floor then trimmed = redis.call('XTRIM', KEYS[1], 'MINID', floor) end
return {trimmed, reaped}"#,
    )
});

/// Tidies one stream: how many entries were trimmed and consumers removed.
pub(crate) async fn tidy(
    conn: &mut ConnectionManager,
    key: &str,
) -> redis::RedisResult<(u64, u64)> {
    TIDY.key(key)
        .arg(u64::try_from(REAP_AFTER.as_millis()).unwrap_or(u64::MAX))
        .invoke_async(conn)
        .await
}
