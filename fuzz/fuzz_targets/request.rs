//! RPC requests (`msg_core::codec::WireRequest`) and the version they ask for.
//!
//! - Decoding any bytes returns, never panics.
//! - A request that decodes encodes, and decodes back to itself.
//! - A requested version that parses prints back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use msg_core::Version;
use msg_core::codec::WireRequest;
use msg_fuzz::{Close as _, assert_map_eq};

fuzz_target!(|data: &[u8]| {
    let Ok(request) = WireRequest::decode(data) else {
        return;
    };
    let bytes = request.encode().expect("a decoded request encodes");
    let back = WireRequest::decode(&bytes).expect("an encoded request decodes");
    assert_map_eq(
        "the context",
        request.context.as_map(),
        back.context.as_map(),
    );
    assert_map_eq("the args", &request.request.args, &back.request.args);
    assert_eq!(request.request.method, back.request.method);
    assert_eq!(request.request.namespace, back.request.namespace);
    assert_eq!(request.request.version, back.request.version);
    assert_eq!(request.unique_id, back.unique_id);
    match (&request.call, &back.call) {
        (None, None) => {}
        (Some(a), Some(b)) => {
            assert_eq!(a.msg_id, b.msg_id);
            assert_eq!(a.reply_q, b.reply_q);
            let (x, y) = (&a.call_monitor_timeout, &b.call_monitor_timeout);
            assert!(x.close(y), "_timeout {x:?} came back {y:?}");
        }
        (a, b) => panic!("the reply routing {a:?} came back {b:?}"),
    }

    if let Some(Ok(version)) = request.request.version.as_deref().map(Version::parse) {
        assert_eq!(Version::parse(&version.to_string()).ok(), Some(version));
    }
});
