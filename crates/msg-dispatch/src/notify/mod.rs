//! Notifications: messages, filters, endpoints and the dispatcher.

mod batch_result;
mod dispatcher;
mod endpoint;
mod filter;
mod handler;
mod message;
mod result;

pub use batch_result::{BatchResult, IntoBatchResult};
pub use dispatcher::NotificationDispatcher;
pub use endpoint::NotificationEndpoint;
pub use filter::NotificationFilter;
pub use message::NotificationMessage;
pub use result::{IntoNotificationResult, NotificationResult};
