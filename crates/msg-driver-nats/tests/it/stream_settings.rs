//! A stream that exists is used as it is: a client whose URL asks for other limits leaves it
//! alone (one warning) unless it manages streams; consumers get their stream's replicas.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};
use msg_core::{Driver, ListenOptions, Priority, Target};
use msg_driver_nats::NatsDriver;

use crate::driver::delete_streams;
use crate::recovery::{receive_exactly, send};
use crate::{nats_url, with_option};

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_stream_is_not_rewritten_and_a_difference_is_one_warning() {
    let logs = msg_testkit::capture_logs().unwrap();
    let Some(url) = nats_url("nats stream settings") else {
        return;
    };
    let prefix = format!(
        "msgtest-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let base = with_option(
        &url,
        &format!("subject_prefix={prefix}&stream_retention=limits"),
    );
    // another client (an operator, a deployment tool) made the stream with limits of its own
    let d = NatsDriver::connect(&with_option(&base, "stream_max_age=300").parse().unwrap())
        .await
        .unwrap();
    let js = jetstream::new(d.client().clone());
    let stream_name = d.layout().notify_stream("openstack").unwrap();
    js.create_stream(stream::Config {
        name: stream_name.clone(),
        subjects: vec![d.layout().notify_stream_subjects("openstack").unwrap()],
        retention: stream::RetentionPolicy::Limits,
        max_age: HOUR,
        ..stream::Config::default()
    })
    .await
    .unwrap();

    // this client's URL asks for 5 minutes: it sends, listens, and checks the stream again when
    // its consumer vanishes; the stream keeps its hour, and the difference is said once
    let target = Target::topic("settings");
    let mut l = d
        .listen_for_notifications(
            &[(target.clone(), Priority::Info)],
            None,
            &ListenOptions::default(),
        )
        .await
        .unwrap();
    send(&d, &target, 0..2).await;
    assert_eq!(receive_exactly(&mut l, 2).await, ["e0", "e1"]);
    let consumer = d
        .layout()
        .default_consumer("settings", Priority::Info)
        .unwrap();
    js.delete_consumer_from_stream(&consumer, &stream_name)
        .await
        .unwrap();
    send(&d, &target, 2..3).await;
    assert_eq!(receive_exactly(&mut l, 1).await, ["e2"]);

    let info = js
        .get_stream(&stream_name)
        .await
        .unwrap()
        .cached_info()
        .clone();
    assert_eq!(info.config.max_age, HOUR, "the stream was rewritten");
    let warnings: Vec<String> = logs
        .lines_containing(&stream_name)
        .into_iter()
        .filter(|l| l.contains("other settings"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("stream_max_age 3600s (the URL's 300s)"),
        "{}",
        warnings[0]
    );

    // a consumer has its stream's replicas (one on a single server)
    let c = js
        .get_consumer_from_stream::<pull::Config, _, _>(&consumer, &stream_name)
        .await
        .unwrap();
    assert_eq!(
        c.cached_info().config.num_replicas,
        info.config.num_replicas
    );

    // a client told to manage streams updates the limits to its URL's
    let manager = NatsDriver::connect(
        &with_option(&base, "stream_max_age=600&manage_streams=true")
            .parse()
            .unwrap(),
    )
    .await
    .unwrap();
    send(&manager, &target, 3..4).await;
    let info = js
        .get_stream(&stream_name)
        .await
        .unwrap()
        .cached_info()
        .clone();
    assert_eq!(info.config.max_age, Duration::from_secs(600));

    l.stop();
    let _ = manager.cleanup().await;
    delete_streams(&url, &prefix).await;
    let _ = d.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_max_age_under_the_duplicate_window_makes_a_stream() {
    let Some(url) = nats_url("nats short max age") else {
        return;
    };
    let prefix = format!(
        "msgtest-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    // the duplicate window (2 minutes by default) is cut to the max age: JetStream refuses a
    // longer one
    let url = with_option(&url, &format!("subject_prefix={prefix}&stream_max_age=60"));
    let d = NatsDriver::connect(&url.parse().unwrap()).await.unwrap();
    send(&d, &Target::topic("short"), 0..1).await;
    let js = jetstream::new(d.client().clone());
    let stream_name = d.layout().notify_stream("openstack").unwrap();
    let info = js
        .get_stream(&stream_name)
        .await
        .unwrap()
        .cached_info()
        .clone();
    assert_eq!(info.config.max_age, Duration::from_secs(60));
    assert_eq!(info.config.duplicate_window, Duration::from_secs(60));
    delete_streams(&url, &prefix).await;
    let _ = d.cleanup().await;
}
