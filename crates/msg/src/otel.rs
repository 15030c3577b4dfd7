//! OpenTelemetry for msg's spans (the `otel` feature): an OTLP exporter made from oslo's
//! `[oslo_messaging_tracing]` options, and the `tracing-opentelemetry` layer that turns
//! msg's `tracing` spans into OpenTelemetry spans.
//!
//! msg's clients and servers always make `tracing` spans (named and attributed as
//! oslo.messaging's: `"{topic}.{method}"` on send, `"{method} receive"` on receipt); with
//! this feature on they also put the sending span's W3C trace context into the message's
//! context and parent the receiving span on it, so a trace crosses the broker, to and from
//! Python services that run oslo.messaging with tracing on. The application installs the
//! layer in its subscriber; the exporter runs on a thread of its own (HTTP) or on the Tokio
//! runtime it was made in (gRPC).
//!
//! ```no_run
//! # async fn run() -> msg::Result<()> {
//! use tracing_subscriber::layer::SubscriberExt;
//! use tracing_subscriber::util::SubscriberInitExt;
//!
//! let options = msg::TracingOptions::from_pairs([
//!     ("tracing_enabled", "true"),
//!     ("tracing_service_name", "my-service"),
//!     ("otel_exporter_otlp_endpoint", "http://127.0.0.1:4318"),
//! ])?;
//! let otel = msg::otel::OtelTracing::from_options(&options)?;
//! tracing_subscriber::registry()
//!     .with(tracing_subscriber::fmt::layer())
//!     .with(otel.as_ref().map(|o| o.layer()))
//!     .init();
//! // ... run clients and servers; before exiting, send what is left:
//! if let Some(otel) = otel {
//!     otel.shutdown()?;
//! }
//! # Ok(())
//! # }
//! ```

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter, Tracer};
use tracing_opentelemetry::OpenTelemetryLayer;

use crate::{Error, OtlpProtocol, Result, TracingOptions};

/// The instrumentation scope of msg's spans (oslo's tracer is `oslo.messaging`).
pub const TRACER_NAME: &str = "msg";

/// An OpenTelemetry tracer provider for msg's spans, and the layer that feeds it.
#[derive(Debug, Clone)]
pub struct OtelTracing {
    provider: SdkTracerProvider,
}

impl OtelTracing {
    /// The OTLP pipeline the options ask for, or `None` when `tracing_enabled` is false.
    /// gRPC needs to be called inside a Tokio runtime (the exporter runs on it).
    pub fn from_options(options: &TracingOptions) -> Result<Option<Self>> {
        if !options.tracing_enabled {
            return Ok(None);
        }
        let exporter = otlp_exporter(options)?;
        let provider = SdkTracerProvider::builder()
            .with_resource(resource(options))
            .with_batch_exporter(exporter)
            .build();
        Ok(Some(OtelTracing { provider }))
    }

    /// A pipeline that hands each span to `exporter` as it ends (no batching): for tests,
    /// with `opentelemetry_sdk`'s in-memory exporter, or for exporters of one's own.
    pub fn with_exporter(options: &TracingOptions, exporter: impl SpanExporter + 'static) -> Self {
        let provider = SdkTracerProvider::builder()
            .with_resource(resource(options))
            .with_simple_exporter(exporter)
            .build();
        OtelTracing { provider }
    }

    /// The layer to add to the application's `tracing` subscriber.
    pub fn layer<S>(&self) -> OpenTelemetryLayer<S, Tracer>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer(TRACER_NAME))
    }

    /// The tracer provider (to flush it, or to make tracers of one's own).
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// Exports what is left and stops the exporter.
    pub fn shutdown(&self) -> Result<()> {
        self.provider
            .shutdown()
            .map_err(|e| Error::Config(format!("[oslo_messaging_tracing] shutting down: {e}")))
    }
}

fn resource(options: &TracingOptions) -> Resource {
    Resource::builder()
        .with_service_name(options.tracing_service_name.clone())
        .build()
}

/// The OTLP span exporter the options name: over `http/protobuf` to
/// `<otel_exporter_otlp_endpoint>/v1/traces`, as oslo sends it, or over gRPC to the endpoint
/// itself. Both speak plain text (`http://` endpoints): an `https://` endpoint is refused
/// with an error naming the option.
pub fn otlp_exporter(options: &TracingOptions) -> Result<opentelemetry_otlp::SpanExporter> {
    let endpoint = options.otel_exporter_otlp_endpoint.trim_end_matches('/');
    if !endpoint.starts_with("http://") {
        return Err(Error::Config(format!(
            "[oslo_messaging_tracing] otel_exporter_otlp_endpoint: `{endpoint}` must be an http:// URL (msg's OTLP exporter has no TLS)"
        )));
    }
    let built = match options.otlp_protocol {
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(format!("{endpoint}/v1/traces"))
            .build(),
        OtlpProtocol::Grpc => {
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(Error::Config(
                    "[oslo_messaging_tracing] otlp_protocol = grpc: the exporter must be made inside a Tokio runtime".into(),
                ));
            }
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
        }
    };
    built.map_err(|e| {
        Error::Config(format!(
            "[oslo_messaging_tracing] the {} exporter to `{endpoint}`: {e}",
            options.otlp_protocol
        ))
    })
}
