use std::sync::Arc;

use msg_core::codec::{WireReply, WireRequest};
use msg_core::{Context, Error, NoOpSerializer};
use msg_dispatch::{AccessPolicy, Endpoint, HandlerError, RpcDispatcher};
use serde_json::json;

#[derive(serde::Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

#[derive(Debug)]
struct Overflow;
impl std::fmt::Display for Overflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("too big")
    }
}
impl std::error::Error for Overflow {}

fn calculator() -> RpcDispatcher {
    RpcDispatcher::new(vec![
        Endpoint::new()
            .namespace("calc")
            .version("1.2")
            .method("add", |_ctx: Context, args: Add| async move {
                Ok::<_, HandlerError>(args.a + args.b)
            })
            .method("checked_add", |_ctx: Context, args: Add| async move {
                args.a.checked_add(args.b).ok_or(Overflow)
            })
            .method("whoami", |ctx: Context, (): ()| async move {
                Ok::<_, HandlerError>(ctx.get_str("user").map(str::to_owned))
            }),
        Endpoint::new()
            .version("2.0")
            .exposed_method("status", |_ctx: Context, (): ()| async {
                Ok::<_, HandlerError>("ok")
            }),
    ])
    .expect("valid endpoints")
    .access_policy(AccessPolicy::Default)
    .serializer(Arc::new(NoOpSerializer))
    .ping(true)
}

/// Decodes a request body, dispatches it and encodes the reply, as a server would.
async fn serve(d: &RpcDispatcher, body: &[u8]) -> WireReply {
    let wire = WireRequest::decode(body).expect("decodable");
    match d.dispatch(wire.context, wire.request).await {
        Ok(v) => WireReply::result("m1", v),
        Err(f) => WireReply::failure("m1", f),
    }
}

#[tokio::test]
async fn requests_from_the_wire() {
    let d = calculator();
    let body = json!({
        "method": "add", "args": {"a": 1, "b": 2}, "namespace": "calc", "version": "1.1",
        "_unique_id": "u", "_context_user": "alice",
    });
    let reply = serve(&d, body.to_string().as_bytes()).await;
    assert_eq!(reply.result, json!(3));

    let body = json!({"method": "whoami", "args": {}, "namespace": "calc", "_context_user": "bob"});
    assert_eq!(
        serve(&d, body.to_string().as_bytes()).await.result,
        json!("bob")
    );

    let body = json!({"method": "status", "version": "2.0"});
    assert_eq!(
        serve(&d, body.to_string().as_bytes()).await.result,
        json!("ok")
    );

    let body = json!({"method": "oslo_rpc_server_ping", "args": {}});
    assert_eq!(
        serve(&d, body.to_string().as_bytes()).await.result,
        json!("pong")
    );
}

#[tokio::test]
async fn failures_survive_the_round_trip() {
    let d = calculator();
    let cases = [
        (
            json!({"method": "add", "args": {"a": 1}, "namespace": "calc"}),
            "TypeError",
        ),
        (
            json!({"method": "nope", "namespace": "calc"}),
            "NoSuchMethod",
        ),
        (
            json!({"method": "add", "namespace": "calc", "version": "1.3"}),
            "UnsupportedVersion",
        ),
        // no namespace at 1.0: the ping endpoint matches, but has no `add`
        (
            json!({"method": "add", "args": {"a": 1, "b": 2}}),
            "NoSuchMethod",
        ),
        (
            json!({"method": "add", "namespace": "other"}),
            "UnsupportedVersion",
        ),
        (
            json!({"method": "checked_add", "args": {"a": i64::MAX, "b": 1}, "namespace": "calc"}),
            "Overflow",
        ),
    ];
    for (body, class) in cases {
        let reply = serve(&d, body.to_string().as_bytes()).await;
        let back = WireReply::decode(&reply.encode().expect("encodable")).expect("decodable");
        let failure = back.failure.expect("a failure");
        assert_eq!(failure.class, class, "{body}");
        if class == "Overflow" {
            assert_eq!(failure.module, "it.rpc");
            assert_eq!(failure.message, "too big");
        }
    }
    let body = json!({"method": "nope", "namespace": "calc"});
    let wire = WireRequest::decode(body.to_string().as_bytes()).expect("decodable");
    let failure = d
        .dispatch(wire.context, wire.request.clone())
        .await
        .expect_err("no such method");
    assert!(matches!(
        failure.into_error(Some(&wire.request)),
        Error::NoSuchMethod { method, namespace: Some(ns) } if method == "nope" && ns == "calc"
    ));
}

#[test]
fn a_bad_endpoint_version_is_an_error_not_a_panic() {
    let err = RpcDispatcher::new(vec![Endpoint::new().version("1.x")]).expect_err("bad version");
    assert!(matches!(err, Error::Config(_)), "{err}");
}
