//! RPC requests (`msg_core::codec::WireRequest`) and the version they ask for.
//!
//! - Decoding any bytes returns, never panics.
//! - What decodes is in bounds: names, ids and the reply queue as `msg_core::codec` says; a
//!   call-monitor timeout, when there is one, at most a day.
//! - A request that decodes encodes, and decodes back to itself.
//! - A requested version that parses prints back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use msg_core::Version;
use msg_core::codec::{MAX_CALL_MONITOR_TIMEOUT, WireRequest};
use msg_fuzz::{
    Close as _, assert_map_eq, assert_msg_id, assert_name, assert_reply_q, assert_unique_id,
};

fn assert_bounded(request: &WireRequest) {
    assert_name("method", &request.request.method);
    for (field, value) in [
        ("namespace", &request.request.namespace),
        ("version", &request.request.version),
    ] {
        if let Some(v) = value {
            assert_name(field, v);
        }
    }
    assert_unique_id(&request.unique_id);
    if let Some(call) = &request.call {
        assert_msg_id(&call.msg_id);
        assert_reply_q(&call.reply_q);
        if let Some(t) = call.call_monitor_timeout {
            assert!(
                !t.is_zero() && t <= MAX_CALL_MONITOR_TIMEOUT,
                "`_timeout` decoded out of bounds: {t:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(request) = WireRequest::decode(data) else {
        return;
    };
    assert_bounded(&request);
    let bytes = request.encode().expect("a decoded request encodes");
    let back = WireRequest::decode(&bytes).expect("an encoded request decodes");
    assert_map_eq(
        "the context",
        request.context.as_map(),
        back.context.as_map(),
    );
    // the arguments stay JSON text until asked for: what decoded must parse, as an object
    let args = |r: &WireRequest| {
        r.request
            .args
            .to_value()
            .expect("decoded arguments parse")
            .as_object()
            .cloned()
            .expect("decoded arguments are an object")
    };
    assert_map_eq("the args", &args(&request), &args(&back));
    assert_eq!(request.request.method, back.request.method);
    assert_eq!(request.request.namespace, back.request.namespace);
    assert_eq!(request.request.version, back.request.version);
    assert_eq!(request.unique_id, back.unique_id);
    match (&request.call, &back.call) {
        (None, None) => {}
        (Some(a), Some(b)) => {
            assert_eq!(a.msg_id, b.msg_id);
            assert_eq!(a.reply_q, b.reply_q);
            let (x, y) = (a.call_monitor_timeout, b.call_monitor_timeout);
            assert!(x.close(&y), "_timeout {x:?} came back {y:?}");
        }
        (a, b) => panic!("the reply routing {a:?} came back {b:?}"),
    }

    if let Some(Ok(version)) = request.request.version.as_deref().map(Version::parse) {
        assert_eq!(Version::parse(&version.to_string()).ok(), Some(version));
    }
});
