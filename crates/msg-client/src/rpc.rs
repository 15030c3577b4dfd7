//! The RPC client.

use std::sync::Arc;
use std::time::Duration;

use msg_core::{
    Context, Error, JsonSerializer, Payload, Result, Retry, Role, RpcRequest, SendOptions,
    Serializer, Target, Transport, Version, trace_context,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::metrics;
use crate::tracing_spans;

/// Calls and casts RPC methods on a target. Cheap to clone; [`RpcClient::prepare`] returns a
/// copy to modify (server, namespace, version, timeout, ...).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use msg_client::RpcClient;
/// use msg_core::{DriverRegistry, Target, Context};
/// let transport = DriverRegistry::new().with(msg_driver_memory::factory()).open("memory://client-doc").await.unwrap();
/// let client = RpcClient::new(transport, Target::topic("calc")).version_cap("1.2");
/// assert!(client.can_send_version(Some("1.1")));
/// assert!(!client.prepare().version("1.3").can_send_version(None));
/// assert!(!client.can_send_version(None), "under a cap, a message must carry a version");
/// // nobody serves `calc`: the in-process broker says so at once
/// let client = client.prepare().version("1.1");
/// let err = client.call::<i64>(&Context::new(), "add", serde_json::json!({"a": 1})).await.unwrap_err();
/// assert!(matches!(err, msg_core::Error::NoResponders { .. }));
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct RpcClient {
    transport: Transport,
    target: Target,
    timeout: Option<Duration>,
    call_monitor_timeout: Option<Duration>,
    version_cap: Option<String>,
    retry: Retry,
    at_least_once: bool,
    serializer: Arc<dyn Serializer>,
}

impl RpcClient {
    /// A client for a target (it needs a topic). Its call timeout is the transport's
    /// `rpc_response_timeout` (60 s unless the transport was given another), as oslo's
    /// clients inherit it; [`RpcClient::timeout`] sets its own.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use msg_client::RpcClient;
    /// use msg_core::{DriverRegistry, Target};
    /// let transport = DriverRegistry::new().with(msg_driver_memory::factory()).open("memory://timeout-doc").await.unwrap();
    /// assert_eq!(RpcClient::new(transport.clone(), Target::topic("t")).call_timeout(), Some(Duration::from_secs(60)));
    /// let patient = transport.with_rpc_response_timeout(Duration::from_secs(300));
    /// assert_eq!(RpcClient::new(patient, Target::topic("t")).call_timeout(), Some(Duration::from_secs(300)));
    /// # });
    /// ```
    pub fn new(transport: impl Into<Transport>, target: Target) -> Self {
        let transport = transport.into();
        RpcClient {
            timeout: transport.rpc_response_timeout(),
            transport,
            target,
            call_monitor_timeout: None,
            version_cap: None,
            retry: Retry::Forever,
            at_least_once: false,
            serializer: Arc::new(JsonSerializer),
        }
    }

    /// A copy to modify, as oslo's `prepare()`: the setters below return it.
    pub fn prepare(&self) -> Self {
        self.clone()
    }

    /// The target messages go to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sets the exchange.
    pub fn exchange(mut self, exchange: impl Into<String>) -> Self {
        self.target.exchange = Some(exchange.into());
        self
    }

    /// Sets the topic.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.target.topic = Some(topic.into());
        self
    }

    /// Sets the namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.target.namespace = Some(namespace.into());
        self
    }

    /// Sets the requested version.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.target.version = Some(version.into());
        self
    }

    /// Directs messages at one server.
    pub fn server(mut self, server: impl Into<String>) -> Self {
        self.target.server = Some(server.into());
        self
    }

    /// Sends casts to every server of the topic (a call with fanout is an error).
    pub fn fanout(mut self, fanout: bool) -> Self {
        self.target.fanout = fanout;
        self
    }

    /// The call timeout (`None`: wait forever).
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = timeout.into();
        self
    }

    /// The call timeout now (`None`: calls wait forever).
    pub fn call_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The call-monitor timeout: servers heartbeat every half of it, and a call whose server
    /// stops heartbeating fails after about this long (the timeout still bounds the call).
    /// Servers (oslo's and msg's) follow oslo's rule, [`msg_core::heartbeat_interval`]: under
    /// 2 s they send no heartbeats at all, so every call taking longer fails; such a value is
    /// warned about here.
    pub fn call_monitor_timeout(mut self, cmt: impl Into<Option<Duration>>) -> Self {
        self.call_monitor_timeout = cmt.into();
        if let Some(cmt) = self.call_monitor_timeout
            && msg_core::heartbeat_interval(cmt).is_none()
        {
            tracing::warn!(
                call_monitor_timeout = ?cmt,
                "a call-monitor timeout under 2 s gets no heartbeats from servers (oslo's rule): \
                 every call that takes longer than it fails"
            );
        }
        self
    }

    /// The highest version this client may send.
    pub fn version_cap(mut self, cap: impl Into<String>) -> Self {
        self.version_cap = Some(cap.into());
        self
    }

    /// Reconnect attempts for one publish.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Fail with `Undeliverable` when nothing is bound to the destination.
    pub fn at_least_once(mut self, yes: bool) -> Self {
        self.at_least_once = yes;
        self
    }

    /// The serializer applied to the context and each argument, and to results.
    pub fn serializer(mut self, serializer: Arc<dyn Serializer>) -> Self {
        self.serializer = serializer;
        self
    }

    /// oslo's rule: with a cap, a version may be sent when the cap has the same major and a
    /// minor at least as high (with equal minors, a revision at least as high). `None` checks
    /// the target's version. As in oslo, a message without a version can't be sent under a
    /// cap: a capped client must say which version it speaks.
    pub fn can_send_version(&self, version: Option<&str>) -> bool {
        let Some(cap) = &self.version_cap else {
            return true;
        };
        let Some(version) = version.or(self.target.version.as_deref()) else {
            return false;
        };
        match (Version::parse(cap), Version::parse(version)) {
            (Ok(cap), Ok(v)) => cap.is_compatible(v),
            _ => false,
        }
    }

    fn check_version_cap(&self) -> Result<()> {
        if self.can_send_version(None) {
            return Ok(());
        }
        Err(Error::VersionCapExceeded {
            version: self
                .target
                .version
                .clone()
                .unwrap_or_else(|| "(none)".into()),
            cap: self.version_cap.clone().unwrap_or_default(),
        })
    }

    fn request(
        &self,
        context: &Context,
        method: &str,
        args: impl Serialize,
    ) -> Result<(Context, RpcRequest)> {
        self.check_version_cap()?;
        let context = self.serializer.serialize_context(context.clone())?;
        let not_an_object = |what: &dyn std::fmt::Display| {
            Error::InvalidArgument(format!(
                "the arguments of `{method}` must be a JSON object of keyword arguments, not `{what}`"
            ))
        };
        let serialized = if self.serializer.passes_entities_through() {
            // serialized once, into the text that travels
            let args = Payload::from_serialize(&args)?;
            if args.is_null() {
                Payload::from(Map::new())
            } else if args.is_object() {
                args
            } else {
                return Err(not_an_object(&args));
            }
        } else {
            let args = match serde_json::to_value(args)? {
                Value::Object(m) => m,
                Value::Null => Map::new(),
                other => return Err(not_an_object(&other)),
            };
            let mut serialized = Map::with_capacity(args.len());
            for (k, v) in args {
                serialized.insert(k, self.serializer.serialize_entity(&context, v)?);
            }
            Payload::from(serialized)
        };
        let mut request = RpcRequest::new(method, serialized);
        request.namespace = self.target.namespace.clone();
        request.version = self.target.version.clone();
        Ok((context, request))
    }

    fn options(&self) -> SendOptions {
        SendOptions {
            timeout: self.timeout,
            call_monitor_timeout: self.call_monitor_timeout,
            retry: self.retry,
            at_least_once: self.at_least_once,
        }
    }

    /// Calls `method` with keyword arguments (any `Serialize` that makes a JSON object) and
    /// returns its result as `R`. A remote failure is `Error::Remote` (or the typed
    /// `NoSuchMethod` / `UnsupportedVersion`); no reply in time is `Error::Timeout`; a
    /// connection lost while the reply could only come on it (NATS) is
    /// `Error::ConnectionLost` at once: the request may have been handled.
    pub async fn call<R: DeserializeOwned>(
        &self,
        context: &Context,
        method: &str,
        args: impl Serialize,
    ) -> Result<R> {
        self.target.validate(Role::RpcCall)?;
        let driver = self.transport.driver();
        let span = tracing_spans::rpc_send(
            driver.messaging_system(),
            &self.target,
            method,
            "call",
            context,
        );
        let (mut context, request) = self.request(context, method, args)?;
        trace_context::inject(&span, &mut context);
        let invocation = metrics::Invocation::start(metrics::CALL, &self.target, method);
        let options = self.options();
        let call = driver.call(&self.target, &context, &request, &options);
        let result = tracing_spans::traced(span, call).await;
        invocation.finish(&result);
        let result = result?;
        let result = self.serializer.deserialize_entity(&context, result)?;
        serde_json::from_value(result).map_err(|e| {
            Error::InvalidArgument(format!(
                "the result of `{method}` doesn't fit the type asked for: {e}"
            ))
        })
    }

    /// Casts `method`: sent, nothing comes back (to every server with `fanout`).
    pub async fn cast(&self, context: &Context, method: &str, args: impl Serialize) -> Result<()> {
        self.target.validate(Role::RpcCast)?;
        let driver = self.transport.driver();
        let span = tracing_spans::rpc_send(
            driver.messaging_system(),
            &self.target,
            method,
            "cast",
            context,
        );
        let (mut context, request) = self.request(context, method, args)?;
        trace_context::inject(&span, &mut context);
        let invocation = metrics::Invocation::start(metrics::CAST, &self.target, method);
        let options = self.options();
        let cast = driver.cast(&self.target, &context, &request, &options);
        let result = tracing_spans::traced(span, cast).await;
        invocation.finish(&result);
        result
    }
}
