//! `--metrics-addr` and `--oslo-metrics-socket`: the recorder `serve` and `listen` install
//! before they connect, so everything msg records reaches Prometheus, oslo.metrics, or both.

use std::net::{SocketAddr, ToSocketAddrs};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use metrics_util::layers::FanoutBuilder;
use msg::metrics::{OsloMetricsSink, PROCESSING_SECONDS_BUCKETS};

use crate::cli::MetricsArgs;
use crate::errors::CliError;

/// `HOST:PORT` (a name is resolved; its first address is used).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let mut addrs = s
        .to_socket_addrs()
        .map_err(|e| format!("`{s}` is not HOST:PORT ({e})"))?;
    addrs
        .next()
        .ok_or_else(|| format!("`{s}` resolves to no address"))
}

/// Installs the recorder the options ask for (none: nothing is installed). Must run inside
/// the runtime (the Prometheus listener is a task of it), before the transport is opened.
pub fn install(args: &MetricsArgs) -> Result<(), CliError> {
    let mut fanout = FanoutBuilder::default();
    let mut any = false;
    if let Some(addr) = args.metrics_addr {
        let (recorder, exporter) = PrometheusBuilder::new()
            .with_http_listener(addr)
            .set_buckets_for_metric(
                Matcher::Suffix("_processing_seconds".into()),
                &PROCESSING_SECONDS_BUCKETS,
            )
            .and_then(PrometheusBuilder::build)
            .map_err(|e| CliError::usage(format!("--metrics-addr {addr}: {e}")))?;
        tokio::spawn(async move {
            if exporter.await.is_err() {
                tracing::warn!("the Prometheus listener stopped");
            }
        });
        fanout = fanout.add_recorder(recorder);
        any = true;
    }
    if let Some(socket) = &args.oslo_metrics_socket {
        let sink = OsloMetricsSink::new(socket)
            .process(args.metrics_process_name.clone().unwrap_or_default());
        fanout = fanout.add_recorder(sink);
        any = true;
    }
    if any {
        metrics::set_global_recorder(fanout.build())
            .map_err(|e| CliError::failed(format!("can't install the metrics recorder: {e}")))?;
        msg::metrics::describe();
    }
    Ok(())
}
