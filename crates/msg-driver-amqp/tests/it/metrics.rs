//! The driver's metrics: what a listener holds unsettled counts in `msg_prefetch_in_use`.

use std::sync::OnceLock;
use std::time::Duration;

use futures::StreamExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use msg_core::metrics::PREFETCH_IN_USE;
use msg_core::{
    Context, DriverRegistry, EnvelopeVersion, ListenOptions, Notification, Priority, Retry, Target,
};

use crate::rabbit_url;

/// The recorder of this test binary (installed once, for every test in it).
fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::set_global_recorder(recorder).expect("no other recorder in this test binary");
        snapshotter
    })
}

/// The amqp driver's prefetch in use.
fn in_use(snapshotter: &Snapshotter) -> f64 {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find(|(k, _, _, _)| {
            k.key().name() == PREFETCH_IN_USE
                && k.key()
                    .labels()
                    .any(|l| l.key() == "driver" && l.value() == "amqp")
        })
        .map_or(0.0, |(_, _, _, v)| match v {
            DebugValue::Gauge(g) => g.into_inner(),
            _ => 0.0,
        })
}

#[tokio::test]
async fn what_a_listener_holds_counts_in_the_prefetch_in_use() {
    let Some(url) = rabbit_url("amqp metrics") else {
        return;
    };
    let snapshotter = snapshotter();
    let transport = DriverRegistry::new()
        .with(msg_driver_amqp::factory())
        .open(&url)
        .await
        .unwrap();
    let topic = format!("metrics-{}", uuid::Uuid::new_v4().simple());
    let target = Target::topic(&topic);
    let d = transport.driver();
    let mut l = d
        .listen_for_notifications(
            &[(target.clone(), Priority::Info)],
            None,
            &ListenOptions { prefetch: 10 },
        )
        .await
        .unwrap();
    for i in 0..3 {
        let n = Notification::new("p", "e", Priority::Info, serde_json::json!({"i": i}));
        d.send_notification(
            &target,
            &Context::new(),
            &n,
            EnvelopeVersion::V2,
            Retry::Attempts(1),
        )
        .await
        .unwrap();
    }
    let mut held = Vec::new();
    for _ in 0..3 {
        let got = tokio::time::timeout(Duration::from_secs(10), l.next())
            .await
            .expect("a notification within 10 s")
            .expect("the listener goes on");
        held.push(got);
    }
    // other tests of this binary only add what they hold
    assert!(in_use(snapshotter) >= 3.0, "{}", in_use(snapshotter));
    for n in held {
        n.ack().await.unwrap();
    }
    l.stop();
    transport.cleanup().await.unwrap();
}
