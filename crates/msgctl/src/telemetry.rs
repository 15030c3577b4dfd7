//! `--tracing KEY=VALUE`: oslo's `[oslo_messaging_tracing]` options, and the OTLP pipeline
//! they ask for (the `otel` feature).

use msg::TracingOptions;

/// The OTLP pipeline, when tracing is enabled.
#[cfg(feature = "otel")]
pub type Pipeline = msg::otel::OtelTracing;

/// Without the `otel` feature there is no pipeline to make.
#[cfg(not(feature = "otel"))]
#[derive(Debug)]
pub enum Pipeline {}

/// The options of `--tracing`, in order (a later key wins).
pub fn options(pairs: &[String]) -> Result<TracingOptions, String> {
    let mut parsed = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!(
                "--tracing `{pair}`: expected KEY=VALUE, e.g. tracing_enabled=true"
            ));
        };
        let key = key.trim();
        if !msg::TRACING_OPTION_KEYS.contains(&key) {
            return Err(format!(
                "--tracing `{key}`: not an [oslo_messaging_tracing] option (known: {})",
                msg::TRACING_OPTION_KEYS.join(", ")
            ));
        }
        parsed.push((key, value));
    }
    TracingOptions::from_pairs(parsed).map_err(|e| format!("--tracing: {e}"))
}

/// The pipeline `--tracing` asks for (`None`: tracing off). Made inside the runtime, which
/// the gRPC exporter runs on.
pub fn pipeline(pairs: &[String]) -> Result<Option<Pipeline>, String> {
    let options = options(pairs)?;
    if !options.tracing_enabled {
        return Ok(None);
    }
    #[cfg(feature = "otel")]
    {
        msg::otel::OtelTracing::from_options(&options).map_err(|e| format!("--tracing: {e}"))
    }
    #[cfg(not(feature = "otel"))]
    Err("--tracing tracing_enabled=true: this msgctl was built without the `otel` feature".into())
}

/// Sends what is left (bounded by the exporter's own timeout).
pub fn shutdown(pipeline: Option<Pipeline>) {
    #[cfg(feature = "otel")]
    if let Some(p) = pipeline
        && let Err(e) = p.shutdown()
    {
        eprintln!("msgctl: exporting the last spans: {e}");
    }
    #[cfg(not(feature = "otel"))]
    let _ = pipeline;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_oslos_keys() {
        let o = options(&[
            "tracing_enabled=true".into(),
            "otlp_protocol=grpc".into(),
            "tracing_service_name=msgctl".into(),
        ])
        .unwrap();
        assert!(o.tracing_enabled);
        assert_eq!(o.tracing_service_name, "msgctl");
        for bad in [
            "tracing_enabled",
            "tracing_enable=true",
            "otlp_protocol=udp",
        ] {
            let err = options(&[bad.into()]).unwrap_err();
            assert!(err.contains("--tracing"), "{err}");
        }
        assert!(pipeline(&[]).unwrap().is_none());
    }
}
