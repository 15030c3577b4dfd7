//! oslo.messaging's message bodies: the 2.0 envelope and the bare form, RPC requests and
//! replies, failures, notifications and context packing (see `WIRE.md`).
//!
//! Every driver that carries oslo-format JSON encodes and decodes through this module, so a
//! body made here is the body Python makes. Decoding hostile bytes returns
//! [`Error::Malformed`](crate::Error::Malformed), never panics.

use std::time::Duration;

use serde::de::{self, MapAccess};
use serde::ser::{SerializeMap, Serializer as _};
use serde_json::{Map, Value};

use serde_json::value::RawValue;

use crate::{Context, Error, Notification, Payload, Priority, RemoteError, Result};

mod bounds;
mod compression;
mod fields;

pub(crate) use fields::Str;

pub use bounds::{MAX_CALL_MONITOR_TIMEOUT, MAX_NAME_BYTES, MAX_ROUTING_BYTES};
pub use compression::{Compression, DEFAULT_MAX_DECOMPRESSED_BYTES};

/// The envelope's version key.
pub const VERSION_KEY: &str = "oslo.version";
/// The envelope's message key.
pub const MESSAGE_KEY: &str = "oslo.message";
/// The envelope version we send.
pub const ENVELOPE_VERSION: &str = "2.0";
const CONTEXT_PREFIX: &str = "_context_";

/// Whether a body is wrapped in the 2.0 envelope or sent bare (1.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnvelopeVersion {
    /// The inner object itself (the `messaging` notify driver).
    V1,
    /// `{"oslo.version": "2.0", "oslo.message": "<inner JSON>"}` (RPC, `messagingv2`).
    #[default]
    V2,
}

/// A fresh `_unique_id` / `_msg_id`: a uuid4 in hex without dashes.
pub fn new_unique_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// What an RPC request asks for: a method with keyword arguments, optionally in a namespace
/// at a version.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RpcRequest {
    /// The method's name.
    pub method: String,
    /// The keyword arguments: a JSON object, kept as the text it came as until the handler
    /// deserializes its arguments from it.
    pub args: Payload,
    /// The endpoint namespace, when set.
    pub namespace: Option<String>,
    /// The requested version, when set (`None` asks for `1.0`).
    pub version: Option<String>,
}

impl RpcRequest {
    /// A request for `method` with `args` (a JSON object: a `Map`, or a [`Payload`] holding
    /// one).
    pub fn new(method: impl Into<String>, args: impl Into<Payload>) -> Self {
        RpcRequest {
            method: method.into(),
            args: args.into(),
            namespace: None,
            version: None,
        }
    }
}

/// The reply routing of a call: what a cast lacks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallInfo {
    /// `_msg_id`: correlates the replies with the call.
    pub msg_id: String,
    /// `_reply_q`: where replies go.
    pub reply_q: String,
    /// `_timeout`: the call-monitor timeout (not the call timeout), or none. Decoded, it is
    /// finite and at most [`MAX_CALL_MONITOR_TIMEOUT`].
    pub call_monitor_timeout: Option<Duration>,
}

/// An RPC request as it travels: context, request, `_unique_id` and, for a call, reply routing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WireRequest {
    /// The request context.
    pub context: Context,
    /// What is asked.
    pub request: RpcRequest,
    /// `_unique_id`, for dedup (empty when the sender sent none).
    pub unique_id: String,
    /// Reply routing; `None` for a cast.
    pub call: Option<CallInfo>,
}

impl WireRequest {
    /// Encodes the request in the 2.0 envelope.
    ///
    /// ```
    /// use msg_core::codec::{RpcRequest, WireRequest};
    /// let mut args = serde_json::Map::new();
    /// args.insert("a".into(), 2.into());
    /// let req = WireRequest { request: RpcRequest::new("add", args), unique_id: "u1".into(), ..Default::default() };
    /// let bytes = req.encode().unwrap();
    /// assert_eq!(WireRequest::decode(&bytes).unwrap(), req);
    /// ```
    pub fn encode(&self) -> Result<Vec<u8>> {
        encode_request(
            &self.context,
            &self.request,
            &self.unique_id,
            self.call.as_ref(),
        )
    }

    /// Decodes a request, enveloped or bare, and checks its values against the bounds of
    /// this module (a value out of bounds is [`Error::Malformed`]).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let f: RequestFields = fields::decode(bytes)?;
        let method = f
            .method
            .ok_or_else(|| Error::malformed("a request without `method`"))?;
        bounds::name("method", &method)?;
        for (field, value) in [("namespace", &f.namespace), ("version", &f.version)] {
            if let Some(v) = value {
                bounds::name(field, v)?;
            }
        }
        if let Some(u) = &f.unique_id {
            bounds::unique_id(u)?;
        }
        let call = match f.msg_id {
            Some(msg_id) => {
                bounds::msg_id(&msg_id)?;
                let reply_q = f.reply_q.unwrap_or_default();
                bounds::reply_q(&reply_q)?;
                Some(CallInfo {
                    msg_id,
                    reply_q,
                    call_monitor_timeout: bounds::call_monitor_timeout(f.timeout)?,
                })
            }
            None => None,
        };
        Ok(WireRequest {
            context: Context::from_map(f.context),
            request: RpcRequest {
                method,
                args: f
                    .args
                    .map_or_else(|| Payload::from(Map::new()), Payload::from_raw),
                namespace: f.namespace,
                version: f.version,
            },
            unique_id: f.unique_id.unwrap_or_default(),
            call,
        })
    }
}

#[derive(Default)]
struct RequestFields {
    method: Option<String>,
    args: Option<Box<RawValue>>,
    namespace: Option<String>,
    version: Option<String>,
    unique_id: Option<String>,
    msg_id: Option<String>,
    reply_q: Option<String>,
    timeout: Option<f64>,
    context: Map<String, Value>,
}

impl fields::Fields for RequestFields {
    fn field<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "method" => self.method = fields::opt_string(key, map)?,
            "args" => {
                // kept as text; checked to be an object (or null: no arguments)
                let raw = map.next_value::<Box<RawValue>>()?;
                let text = raw.get().trim_start();
                self.args = if text.starts_with('{') {
                    Some(raw)
                } else if text.starts_with("null") {
                    None
                } else {
                    return Err(de::Error::custom("`args` is not an object"));
                }
            }
            "namespace" => self.namespace = fields::opt_string(key, map)?,
            "version" => {
                self.version = match map.next_value::<Value>()? {
                    Value::Null => None,
                    Value::String(s) => Some(s),
                    // Python allows a float-ish version; keep its text
                    Value::Number(n) => Some(n.to_string()),
                    _ => return Err(de::Error::custom("`version` is not a string")),
                }
            }
            "_unique_id" => self.unique_id = fields::opt_string(key, map)?,
            "_msg_id" => self.msg_id = fields::opt_string(key, map)?,
            "_reply_q" => self.reply_q = fields::opt_string(key, map)?,
            "_timeout" => {
                self.timeout = map
                    .next_value::<Option<f64>>()
                    .map_err(|e| de::Error::custom(format!("`_timeout` is not a number: {e}")))?
            }
            k => return fields::context_entry(k, map, &mut self.context),
        }
        Ok(true)
    }
}

/// An RPC reply (or a call-monitor heartbeat) as it travels.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WireReply {
    /// The `_msg_id` of the call answered.
    pub msg_id: String,
    /// A fresh `_unique_id`.
    pub unique_id: String,
    /// The result (null for failures and heartbeats).
    pub result: Value,
    /// The failure, if the call failed.
    pub failure: Option<Failure>,
    /// `true` on the last message for a call; `false` on a heartbeat (and on the first half
    /// of the legacy two-message form).
    pub ending: bool,
}

impl WireReply {
    /// The final reply carrying a result.
    pub fn result(msg_id: impl Into<String>, result: Value) -> Self {
        WireReply {
            msg_id: msg_id.into(),
            unique_id: new_unique_id(),
            result,
            failure: None,
            ending: true,
        }
    }

    /// The final reply carrying a failure.
    pub fn failure(msg_id: impl Into<String>, failure: Failure) -> Self {
        WireReply {
            msg_id: msg_id.into(),
            unique_id: new_unique_id(),
            result: Value::Null,
            failure: Some(failure),
            ending: true,
        }
    }

    /// A call-monitor heartbeat: result and failure null, `ending: false`.
    pub fn heartbeat(msg_id: impl Into<String>) -> Self {
        WireReply {
            msg_id: msg_id.into(),
            unique_id: new_unique_id(),
            result: Value::Null,
            failure: None,
            ending: false,
        }
    }

    /// Whether this is a heartbeat (nothing in it, not ending).
    pub fn is_heartbeat(&self) -> bool {
        !self.ending && self.failure.is_none() && self.result.is_null()
    }

    /// Encodes the reply in the 2.0 envelope.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut inner = Vec::with_capacity(160);
        {
            let mut ser = serde_json::Serializer::new(&mut inner);
            let mut map = ser.serialize_map(Some(5))?;
            map.serialize_entry("result", &self.result)?;
            match &self.failure {
                Some(f) => map.serialize_entry("failure", &f.to_json_string()?)?,
                None => map.serialize_entry("failure", &Value::Null)?,
            }
            map.serialize_entry("ending", &self.ending)?;
            map.serialize_entry("_msg_id", &self.msg_id)?;
            map.serialize_entry("_unique_id", &self.unique_id)?;
            map.end()?;
        }
        envelope(&inner)
    }

    /// Decodes a reply, enveloped or bare, and checks its ids.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let f: ReplyFields = fields::decode(bytes)?;
        let msg_id = f
            .msg_id
            .ok_or_else(|| Error::malformed("a reply without `_msg_id`"))?;
        bounds::msg_id(&msg_id)?;
        if let Some(u) = &f.unique_id {
            bounds::unique_id(u)?;
        }
        Ok(WireReply {
            msg_id,
            unique_id: f.unique_id.unwrap_or_default(),
            result: f.result,
            failure: f.failure,
            ending: f.ending,
        })
    }
}

#[derive(Default)]
struct ReplyFields {
    msg_id: Option<String>,
    unique_id: Option<String>,
    result: Value,
    failure: Option<Failure>,
    ending: bool,
}

impl fields::Fields for ReplyFields {
    fn field<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "_msg_id" => self.msg_id = fields::opt_string(key, map)?,
            "_unique_id" => self.unique_id = fields::opt_string(key, map)?,
            "result" => self.result = map.next_value()?,
            "failure" => {
                self.failure = match map.next_value::<Value>()? {
                    Value::Null => None,
                    Value::String(s) => Some(Failure::from_json_str(&s)),
                    Value::Object(m) => Some(Failure::from_map(m)),
                    _ => return Err(de::Error::custom("`failure` is not a string")),
                }
            }
            "ending" => {
                self.ending = map
                    .next_value::<Option<bool>>()
                    .map_err(|e| de::Error::custom(format!("`ending` is not a boolean: {e}")))?
                    .unwrap_or(false)
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A serialized exception: oslo's `{class, module, message, tb, args, kwargs}`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Failure {
    /// The exception class name.
    pub class: String,
    /// The module of the class (Python's `exceptions` is read as `builtins`).
    pub module: String,
    /// The message.
    pub message: String,
    /// The traceback lines.
    pub tb: Vec<String>,
    /// Positional arguments of the exception.
    pub args: Vec<Value>,
    /// Keyword arguments of the exception.
    pub kwargs: Map<String, Value>,
}

/// The module NoSuchMethod and UnsupportedVersion travel with.
pub const DISPATCHER_MODULE: &str = "oslo_messaging.rpc.dispatcher";

impl Failure {
    /// A failure with a class, module and message (args = `[message]`, as Python's).
    pub fn new(
        class: impl Into<String>,
        module: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let message = message.into();
        Failure {
            class: class.into(),
            module: module.into(),
            args: vec![Value::String(message.clone())],
            message,
            tb: Vec::new(),
            kwargs: Map::new(),
        }
    }

    /// The JSON string that travels in a reply's `failure`.
    pub fn to_json_string(&self) -> Result<String> {
        let v = serde_json::json!({
            "class": self.class,
            "module": self.module,
            "message": self.message,
            "tb": self.tb,
            "args": self.args,
            "kwargs": self.kwargs,
        });
        Ok(serde_json::to_string(&v)?)
    }

    /// Reads a failure string. A string that isn't a JSON object is kept as the message of a
    /// `RemoteError` so nothing the peer said is lost.
    pub fn from_json_str(s: &str) -> Self {
        match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Self::from_map(m),
            _ => Failure::new("RemoteError", "", s),
        }
    }

    fn from_map(mut m: Map<String, Value>) -> Self {
        let mut take = |k: &str| match m.remove(k) {
            Some(Value::String(s)) => s,
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let class = take("class");
        let mut module = take("module");
        let message = take("message");
        if module == "exceptions" {
            module = "builtins".into();
        }
        let tb = match m.remove("tb") {
            Some(Value::Array(lines)) => lines
                .into_iter()
                .map(|l| match l {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect(),
            Some(Value::String(s)) => s.lines().map(|l| format!("{l}\n")).collect(),
            _ => Vec::new(),
        };
        let args = match m.remove("args") {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        };
        let kwargs = match m.remove("kwargs") {
            Some(Value::Object(k)) => k,
            _ => Map::new(),
        };
        Failure {
            class,
            module,
            message,
            tb,
            args,
            kwargs,
        }
    }

    /// What a client surfaces: the dispatcher's NoSuchMethod and UnsupportedVersion become
    /// their typed errors, anything else a [`RemoteError`].
    pub fn into_error(self, request: Option<&RpcRequest>) -> Error {
        if self.module == DISPATCHER_MODULE {
            let namespace = request.and_then(|r| r.namespace.clone());
            match self.class.as_str() {
                "NoSuchMethod" => {
                    let method = request
                        .map(|r| r.method.clone())
                        .or_else(|| {
                            self.kwargs
                                .get("method")
                                .and_then(Value::as_str)
                                .map(str::to_string)
                        })
                        .unwrap_or_default();
                    return Error::NoSuchMethod { method, namespace };
                }
                "UnsupportedVersion" => {
                    let version = request
                        .and_then(|r| r.version.clone())
                        .or_else(|| {
                            self.kwargs
                                .get("version")
                                .and_then(Value::as_str)
                                .map(str::to_string)
                        })
                        .unwrap_or_else(|| "1.0".into());
                    return Error::UnsupportedVersion { version, namespace };
                }
                _ => {}
            }
        }
        Error::Remote(RemoteError {
            class: self.class,
            module: self.module,
            message: self.message,
            traceback: self.tb,
        })
    }
}

/// A notification as it travels: context (already redacted by the notifier), fields and
/// `_unique_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct WireNotification {
    /// The context.
    pub context: Context,
    /// The notification.
    pub notification: Notification,
    /// `_unique_id`, for dedup (empty when the sender sent none).
    pub unique_id: String,
}

impl WireNotification {
    /// Encodes the notification, in the envelope (`V2`, `messagingv2`) or bare (`V1`, `messaging`).
    pub fn encode(&self, version: EnvelopeVersion) -> Result<Vec<u8>> {
        encode_notification(&self.context, &self.notification, &self.unique_id, version)
    }

    /// Decodes a notification, enveloped or bare, and checks its names and ids.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let f: NotificationFields = fields::decode(bytes)?;
        for (field, value) in [
            ("message_id", &f.message_id),
            ("publisher_id", &f.publisher_id),
            ("event_type", &f.event_type),
            ("timestamp", &f.timestamp),
        ] {
            if let Some(v) = value {
                bounds::name(field, v)?;
            }
        }
        if let Some(u) = &f.unique_id {
            bounds::unique_id(u)?;
        }
        let priority = f
            .priority
            .ok_or_else(|| Error::malformed("a notification without `priority`"))?
            .map_err(|e| Error::malformed(e.to_string()))?;
        Ok(WireNotification {
            context: Context::from_map(f.context),
            notification: Notification {
                message_id: f.message_id.unwrap_or_default(),
                publisher_id: f.publisher_id.unwrap_or_default(),
                event_type: f
                    .event_type
                    .ok_or_else(|| Error::malformed("a notification without `event_type`"))?,
                priority,
                payload: f.payload.map_or_else(Payload::default, Payload::from_raw),
                timestamp: f.timestamp.unwrap_or_default(),
            },
            unique_id: f.unique_id.unwrap_or_default(),
        })
    }
}

#[derive(Default)]
struct NotificationFields {
    message_id: Option<String>,
    publisher_id: Option<String>,
    event_type: Option<String>,
    priority: Option<std::result::Result<Priority, crate::UnknownPriority>>,
    payload: Option<Box<RawValue>>,
    timestamp: Option<String>,
    unique_id: Option<String>,
    context: Map<String, Value>,
}

impl fields::Fields for NotificationFields {
    fn field<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "message_id" => self.message_id = fields::opt_string(key, map)?,
            "publisher_id" => self.publisher_id = fields::opt_string(key, map)?,
            "event_type" => self.event_type = fields::opt_string(key, map)?,
            "priority" => {
                // parsed where it is read: no copy of the text
                self.priority = map
                    .next_value::<Option<Str<'de>>>()
                    .map_err(|e| de::Error::custom(format!("`priority` is not a string: {e}")))?
                    .map(|p| p.0.parse::<Priority>())
            }
            "payload" => self.payload = Some(map.next_value()?),
            "timestamp" => self.timestamp = fields::opt_string(key, map)?,
            "_unique_id" => self.unique_id = fields::opt_string(key, map)?,
            k => return fields::context_entry(k, map, &mut self.context),
        }
        Ok(true)
    }
}

/// Encodes an RPC request in the 2.0 envelope from borrowed parts (what drivers call on
/// every send, so nothing is cloned).
pub fn encode_request(
    context: &Context,
    request: &RpcRequest,
    unique_id: &str,
    call: Option<&CallInfo>,
) -> Result<Vec<u8>> {
    let mut inner = Vec::with_capacity(160);
    {
        let mut ser = serde_json::Serializer::new(&mut inner);
        let mut map = ser.serialize_map(None)?;
        map.serialize_entry("method", &request.method)?;
        if request.args.is_null() {
            // no arguments travel as an empty object, as Python sends them
            map.serialize_entry("args", &Map::new())?;
        } else {
            map.serialize_entry("args", &request.args)?;
        }
        if let Some(ns) = &request.namespace {
            map.serialize_entry("namespace", ns)?;
        }
        if let Some(v) = &request.version {
            map.serialize_entry("version", v)?;
        }
        if let Some(call) = call {
            map.serialize_entry("_msg_id", &call.msg_id)?;
            map.serialize_entry("_reply_q", &call.reply_q)?;
            map.serialize_entry(
                "_timeout",
                &seconds_value(call.call_monitor_timeout.map(|d| d.as_secs_f64())),
            )?;
        }
        map.serialize_entry("_unique_id", unique_id)?;
        pack_context(&mut map, context)?;
        map.end()?;
    }
    envelope(&inner)
}

/// Encodes a notification from borrowed parts, enveloped (`V2`) or bare (`V1`).
pub fn encode_notification(
    context: &Context,
    n: &Notification,
    unique_id: &str,
    version: EnvelopeVersion,
) -> Result<Vec<u8>> {
    let mut inner = Vec::with_capacity(256);
    {
        let mut ser = serde_json::Serializer::new(&mut inner);
        let mut map = ser.serialize_map(None)?;
        map.serialize_entry("message_id", &n.message_id)?;
        map.serialize_entry("publisher_id", &n.publisher_id)?;
        map.serialize_entry("event_type", &n.event_type)?;
        map.serialize_entry("priority", n.priority.wire_name())?;
        map.serialize_entry("payload", &n.payload)?;
        map.serialize_entry("timestamp", &n.timestamp)?;
        map.serialize_entry("_unique_id", unique_id)?;
        pack_context(&mut map, context)?;
        map.end()?;
    }
    match version {
        EnvelopeVersion::V1 => Ok(inner),
        EnvelopeVersion::V2 => envelope(&inner),
    }
}

/// Seconds as Python sends them: a whole number as an integer (`2`, not `2.0`).
fn seconds_value(s: Option<f64>) -> Value {
    match s {
        Some(t) if t.fract() == 0.0 && t.abs() < 1e15 => Value::from(t as i64),
        Some(t) => serde_json::Number::from_f64(t).map_or(Value::Null, Value::Number),
        None => Value::Null,
    }
}

/// Writes every context entry as `_context_<key>` into a map being serialized.
pub fn pack_context<M: SerializeMap>(map: &mut M, ctx: &Context) -> Result<(), M::Error> {
    let mut key = String::with_capacity(32);
    for (k, v) in ctx.as_map() {
        key.clear();
        key.push_str(CONTEXT_PREFIX);
        key.push_str(k);
        map.serialize_entry(&key, v)?;
    }
    Ok(())
}

/// Wraps an inner JSON object (already serialized) in the 2.0 envelope.
pub fn envelope(inner: &[u8]) -> Result<Vec<u8>> {
    let inner =
        std::str::from_utf8(inner).map_err(|e| Error::malformed(format!("inner body: {e}")))?;
    let mut out = Vec::with_capacity(inner.len() + inner.len() / 4 + 48);
    let mut ser = serde_json::Serializer::new(&mut out);
    let mut map = ser.serialize_map(Some(2))?;
    map.serialize_entry(VERSION_KEY, ENVELOPE_VERSION)?;
    map.serialize_entry(MESSAGE_KEY, inner)?;
    map.end()?;
    Ok(out)
}

/// Decodes a body into its inner JSON object: unwraps the envelope when both keys are there
/// (refusing versions other than 2.x), else takes the object as it is.
pub fn decode_object(bytes: &[u8]) -> Result<Map<String, Value>> {
    let f: AnyFields = fields::decode(bytes)?;
    Ok(f.0)
}

/// Every key, kept: the generic inner object.
#[derive(Default)]
struct AnyFields(Map<String, Value>);

impl fields::Fields for AnyFields {
    fn field<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        self.0.insert(key.to_string(), map.next_value()?);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn envelope_versions() {
        let body = br#"{"oslo.version": "3.0", "oslo.message": "{}"}"#;
        assert!(matches!(decode_object(body), Err(Error::Malformed { .. })));
        let body = br#"{"oslo.version": "2.0", "oslo.message": "{\"a\": 1}"}"#;
        assert_eq!(decode_object(body).unwrap()["a"], json!(1));
        // only one of the two keys: taken as it is
        let body = br#"{"oslo.version": "2.0", "a": 1}"#;
        assert_eq!(decode_object(body).unwrap()["a"], json!(1));
        assert!(decode_object(b"[1]").is_err());
        assert!(decode_object(b"").is_err());
    }

    #[test]
    fn heartbeat_and_legacy_replies() {
        let hb = WireReply::heartbeat("m1");
        let back = WireReply::decode(&hb.encode().unwrap()).unwrap();
        assert!(back.is_heartbeat());
        let legacy = WireReply::decode(br#"{"_msg_id": "m", "result": 5}"#).unwrap();
        assert!(!legacy.ending && !legacy.is_heartbeat());
    }

    #[test]
    fn failures_map_to_typed_errors() {
        let f = Failure::new("NoSuchMethod", DISPATCHER_MODULE, "nope");
        let req = RpcRequest::new("frob", Map::new());
        assert!(
            matches!(f.into_error(Some(&req)), Error::NoSuchMethod { method, .. } if method == "frob")
        );
        let f = Failure::from_json_str(
            r#"{"class": "KeyError", "module": "exceptions", "message": "k"}"#,
        );
        assert_eq!(f.module, "builtins");
        assert!(matches!(f.into_error(None), Error::Remote(r) if r.class == "KeyError"));
        let f = Failure::from_json_str("not json");
        assert_eq!(f.message, "not json");
    }

    fn call_body(extra: Value) -> Vec<u8> {
        let mut inner = json!({"method": "echo", "args": {}, "_msg_id": "abc123",
                               "_reply_q": "reply_abc", "_unique_id": "u1"});
        if let (Some(m), Value::Object(e)) = (inner.as_object_mut(), extra) {
            m.extend(e);
        }
        serde_json::to_vec(&json!({"oslo.version": "2.0", "oslo.message": inner.to_string()}))
            .unwrap()
    }

    fn decoded_cmt(timeout: Value) -> Result<Option<Duration>> {
        WireRequest::decode(&call_body(json!({ "_timeout": timeout })))
            .map(|r| r.call.and_then(|c| c.call_monitor_timeout))
    }

    #[test]
    fn call_monitor_timeouts_from_the_wire_are_bounded() {
        assert_eq!(
            decoded_cmt(json!(1e20)).unwrap(),
            Some(MAX_CALL_MONITOR_TIMEOUT)
        );
        assert_eq!(decoded_cmt(json!(2)).unwrap(), Some(Duration::from_secs(2)));
        assert_eq!(decoded_cmt(json!(null)).unwrap(), None);
        assert_eq!(decoded_cmt(json!(0)).unwrap(), None);
        assert!(decoded_cmt(json!(1e-6)).unwrap().is_some());
        for bad in [json!(-1), json!(-0.001), json!("5"), json!([1])] {
            let e = decoded_cmt(bad.clone()).unwrap_err();
            assert!(matches!(e, Error::Malformed { .. }), "{bad}: {e}");
            assert!(e.to_string().contains("_timeout"), "{bad}: {e}");
        }
        // JSON has no NaN or infinity: such a body is not JSON at all
        let body = br#"{"method": "echo", "_msg_id": "m", "_timeout": NaN}"#;
        assert!(WireRequest::decode(body).is_err());
        let body = br#"{"method": "echo", "_msg_id": "m", "_timeout": 1e400}"#;
        assert!(WireRequest::decode(body).is_err());
    }

    #[test]
    fn routing_values_from_the_wire_are_bounded() {
        let long_q = "q".repeat(300);
        for (extra, field) in [
            (json!({ "_reply_q": long_q }), "_reply_q"),
            (json!({"_reply_q": "a b"}), "_reply_q"),
            (json!({"_msg_id": "a.b"}), "_msg_id"),
            (json!({"_msg_id": ""}), "_msg_id"),
            (json!({"_unique_id": "a\r\nNats-Msg-Id: x"}), "_unique_id"),
            (json!({"method": "m".repeat(MAX_NAME_BYTES + 1)}), "method"),
            (json!({"namespace": "a\u{0}"}), "namespace"),
        ] {
            let e = WireRequest::decode(&call_body(extra)).unwrap_err();
            assert!(
                matches!(&e, Error::Malformed { reason } if reason.contains(field)),
                "{field}: {e}"
            );
        }
        assert!(WireReply::decode(br#"{"_msg_id": "a>b", "result": 1}"#).is_err());
        let n = json!({"event_type": "e".repeat(2000), "priority": "INFO", "payload": {}});
        assert!(WireNotification::decode(&serde_json::to_vec(&n).unwrap()).is_err());
    }

    #[test]
    fn arguments_and_payloads_stay_the_text_they_came_as() {
        // Python's spacing is kept, and what is kept is what goes out again
        let body = br#"{"method": "echo", "args": {"a": [1, 2], "b": "x"}, "_unique_id": "u1"}"#;
        let req = WireRequest::decode(body).unwrap();
        assert_eq!(req.request.args.raw(), r#"{"a": [1, 2], "b": "x"}"#);
        assert_eq!(req.request.args, json!({"b": "x", "a": [1, 2]}));
        let again = WireRequest::decode(&req.encode().unwrap()).unwrap();
        assert_eq!(again.request.args.raw(), r#"{"a": [1, 2], "b": "x"}"#);
        // no arguments (null) are an empty object, and go out as one
        let req = WireRequest::decode(br#"{"method": "ping", "args": null}"#).unwrap();
        assert!(req.request.args.is_empty_object());
        let out = String::from_utf8(req.encode().unwrap()).unwrap();
        assert!(out.contains(r#"\"args\":{}"#), "{out}");
        // arguments that are not an object are refused, naming the field
        for args in ["[1]", "\"a\"", "3", "true"] {
            let body = format!(r#"{{"method": "m", "args": {args}}}"#);
            let e = WireRequest::decode(body.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains("`args`"), "{args}: {e}");
        }
        let n = WireNotification::decode(
            br#"{"event_type": "e", "priority": "WARN", "payload": {"k": "v\u00e9"}}"#,
        )
        .unwrap();
        assert_eq!(n.notification.priority, Priority::Warn);
        assert_eq!(n.notification.payload.raw(), r#"{"k": "v\u00e9"}"#);
        assert_eq!(n.notification.payload.get("k"), Some(json!("vé")));
        let missing = WireNotification::decode(br#"{"event_type": "e", "priority": "info"}"#);
        assert!(missing.unwrap().notification.payload.is_null());
        let e = WireNotification::decode(br#"{"event_type": "e", "priority": "loud"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("loud"), "{e}");
    }

    #[test]
    fn an_envelope_whose_message_is_not_a_string_says_so() {
        let body = br#"{"oslo.version": "2.0", "oslo.message": {"method": "echo"}}"#;
        let e = WireRequest::decode(body).unwrap_err().to_string();
        assert!(e.contains("`oslo.message` is an object"), "{e}");
        let body = br#"{"oslo.version": 2, "oslo.message": "{}"}"#;
        let e = WireRequest::decode(body).unwrap_err().to_string();
        assert!(e.contains("`oslo.version` is a number"), "{e}");
    }

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[ -~\u{e9}\u{4e2d}]{0,12}".prop_map(Value::from),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        json_leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn json_map() -> impl Strategy<Value = Map<String, Value>> {
        prop::collection::btree_map("[a-z][a-z_]{0,8}", json_value(), 0..4)
            .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = WireRequest::decode(&bytes);
            let _ = WireReply::decode(&bytes);
            let _ = WireNotification::decode(&bytes);
        }

        #[test]
        fn decoding_arbitrary_json_never_panics(v in json_value()) {
            let bytes = serde_json::to_vec(&v).unwrap();
            let _ = WireRequest::decode(&bytes);
            let _ = WireReply::decode(&bytes);
            let _ = WireNotification::decode(&bytes);
            let env = serde_json::to_vec(&json!({"oslo.version": "2.0", "oslo.message": v.to_string()})).unwrap();
            let _ = WireRequest::decode(&env);
            let _ = WireNotification::decode(&env);
        }

        #[test]
        fn request_round_trip(method in "[a-z_]{1,10}", args in json_map(), ctx in json_map(),
                              ns in proptest::option::of("[a-z]{1,5}"), call in any::<bool>(),
                              cmt in proptest::option::of(1u32..400)) {
            let req = WireRequest {
                context: Context::from_map(ctx),
                request: RpcRequest { method, args: args.into(), namespace: ns, version: Some("1.3".into()) },
                unique_id: new_unique_id(),
                call: call.then(|| CallInfo { msg_id: new_unique_id(), reply_q: "reply_x".into(),
                                              call_monitor_timeout: cmt.map(|s| Duration::from_millis(u64::from(s) * 250)) }),
            };
            prop_assert_eq!(WireRequest::decode(&req.encode().unwrap()).unwrap(), req);
        }

        #[test]
        fn reply_round_trip(result in json_value(), fail in any::<bool>(), ending in any::<bool>()) {
            let mut r = WireReply::result("m", result);
            r.ending = ending;
            if fail {
                r.result = Value::Null;
                r.failure = Some(Failure::new("E", "m", "x"));
            }
            prop_assert_eq!(WireReply::decode(&r.encode().unwrap()).unwrap(), r);
        }

        #[test]
        fn notification_round_trip(payload in json_value(), ctx in json_map(), v2 in any::<bool>()) {
            let n = WireNotification {
                context: Context::from_map(ctx),
                notification: Notification::new("pub", "ev.t", Priority::Warn, payload),
                unique_id: new_unique_id(),
            };
            let version = if v2 { EnvelopeVersion::V2 } else { EnvelopeVersion::V1 };
            prop_assert_eq!(WireNotification::decode(&n.encode(version).unwrap()).unwrap(), n);
        }
    }
}
