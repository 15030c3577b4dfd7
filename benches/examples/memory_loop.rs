//! The in-process broker end to end, through the codec, for instruction counts under
//! callgrind (repeatable on a loaded VM, where times are not):
//!
//! ```sh
//! cargo build --release -p msg-benches --example memory_loop
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/memory_loop consume 11000
//! ```
//!
//! Run it with two counts (1,000 and 11,000) and divide the difference by 10,000 for the
//! instructions of one message. Operations, as in `benches/memory.rs`:
//! - `send`: N notifications sent by a `Notifier` on `memory://` (no listener);
//! - `consume`: N notifications preloaded by a `Notifier`, then consumed by a
//!   `NotificationListener` (so `consume` minus `send` is the consuming side alone);
//! - `call`: N RPC calls through `RpcClient` and `RpcServer`, 32 in flight.
//!
//! Everything runs on a current-thread runtime, so the counts repeat; a run that has not
//! finished within ten minutes fails.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use msg_client::{Notifier, RpcClient};
use msg_core::{Context, DriverRegistry, Priority, Target, Transport};
use msg_dispatch::{Endpoint, Handled, HandlerError, NotificationEndpoint};
use msg_server::{Executor, NotificationListener, RpcServer};
use serde_json::json;

/// How long a run may take (under callgrind, 11,000 calls take well under a minute).
const LIMIT: Duration = Duration::from_secs(600);
/// Calls in flight at once in `call`.
const IN_FLIGHT: u64 = 32;

async fn transport(name: &str) -> Transport {
    DriverRegistry::new()
        .with(msg_driver_memory::factory())
        .open(&format!("memory://{name}"))
        .await
        .unwrap()
}

async fn send(notifier: &Notifier, n: u64) {
    for i in 0..n {
        notifier
            .info(&Context::new(), "bench.event", json!({"n": i}))
            .await
            .unwrap();
    }
}

/// Sends `n` notifications, then consumes them with a listener; returns how many it saw.
async fn consume(n: u64) -> u64 {
    let t = transport("loop-consume").await;
    let topic = "consume";
    send(&Notifier::new(t.clone()).topics([topic]), n).await;
    let seen = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let (s, d) = (seen.clone(), done.clone());
    let listener = NotificationListener::builder(t.clone(), [Target::topic(topic)])
        .endpoint(NotificationEndpoint::new().on(Priority::Info, move |_m| {
            let (s, d) = (s.clone(), d.clone());
            async move {
                if s.fetch_add(1, Ordering::Relaxed) + 1 == n {
                    d.notify_one();
                }
                Handled
            }
        }))
        .start()
        .await
        .unwrap();
    if n > 0 {
        done.notified().await;
    }
    listener.shutdown(Duration::from_secs(5)).await.unwrap();
    seen.load(Ordering::Relaxed)
}

/// Makes `n` calls, `IN_FLIGHT` at once; returns how many were answered.
async fn call(n: u64) -> u64 {
    let t = transport("loop-rpc").await;
    let server = RpcServer::builder(t.clone(), Target::server("loop-rpc", "s1"))
        .executor(Executor::Pool(64))
        .endpoint(
            Endpoint::new().method("echo", |_c: Context, v: serde_json::Value| async move {
                Ok::<_, HandlerError>(v)
            }),
        )
        .start()
        .await
        .unwrap();
    let client = RpcClient::new(t.clone(), Target::topic("loop-rpc"));
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|task| {
            let client = client.clone();
            // the remainder goes to the first tasks, so N need not divide by 32
            let calls = n / IN_FLIGHT + u64::from(task < n % IN_FLIGHT);
            tokio::spawn(async move {
                let mut answered = 0;
                for i in 0..calls {
                    let reply: serde_json::Value = client
                        .call(&Context::new(), "echo", json!({"n": i}))
                        .await
                        .unwrap();
                    assert_eq!(reply, json!({"n": i}));
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    let mut answered = 0;
    for task in tasks {
        answered += task.await.unwrap();
    }
    server.shutdown(Duration::from_secs(5)).await.unwrap();
    answered
}

fn main() {
    let mut argv = std::env::args().skip(1);
    let (Some(op), Some(n)) = (argv.next(), argv.next().and_then(|n| n.parse::<u64>().ok())) else {
        eprintln!("usage: memory_loop send|consume|call N");
        std::process::exit(2);
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let done = rt.block_on(async {
        let work = async {
            match op.as_str() {
                "send" => {
                    let t = transport("loop-send").await;
                    send(&Notifier::new(t).topics(["send"]), n).await;
                    n
                }
                "consume" => consume(n).await,
                "call" => call(n).await,
                other => {
                    eprintln!("unknown operation `{other}`");
                    std::process::exit(2);
                }
            }
        };
        tokio::time::timeout(LIMIT, work).await
    });
    match done {
        Ok(count) if count == n => println!("{op}: {count}"),
        Ok(count) => {
            eprintln!("{op}: {count} of {n}");
            std::process::exit(1);
        }
        Err(_) => {
            eprintln!("{op}: not done within {LIMIT:?}");
            std::process::exit(1);
        }
    }
}
