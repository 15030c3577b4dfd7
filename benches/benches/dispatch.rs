//! The hot paths without a broker: the RPC dispatch path (decode a request, route it, run the
//! handler, encode the reply) and the notification dispatch path (decode, filter, dispatch),
//! plus the codec on its own.
//!
//! `cargo bench -p msg-benches --bench dispatch`
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use msg_core::codec::{
    CallInfo, EnvelopeVersion, RpcRequest, WireNotification, WireReply, WireRequest,
};
use msg_core::{Context, Notification, Priority};
use msg_dispatch::{
    Endpoint, Handled, HandlerError, NotificationDispatcher, NotificationEndpoint,
    NotificationFilter, NotificationMessage, RpcDispatcher,
};
use serde_json::json;

#[derive(serde::Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

fn request_bytes() -> Vec<u8> {
    let mut args = serde_json::Map::new();
    args.insert("a".into(), json!(2));
    args.insert("b".into(), json!(3));
    let mut request = RpcRequest::new("add", args);
    request.namespace = Some("calc".into());
    request.version = Some("1.1".into());
    WireRequest {
        context: Context::new()
            .with("request_id", "req-4b9c")
            .with("user", "alice")
            .with("project_id", "p1"),
        request,
        unique_id: msg_core::codec::new_unique_id(),
        call: Some(CallInfo {
            msg_id: msg_core::codec::new_unique_id(),
            reply_q: "reply_8a0f".into(),
            call_monitor_timeout: None,
        }),
    }
    .encode()
    .unwrap()
}

fn notification_bytes(publisher: &str) -> Vec<u8> {
    WireNotification {
        context: Context::new()
            .with("request_id", "req-1")
            .with("user", "u1"),
        notification: Notification::new(
            publisher,
            "compute.instance.create.end",
            Priority::Info,
            json!({"instance_id": "abc", "state": "active", "flavor": {"vcpus": 2, "ram": 2048}}),
        ),
        unique_id: msg_core::codec::new_unique_id(),
    }
    .encode(EnvelopeVersion::V2)
    .unwrap()
}

fn rpc_dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dispatcher = RpcDispatcher::new(vec![
        Endpoint::new()
            .namespace("other")
            .method("add", |_c: Context, a: Add| async move {
                Ok::<_, HandlerError>(a.a - a.b)
            }),
        Endpoint::new()
            .namespace("calc")
            .version("1.2")
            .method("add", |_c: Context, a: Add| async move {
                Ok::<_, HandlerError>(a.a + a.b)
            }),
    ])
    .unwrap();
    let bytes = request_bytes();
    let mut g = c.benchmark_group("rpc");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode+route+dispatch+encode reply", |b| {
        b.iter(|| {
            let req = WireRequest::decode(&bytes).unwrap();
            let msg_id = req
                .call
                .as_ref()
                .map(|c| c.msg_id.clone())
                .unwrap_or_default();
            let result = rt.block_on(dispatcher.dispatch(req.context, req.request));
            WireReply::result(msg_id, result.unwrap()).encode().unwrap()
        })
    });
    g.bench_function("decode request", |b| {
        b.iter(|| WireRequest::decode(&bytes).unwrap())
    });
    let decoded = WireRequest::decode(&bytes).unwrap();
    g.bench_function("encode request", |b| b.iter(|| decoded.encode().unwrap()));
    g.finish();
}

fn notification_dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dispatcher = NotificationDispatcher::new(vec![
        NotificationEndpoint::new()
            .filter(
                NotificationFilter::new()
                    .publisher_id("^network.*")
                    .unwrap(),
            )
            .on(Priority::Info, |_m| async { Handled }),
        NotificationEndpoint::new()
            .filter(
                NotificationFilter::new()
                    .publisher_id("^compute.*")
                    .unwrap()
                    .event_type(r"^compute\.instance\..*")
                    .unwrap()
                    .context("user", "^u")
                    .unwrap()
                    .payload("state", "^active$")
                    .unwrap(),
            )
            .on(Priority::Info, |_m| async { Handled }),
    ]);
    let bytes = notification_bytes("compute.host1");
    let mut g = c.benchmark_group("notification");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode+filter+dispatch", |b| {
        b.iter(|| {
            let n = WireNotification::decode(&bytes).unwrap();
            rt.block_on(dispatcher.dispatch(NotificationMessage::new(n.context, n.notification)))
        })
    });
    let decoded = WireNotification::decode(&bytes).unwrap();
    g.bench_function("encode", |b| {
        b.iter(|| decoded.encode(EnvelopeVersion::V2).unwrap())
    });
    g.bench_function("decode", |b| {
        b.iter(|| WireNotification::decode(&bytes).unwrap())
    });
    g.finish();
}

criterion_group!(benches, rpc_dispatch, notification_dispatch);
criterion_main!(benches);
