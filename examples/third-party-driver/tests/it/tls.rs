//! `rediss://` with AUTH (an ACL user) and a database index, against a redis-server of its
//! own with a TLS port and a CA made here.

use std::time::Duration;

use msg_core::{Context, DriverRegistry, SendOptions, Target};

use crate::own_server::OwnServer;
use crate::redis_url;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_auth_and_a_database_index() {
    // run where the other Redis suites run (it needs redis-server, which comes with them)
    if redis_url("redis TLS").is_none() {
        return;
    }
    let Some(server) = OwnServer::tls(0) else {
        eprintln!("SKIPPED: redis TLS: no redis-server to start");
        return;
    };
    let ca = server.dir.join("ca.pem");
    let url = format!(
        "rediss://app:s3cret@localhost:{}/3?ssl_ca_file={}",
        server.port,
        ca.display()
    );
    let registry = DriverRegistry::new().with(msg_driver_redis::factory());
    let t = registry.open(&url).await.unwrap();
    // a cast to a server's stream, then read back raw: it went over TLS, as app, into db 3
    let listener = t
        .driver()
        .listen(&Target::server("tls", "s1"), &Default::default())
        .await
        .unwrap();
    t.driver()
        .cast(
            &Target::topic("tls"),
            &Context::new(),
            &msg_core::RpcRequest::new("ping", serde_json::Map::new()),
            &SendOptions::default(),
        )
        .await
        .unwrap();
    let mut listener = listener;
    let req = tokio::time::timeout(
        Duration::from_secs(10),
        futures::StreamExt::next(&mut listener),
    )
    .await
    .expect("no request over TLS")
    .unwrap();
    assert_eq!(req.request.method, "ping");
    req.ack().await.unwrap();
    listener.stop();
    let _ = t.cleanup().await;

    // the stream is in database 3, not 0
    let tls = redis::Client::build_with_tls(
        format!("rediss://app:s3cret@localhost:{}/3", server.port),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(std::fs::read(&ca).unwrap()),
        },
    )
    .unwrap();
    let mut conn = tls.get_multiplexed_async_connection().await.unwrap();
    let n: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert!(n > 0, "nothing in database 3");

    // a wrong password is refused, and the error doesn't show the password
    let bad = format!(
        "rediss://app:wrong-pw@localhost:{}/3?ssl_ca_file={}",
        server.port,
        ca.display()
    );
    let e = registry.open(&bad).await.unwrap_err();
    assert!(
        matches!(
            e,
            msg_core::Error::Refused {
                reason: msg_core::Refusal::AccessRefused,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.to_string().contains("wrong-pw"), "{e}");
    // and an untrusted server is refused
    let untrusted = format!("rediss://app:s3cret@localhost:{}/3", server.port);
    assert!(registry.open(&untrusted).await.is_err());
}
