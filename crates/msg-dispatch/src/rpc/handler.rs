//! Typed RPC handlers and their type-erased form.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use msg_core::{Context, Payload};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::HandlerError;

/// A handler with its types erased: keyword arguments (a JSON object) in, JSON out.
pub(crate) type BoxedHandler =
    Arc<dyn Fn(Context, Payload) -> BoxFuture<'static, Result<Value, HandlerError>> + Send + Sync>;

/// An async RPC handler taking arguments of type `A`: any
/// `Fn(Context, A) -> impl Future<Output = Result<R, E>>` where `A` deserializes from the
/// request's keyword arguments, `R` serializes into the reply and `E` converts into a
/// [`HandlerError`]. It is implemented for every such closure or function; there is rarely a
/// reason to implement it by hand.
///
/// ```
/// use msg_core::Context;
/// use msg_dispatch::{HandlerError, RpcHandler};
///
/// #[derive(serde::Deserialize)]
/// struct Add { a: i64, b: i64 }
///
/// async fn add(_ctx: Context, args: Add) -> Result<i64, HandlerError> {
///     Ok(args.a + args.b)
/// }
/// let out = futures::executor::block_on(add.call(Context::new(), Add { a: 1, b: 2 }));
/// assert_eq!(out, Ok(serde_json::json!(3)));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an async RPC handler taking `{A}`",
    label = "expected `Fn(Context, {A}) -> impl Future<Output = Result<R, E>> + Send + Sync + 'static`",
    note = "the arguments must be `DeserializeOwned`, the result `Serialize`, the error `Into<HandlerError>`, and the future `Send + 'static` (an `async move` block); a synchronous handler goes in `blocking_method`"
)]
pub trait RpcHandler<A>: Send + Sync + 'static {
    /// Runs the handler; its result is serialized into JSON.
    fn call(&self, ctx: Context, args: A) -> BoxFuture<'static, Result<Value, HandlerError>>;
}

impl<F, A, Fut, R, E> RpcHandler<A> for F
where
    F: Fn(Context, A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    R: Serialize + 'static,
    E: Into<HandlerError> + 'static,
{
    fn call(&self, ctx: Context, args: A) -> BoxFuture<'static, Result<Value, HandlerError>> {
        let fut = self(ctx, args);
        async move { fut.await.map_err(Into::into).and_then(to_json) }.boxed()
    }
}

/// A synchronous, CPU-bound RPC handler taking arguments of type `A`: any
/// `Fn(Context, A) -> Result<R, E>` where `A` deserializes from the request's keyword
/// arguments, `R` serializes into the reply and `E` converts into a [`HandlerError`]. The
/// dispatcher runs it on tokio's blocking pool (`spawn_blocking`), so it needs a tokio runtime.
///
/// ```
/// use msg_core::Context;
/// use msg_dispatch::{BlockingRpcHandler, HandlerError};
///
/// fn square(_ctx: Context, n: u64) -> Result<u64, HandlerError> {
///     Ok(n * n)
/// }
/// assert_eq!(square.call_blocking(Context::new(), 7), Ok(serde_json::json!(49)));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a blocking RPC handler taking `{A}`",
    label = "expected `Fn(Context, {A}) -> Result<R, E> + Send + Sync + 'static`",
    note = "the arguments must be `DeserializeOwned`, the result `Serialize` and the error `Into<HandlerError>`; an async handler goes in `method`"
)]
pub trait BlockingRpcHandler<A>: Send + Sync + 'static {
    /// Runs the handler on the current thread; its result is serialized into JSON.
    fn call_blocking(&self, ctx: Context, args: A) -> Result<Value, HandlerError>;
}

impl<F, A, R, E> BlockingRpcHandler<A> for F
where
    F: Fn(Context, A) -> Result<R, E> + Send + Sync + 'static,
    R: Serialize,
    E: Into<HandlerError>,
{
    fn call_blocking(&self, ctx: Context, args: A) -> Result<Value, HandlerError> {
        self(ctx, args).map_err(Into::into).and_then(to_json)
    }
}

fn to_json<R: Serialize>(result: R) -> Result<Value, HandlerError> {
    serde_json::to_value(result)
        .map_err(|e| HandlerError::new(format!("could not serialize the result: {e}")))
}

/// Deserializes a method's keyword arguments: from the `args` object, or, when there are no
/// arguments, from `null` too (so `()` and `Option<T>` mean "no arguments"). A mismatch is
/// Python's `TypeError` for bad keyword arguments.
pub(crate) fn decode_args<A: DeserializeOwned>(
    method: &str,
    args: Payload,
) -> Result<A, HandlerError> {
    let empty = args.is_empty_object();
    // straight from the request's text: no `Value` in between
    let err = match args.into_deserialized() {
        Ok(a) => return Ok(a),
        Err(e) => e,
    };
    if empty && let Ok(a) = serde_json::from_value(Value::Null) {
        return Ok(a);
    }
    Err(HandlerError::with_class(
        "TypeError",
        "builtins",
        format!("{method}() got invalid arguments: {err}"),
    ))
}

/// Erases an async handler.
pub(crate) fn erase<A, H>(method: &str, handler: H) -> BoxedHandler
where
    A: DeserializeOwned + 'static,
    H: RpcHandler<A>,
{
    let method: Arc<str> = Arc::from(method);
    // the arguments are decoded before the handler's future exists, so a call is one box
    // (the handler's); the dispatcher catches a panic in either step
    Arc::new(move |ctx, args| match decode_args::<A>(&method, args) {
        Ok(args) => handler.call(ctx, args),
        Err(e) => Box::pin(std::future::ready(Err(e))),
    })
}

/// Erases a blocking handler: arguments are decoded, the handler run and its result encoded
/// on tokio's blocking pool. A panic there is resumed on the dispatching task, so the
/// dispatcher reports it like any other handler's panic.
pub(crate) fn erase_blocking<A, H>(method: &str, handler: H) -> BoxedHandler
where
    A: DeserializeOwned + 'static,
    H: BlockingRpcHandler<A>,
{
    let handler = Arc::new(handler);
    let method: Arc<str> = Arc::from(method);
    Arc::new(move |ctx, args| {
        let handler = Arc::clone(&handler);
        let method = Arc::clone(&method);
        async move {
            let job = tokio::task::spawn_blocking(move || {
                let args = decode_args::<A>(&method, args)?;
                handler.call_blocking(ctx, args)
            });
            match job.await {
                Ok(result) => result,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => Err(HandlerError::new(format!("the handler was cancelled: {e}"))),
            }
        }
        .boxed()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Add {
        a: i64,
        b: i64,
    }

    fn args(v: Value) -> Payload {
        Payload::from_json(&v.to_string()).unwrap()
    }

    fn none() -> Payload {
        Payload::from(Map::new())
    }

    #[test]
    fn decoding_arguments() {
        let a: Add = decode_args("add", args(json!({"a": 1, "b": 2}))).unwrap();
        assert_eq!(a, Add { a: 1, b: 2 });
        decode_args::<()>("ping", none()).unwrap();
        decode_args::<()>("ping", args(json!({}))).unwrap();
        assert_eq!(decode_args::<Option<Add>>("f", none()).unwrap(), None);
        let m: Map<String, Value> = decode_args("any", none()).unwrap();
        assert!(m.is_empty());

        let e = decode_args::<Add>("add", args(json!({"a": 1}))).unwrap_err();
        assert_eq!((e.class(), e.module()), ("TypeError", "builtins"));
        assert!(e.message().starts_with("add()"), "{}", e.message());
        assert!(e.message().contains("missing field `b`"), "{}", e.message());

        let e = decode_args::<Add>("add", none()).unwrap_err();
        assert!(e.message().contains("missing field `a`"), "{}", e.message());

        let e = decode_args::<()>("ping", args(json!({"x": 1}))).unwrap_err();
        assert_eq!(e.class(), "TypeError");
    }
}
