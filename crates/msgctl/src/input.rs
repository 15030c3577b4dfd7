//! Reading what the user typed: JSON arguments, contexts and payloads, the transport.

use msg::{Context, Target, Transport};
use serde_json::{Map, Value};

use crate::cli::Global;
use crate::errors::{CliError, Phase, classify};

/// Parses `what` (shown in the error) as any JSON value.
pub fn json_value(what: &str, text: &str) -> Result<Value, CliError> {
    serde_json::from_str(text)
        .map_err(|e| CliError::usage(format!("{what} is not valid JSON ({e}): {text}")))
}

/// Parses `what` as a JSON object; `None` is the empty object.
pub fn json_object(what: &str, text: Option<&str>) -> Result<Map<String, Value>, CliError> {
    let Some(text) = text else {
        return Ok(Map::new());
    };
    match json_value(what, text)? {
        Value::Object(m) => Ok(m),
        other => Err(CliError::usage(format!(
            "{what} must be a JSON object such as '{{\"key\": 1}}', not `{other}`"
        ))),
    }
}

/// The request context from `--context`.
pub fn context(text: Option<&str>) -> Result<Context, CliError> {
    json_object("--context", text).map(Context::from_map)
}

/// Sets the exchange of `--exchange` on a target.
pub fn with_exchange(target: Target, global: &Global) -> Target {
    match &global.exchange {
        Some(ex) => target.with_exchange(ex),
        None => target,
    }
}

/// Opens the transport of `--url` with the drivers compiled into this build.
pub async fn open_transport(global: &Global) -> Result<Transport, CliError> {
    Transport::open(&global.url)
        .await
        .map_err(|e| classify(&e, Phase::Connect))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_inputs() {
        assert!(json_object("ARGS", None).unwrap().is_empty());
        assert_eq!(json_object("ARGS", Some(r#"{"a": 1}"#)).unwrap()["a"], 1);
        let e = json_object("ARGS", Some("{a: 1}")).unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.line.starts_with("ARGS is not valid JSON"), "{}", e.line);
        let e = json_object("ARGS", Some("[1]")).unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.line.contains("must be a JSON object"), "{}", e.line);
        assert_eq!(json_value("PAYLOAD", "3").unwrap(), 3);
    }
}
