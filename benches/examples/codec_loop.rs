//! The codec in a loop, for instruction counts under callgrind (repeatable on a noisy VM,
//! where criterion's times move by a third from one run to the next):
//!
//! ```sh
//! cargo build --release -p msg-benches --example codec_loop
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/codec_loop decode-notification 11000
//! ```
//!
//! Run it with two counts (1,000 and 11,000) and divide the difference by 10,000 for the
//! instructions of one operation. Operations: `decode-notification`, `decode-request`,
//! `encode-notification`, `encode-request`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use msg_core::codec::{CallInfo, EnvelopeVersion, RpcRequest, WireNotification, WireRequest};
use msg_core::{Context, Notification, Priority};
use serde_json::json;

fn main() {
    let mut argv = std::env::args().skip(1);
    let (Some(what), Some(n)) = (
        argv.next(),
        argv.next().and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!(
            "usage: codec_loop decode-notification|decode-request|encode-notification|encode-request N"
        );
        std::process::exit(2);
    };
    let context = Context::new()
        .with("request_id", "req-1")
        .with("user", "u1");
    let notification = WireNotification {
        context: context.clone(),
        notification: Notification::new(
            "compute.host1",
            "compute.instance.create.end",
            Priority::Info,
            json!({"instance_id": "abc", "state": "active", "flavor": {"vcpus": 2, "ram": 2048}}),
        ),
        unique_id: msg_core::codec::new_unique_id(),
    };
    let mut args = serde_json::Map::new();
    args.insert("a".into(), json!(2));
    args.insert("b".into(), json!(3));
    let request = WireRequest {
        context,
        request: RpcRequest::new("add", args),
        unique_id: msg_core::codec::new_unique_id(),
        call: Some(CallInfo {
            msg_id: msg_core::codec::new_unique_id(),
            reply_q: "reply_8a0f".into(),
            call_monitor_timeout: None,
        }),
    };
    let notification_bytes = notification.encode(EnvelopeVersion::V2).unwrap();
    let request_bytes = request.encode().unwrap();
    let mut total = 0usize;
    for _ in 0..n {
        total += match what.as_str() {
            "decode-notification" => WireNotification::decode(&notification_bytes)
                .unwrap()
                .unique_id
                .len(),
            "decode-request" => WireRequest::decode(&request_bytes).unwrap().unique_id.len(),
            "encode-notification" => notification.encode(EnvelopeVersion::V2).unwrap().len(),
            "encode-request" => request.encode().unwrap().len(),
            other => {
                eprintln!("unknown operation `{other}`");
                std::process::exit(2);
            }
        };
    }
    // keeps the loop's work observable
    println!("{total}");
}
