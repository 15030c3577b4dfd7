//! The demo RPC endpoint that `serve` and `demo` serve.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use msg::{Context, Endpoint, HandlerError};
use serde::Deserialize;
use serde_json::{Number, Value};

/// The class and module of the errors the endpoint raises: Python's `ValueError`, so that
/// oslo.messaging peers see a familiar exception.
pub const ERROR_CLASS: (&str, &str) = ("ValueError", "builtins");

/// Counts deliveries by key (`record` / `recorded`); shared by the endpoints of one server.
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<HashMap<String, u64>>>);

impl Recorder {
    /// Counts one delivery of `key`; returns the new count.
    pub fn record(&self, key: &str) -> u64 {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(key.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    /// How many deliveries of `key` were counted.
    pub fn recorded(&self, key: &str) -> u64 {
        let counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        counts.get(key).copied().unwrap_or(0)
    }
}

#[derive(Deserialize)]
struct EchoArgs {
    value: Value,
}

#[derive(Deserialize)]
struct AddArgs {
    a: Number,
    b: Number,
}

#[derive(Deserialize)]
struct FailArgs {
    message: String,
}

#[derive(Deserialize)]
struct SleepArgs {
    seconds: f64,
}

#[derive(Deserialize)]
struct KeyArgs {
    key: String,
}

fn value_error(message: impl Into<String>) -> HandlerError {
    HandlerError::with_class(ERROR_CLASS.0, ERROR_CLASS.1, message)
}

/// The demo endpoint (no namespace, version 1.0; set them on the result for another):
/// `echo(value)`, `add(a, b)`, `fail(message)`, `sleep(seconds)`, `context()`,
/// `record(key)`, `recorded(key)`.
pub fn demo_endpoint(recorder: &Recorder) -> Endpoint {
    let rec = recorder.clone();
    let seen = recorder.clone();
    Endpoint::new()
        .method("echo", |_ctx: Context, args: EchoArgs| async move {
            Ok::<_, HandlerError>(args.value)
        })
        .method("add", |_ctx: Context, args: AddArgs| async move {
            add(&args.a, &args.b)
        })
        .method("fail", |_ctx: Context, args: FailArgs| async move {
            // part of the method's contract: logged at debug level by the server, not error
            Err::<Value, _>(value_error(args.message).expected())
        })
        .method("sleep", |_ctx: Context, args: SleepArgs| async move {
            let pause = Duration::try_from_secs_f64(args.seconds)
                .map_err(|_| value_error("sleep length must be a non-negative number"))?;
            tokio::time::sleep(pause).await;
            Ok::<_, HandlerError>(args.seconds)
        })
        .method("context", |ctx: Context, (): ()| async move {
            Ok::<_, HandlerError>(Value::Object(ctx.into_map()))
        })
        .method("record", move |_ctx: Context, args: KeyArgs| {
            let rec = rec.clone();
            async move { Ok::<_, HandlerError>(rec.record(&args.key)) }
        })
        .method("recorded", move |_ctx: Context, args: KeyArgs| {
            let seen = seen.clone();
            async move { Ok::<_, HandlerError>(seen.recorded(&args.key)) }
        })
}

/// `a + b`: integers stay integers (when the sum fits in 64 bits), otherwise floats.
pub fn add(a: &Number, b: &Number) -> Result<Value, HandlerError> {
    let int = |n: &Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    if let (Some(x), Some(y)) = (int(a), int(b)) {
        let sum = x + y;
        if let Ok(v) = i64::try_from(sum) {
            return Ok(Value::from(v));
        }
        if let Ok(v) = u64::try_from(sum) {
            return Ok(Value::from(v));
        }
    }
    let (x, y) = (
        a.as_f64().unwrap_or(f64::NAN),
        b.as_f64().unwrap_or(f64::NAN),
    );
    Number::from_f64(x + y)
        .map(Value::Number)
        .ok_or_else(|| value_error(format!("{a} + {b} is not a finite number")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn n(v: Value) -> Number {
        match v {
            Value::Number(n) => n,
            other => panic!("not a number: {other}"),
        }
    }

    #[test]
    fn add_keeps_integers_integers() {
        assert_eq!(add(&n(json!(2)), &n(json!(3))).unwrap(), json!(5));
        assert_eq!(add(&n(json!(-2)), &n(json!(3))).unwrap(), json!(1));
        assert_eq!(add(&n(json!(2)), &n(json!(0.5))).unwrap(), json!(2.5));
        assert_eq!(
            add(&n(json!(u64::MAX)), &n(json!(-1))).unwrap(),
            json!(u64::MAX - 1)
        );
        assert_eq!(
            add(&n(json!(i64::MAX)), &n(json!(i64::MAX))).unwrap(),
            json!(u64::MAX - 1)
        );
        assert!(
            add(&n(json!(u64::MAX)), &n(json!(u64::MAX)))
                .unwrap()
                .is_f64()
        );
    }

    async fn dispatch(method: &str, args: Value) -> Result<Value, msg::Failure> {
        let recorder = Recorder::default();
        let dispatcher = msg::RpcDispatcher::new(vec![demo_endpoint(&recorder)]).unwrap();
        let Value::Object(args) = args else {
            panic!("args must be an object")
        };
        let ctx = Context::new().with("request_id", "req-1");
        dispatcher
            .dispatch(ctx, msg::RpcRequest::new(method, args))
            .await
    }

    #[tokio::test]
    async fn the_methods() {
        assert_eq!(
            dispatch("echo", json!({"value": [1, "x"]})).await,
            Ok(json!([1, "x"]))
        );
        assert_eq!(dispatch("add", json!({"a": 2, "b": 3})).await, Ok(json!(5)));
        assert_eq!(
            dispatch("add", json!({"a": 2, "b": 0.5})).await,
            Ok(json!(2.5))
        );
        let f = dispatch("add", json!({"a": "2", "b": 3}))
            .await
            .unwrap_err();
        assert_eq!(f.class, "TypeError");
        let f = dispatch("fail", json!({"message": "boom"}))
            .await
            .unwrap_err();
        assert_eq!((f.class.as_str(), f.module.as_str()), ERROR_CLASS);
        assert_eq!(f.message, "boom");
        assert_eq!(
            dispatch("sleep", json!({"seconds": 0.01})).await,
            Ok(json!(0.01))
        );
        let f = dispatch("sleep", json!({"seconds": -1})).await.unwrap_err();
        assert_eq!(f.class, "ValueError");
        let ctx = dispatch("context", json!({})).await.unwrap();
        assert_eq!(ctx["request_id"], "req-1");
        assert_eq!(dispatch("record", json!({"key": "k"})).await, Ok(json!(1)));
        assert_eq!(
            dispatch("recorded", json!({"key": "k"})).await,
            Ok(json!(0))
        );
    }

    #[test]
    fn recorder_counts() {
        let r = Recorder::default();
        assert_eq!(r.recorded("k"), 0);
        assert_eq!(r.record("k"), 1);
        assert_eq!(r.record("k"), 2);
        assert_eq!(r.recorded("k"), 2);
        assert_eq!(r.recorded("other"), 0);
    }
}
