use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use msg_core::codec::{EnvelopeVersion, WireNotification};
use msg_core::{Context, Notification, Priority};
use msg_dispatch::{
    NotificationDispatcher, NotificationEndpoint, NotificationFilter, NotificationMessage,
    NotificationResult,
};
use serde_json::json;

fn from_wire(n: &Notification, ctx: Context) -> NotificationMessage {
    let wire = WireNotification {
        context: ctx,
        notification: n.clone(),
        unique_id: "u".into(),
    };
    let bytes = wire.encode(EnvelopeVersion::V2).expect("encodable");
    let back = WireNotification::decode(&bytes).expect("decodable");
    NotificationMessage::from((back.context, back.notification))
}

#[tokio::test]
async fn filtered_notifications_from_the_wire() {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let filter = NotificationFilter::new()
        .publisher_id("^compute")
        .and_then(|f| f.context("project_id", "p-1"))
        .and_then(|f| f.metadata("timestamp", r"\d{4}-\d{2}-\d{2} "))
        .and_then(|f| f.payload("state", "active"))
        .expect("valid filter");
    let d = NotificationDispatcher::new(vec![NotificationEndpoint::new().filter(filter).on(
        Priority::Info,
        move |m: NotificationMessage| {
            let counter = Arc::clone(&counter);
            async move {
                assert_eq!(m.metadata.len(), 2);
                counter.fetch_add(1, Ordering::SeqCst);
                NotificationResult::Handled
            }
        },
    )]);
    assert_eq!(d.supported_priorities(), vec![Priority::Info]);

    let n = Notification::new(
        "compute.h1",
        "instance.update",
        Priority::Info,
        json!({"state": "active"}),
    );
    let ctx = Context::new().with("project_id", "p-1");
    assert_eq!(
        d.dispatch(from_wire(&n, ctx.clone())).await,
        msg_dispatch::Handled
    );
    assert_eq!(seen.load(Ordering::SeqCst), 1);

    let other = Notification::new(
        "xcompute.h1",
        "instance.update",
        Priority::Info,
        json!({"state": "active"}),
    );
    assert_eq!(
        d.dispatch(from_wire(&other, ctx)).await,
        NotificationResult::Handled
    );
    assert_eq!(seen.load(Ordering::SeqCst), 1, "filtered out");
}

#[tokio::test]
async fn batches_say_what_to_requeue() {
    let d = NotificationDispatcher::new(vec![
        NotificationEndpoint::new()
            .on_batch(Priority::Warn, |ms: Vec<NotificationMessage>| async move {
                if ms.len() > 1 {
                    msg_dispatch::Requeue
                } else {
                    msg_dispatch::Handled
                }
            })
            .on_batch(Priority::Info, |_ms| async { Ok::<_, String>(()) }),
    ]);
    let msgs = [
        Priority::Warn,
        Priority::Info,
        Priority::Warn,
        Priority::Debug,
    ]
    .into_iter()
    .map(|p| NotificationMessage::new(Context::new(), Notification::new("p", "e", p, json!(null))))
    .collect();
    assert_eq!(d.dispatch_batch(msgs).await, vec![true, false, true, false]);
}
