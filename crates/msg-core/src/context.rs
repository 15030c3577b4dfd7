//! The request context that travels with every message.

use serde_json::{Map, Value};

/// The request context: a JSON object that travels with a message as `_context_<key>`
/// entries (oslo's context packing). It also carries the W3C trace context (`traceparent`,
/// `tracestate`), which Python oslo.messaging 18.3 sends as `_context_traceparent`.
///
/// ```
/// use msg_core::Context;
/// use serde_json::json;
/// let ctx = Context::new()
///     .with("request_id", "req-1")
///     .with("auth_token", "SECRET")
///     .with_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
/// assert_eq!(ctx.get("request_id"), Some(&json!("req-1")));
/// // what a notifier sends: secrets blanked
/// assert_eq!(ctx.redacted().get("auth_token"), Some(&json!(null)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Context(Map<String, Value>);

/// The context key of the W3C `traceparent`.
pub const TRACEPARENT: &str = "traceparent";
/// The context key of the W3C `tracestate`.
pub const TRACESTATE: &str = "tracestate";

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// A context holding these entries.
    pub fn from_map(map: Map<String, Value>) -> Self {
        Context(map)
    }

    /// A context from a JSON value, which must be an object.
    pub fn from_value(value: Value) -> crate::Result<Self> {
        match value {
            Value::Object(m) => Ok(Context(m)),
            other => Err(crate::Error::malformed(format!(
                "a context must be a JSON object, not `{other}`"
            ))),
        }
    }

    /// This context with one more entry.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// Sets an entry.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        self.0.insert(key.into(), value.into())
    }

    /// An entry.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// An entry that is a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    /// Removes an entry.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.0.remove(key)
    }

    /// The entries.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The entries, owned.
    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }

    /// Whether the context has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The `request_id` entry, if it is a string.
    pub fn request_id(&self) -> Option<&str> {
        self.get_str("request_id")
    }

    /// The W3C `traceparent`, if any.
    pub fn traceparent(&self) -> Option<&str> {
        self.get_str(TRACEPARENT)
    }

    /// This context carrying a W3C `traceparent`.
    pub fn with_traceparent(self, traceparent: impl Into<String>) -> Self {
        self.with(TRACEPARENT, traceparent.into())
    }

    /// The W3C `tracestate`, if any.
    pub fn tracestate(&self) -> Option<&str> {
        self.get_str(TRACESTATE)
    }

    /// A copy with secrets blanked, as oslo's `RequestContext.redacted_copy()`: `auth_token`
    /// becomes null and entries whose key names a password or secret become `***`.
    pub fn redacted(&self) -> Context {
        let mut out = self.clone();
        for (k, v) in out.0.iter_mut() {
            if is_token_key(k) {
                if !v.is_null() {
                    *v = Value::Null;
                }
            } else if is_secret_key(k) && !v.is_null() {
                *v = Value::String("***".into());
            }
        }
        out
    }
}

fn is_token_key(k: &str) -> bool {
    matches!(k, "auth_token" | "auth_token_info")
}

/// Whether a context key names a secret that must never be logged or sent to notifications.
pub fn is_secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    is_token_key(&k) || k.contains("password") || k.contains("secret") || k.ends_with("_token")
}

impl From<Map<String, Value>> for Context {
    fn from(m: Map<String, Value>) -> Self {
        Context(m)
    }
}

impl FromIterator<(String, Value)> for Context {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Context(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redaction_blanks_secrets_only() {
        let ctx = Context::new()
            .with("auth_token", "t")
            .with("admin_password", "p")
            .with("user", "alice");
        let r = ctx.redacted();
        assert_eq!(r.get("auth_token"), Some(&Value::Null));
        assert_eq!(r.get("admin_password"), Some(&json!("***")));
        assert_eq!(r.get("user"), Some(&json!("alice")));
        assert_eq!(ctx.get("auth_token"), Some(&json!("t")));
    }

    #[test]
    fn from_value_needs_an_object() {
        assert!(Context::from_value(json!([1])).is_err());
        assert_eq!(Context::from_value(json!({"a": 1})).unwrap().len(), 1);
    }
}
