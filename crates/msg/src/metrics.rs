//! Metrics: the names msg records through the [`metrics`](https://docs.rs/metrics) facade,
//! and [`OsloMetricsSink`], a recorder that hands them to oslo.metrics.
//!
//! msg's crates record; the application chooses where metrics go by installing a recorder
//! (`metrics::set_global_recorder`) before it opens transports and starts clients and
//! servers: a Prometheus exporter (`metrics-exporter-prometheus`; give the
//! `*_processing_seconds` histograms [`PROCESSING_SECONDS_BUCKETS`], as oslo.metrics does),
//! the oslo.metrics socket, or both (`metrics_util::layers::FanoutBuilder`). Then call
//! [`describe`] for the help texts. `docs/operations.md` lists every metric.
//!
//! ```
//! // the RPC metrics keep oslo.messaging's names
//! assert_eq!(
//!     msg::metrics::RPC_CLIENT_INVOCATION_START_TOTAL,
//!     "oslo_messaging_rpc_client_invocation_start_total"
//! );
//! ```

pub use msg_core::metrics::*;

#[cfg(unix)]
mod oslo_sink;
#[cfg(unix)]
pub use oslo_sink::{DEFAULT_SOCKET, OsloMetricsSink};
