//! What servers and listeners record: the RPC server metrics in oslo.metrics's shape, and the
//! notifications handled and requeued (names in [`msg_core::metrics`]).
//!
//! Handles are registered when a server or listener is built, one set per endpoint method
//! and per priority, so handling a message adds to counters it already holds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ::foldhash::fast::FixedState;
use ::metrics::{Counter, Histogram, Label, SharedString, counter, histogram};
use msg_core::metrics::{
    NOTIFICATIONS_HANDLED_TOTAL, NOTIFICATIONS_REQUEUED_TOTAL, RPC_SERVER_EXCEPTION_TOTAL,
    RPC_SERVER_INVOCATION_END_TOTAL, RPC_SERVER_INVOCATION_START_TOTAL, RPC_SERVER_LABELS,
    RPC_SERVER_PROCESSING_SECONDS, or_none,
};
use msg_core::{Failure, Priority, Target};
use msg_dispatch::{Endpoint, PING_METHOD, Route};
use serde_json::Value;

/// The RPC server metrics of one endpoint method.
struct MethodMetrics {
    labels: Arc<[Label]>,
    start: Counter,
    end: Counter,
    seconds: Histogram,
}

/// The RPC server metrics of every method a server serves, by endpoint position and name.
pub(crate) struct ServerMetrics {
    /// Keyed by method name with a fast hash: the names are the server's own.
    endpoints: Vec<HashMap<String, MethodMetrics, FixedState>>,
}

impl ServerMetrics {
    /// Registers the metrics of each method of `endpoints` (and of oslo's ping method, served
    /// after them, when `ping` is on) served on `target`. The `endpoint` label is the
    /// endpoint's position among them.
    pub(crate) fn new(target: &Target, endpoints: &[Endpoint], ping: bool) -> Self {
        let [
            exchange,
            topic,
            server,
            endpoint_l,
            namespace,
            version,
            method_l,
        ] = RPC_SERVER_LABELS;
        let shared = |v: Option<&str>| SharedString::from(Arc::<str>::from(or_none(v)));
        let (exchange_v, topic_v, server_v) = (
            shared(target.exchange.as_deref()),
            shared(target.topic.as_deref()),
            shared(target.server.as_deref()),
        );
        let method_metrics = |index: usize, ns: Option<&str>, ver: String, method: &str| {
            let labels: Arc<[Label]> = Arc::new([
                Label::new(exchange, exchange_v.clone()),
                Label::new(topic, topic_v.clone()),
                Label::new(server, server_v.clone()),
                Label::new(endpoint_l, index.to_string()),
                Label::new(namespace, or_none(ns).to_owned()),
                Label::new(version, ver),
                Label::new(method_l, method.to_owned()),
            ]);
            MethodMetrics {
                start: counter!(RPC_SERVER_INVOCATION_START_TOTAL, labels.iter()),
                end: counter!(RPC_SERVER_INVOCATION_END_TOTAL, labels.iter()),
                seconds: histogram!(RPC_SERVER_PROCESSING_SECONDS, labels.iter()),
                labels,
            }
        };
        let mut all: Vec<HashMap<String, MethodMetrics, FixedState>> = endpoints
            .iter()
            .enumerate()
            .map(|(i, ep)| {
                let ver = ep
                    .target_version()
                    .map_or_else(|_| "None".to_owned(), |v| v.to_string());
                ep.method_names()
                    .map(|m| {
                        let mm = method_metrics(i, ep.target_namespace(), ver.clone(), m);
                        (m.to_owned(), mm)
                    })
                    .collect()
            })
            .collect();
        if ping {
            let mm = method_metrics(endpoints.len(), None, "1.0".to_owned(), PING_METHOD);
            all.push([(PING_METHOD.to_owned(), mm)].into_iter().collect());
        }
        ServerMetrics { endpoints: all }
    }

    /// Counts the start of a routed request.
    pub(crate) fn start(&self, route: &Route<'_>) -> Option<Invocation<'_>> {
        let method = self
            .endpoints
            .get(route.endpoint_index())?
            .get(route.method())?;
        method.start.increment(1);
        Some(Invocation {
            method,
            started: Instant::now(),
        })
    }
}

/// One request being handled.
pub(crate) struct Invocation<'a> {
    method: &'a MethodMetrics,
    started: Instant,
}

impl Invocation<'_> {
    /// Records how the handler ended: its duration and an end, or an exception by class.
    pub(crate) fn finish(self, result: &Result<Value, Failure>) {
        match result {
            Ok(_) => {
                self.method.seconds.record(self.started.elapsed());
                self.method.end.increment(1);
            }
            Err(failure) => {
                let labels = self
                    .method
                    .labels
                    .iter()
                    .cloned()
                    .chain([Label::new("exception", failure.class.clone())])
                    .collect::<Vec<_>>();
                counter!(RPC_SERVER_EXCEPTION_TOTAL, labels).increment(1);
            }
        }
    }
}

/// The notifications a listener handled and requeued, by priority.
pub(crate) struct ListenerMetrics {
    handled: [Counter; 7],
    requeued: [Counter; 7],
}

impl ListenerMetrics {
    /// Registers the counters of a listener in `pool` (`None`: the default one).
    pub(crate) fn new(pool: Option<&str>) -> Self {
        let pool: SharedString = Arc::<str>::from(or_none(pool)).into();
        let counters = |name: &'static str| {
            Priority::ALL
                .map(|p| counter!(name, "pool" => pool.clone(), "priority" => p.routing_name()))
        };
        ListenerMetrics {
            handled: counters(NOTIFICATIONS_HANDLED_TOTAL),
            requeued: counters(NOTIFICATIONS_REQUEUED_TOTAL),
        }
    }

    /// Counts a notification acknowledged after handling, or requeued.
    pub(crate) fn settled(&self, priority: Priority, requeued: bool) {
        let counters = if requeued {
            &self.requeued
        } else {
            &self.handled
        };
        if let Some(c) = counters.get(priority as usize) {
            c.increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use msg_core::Context;
    use msg_dispatch::{HandlerError, RpcDispatcher};

    use super::*;

    #[test]
    fn each_method_and_priority_has_its_series() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let endpoints = vec![
                Endpoint::new()
                    .namespace("ns")
                    .version("1.2")
                    .method("add", |_: Context, _: Value| async {
                        Ok::<_, HandlerError>(1)
                    }),
            ];
            let server = ServerMetrics::new(&Target::server("calc", "h1"), &endpoints, true);
            let dispatcher = RpcDispatcher::new(endpoints).unwrap().ping(true);
            let mut req = msg_core::RpcRequest::new("add", serde_json::Map::new());
            req.namespace = Some("ns".into());
            let route = dispatcher.route(&req).unwrap();
            server.start(&route).unwrap().finish(&Err(Failure::new(
                "ValueError",
                "builtins",
                "no",
            )));
            let ping = msg_core::RpcRequest::new(PING_METHOD, serde_json::Map::new());
            let route = dispatcher.route(&ping).unwrap();
            server.start(&route).unwrap().finish(&Ok(Value::Null));
            let listener = ListenerMetrics::new(Some("workers"));
            listener.settled(Priority::Warn, false);
            listener.settled(Priority::Warn, true);
            listener.settled(Priority::Warn, true);
        });
        let snapshot = snapshotter.snapshot().into_vec();
        let value = |name: &str, want: &[(&str, &str)]| {
            snapshot
                .iter()
                .find(|(k, _, _, _)| {
                    k.key().name() == name
                        && want.iter().all(|(lk, lv)| {
                            k.key().labels().any(|l| l.key() == *lk && l.value() == *lv)
                        })
                })
                .map(|(_, _, _, v)| match v {
                    DebugValue::Counter(n) => *n,
                    DebugValue::Histogram(h) => h.len() as u64,
                    DebugValue::Gauge(_) => u64::MAX,
                })
        };
        let add = [
            ("exchange", "None"),
            ("topic", "calc"),
            ("server", "h1"),
            ("endpoint", "0"),
            ("namespace", "ns"),
            ("version", "1.2"),
            ("method", "add"),
        ];
        assert_eq!(value(RPC_SERVER_INVOCATION_START_TOTAL, &add), Some(1));
        assert_eq!(value(RPC_SERVER_INVOCATION_END_TOTAL, &add), Some(0));
        let mut failed = add.to_vec();
        failed.push(("exception", "ValueError"));
        assert_eq!(value(RPC_SERVER_EXCEPTION_TOTAL, &failed), Some(1));
        let ping = [("endpoint", "1"), ("method", PING_METHOD)];
        assert_eq!(value(RPC_SERVER_INVOCATION_END_TOTAL, &ping), Some(1));
        assert_eq!(value(RPC_SERVER_PROCESSING_SECONDS, &ping), Some(1));
        let warn = [("pool", "workers"), ("priority", "warn")];
        assert_eq!(value(NOTIFICATIONS_HANDLED_TOTAL, &warn), Some(1));
        assert_eq!(value(NOTIFICATIONS_REQUEUED_TOTAL, &warn), Some(2));
        let info = [("pool", "workers"), ("priority", "info")];
        assert_eq!(value(NOTIFICATIONS_HANDLED_TOTAL, &info), Some(0));
    }
}
