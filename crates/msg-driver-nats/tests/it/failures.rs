//! Bad options and failed sends: errors that name the option, or the subject and the cause.

use std::time::Duration;

use futures::StreamExt;
use msg_core::{Context, Driver, Error, ListenOptions, RpcRequest, SendOptions, Target};
use msg_driver_nats::NatsDriver;
use serde_json::json;

use crate::{nats_url, with_option};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_options_are_refused_naming_the_option() {
    let Some(url) = nats_url("nats zero options") else {
        return;
    };
    for option in [
        "subscription_capacity",
        "ping_interval",
        "jetstream_timeout",
        "connection_timeout",
    ] {
        let url = with_option(&url, &format!("{option}=0"));
        match NatsDriver::connect(&url.parse().unwrap()).await {
            Err(Error::InvalidUrl { reason, .. }) => {
                assert!(reason.contains(option), "{option}: {reason}");
            }
            Err(e) => panic!("{option}=0: expected InvalidUrl, got {e}"),
            Ok(_) => panic!("{option}=0 was accepted"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reply_names_its_subject_and_the_cause() {
    let Some(url) = nats_url("nats reply failure") else {
        return;
    };
    let server = NatsDriver::connect(&url.parse().unwrap()).await.unwrap();
    let client = NatsDriver::connect(&url.parse().unwrap()).await.unwrap();
    let topic = format!("reply-fail-{}", uuid::Uuid::new_v4().simple());
    let mut l = server
        .listen(&Target::server(&topic, "s1"), &ListenOptions::default())
        .await
        .unwrap();
    let call = tokio::spawn(async move {
        let r = client
            .call(
                &Target::topic(&topic),
                &Context::new(),
                &RpcRequest::new("m", serde_json::Map::new()),
                &SendOptions {
                    timeout: Some(Duration::from_secs(2)),
                    ..SendOptions::default()
                },
            )
            .await;
        let _ = client.cleanup().await;
        r
    });
    let req = tokio::time::timeout(Duration::from_secs(5), l.next())
        .await
        .unwrap()
        .unwrap();
    // the server's connection is gone when it replies
    server.cleanup().await.unwrap();
    let err = req.reply_handle().reply(Ok(json!(1))).await.unwrap_err();
    assert_eq!(err.kind(), msg_core::ErrorKind::Unavailable, "{err}");
    let e = err.to_string();
    assert!(e.contains("sending a reply to `_INBOX."), "{e}");
    // the cause is the error's source (async-nats's own error)
    let cause = std::error::Error::source(&err).map(|s| s.to_string());
    assert!(
        cause
            .as_deref()
            .is_some_and(|c| c.contains("failed to send")),
        "{cause:?}"
    );
    assert!(call.await.unwrap().is_err());
}
