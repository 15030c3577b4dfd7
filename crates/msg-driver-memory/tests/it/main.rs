//! The memory driver against the conformance suite: it must have every capability.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use msg_core::{Capabilities, Capability};

/// The memory driver, on a broker of its own name: each case uses names of its own, so the
/// cases share it.
async fn suite() -> Option<msg_testkit::Suite> {
    Some(
        msg_testkit::Suite::new(msg_driver_memory::factory(), "memory://conformance")
            .require(Capability::ALL),
    )
}

/// One test per conformance case; memory:// declares every capability, so none is skipped.
mod conformance {
    msg_testkit::conformance_suite!(suite: super::suite);
}

#[test]
fn memory_declares_every_capability() {
    let url = msg_core::TransportUrl::parse("memory://caps").unwrap();
    let driver = msg_driver_memory::MemoryDriver::from_url(&url).unwrap();
    use msg_core::Driver;
    assert_eq!(driver.capabilities(), Capabilities::all());
}

#[tokio::test]
async fn named_brokers_are_shared_and_isolated() {
    use futures::StreamExt;
    use msg_core::{
        Context, DriverRegistry, EnvelopeVersion, ListenOptions, Notification, Priority, Retry,
        Target,
    };
    let reg = DriverRegistry::new().with(msg_driver_memory::factory());
    let a = reg.open("memory://shared-x").await.unwrap();
    let b = reg.open("memory://shared-x").await.unwrap();
    let c = reg.open("memory://other-y").await.unwrap();
    let t = Target::topic("iso");
    let n = Notification::new("p", "e", Priority::Info, serde_json::json!(1));
    a.driver()
        .send_notification(&t, &Context::new(), &n, EnvelopeVersion::V2, Retry::Forever)
        .await
        .unwrap();
    let subs = [(t.clone(), Priority::Info)];
    let mut lc = c
        .driver()
        .listen_for_notifications(&subs, None, &ListenOptions::default())
        .await
        .unwrap();
    let mut lb = b
        .driver()
        .listen_for_notifications(&subs, None, &ListenOptions::default())
        .await
        .unwrap();
    let got = lb.next().await.unwrap();
    assert_eq!(got.notification.message_id, n.message_id);
    got.ack().await.unwrap();
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(200), lc.next())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn unknown_url_options_are_rejected() {
    let url = msg_core::TransportUrl::parse("memory://x?durable=1").unwrap();
    let err = msg_driver_memory::MemoryDriver::from_url(&url).unwrap_err();
    assert!(err.to_string().contains("durable"), "{err}");
}

/// oslo sends a cast with both `fanout` and `server` as a fanout cast (the server is
/// ignored): every server of the topic gets it.
#[tokio::test]
async fn a_fanout_cast_naming_a_server_reaches_every_server() {
    use futures::StreamExt;
    use msg_core::{Context, DriverRegistry, ListenOptions, RpcRequest, SendOptions, Target};
    let t = DriverRegistry::new()
        .with(msg_driver_memory::factory())
        .open("memory://fanout-with-server")
        .await
        .unwrap();
    let opts = ListenOptions::default();
    let mut s1 = t
        .driver()
        .listen(&Target::server("fws", "s1"), &opts)
        .await
        .unwrap();
    let mut s2 = t
        .driver()
        .listen(&Target::server("fws", "s2"), &opts)
        .await
        .unwrap();
    let target = Target::server("fws", "s1").with_fanout(true);
    target.validate(msg_core::Role::RpcCast).unwrap();
    let req = RpcRequest::new("ping", serde_json::Map::new());
    t.driver()
        .cast(&target, &Context::new(), &req, &SendOptions::default())
        .await
        .unwrap();
    let within = std::time::Duration::from_secs(5);
    for s in [&mut s1, &mut s2] {
        let got = tokio::time::timeout(within, s.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.request.method, "ping");
        got.ack().await.unwrap();
    }
}
