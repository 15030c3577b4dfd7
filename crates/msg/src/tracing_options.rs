//! oslo.messaging's `[oslo_messaging_tracing]` options, as plain data.

use std::fmt;
use std::str::FromStr;

use crate::config::ConfigFiles;
use crate::{Error, Result};

/// The group's name in oslo.config files.
const GROUP: &str = "oslo_messaging_tracing";

/// The OTLP transport protocol (oslo's `otlp_protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtlpProtocol {
    /// `http/protobuf`: OTLP over HTTP with protocol buffers; spans go to
    /// `<endpoint>/v1/traces` (the default).
    #[default]
    HttpProtobuf,
    /// `grpc`: OTLP over gRPC.
    Grpc,
}

impl OtlpProtocol {
    /// oslo's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::Grpc => "grpc",
        }
    }
}

impl fmt::Display for OtlpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OtlpProtocol {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            "grpc" => Ok(OtlpProtocol::Grpc),
            other => Err(Error::Config(format!(
                "[oslo_messaging_tracing] otlp_protocol: `{other}` is not one of http/protobuf, grpc"
            ))),
        }
    }
}

/// oslo.messaging 18.3's `[oslo_messaging_tracing]` group: whether spans are exported, and
/// where. The field names are oslo's option names and the defaults are oslo's. msg always
/// makes its `tracing` spans; these options say whether the `otel` feature's
/// OpenTelemetry pipeline (`msg::otel`) exports them, with which service name, to which
/// OTLP endpoint, over which protocol.
///
/// [`TracingOptions::from_pairs`] reads the group's keys as an oslo.config file holds them
/// (strings; booleans as oslo.config spells them: `true`/`false`, `yes`/`no`, `on`/`off`,
/// `1`/`0`, any case). A key oslo does not define is warned about and ignored, as oslo.config
/// ignores it; a bad value is an error naming the key.
///
/// ```
/// use msg::{OtlpProtocol, TracingOptions};
/// let o = TracingOptions::from_pairs([
///     ("tracing_enabled", "True"),
///     ("tracing_service_name", "nova-compute"),
///     ("otel_exporter_otlp_endpoint", "http://collector:4317"),
///     ("otlp_protocol", "grpc"),
/// ])
/// .unwrap();
/// assert!(o.tracing_enabled);
/// assert_eq!(o.otlp_protocol, OtlpProtocol::Grpc);
/// assert!(!o.insecure);
/// assert_eq!(TracingOptions::default().otel_exporter_otlp_endpoint, "http://localhost:4318");
/// let err = TracingOptions::from_pairs([("insecure", "maybe")]).unwrap_err();
/// assert!(err.to_string().contains("insecure"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracingOptions {
    /// Export spans (default false).
    pub tracing_enabled: bool,
    /// The `service.name` of the exported spans (default `openstack`).
    pub tracing_service_name: String,
    /// The OTLP endpoint (default `http://localhost:4318`); over `http/protobuf` spans go to
    /// `<endpoint>/v1/traces`.
    pub otel_exporter_otlp_endpoint: String,
    /// The OTLP protocol (default `http/protobuf`).
    pub otlp_protocol: OtlpProtocol,
    /// Skip TLS verification of the endpoint (gRPC only; default false).
    pub insecure: bool,
}

impl Default for TracingOptions {
    fn default() -> Self {
        TracingOptions {
            tracing_enabled: false,
            tracing_service_name: "openstack".into(),
            otel_exporter_otlp_endpoint: "http://localhost:4318".into(),
            otlp_protocol: OtlpProtocol::HttpProtobuf,
            insecure: false,
        }
    }
}

/// The keys of the group, as oslo names them.
pub const TRACING_OPTION_KEYS: [&str; 5] = [
    "tracing_enabled",
    "tracing_service_name",
    "otel_exporter_otlp_endpoint",
    "otlp_protocol",
    "insecure",
];

impl TracingOptions {
    /// The defaults with the group's `key = value` pairs applied in order.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut o = TracingOptions::default();
        for (key, value) in pairs {
            o.set(key.as_ref(), value.as_ref())?;
        }
        Ok(o)
    }

    /// The `[oslo_messaging_tracing]` group of oslo.config files (and `OS_OSLO_MESSAGING_TRACING__*`
    /// variables), by oslo.config's rules; a bad value is an error naming its file, line,
    /// section and key. Unknown keys are warned about and ignored.
    ///
    /// ```
    /// use msg::TracingOptions;
    /// use msg::config::ConfigFiles;
    /// let files = ConfigFiles::empty().text(
    ///     "nova.conf",
    ///     "[oslo_messaging_tracing]\ntracing_enabled = True\notlp_protocol = grpc\n",
    /// )?;
    /// let o = TracingOptions::from_files(&files)?;
    /// assert!(o.tracing_enabled);
    /// assert_eq!(o.otlp_protocol, msg::OtlpProtocol::Grpc);
    /// let bad = ConfigFiles::empty().text("nova.conf", "[oslo_messaging_tracing]\ninsecure = maybe\n")?;
    /// let err = TracingOptions::from_files(&bad).unwrap_err();
    /// assert!(err.to_string().contains("nova.conf:2"), "{err}");
    /// # Ok::<(), msg::Error>(())
    /// ```
    pub fn from_files(files: &ConfigFiles) -> Result<Self> {
        let mut o = TracingOptions::default();
        for (key, _) in files.keys(GROUP) {
            if !TRACING_OPTION_KEYS.contains(&key.as_str()) {
                tracing::warn!(key, "[oslo_messaging_tracing] has no such option: ignored");
            }
        }
        for key in TRACING_OPTION_KEYS {
            let Some(value) = files.get(GROUP, key)? else {
                continue;
            };
            let text = value.as_str().trim();
            match key {
                "tracing_enabled" => o.tracing_enabled = value.to_bool()?,
                "insecure" => o.insecure = value.to_bool()?,
                "otlp_protocol" => {
                    o.otlp_protocol = text.parse().map_err(|_| {
                        value.invalid(format!("wants http/protobuf or grpc, not `{text}`"))
                    })?;
                }
                "otel_exporter_otlp_endpoint" if text.is_empty() => {
                    return Err(value.invalid("wants a URL, not nothing").into());
                }
                "otel_exporter_otlp_endpoint" => o.otel_exporter_otlp_endpoint = text.into(),
                _ => o.tracing_service_name = text.into(),
            }
        }
        Ok(o)
    }

    /// Sets one option by its oslo name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let value = value.trim();
        match key {
            "tracing_enabled" => self.tracing_enabled = oslo_bool(key, value)?,
            "tracing_service_name" => self.tracing_service_name = value.to_string(),
            "otel_exporter_otlp_endpoint" => {
                if value.is_empty() {
                    return Err(Error::Config(
                        "[oslo_messaging_tracing] otel_exporter_otlp_endpoint is empty".into(),
                    ));
                }
                self.otel_exporter_otlp_endpoint = value.to_string();
            }
            "otlp_protocol" => self.otlp_protocol = value.parse()?,
            "insecure" => self.insecure = oslo_bool(key, value)?,
            other => tracing::warn!(
                key = other,
                "[oslo_messaging_tracing] has no such option: ignored"
            ),
        }
        Ok(())
    }
}

/// A boolean as oslo.config reads one.
fn oslo_bool(key: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(Error::Config(format!(
            "[oslo_messaging_tracing] {key}: `{value}` is not a boolean (true/false, yes/no, on/off, 1/0)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_read_and_bad_values_name_their_key() {
        let o = TracingOptions::from_pairs(TRACING_OPTION_KEYS.iter().map(|k| {
            let v = match *k {
                "tracing_enabled" | "insecure" => "yes",
                "otlp_protocol" => "grpc",
                _ => "x",
            };
            (*k, v)
        }))
        .unwrap();
        assert_eq!(
            o,
            TracingOptions {
                tracing_enabled: true,
                tracing_service_name: "x".into(),
                otel_exporter_otlp_endpoint: "x".into(),
                otlp_protocol: OtlpProtocol::Grpc,
                insecure: true,
            }
        );
        for (key, value) in [
            ("tracing_enabled", "2"),
            ("otlp_protocol", "http/json"),
            ("otel_exporter_otlp_endpoint", " "),
        ] {
            let err = TracingOptions::from_pairs([(key, value)]).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
        assert_eq!(
            TracingOptions::from_pairs([("tracing_enable", "true")]).unwrap(),
            TracingOptions::default()
        );
    }
}
