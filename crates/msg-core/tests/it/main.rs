//! The codec against golden vectors: bodies Python oslo.messaging 18.3.1 put on RabbitMQ.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use msg_core::codec::{EnvelopeVersion, WireNotification, WireReply, WireRequest};
use serde_json::Value;

const VECTORS: &str = include_str!("../vectors/python-oslo-18.3.1.jsonl");

fn vectors() -> Vec<Value> {
    VECTORS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The inner object of an enveloped body, parsed.
fn inner(body: &[u8]) -> Value {
    let outer: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(outer["oslo.version"], "2.0", "{outer}");
    let mut inner: Value = serde_json::from_str(outer["oslo.message"].as_str().unwrap()).unwrap();
    // a failure is itself a JSON string: compare it parsed
    if let Some(f) = inner.get("failure").and_then(Value::as_str) {
        inner["failure"] = serde_json::from_str(f).unwrap();
    }
    inner
}

#[test]
fn every_golden_vector_decodes_and_re_encodes_to_the_same_message() {
    let vs = vectors();
    assert!(vs.len() >= 18, "the vectors are missing");
    let (mut requests, mut replies, mut notifications) = (0, 0, 0);
    for v in vs {
        let step = v["step"].as_str().unwrap();
        let raw = v["body_raw"].as_str().unwrap().as_bytes();
        let expected = inner(raw);
        let key = v["routing_keys"][0].as_str().unwrap();
        let again = if step.starts_with("notification") {
            notifications += 1;
            let n = WireNotification::decode(raw).unwrap();
            assert_eq!(
                n.notification.priority.wire_name(),
                expected["priority"].as_str().unwrap()
            );
            n.encode(EnvelopeVersion::V2).unwrap()
        } else if key.starts_with("reply_") {
            replies += 1;
            let r = WireReply::decode(raw).unwrap();
            if r.is_heartbeat() {
                assert!(step.contains("heartbeat"), "{step}");
            }
            r.encode().unwrap()
        } else {
            requests += 1;
            let r = WireRequest::decode(raw).unwrap();
            assert_eq!(
                r.call.is_some(),
                expected.get("_msg_id").is_some(),
                "{step}"
            );
            r.encode().unwrap()
        };
        let mut got = inner(&again);
        if let Some(f) = got.get("failure").and_then(Value::as_str) {
            got["failure"] = serde_json::from_str(f).unwrap();
        }
        assert_eq!(got, expected, "step `{step}` changed on re-encoding");
        assert_eq!(
            got,
            {
                let mut d = v["oslo.message_decoded"].clone();
                if let Some(f) = d.get("failure").and_then(Value::as_str) {
                    d["failure"] = serde_json::from_str(f).unwrap();
                }
                d
            },
            "{step}"
        );
    }
    assert!(requests >= 8 && replies >= 6 && notifications >= 3);
}

#[test]
fn python_contexts_unpack_into_our_context() {
    let v = vectors()
        .into_iter()
        .find(|v| v["step"] == "cast with RequestContext")
        .unwrap();
    let r = WireRequest::decode(v["body_raw"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(r.context.get_str("auth_token"), Some("SECRET"));
    assert_eq!(r.context.get_str("user_identity"), Some("u1 p1 - - -"));
    assert!(r.call.is_none());
    assert_eq!(r.request.method, "record");
}

#[test]
fn python_failures_become_remote_errors() {
    let v = vectors()
        .into_iter()
        .find(|v| v["step"] == "call fail" && v["exchange"] == "")
        .unwrap();
    let r = WireReply::decode(v["body_raw"].as_str().unwrap().as_bytes()).unwrap();
    match r.failure.unwrap().into_error(None) {
        msg_core::Error::Remote(e) => {
            assert_eq!(
                (e.class.as_str(), e.module.as_str(), e.message.as_str()),
                ("ValueError", "builtins", "boom")
            );
            assert!(e.traceback.len() > 2);
        }
        other => panic!("{other:?}"),
    }
}
