//! The RPC dispatcher: oslo's `rpc/dispatcher.py` routing rule, and the call of the chosen
//! handler.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt as _;
use msg_core::codec::DISPATCHER_MODULE;
use msg_core::{Context, Error, Failure, JsonSerializer, Payload, RpcRequest, Serializer, Version};
use serde_json::{Map, Value};

use crate::handler_error::MSG_MODULE;
use crate::rpc::endpoint::Method;
use crate::{AccessPolicy, Endpoint, HandlerError};

/// The method of oslo's ping endpoint.
pub const PING_METHOD: &str = "oslo_rpc_server_ping";

/// Routes RPC requests to endpoint methods and runs them, as oslo's `RPCDispatcher`.
///
/// The rule: a request asks for a method, an optional namespace and a version (`1.0` when it
/// names none). Endpoints are walked in order; one whose namespace differs from the request's
/// (no namespace matches only no namespace) or whose version is not compatible (same major,
/// endpoint minor >= requested minor) is skipped. The first remaining endpoint that has the
/// method, and whose method the [`AccessPolicy`] allows, gets the call. If some endpoint
/// matched but none had an allowed method, the answer is `NoSuchMethod`; if none matched,
/// `UnsupportedVersion`, even when no endpoint has the method at all.
///
/// The dispatcher does no I/O: a server feeds it requests and sends back what it answers.
///
/// ```
/// use msg_core::{Context, RpcRequest};
/// use msg_dispatch::{Endpoint, HandlerError, RpcDispatcher};
/// use serde_json::json;
///
/// #[derive(serde::Deserialize)]
/// struct Add { a: i64, b: i64 }
///
/// let dispatcher = RpcDispatcher::new(vec![
///     Endpoint::new().version("1.3").method("add", |_ctx: Context, args: Add| async move {
///         Ok::<_, HandlerError>(args.a + args.b)
///     }),
/// ])?
/// .ping(true);
///
/// let mut req = RpcRequest::new("add", json!({"a": 2, "b": 3}).as_object().cloned().unwrap_or_default());
/// req.version = Some("1.1".into());
/// let reply = futures::executor::block_on(dispatcher.dispatch(Context::new(), req));
/// assert_eq!(reply, Ok(json!(5)));
///
/// let mut req = RpcRequest::new("add", serde_json::Map::new());
/// req.version = Some("2.0".into());
/// let failure = futures::executor::block_on(dispatcher.dispatch(Context::new(), req)).unwrap_err();
/// assert_eq!(failure.class, "UnsupportedVersion");
/// # Ok::<(), msg_core::Error>(())
/// ```
#[derive(Debug)]
pub struct RpcDispatcher {
    endpoints: Vec<(Version, Endpoint)>,
    ping: Option<Endpoint>,
    policy: AccessPolicy,
    serializer: Arc<dyn Serializer>,
}

/// Where [`RpcDispatcher::route`] sends a request: an endpoint and one of its methods.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    index: usize,
    endpoint: &'a Endpoint,
    name: &'a str,
    method: &'a Method,
}

impl<'a> Route<'a> {
    /// The endpoint's position in the list given to [`RpcDispatcher::new`] (the ping
    /// endpoint, when enabled, comes right after the last one).
    pub fn endpoint_index(&self) -> usize {
        self.index
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &'a Endpoint {
        self.endpoint
    }

    /// The method's name.
    pub fn method(&self) -> &'a str {
        self.name
    }
}

impl RpcDispatcher {
    /// A dispatcher over these endpoints, in this order, with the default access policy and
    /// the [`JsonSerializer`].
    ///
    /// Fails with [`Error::Config`] when an endpoint was given a version that is not
    /// `major.minor[.revision]`.
    pub fn new(endpoints: Vec<Endpoint>) -> Result<Self, Error> {
        let endpoints = endpoints
            .into_iter()
            .enumerate()
            .map(|(i, ep)| match ep.target_version() {
                Ok(v) => Ok((v, ep)),
                Err(bad) => Err(Error::Config(format!("RPC endpoint #{i}: {bad}"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RpcDispatcher {
            endpoints,
            ping: None,
            policy: AccessPolicy::default(),
            serializer: Arc::new(JsonSerializer),
        })
    }

    /// Sets the access policy.
    pub fn access_policy(mut self, policy: AccessPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Adds (or removes) oslo's ping endpoint after the others: no namespace, version `1.0`,
    /// method [`PING_METHOD`] answering `"pong"` whatever its arguments. Unlike oslo, the
    /// method is marked exposed, so [`AccessPolicy::Explicit`] lets it through too.
    pub fn ping(mut self, enabled: bool) -> Self {
        self.ping = enabled.then(|| {
            Endpoint::new().exposed_method(PING_METHOD, |_ctx: Context, _args: Value| async {
                Ok::<_, HandlerError>("pong")
            })
        });
        self
    }

    /// Sets the serializer hooks applied to the context, each argument and the result.
    pub fn serializer(mut self, serializer: Arc<dyn Serializer>) -> Self {
        self.serializer = serializer;
        self
    }

    /// Decides which endpoint method a request goes to, without running anything.
    ///
    /// Returns [`Error::NoSuchMethod`] when an endpoint serves the namespace and version but
    /// none has the method (or the access policy denies it), and [`Error::UnsupportedVersion`]
    /// when no endpoint serves the namespace at a compatible version (or the requested
    /// version is not `major.minor[.revision]`).
    pub fn route(&self, req: &RpcRequest) -> Result<Route<'_>, Error> {
        let unsupported = || Error::UnsupportedVersion {
            version: req.version.clone().unwrap_or_else(|| "1.0".into()),
            namespace: req.namespace.clone(),
        };
        let requested = match req.version.as_deref() {
            None => Version::DEFAULT,
            Some(v) => Version::parse(v).map_err(|_| unsupported())?,
        };
        let ping = self.ping.iter().map(|ep| (Version::DEFAULT, ep));
        let endpoints = self.endpoints.iter().map(|(v, ep)| (*v, ep)).chain(ping);
        let mut found_compatible = false;
        for (index, (version, endpoint)) in endpoints.enumerate() {
            if !endpoint.accepts_namespace(req.namespace.as_deref())
                || !version.is_compatible(requested)
            {
                continue;
            }
            found_compatible = true;
            if let Some((name, method)) = endpoint.lookup(&req.method)
                && self.policy.allows(name, method.exposed)
            {
                return Ok(Route {
                    index,
                    endpoint,
                    name,
                    method,
                });
            }
        }
        if found_compatible {
            Err(Error::NoSuchMethod {
                method: req.method.clone(),
                namespace: req.namespace.clone(),
            })
        } else {
            Err(unsupported())
        }
    }

    /// Handles a request: deserializes the context and each argument with the serializer,
    /// routes, runs the handler (a panic is caught) and serializes its result.
    ///
    /// Every failure comes back as the [`Failure`] the caller should receive: `NoSuchMethod`
    /// and `UnsupportedVersion` as oslo's (module `oslo_messaging.rpc.dispatcher`), bad
    /// arguments as `builtins.TypeError`, a handler's error as its [`HandlerError`], a panic
    /// as class `Panic` (module `msg`), and a serializer's error as class
    /// `SerializationError` (module `msg`). Routing happens before deserialization, as in
    /// oslo. Unexpected handler errors and panics are logged at error level, expected ones
    /// at debug.
    pub async fn dispatch(&self, ctx: Context, req: RpcRequest) -> Result<Value, Failure> {
        let route = match self.route(&req) {
            Ok(route) => route,
            Err(err) => {
                if is_probe_miss(&err) {
                    tracing::debug!(
                        method = %req.method,
                        namespace = req.namespace.as_deref(),
                        "cannot dispatch RPC request (a probe: no warning): {err}"
                    );
                } else {
                    tracing::warn!(
                        method = %req.method,
                        namespace = req.namespace.as_deref(),
                        version = req.version.as_deref(),
                        "cannot dispatch RPC request: {err}"
                    );
                }
                return Err(routing_failure(&err, &req));
            }
        };
        let handler = Arc::clone(&route.method.handler);
        let ctx = self
            .serializer
            .deserialize_context(ctx)
            .map_err(|e| serializer_failure(&req.method, "the context", &e))?;
        let passes_through = self.serializer.passes_entities_through();
        let args = if passes_through {
            // the arguments go to the handler as the text they came as
            req.args
        } else {
            self.deserialize_args(&ctx, &req.method, req.args)?
        };
        // the serializer sees the context again for the result, unless it passes it through
        let result_ctx = (!passes_through).then(|| ctx.clone());
        // a panic while the handler makes its future, or while the future runs
        let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| handler(ctx, args))) {
            Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
            Err(panic) => Err(panic),
        };
        match outcome {
            Ok(Ok(result)) => match result_ctx {
                None => Ok(result),
                Some(ctx) => self
                    .serializer
                    .serialize_entity(&ctx, result)
                    .map_err(|e| serializer_failure(&req.method, "the result", &e)),
            },
            Ok(Err(err)) => {
                if err.is_expected() {
                    tracing::debug!(method = %req.method, "expected error from RPC handler: {err}");
                } else {
                    tracing::error!(method = %req.method, "RPC handler failed: {err}");
                }
                Err(err.into_failure())
            }
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                tracing::error!(method = %req.method, "RPC handler panicked: {message}");
                Err(Failure::new("Panic", MSG_MODULE, message))
            }
        }
    }
}

/// Whether a routing failure is a health probe's miss: `NoSuchMethod` for a method named
/// `..._ignore_errors`, which oslo's server logs at debug level only (monitoring calls such
/// names on every server and expects most to lack them).
fn is_probe_miss(err: &Error) -> bool {
    matches!(err, Error::NoSuchMethod { method, .. } if method.ends_with("_ignore_errors"))
}

impl RpcDispatcher {
    /// Each argument through the serializer's `deserialize_entity`.
    // the failure is what `dispatch` returns anyway, on a path that is not hot
    #[allow(clippy::result_large_err)]
    fn deserialize_args(
        &self,
        ctx: &Context,
        method: &str,
        args: Payload,
    ) -> Result<Payload, Failure> {
        let map = match args.into_value() {
            Ok(Value::Object(map)) => map,
            Ok(_) => Map::new(),
            Err(e) => {
                let e = Error::malformed(format!("`args`: {e}"));
                return Err(serializer_failure(method, "the arguments", &e));
            }
        };
        let mut args = Map::with_capacity(map.len());
        for (name, value) in map {
            let value = self
                .serializer
                .deserialize_entity(ctx, value)
                .map_err(|e| serializer_failure(method, &format!("argument `{name}`"), &e))?;
            args.insert(name, value);
        }
        Ok(Payload::from(args))
    }
}

/// The failure oslo sends for a routing error.
fn routing_failure(err: &Error, req: &RpcRequest) -> Failure {
    let method = req.method.as_str();
    match err {
        Error::NoSuchMethod { method, .. } => {
            let mut failure = Failure::new(
                "NoSuchMethod",
                DISPATCHER_MODULE,
                format!("Endpoint does not support RPC method {method}"),
            );
            failure.args = vec![Value::String(method.clone())];
            failure
        }
        Error::UnsupportedVersion { version, .. } => {
            let mut message = format!("Endpoint does not support RPC version {version}");
            if !method.is_empty() {
                message.push_str(&format!(". Attempted method: {method}"));
            }
            let mut failure = Failure::new("UnsupportedVersion", DISPATCHER_MODULE, message);
            failure.args = vec![Value::String(version.clone())];
            failure
                .kwargs
                .insert("method".into(), Value::String(method.to_string()));
            failure
        }
        other => Failure::new("RPCDispatcherError", DISPATCHER_MODULE, other.to_string()),
    }
}

fn serializer_failure(method: &str, what: &str, err: &Error) -> Failure {
    tracing::error!(method, "the serializer failed on {what}: {err}");
    Failure::new(
        "SerializationError",
        MSG_MODULE,
        format!("{what} of {method}(): {err}"),
    )
}

/// The message of a panic, when it carried one.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "the handler panicked".to_string()
    }
}

#[cfg(test)]
mod tests;
