//! RPC replies and the failures they carry (`msg_core::codec::WireReply`, `Failure`).
//!
//! - Decoding any bytes returns, never panics, and so does turning a failure into an error.
//! - What decodes has its ids in bounds (as `msg_core::codec` says).
//! - A reply that decodes encodes, and decodes back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use msg_core::codec::{Failure, WireReply};
use msg_fuzz::{assert_json_eq, assert_map_eq, assert_msg_id, assert_unique_id};

fn assert_same_failure(a: &Failure, b: &Failure) {
    assert_eq!(
        (&a.class, &a.module, &a.message, &a.tb),
        (&b.class, &b.module, &b.message, &b.tb)
    );
    assert_json_eq(
        "the failure's args",
        &a.args.clone().into(),
        &b.args.clone().into(),
    );
    assert_map_eq("the failure's kwargs", &a.kwargs, &b.kwargs);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Failure::from_json_str(text).into_error(None);
    }
    let Ok(reply) = WireReply::decode(data) else {
        return;
    };
    assert_msg_id(&reply.msg_id);
    assert_unique_id(&reply.unique_id);
    let bytes = reply.encode().expect("a decoded reply encodes");
    let back = WireReply::decode(&bytes).expect("an encoded reply decodes");
    assert_eq!(reply.msg_id, back.msg_id);
    assert_eq!(reply.unique_id, back.unique_id);
    assert_eq!(reply.ending, back.ending);
    assert_eq!(reply.is_heartbeat(), back.is_heartbeat());
    assert_json_eq("the result", &reply.result, &back.result);
    match (&reply.failure, &back.failure) {
        (None, None) => {}
        (Some(a), Some(b)) => assert_same_failure(a, b),
        (a, b) => panic!("the failure {a:?} came back {b:?}"),
    }
    if let Some(failure) = reply.failure {
        let _ = failure.into_error(None);
    }
});
