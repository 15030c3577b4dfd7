use msg_core::Capability;

use crate::rabbit_url;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_driver_passes_the_conformance_suite() {
    let Some(url) = rabbit_url("amqp conformance") else {
        return;
    };
    let required: Vec<Capability> = Capability::ALL
        .into_iter()
        .filter(|c| *c != Capability::NoResponders)
        .collect();
    let mut suite =
        msg_testkit::Conformance::new(msg_driver_amqp::factory(), url).require(required);
    if let Ok(only) = std::env::var("MSG_CONFORMANCE_ONLY") {
        suite = suite.only(only);
    }
    let report = suite.run().await;
    eprintln!("{report}");
    // a RabbitMQ driver can't tell "nobody listens" from "slow": that one case is skipped
    let skipped: Vec<&str> = report.skips().iter().map(|(n, _)| *n).collect();
    assert_eq!(skipped, vec!["rpc_no_responders"], "unexpected skips");
    report.assert_ok();
}
