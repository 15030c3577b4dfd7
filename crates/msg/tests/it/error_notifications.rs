//! oslo's logging pieces on RabbitMQ: an application's ERROR log event reaches a listener
//! as oslo's `error_notification`, and nothing else does.

use std::time::Duration;

use msg::notify::{
    Handled, NotificationEndpoint, NotificationLayer, NotificationListener, Notifier,
};
use msg::{Priority, Target, Transport};
use serde_json::json;
use tokio::sync::mpsc;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_log_event_reaches_a_listener_as_oslos_error_notification() {
    let Some(url) = std::env::var("MSG_RABBIT_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        assert!(
            std::env::var("MSG_REQUIRE_BROKERS").as_deref() != Ok("1"),
            "MSG_REQUIRE_BROKERS=1 but MSG_RABBIT_URL is not set"
        );
        eprintln!("SKIPPED: error notifications on RabbitMQ (no MSG_RABBIT_URL)");
        return;
    };
    if msg::builtin_registry().lookup("rabbit").is_none() {
        eprintln!("SKIPPED: error notifications on RabbitMQ (built without the amqp feature)");
        return;
    }
    tokio::time::timeout(Duration::from_secs(60), async {
        let topic = format!(
            "errors-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let transport = Transport::open(&url).await.unwrap();
        let (tx, mut got) = mpsc::unbounded_channel();
        let listener =
            NotificationListener::builder(transport.clone(), [Target::topic(topic.as_str())])
                .endpoint(NotificationEndpoint::new().on(Priority::Error, move |m| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send(m);
                        Handled
                    }
                }))
                .start()
                .await
                .unwrap();

        let notifier = Notifier::new(transport.clone()).topics([topic.as_str()]);
        let layer = NotificationLayer::publish_errors(notifier).unwrap();
        {
            let _guard = tracing::subscriber::set_default(
                tracing_subscriber::registry().with(layer.clone()),
            );
            tracing::warn!(target: "nova.compute", "a warning is not sent");
            tracing::error!(target: "msg_driver_amqp::publish", "msg's own errors are not sent");
            tracing::error!(target: "nova.compute", "instance i-1 failed: password=hunter2");
        }
        layer.flush().await;

        let m = got.recv().await.unwrap();
        assert_eq!(m.event_type, "error_notification");
        assert_eq!(m.publisher_id, "error.publisher");
        assert_eq!(m.priority, Priority::Error);
        assert_eq!(
            m.payload,
            json!({"error": "instance i-1 failed: password=***"})
        );
        // nothing else comes
        let more = tokio::time::timeout(Duration::from_millis(300), got.recv()).await;
        assert!(more.is_err(), "{more:?}");
        listener.shutdown(Duration::from_secs(5)).await.unwrap();
        transport.cleanup().await.unwrap();
    })
    .await
    .unwrap();
}
