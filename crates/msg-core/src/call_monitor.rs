//! oslo's call-monitor rule: how often a server heartbeats for a call that asked for it.

use std::time::Duration;

/// The heartbeat interval for a call-monitor timeout, by oslo's rule (`rpc/dispatcher.py`):
/// the timeout's whole seconds, halved; `None` (no heartbeats at all) when that is under one
/// second, i.e. for timeouts under two seconds. Servers warn about such a timeout once per
/// request.
///
/// ```
/// use std::time::Duration;
/// use msg_core::heartbeat_interval;
/// assert_eq!(heartbeat_interval(Duration::from_secs(60)), Some(Duration::from_secs(30)));
/// assert_eq!(heartbeat_interval(Duration::from_millis(3900)), Some(Duration::from_millis(1500)));
/// assert_eq!(heartbeat_interval(Duration::from_millis(1999)), None);
/// assert_eq!(heartbeat_interval(Duration::from_nanos(1)), None);
/// ```
pub fn heartbeat_interval(call_monitor_timeout: Duration) -> Option<Duration> {
    let whole = call_monitor_timeout.as_secs();
    (whole >= 2).then(|| Duration::from_millis(whole.saturating_mul(500)))
}
