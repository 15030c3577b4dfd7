//! The notification listener of oslo.messaging's seed example, in Rust: targets
//! `notifications` and `notifications_bis`, a warn endpoint filtered on publisher `^compute.*`,
//! an error endpoint filtered on event type `^instance\..*\.start$` and on the context,
//! in pool `listener-workers`. Prints what it gets; stops after `COUNT` notifications.
//!
//! ```sh
//! cargo run -p msg --features amqp --example notification_listener -- rabbit://guest:guest@127.0.0.1:5672/ 2
//! ```
#![allow(clippy::print_stdout)]

use std::time::Duration;

use msg::notify::{Handled, NotificationEndpoint, NotificationFilter, NotificationListener};
use msg::{Priority, Target, Transport};
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> msg::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "memory://".into());
    let count: usize = std::env::args()
        .nth(2)
        .and_then(|c| c.parse().ok())
        .unwrap_or(2);
    let transport = Transport::open(&url).await?;
    let (seen, mut rx) = mpsc::unbounded_channel::<String>();

    let warn_seen = seen.clone();
    let warn = NotificationEndpoint::new()
        .filter(NotificationFilter::new().publisher_id("^compute.*")?)
        .on(Priority::Warn, move |n| {
            let seen = warn_seen.clone();
            async move {
                let _ = seen.send(format!(
                    "warn  {} {} {}",
                    n.publisher_id, n.event_type, n.payload
                ));
                Handled
            }
        });
    let error = NotificationEndpoint::new()
        .filter(
            NotificationFilter::new()
                .event_type(r"^instance\..*\.start$")?
                .context("ctxt_key", "^regexp$")?,
        )
        .on(Priority::Error, move |n| {
            let seen = seen.clone();
            async move {
                let _ = seen.send(format!(
                    "error {} {} {}",
                    n.publisher_id, n.event_type, n.payload
                ));
                Handled
            }
        });

    let listener = NotificationListener::builder(
        transport.clone(),
        [
            Target::topic("notifications"),
            Target::topic("notifications_bis"),
        ],
    )
    .pool("listener-workers")
    .endpoint(warn)
    .endpoint(error)
    .start()
    .await?;
    println!("listening on notifications and notifications_bis in pool listener-workers");
    for _ in 0..count {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(line)) => println!("{line}"),
            _ => break,
        }
    }
    listener.shutdown(Duration::from_secs(10)).await?;
    transport.cleanup().await
}
