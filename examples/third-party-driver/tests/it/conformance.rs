use msg_core::Capability;

use crate::{delete_keys, prefixed, redis_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_driver_passes_the_conformance_suite() {
    let _ = msg_testkit::capture_logs();
    let Some(url) = redis_url("redis conformance") else {
        return;
    };
    let (url, prefix) = prefixed(&url);
    let required: Vec<Capability> = Capability::ALL
        .into_iter()
        .filter(|c| *c != Capability::NoResponders)
        .collect();
    let mut suite =
        msg_testkit::Conformance::new(msg_driver_redis::factory(), url.clone()).require(required);
    if let Ok(only) = std::env::var("MSG_CONFORMANCE_ONLY") {
        suite = suite.only(only);
    }
    let report = suite.run().await;
    eprintln!("{report}");
    delete_keys(&url, &prefix).await;
    // Redis can't tell whether anyone reads a stream: no "no responders"
    let skipped: Vec<&str> = report.skips().iter().map(|(n, _)| *n).collect();
    if std::env::var("MSG_CONFORMANCE_ONLY").is_err() {
        assert_eq!(skipped, vec!["rpc_no_responders"], "unexpected skips");
    }
    report.assert_ok();
}
