//! Decode + dispatch in a loop, for instruction counts (callgrind) and allocation counts
//! (`valgrind --tool=dhat`), both repeatable on a noisy VM:
//!
//! ```sh
//! cargo build --release -p msg-benches --example dispatch_loop
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/dispatch_loop request 11000
//! valgrind --tool=dhat --dhat-out-file=/dev/null \
//!     target/release/examples/dispatch_loop request 11000
//! ```
//!
//! Run it with two counts (1,000 and 11,000) and divide the difference by 10,000 for one
//! message. Operations:
//! - `request`: decode an RPC call (envelope 2.0, context of 3 keys, 2 arguments), route it
//!   (namespace, version) and run a typed handler (`Add { a, b }`), up to its JSON result;
//! - `notification`: decode a notification (context of 2 keys, payload of 3 keys) and hand
//!   it to a `NotificationDispatcher` whose handler doesn't read the payload;
//! - `notification-typed`: the same, the handler deserializing the payload into a struct.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use msg_core::codec::{CallInfo, EnvelopeVersion, RpcRequest, WireNotification, WireRequest};
use msg_core::{Context, Notification, Priority};
use msg_dispatch::{
    Endpoint, Handled, HandlerError, NotificationDispatcher, NotificationEndpoint,
    NotificationMessage, RpcDispatcher,
};
use serde_json::json;

#[derive(serde::Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

#[derive(serde::Deserialize)]
struct Flavor {
    vcpus: u32,
    ram: u64,
}

#[derive(serde::Deserialize)]
struct Instance {
    instance_id: String,
    state: String,
    flavor: Flavor,
}

/// What the typed handler reads from the payload.
fn typed(m: NotificationMessage) -> usize {
    PAYLOAD_READ(m)
}

// (the one line that differs between commits: how a handler gets a typed payload)
const PAYLOAD_READ: fn(NotificationMessage) -> usize = |m| {
    let i: Instance = m.payload.deserialize().unwrap();
    i.instance_id.len() + i.state.len() + i.flavor.vcpus as usize + i.flavor.ram as usize
};

fn main() {
    let mut argv = std::env::args().skip(1);
    let (Some(what), Some(n)) = (
        argv.next(),
        argv.next().and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: dispatch_loop request|notification|notification-typed N");
        std::process::exit(2);
    };
    let mut args = serde_json::Map::new();
    args.insert("a".into(), json!(2));
    args.insert("b".into(), json!(3));
    let mut request = RpcRequest::new("add", args);
    request.namespace = Some("calc".into());
    request.version = Some("1.1".into());
    let request_bytes = WireRequest {
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
    .unwrap();
    let notification_bytes = WireNotification {
        context: Context::new()
            .with("request_id", "req-1")
            .with("user", "u1"),
        notification: Notification::new(
            "compute.host1",
            "compute.instance.create.end",
            Priority::Info,
            json!({"instance_id": "abc", "state": "active", "flavor": {"vcpus": 2, "ram": 2048}}),
        ),
        unique_id: msg_core::codec::new_unique_id(),
    }
    .encode(EnvelopeVersion::V2)
    .unwrap();

    let rpc = RpcDispatcher::new(vec![
        Endpoint::new()
            .namespace("calc")
            .version("1.2")
            .method("add", |_c: Context, a: Add| async move {
                Ok::<_, HandlerError>(a.a + a.b)
            }),
    ])
    .unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let plain = NotificationDispatcher::new(vec![NotificationEndpoint::new().on(
        Priority::Info,
        move |m: NotificationMessage| {
            counter.fetch_add(m.event_type.len(), Ordering::Relaxed);
            async { Handled }
        },
    )]);
    let counter = Arc::clone(&seen);
    let typed_dispatcher = NotificationDispatcher::new(vec![NotificationEndpoint::new().on(
        Priority::Info,
        move |m: NotificationMessage| {
            counter.fetch_add(typed(m), Ordering::Relaxed);
            async { Handled }
        },
    )]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut total = 0usize;
    rt.block_on(async {
        for _ in 0..n {
            match what.as_str() {
                "request" => {
                    let req = WireRequest::decode(&request_bytes).unwrap();
                    let out = rpc.dispatch(req.context, req.request).await.unwrap();
                    total += out.as_i64().unwrap() as usize;
                }
                "notification" | "notification-typed" => {
                    let n = WireNotification::decode(&notification_bytes).unwrap();
                    let d = if what == "notification" {
                        &plain
                    } else {
                        &typed_dispatcher
                    };
                    d.dispatch(NotificationMessage::new(n.context, n.notification))
                        .await;
                    total += 1;
                }
                other => {
                    eprintln!("unknown operation `{other}`");
                    std::process::exit(2);
                }
            }
        }
    });
    // keeps the loop's work observable
    println!("{total} {}", seen.load(Ordering::Relaxed));
}
