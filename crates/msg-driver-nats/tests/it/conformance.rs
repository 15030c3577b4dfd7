use msg_core::Capability;

use crate::{nats_url, with_option};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_driver_passes_the_conformance_suite() {
    crate::driver::init_logging();
    let Some(url) = nats_url("nats conformance") else {
        return;
    };
    // a prefix of this run's own: its streams and consumers are deleted at the end
    let prefix = format!(
        "msgtest-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let url = with_option(&url, &format!("subject_prefix={prefix}"));
    let required: Vec<Capability> = Capability::ALL
        .into_iter()
        .filter(|c| *c != Capability::DurableCasts)
        .collect();
    let mut suite =
        msg_testkit::Conformance::new(msg_driver_nats::factory(), url.clone()).require(required);
    if let Ok(only) = std::env::var("MSG_CONFORMANCE_ONLY") {
        suite = suite.only(only);
    }
    let report = suite.run().await;
    eprintln!("{report}");
    crate::driver::delete_streams(&url, &prefix).await;
    // core NATS keeps no message for a server that isn't there: a cast sent while no server
    // listens is lost, so that one case is skipped
    let skipped: Vec<&str> = report.skips().iter().map(|(n, _)| *n).collect();
    if std::env::var("MSG_CONFORMANCE_ONLY").is_err() {
        assert_eq!(
            skipped,
            vec!["rpc_cast_kept_until_a_server_listens"],
            "unexpected skips"
        );
    }
    report.assert_ok();
}
