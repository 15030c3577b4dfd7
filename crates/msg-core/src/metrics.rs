//! The metrics msg records through the [`metrics`](https://docs.rs/metrics) facade: every
//! name in one place, oslo's label conventions, and the driver-level events each driver
//! reports with one call.
//!
//! msg records; it never exports. An application (or `msgctl`) installs a recorder (a
//! Prometheus exporter, oslo.metrics's socket, both) before it opens its transports and
//! starts its clients and servers: handles registered before a recorder exists stay
//! no-ops. Without a recorder every call here costs next to nothing.
//!
//! The RPC metrics carry oslo.messaging's names and labels (oslo.metrics's
//! `oslo_messaging_rpc_*`), so a dashboard written for Python services reads Rust ones too.
//! A label oslo would leave unset holds `"None"` ([`NONE`]), the text oslo.metrics makes of
//! Python's `None`. The others are msg's own (`msg_*`).
//!
//! ```
//! use msg_core::metrics;
//! // a driver reports its events with one call each, labelled by its name
//! metrics::reconnected("amqp");
//! metrics::dead_lettered("amqp");
//! let in_use = metrics::PrefetchInUse::new("amqp");
//! let delivered = in_use.hold(); // counted until dropped, once the message is settled
//! drop(delivered);
//! assert!(metrics::RPC_CLIENT_PROCESSING_SECONDS.starts_with("oslo_messaging_"));
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

/// Calls and casts started (oslo: counted before the send).
pub const RPC_CLIENT_INVOCATION_START_TOTAL: &str =
    "oslo_messaging_rpc_client_invocation_start_total";
/// Calls and casts that ended without an error.
pub const RPC_CLIENT_INVOCATION_END_TOTAL: &str = "oslo_messaging_rpc_client_invocation_end_total";
/// How long calls and casts that ended without an error took, in seconds (a histogram).
pub const RPC_CLIENT_PROCESSING_SECONDS: &str = "oslo_messaging_rpc_client_processing_seconds";
/// Calls and casts that failed, by `exception` (oslo's exception class name).
pub const RPC_CLIENT_EXCEPTION_TOTAL: &str = "oslo_messaging_rpc_client_exception_total";
/// Requests a server routed to a method and began handling (unroutable ones are not
/// counted, as oslo.metrics says).
pub const RPC_SERVER_INVOCATION_START_TOTAL: &str =
    "oslo_messaging_rpc_server_invocation_start_total";
/// Requests whose handler returned a result.
pub const RPC_SERVER_INVOCATION_END_TOTAL: &str = "oslo_messaging_rpc_server_invocation_end_total";
/// How long handlers that returned a result took, in seconds (a histogram).
pub const RPC_SERVER_PROCESSING_SECONDS: &str = "oslo_messaging_rpc_server_processing_seconds";
/// Requests whose handler failed, by `exception` (the failure's class).
pub const RPC_SERVER_EXCEPTION_TOTAL: &str = "oslo_messaging_rpc_server_exception_total";

/// Notifications a notify driver sent (to all of its topics), by `priority`.
pub const NOTIFICATIONS_SENT_TOTAL: &str = "msg_notifications_sent_total";
/// Notifications a notify driver failed to send, by `priority`.
pub const NOTIFICATIONS_SEND_FAILED_TOTAL: &str = "msg_notifications_send_failed_total";
/// Notifications a listener handled and acknowledged, by `pool` and `priority`.
pub const NOTIFICATIONS_HANDLED_TOTAL: &str = "msg_notifications_handled_total";
/// Notifications a listener sent back to the broker, by `pool` and `priority`.
pub const NOTIFICATIONS_REQUEUED_TOTAL: &str = "msg_notifications_requeued_total";
/// Notifications a driver moved to a dead-letter place after too many requeues, by `driver`.
pub const NOTIFICATIONS_DEAD_LETTERED_TOTAL: &str = "msg_notifications_dead_lettered_total";
/// Connections a driver made again after losing one, by `driver`.
pub const RECONNECTS_TOTAL: &str = "msg_reconnects_total";
/// Consumers a driver started again (after a lost channel or a broker's cancel), by `driver`.
pub const CONSUMER_RESTARTS_TOTAL: &str = "msg_consumer_restarts_total";
/// Messages delivered to this process and not yet acknowledged or requeued, by `driver`: the
/// part of the prefetch windows in use (a gauge).
pub const PREFETCH_IN_USE: &str = "msg_prefetch_in_use";

/// The value of a label oslo leaves unset: `str(None)` in oslo.metrics.
pub const NONE: &str = "None";

/// The buckets of oslo.metrics's `*_processing_seconds` histograms, in seconds.
pub const PROCESSING_SECONDS_BUCKETS: [f64; 17] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 25.0, 50.0, 75.0,
    100.0,
];

/// The labels of the RPC client metrics, in oslo.metrics's order (the exception counter adds
/// `exception`). oslo.metrics adds `process` when it receives them.
pub const RPC_CLIENT_LABELS: [&str; 9] = [
    "call_type",
    "exchange",
    "topic",
    "namespace",
    "version",
    "server",
    "fanout",
    "method",
    "timeout",
];

/// The labels of the RPC server metrics, in oslo.metrics's order (the exception counter adds
/// `exception`). oslo.metrics adds `process` when it receives them.
pub const RPC_SERVER_LABELS: [&str; 7] = [
    "exchange",
    "topic",
    "server",
    "endpoint",
    "namespace",
    "version",
    "method",
];

/// An optional value as oslo.metrics labels it: the value, or [`NONE`].
pub fn or_none(value: Option<&str>) -> &str {
    value.unwrap_or(NONE)
}

static RECORDER_EPOCH: AtomicU64 = AtomicU64::new(0);

/// How many times [`describe`] was called: handles msg keeps between calls (the RPC
/// client's) are registered again when this changes.
pub fn recorder_epoch() -> u64 {
    RECORDER_EPOCH.load(Ordering::Relaxed)
}

/// Describes every metric (help text, unit) to the installed recorder; call it once after
/// installing one (a Prometheus exporter prints the help text). It also makes the RPC client
/// register its series again, with this recorder (servers and listeners register theirs when
/// they are built).
pub fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    RECORDER_EPOCH.fetch_add(1, Ordering::Relaxed);
    describe_counter!(
        RPC_CLIENT_INVOCATION_START_TOTAL,
        "Total number of RPC invocation start."
    );
    describe_counter!(
        RPC_CLIENT_INVOCATION_END_TOTAL,
        "Total number of RPC invocation end."
    );
    describe_histogram!(
        RPC_CLIENT_PROCESSING_SECONDS,
        Unit::Seconds,
        "Duration of RPC processing."
    );
    describe_counter!(
        RPC_CLIENT_EXCEPTION_TOTAL,
        "Total number of exception while RPC processing."
    );
    describe_counter!(
        RPC_SERVER_INVOCATION_START_TOTAL,
        "Total number of RPC invocation start. This doesn't count if rpc server failed to find method from endpoints."
    );
    describe_counter!(
        RPC_SERVER_INVOCATION_END_TOTAL,
        "Total number of RPC invocation end."
    );
    describe_histogram!(
        RPC_SERVER_PROCESSING_SECONDS,
        Unit::Seconds,
        "Duration of RPC processing."
    );
    describe_counter!(
        RPC_SERVER_EXCEPTION_TOTAL,
        "Total number of exception while RPC processing."
    );
    describe_counter!(
        NOTIFICATIONS_SENT_TOTAL,
        "Notifications a notify driver sent."
    );
    describe_counter!(
        NOTIFICATIONS_SEND_FAILED_TOTAL,
        "Notifications a notify driver failed to send."
    );
    describe_counter!(
        NOTIFICATIONS_HANDLED_TOTAL,
        "Notifications a listener handled and acknowledged."
    );
    describe_counter!(
        NOTIFICATIONS_REQUEUED_TOTAL,
        "Notifications a listener sent back to the broker."
    );
    describe_counter!(
        NOTIFICATIONS_DEAD_LETTERED_TOTAL,
        "Notifications dead-lettered after too many requeues."
    );
    describe_counter!(RECONNECTS_TOTAL, "Connections made again after a loss.");
    describe_counter!(
        CONSUMER_RESTARTS_TOTAL,
        "Consumers started again after a lost channel or a cancel."
    );
    describe_gauge!(
        PREFETCH_IN_USE,
        "Messages delivered and not yet acknowledged or requeued."
    );
}

/// A driver made a connection again after losing one.
pub fn reconnected(driver: &'static str) {
    ::metrics::counter!(RECONNECTS_TOTAL, "driver" => driver).increment(1);
}

/// A driver started a consumer again (after a lost channel, or the broker's cancel).
pub fn consumer_restarted(driver: &'static str) {
    ::metrics::counter!(CONSUMER_RESTARTS_TOTAL, "driver" => driver).increment(1);
}

/// A driver moved a notification to its dead-letter place.
pub fn dead_lettered(driver: &'static str) {
    ::metrics::counter!(NOTIFICATIONS_DEAD_LETTERED_TOTAL, "driver" => driver).increment(1);
}

/// The [`PREFETCH_IN_USE`] gauge of one driver. A consumer registers it once and
/// [`hold`](PrefetchInUse::hold)s it for each message it is delivered; the message counts
/// until that hold is dropped, with the message, once settled (acknowledged, requeued,
/// rejected, or gone with its connection).
#[derive(Clone)]
pub struct PrefetchInUse(::metrics::Gauge);

impl std::fmt::Debug for PrefetchInUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrefetchInUse")
    }
}

impl PrefetchInUse {
    /// The gauge of `driver`.
    pub fn new(driver: &'static str) -> Self {
        PrefetchInUse(::metrics::gauge!(PREFETCH_IN_USE, "driver" => driver))
    }

    /// Counts one message delivered until the returned hold is dropped.
    pub fn hold(&self) -> InUse {
        self.0.increment(1.0);
        InUse(self.0.clone())
    }
}

/// One delivered message counted in [`PREFETCH_IN_USE`] until dropped.
pub struct InUse(::metrics::Gauge);

impl std::fmt::Debug for InUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InUse")
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
