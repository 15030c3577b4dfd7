//! A batch listener shaped like Ceilometer's collector: batch size and timeout from its
//! configuration, `allow_requeue`, a sample endpoint that stores batches (a batch that fails
//! to store is requeued whole). Stops after `COUNT` notifications.
//!
//! ```sh
//! cargo run -p msg --features amqp --example batch_listener -- rabbit://guest:guest@127.0.0.1:5672/ 10
//! ```
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use msg::notify::{BatchNotificationListener, NotificationEndpoint, NotificationResult};
use msg::{Executor, Priority, Target, Transport};

/// Ceilometer's `[notification]` options that matter here.
struct CollectorConfig {
    batch_size: usize,
    batch_timeout: Duration,
    workers: usize,
}

#[tokio::main]
async fn main() -> msg::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "memory://".into());
    let count: usize = std::env::args()
        .nth(2)
        .and_then(|c| c.parse().ok())
        .unwrap_or(10);
    let conf = CollectorConfig {
        batch_size: 100,
        batch_timeout: Duration::from_secs(1),
        workers: 2,
    };
    let transport = Transport::open(&url).await?;
    let stored = Arc::new(AtomicUsize::new(0));
    let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel::<()>();

    let store = stored.clone();
    let samples = NotificationEndpoint::new().on_batch(Priority::Sample, move |batch| {
        let store = store.clone();
        let done_tx = done_tx.clone();
        async move {
            // a real collector writes to its database here; a failure would be Requeue
            let n = batch.len();
            let total = store.fetch_add(n, Ordering::SeqCst) + n;
            println!("stored a batch of {n} samples ({total} in all)");
            let _ = done_tx.send(());
            NotificationResult::Handled
        }
    });
    let listener = BatchNotificationListener::builder(
        transport.clone(),
        [Target::topic("notifications")],
        conf.batch_size,
        conf.batch_timeout,
    )
    .pool("ceilometer-collector")
    .allow_requeue(true)
    .executor(Executor::Pool(conf.workers))
    .endpoint(samples)
    .start()
    .await?;
    println!(
        "collecting samples in batches of {} (timeout {:?}) with {} workers",
        conf.batch_size, conf.batch_timeout, conf.workers
    );
    while stored.load(Ordering::SeqCst) < count {
        if tokio::time::timeout(Duration::from_secs(60), done.recv())
            .await
            .is_err()
        {
            break;
        }
    }
    listener.shutdown(Duration::from_secs(10)).await?;
    transport.cleanup().await
}
