//! A notification as notification handlers see it.

use msg_core::{Context, Notification, Payload, Priority};
use serde_json::{Map, Value};

/// A notification as handlers see it: oslo's `(ctxt, publisher_id, event_type, payload,
/// metadata)` plus its priority. `metadata` holds `message_id` and `timestamp`, as oslo's.
///
/// ```
/// use msg_core::{Context, Notification, Payload, Priority};
/// use msg_dispatch::NotificationMessage;
///
/// let n = Notification::new("compute.host1", "compute.instance.create.end", Priority::Info,
///                           serde_json::json!({"id": 12}));
/// let id = n.message_id.clone();
/// let msg = NotificationMessage::new(Context::new(), n);
/// assert_eq!(msg.metadata["message_id"], serde_json::json!(id));
/// assert_eq!(msg.priority, Priority::Info);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationMessage {
    /// The context the notifier sent (redacted by it).
    pub context: Context,
    /// Who sent it (`compute.host1`).
    pub publisher_id: String,
    /// What happened (`compute.instance.create.end`).
    pub event_type: String,
    /// Its priority.
    pub priority: Priority,
    /// The payload, kept as the JSON text it came as: `payload.deserialize::<T>()` gives a
    /// typed value straight from it (see [`Payload`]).
    pub payload: Payload,
    /// `message_id` and `timestamp`, as strings.
    pub metadata: Map<String, Value>,
}

impl NotificationMessage {
    /// The message for a notification received with this context.
    pub fn new(context: Context, notification: Notification) -> Self {
        let Notification {
            message_id,
            publisher_id,
            event_type,
            priority,
            payload,
            timestamp,
        } = notification;
        let mut metadata = Map::with_capacity(2);
        metadata.insert("message_id".into(), Value::String(message_id));
        metadata.insert("timestamp".into(), Value::String(timestamp));
        NotificationMessage {
            context,
            publisher_id,
            event_type,
            priority,
            payload,
            metadata,
        }
    }
}

impl From<(Context, Notification)> for NotificationMessage {
    fn from((context, notification): (Context, Notification)) -> Self {
        NotificationMessage::new(context, notification)
    }
}
