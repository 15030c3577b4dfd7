//! End to end on the in-process broker, through the codec: notifications consumed by a
//! `NotificationListener` (from a preloaded backlog), notifications sent by a `Notifier`, and
//! RPC calls with 32 in flight.
//!
//! `cargo bench -p msg-benches --bench memory`
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use msg_client::{Notifier, RpcClient};
use msg_core::codec::{self, CallInfo, EnvelopeVersion, RpcRequest, WireNotification, WireRequest};
use msg_core::{Context, DriverRegistry, Notification, Priority, Target, Transport};
use msg_dispatch::{Endpoint, Handled, HandlerError, NotificationEndpoint};
use msg_driver_memory::ceiling;
use msg_server::{Executor, NotificationListener, RpcServer};
use serde_json::json;

const BATCH: u64 = 20_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn transport(name: &str) -> Transport {
    DriverRegistry::new()
        .with(msg_driver_memory::factory())
        .open(&format!("memory://{name}"))
        .await
        .unwrap()
}

fn consume(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("memory");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(10);
    g.bench_function("notifications consumed by a listener", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let t = transport("bench-consume").await;
                    let topic = format!("consume-{i}-{}", std::process::id());
                    let notifier = Notifier::new(t.clone()).topics([topic.as_str()]);
                    for n in 0..BATCH {
                        notifier
                            .info(&Context::new(), "bench.event", json!({"n": n}))
                            .await
                            .unwrap();
                    }
                    let seen = Arc::new(AtomicU64::new(0));
                    let done = Arc::new(tokio::sync::Notify::new());
                    let (s, d) = (seen.clone(), done.clone());
                    let start = Instant::now();
                    let listener =
                        NotificationListener::builder(t.clone(), [Target::topic(&topic)])
                            .endpoint(NotificationEndpoint::new().on(Priority::Info, move |_m| {
                                let (s, d) = (s.clone(), d.clone());
                                async move {
                                    if s.fetch_add(1, Ordering::Relaxed) + 1 == BATCH {
                                        d.notify_one();
                                    }
                                    Handled
                                }
                            }))
                            .start()
                            .await
                            .unwrap();
                    done.notified().await;
                    total += start.elapsed();
                    listener.shutdown(Duration::from_secs(5)).await.unwrap();
                }
                total
            })
        })
    });
    g.bench_function("notifications sent", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t = transport("bench-send").await;
                let notifier = Notifier::new(t.clone()).topics(["send"]);
                let start = Instant::now();
                for _ in 0..iters {
                    for n in 0..BATCH {
                        notifier
                            .info(&Context::new(), "bench.event", json!({"n": n}))
                            .await
                            .unwrap();
                    }
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("rpc calls, 32 in flight", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t = transport("bench-rpc").await;
                let server = RpcServer::builder(t.clone(), Target::server("bench-rpc", "s1"))
                    .executor(Executor::Pool(64))
                    .endpoint(
                        Endpoint::new()
                            .method("echo", |_c: Context, v: serde_json::Value| async move {
                                Ok::<_, HandlerError>(v)
                            }),
                    )
                    .start()
                    .await
                    .unwrap();
                let client = RpcClient::new(t.clone(), Target::topic("bench-rpc"));
                let start = Instant::now();
                for _ in 0..iters {
                    let per = BATCH / 32;
                    let tasks: Vec<_> = (0..32)
                        .map(|_| {
                            let client = client.clone();
                            tokio::spawn(async move {
                                for n in 0..per {
                                    let _: serde_json::Value = client
                                        .call(&Context::new(), "echo", json!({"n": n}))
                                        .await
                                        .unwrap();
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                }
                let took = start.elapsed();
                server.shutdown(Duration::from_secs(5)).await.unwrap();
                took
            })
        })
    });
    g.finish();
}

/// The ceiling: the same bodies through the in-process broker's queues, credit, listener
/// feed and reply waiters, with no decoding, no dispatch and no encoding.
fn ceiling(c: &mut Criterion) {
    let rt = runtime();
    let notification = Bytes::from(
        WireNotification {
            context: Context::new(),
            notification: Notification::new(
                "msg.bench",
                "bench.event",
                Priority::Info,
                json!({"n": 12345}),
            ),
            unique_id: codec::new_unique_id(),
        }
        .encode(EnvelopeVersion::V2)
        .unwrap(),
    );
    let mut args = serde_json::Map::new();
    args.insert("n".into(), json!(12345));
    let request = Bytes::from(
        WireRequest {
            context: Context::new(),
            request: RpcRequest::new("echo", args),
            unique_id: codec::new_unique_id(),
            call: Some(CallInfo {
                msg_id: codec::new_unique_id(),
                reply_q: format!("reply_{}", codec::new_unique_id()),
                call_monitor_timeout: None,
            }),
        }
        .encode()
        .unwrap(),
    );
    let mut g = c.benchmark_group("memory ceiling");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(10);
    g.bench_function("notification bodies consumed, no codec or dispatch", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // the prefetch a default `NotificationListener` has (its executor, `Pool(64)`)
                    total += ceiling::consume(notification.clone(), BATCH, 64).await;
                }
                total
            })
        })
    });
    g.bench_function(
        "call bodies round trip, 32 in flight, no codec or dispatch",
        |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += ceiling::calls(request.clone(), BATCH, 32).await;
                    }
                    total
                })
            })
        },
    );
    g.finish();
}

criterion_group!(benches, consume, ceiling);
criterion_main!(benches);
