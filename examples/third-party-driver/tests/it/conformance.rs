//! msg's conformance suite, one test per case (`cargo test --test it rpc_fanout` runs the
//! cases whose name holds `rpc_fanout`).

use msg_core::Capability;

use crate::{delete_keys, prefixed, redis_url};

/// The Redis of `MSG_REDIS_URL`, under a key prefix of the case's own (its keys deleted after
/// it): every capability but `NoResponders` (Redis can't tell whether anyone reads a stream),
/// so `rpc_no_responders` is the one case skipped.
async fn suite() -> Option<msg_testkit::Suite> {
    let _ = msg_testkit::capture_logs();
    let url = redis_url("redis conformance")?;
    let (url, prefix) = prefixed(&url);
    let required = Capability::ALL
        .into_iter()
        .filter(|c| *c != Capability::NoResponders);
    let teardown_url = url.clone();
    Some(
        msg_testkit::Suite::new(msg_driver_redis::factory(), url)
            .require(required)
            .teardown(move || async move { delete_keys(&teardown_url, &prefix).await }),
    )
}

msg_testkit::conformance_suite!(suite: suite);
