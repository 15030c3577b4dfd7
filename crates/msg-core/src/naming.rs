//! oslo's names for routing keys, queues and exchanges (WIRE.md's topology), shared by the
//! drivers that lay out oslo's topology (`memory://`, RabbitMQ).

use crate::Priority;

/// The routing key (and queue) of a server-directed message: `<topic>.<server>`.
///
/// ```
/// assert_eq!(msg_core::naming::server_key("calc", "host-1"), "calc.host-1");
/// ```
pub fn server_key(topic: &str, server: &str) -> String {
    format!("{topic}.{server}")
}

/// The fanout exchange of a topic: `<topic>_fanout` (never prefixed by the exchange).
///
/// ```
/// assert_eq!(msg_core::naming::fanout_exchange("calc"), "calc_fanout");
/// ```
pub fn fanout_exchange(topic: &str) -> String {
    format!("{topic}_fanout")
}

/// The routing key (and default queue) of a notification: `<topic>.<priority>`, lower-case.
///
/// ```
/// use msg_core::{Priority, naming::notification_key};
/// assert_eq!(notification_key("notifications", Priority::Warn), "notifications.warn");
/// ```
pub fn notification_key(topic: &str, priority: Priority) -> String {
    format!("{topic}.{}", priority.routing_name())
}
