//! Dead-lettering: a message delivered more than `max_deliveries` times (its group's
//! delivery count, as `XPENDING` shows it) is moved to the dead-letter stream of its source
//! stream (`SOURCE:dead`) and acknowledged, instead of going back to a listener.
//!
//! A dead-letter entry holds the message (`b`) and where it came from: `source` (the stream),
//! `group`, `id` (its id there) and `deliveries`. Nothing reads dead-letter streams: they
//! are for operators (`XRANGE msg:notify:openstack:events:info:dead - +`), trimmed to about
//! `dead_letter_max_len` entries.
//!
//! The check runs inside the scripts that hand a message back to a listener (redelivery's
//! sweep and requeue), so a message is never both redelivered and dead-lettered.

/// A Lua function for the claim scripts: settles the entries an `XCLAIM`/`XAUTOCLAIM` just
/// returned. Each one delivered more than `ARGV[3]` times (when `ARGV[3]` isn't 0) goes to
/// `KEYS[2]` (trimmed to about `ARGV[4]` entries) and is acked in group `ARGV[1]`; the others
/// come back as `{id, fields, deliveries}`. `KEYS[1]` is the source stream.
pub(crate) const SETTLE_LUA: &str = r#"
local function settle(entries)
  local out = {}
  local max = tonumber(ARGV[3])
  for _, e in ipairs(entries) do
    if type(e) == 'table' and e[1] then
      local id = e[1]
      local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
      local n = 1
      if type(p[1]) == 'table' then n = p[1][4] end
      if max > 0 and n > max then
        local body = nil
        if type(e[2]) == 'table' then
          for i = 1, #e[2] - 1, 2 do
            if e[2][i] == 'b' then body = e[2][i + 1] end
          end
        end
        if body then
          redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'b', body,
            'source', KEYS[1], 'group', ARGV[1], 'id', id, 'deliveries', n)
        else
          redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*',
            'source', KEYS[1], 'group', ARGV[1], 'id', id, 'deliveries', n)
        end
        redis.call('XACK', KEYS[1], ARGV[1], id)
      else
        table.insert(out, {id, e[2], n})
      end
    end
  end
  return out
end
"#;
