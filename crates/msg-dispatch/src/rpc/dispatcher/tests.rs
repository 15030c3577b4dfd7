use super::*;
use crate::RpcHandler;
use msg_core::Result as CoreResult;
use proptest::prelude::*;
use serde_json::json;

#[derive(Debug, serde::Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

/// A method answering `tag`, whatever its arguments.
fn answers(tag: &'static str) -> impl RpcHandler<Value> {
    move |_ctx: Context, _args: Value| async move { Ok::<_, HandlerError>(tag) }
}

fn ep(ns: Option<&str>, version: &str, methods: &[&'static str]) -> Endpoint {
    let mut e = Endpoint::new().version(version);
    if let Some(ns) = ns {
        e = e.namespace(ns);
    }
    for &m in methods {
        e = e.method(m, answers(m));
    }
    e
}

fn req(method: &str, ns: Option<&str>, version: Option<&str>) -> RpcRequest {
    RpcRequest {
        method: method.into(),
        args: Map::new().into(),
        namespace: ns.map(Into::into),
        version: version.map(Into::into),
    }
}

/// Arguments as they come off the wire: JSON text.
fn args(v: Value) -> Payload {
    assert!(v.is_object(), "not an object: {v}");
    Payload::from_json(&v.to_string()).unwrap()
}

fn index(d: &RpcDispatcher, r: &RpcRequest) -> CoreResult<usize> {
    d.route(r).map(|route| route.endpoint_index())
}

fn is_no_such_method(r: CoreResult<usize>) -> bool {
    matches!(r, Err(Error::NoSuchMethod { .. }))
}

fn is_unsupported(r: CoreResult<usize>) -> bool {
    matches!(r, Err(Error::UnsupportedVersion { .. }))
}

#[test]
fn compatible_minor_is_accepted() {
    let d = RpcDispatcher::new(vec![ep(None, "1.2", &["m"])]).unwrap();
    for v in [None, Some("1.0"), Some("1.1"), Some("1.2"), Some("1")] {
        assert_eq!(index(&d, &req("m", None, v)).unwrap(), 0, "{v:?}");
    }
}

#[test]
fn higher_minor_or_other_major_is_unsupported() {
    let d = RpcDispatcher::new(vec![ep(None, "1.2", &["m"])]).unwrap();
    for v in ["1.3", "2.0", "0.1", "2"] {
        let err = d.route(&req("m", None, Some(v))).unwrap_err();
        assert!(
            matches!(&err, Error::UnsupportedVersion { version, namespace: None } if version == v),
            "{v}: {err}"
        );
    }
}

#[test]
fn unparsable_requested_version_is_unsupported() {
    let d = RpcDispatcher::new(vec![ep(None, "1.2", &["m"])]).unwrap();
    for v in ["", "one", "1.2.3", "1.x"] {
        assert!(is_unsupported(index(&d, &req("m", None, Some(v)))), "{v}");
    }
}

#[test]
fn unparsable_endpoint_version_fails_construction() {
    let err = RpcDispatcher::new(vec![ep(None, "1.0", &[]), ep(None, "v2", &["m"])]).unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("#1") && m.contains("v2")),
        "{err}"
    );
}

#[test]
fn unknown_method_on_a_matching_endpoint_is_no_such_method() {
    let d = RpcDispatcher::new(vec![ep(None, "1.0", &["m"])]).unwrap();
    let err = d.route(&req("nope", None, None)).unwrap_err();
    assert!(matches!(&err, Error::NoSuchMethod { method, namespace: None } if method == "nope"));
}

#[test]
fn unknown_method_without_a_matching_endpoint_is_unsupported_version() {
    let d = RpcDispatcher::new(vec![ep(None, "1.0", &["m"]), ep(Some("a"), "2.0", &[])]).unwrap();
    let err = d.route(&req("nope", None, Some("1.1"))).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedVersion { version, .. } if version == "1.1"),
        "{err}"
    );
    let err = d.route(&req("nope", Some("b"), None)).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedVersion { version, namespace: Some(ns) } if version == "1.0" && ns == "b")
    );
    // no endpoints at all
    let empty = RpcDispatcher::new(Vec::new()).unwrap();
    assert!(is_unsupported(index(&empty, &req("m", None, None))));
}

#[test]
fn private_methods_are_denied_by_default() {
    let d = RpcDispatcher::new(vec![ep(None, "1.0", &["_private", "public"])]).unwrap();
    assert!(is_no_such_method(index(&d, &req("_private", None, None))));
    assert_eq!(index(&d, &req("public", None, None)).unwrap(), 0);
    let all = RpcDispatcher::new(vec![ep(None, "1.0", &["_private"])])
        .unwrap()
        .access_policy(AccessPolicy::All);
    assert_eq!(index(&all, &req("_private", None, None)).unwrap(), 0);
}

#[test]
fn explicit_policy_needs_exposed_methods() {
    let endpoints = || {
        vec![
            Endpoint::new()
                .method("hidden", answers("hidden"))
                .exposed_method("shown", answers("shown"))
                .exposed_method("_underscored", answers("_"))
                .method("later", answers("later"))
                .expose("later")
                .expose("absent"),
        ]
    };
    let d = RpcDispatcher::new(endpoints())
        .unwrap()
        .access_policy(AccessPolicy::Explicit);
    assert!(is_no_such_method(index(&d, &req("hidden", None, None))));
    assert_eq!(index(&d, &req("shown", None, None)).unwrap(), 0);
    assert_eq!(index(&d, &req("later", None, None)).unwrap(), 0);
    // oslo's explicit policy looks at `exposed` only, not at the name
    assert_eq!(index(&d, &req("_underscored", None, None)).unwrap(), 0);
    let all = RpcDispatcher::new(endpoints())
        .unwrap()
        .access_policy(AccessPolicy::All);
    assert_eq!(index(&all, &req("hidden", None, None)).unwrap(), 0);
}

#[test]
fn a_denied_method_falls_through_to_a_later_endpoint() {
    let d = RpcDispatcher::new(vec![
        Endpoint::new().method("m", answers("first")),
        Endpoint::new().exposed_method("m", answers("second")),
    ])
    .unwrap()
    .access_policy(AccessPolicy::Explicit);
    assert_eq!(index(&d, &req("m", None, None)).unwrap(), 1);
}

#[test]
fn namespaces_must_be_equal() {
    let d = RpcDispatcher::new(vec![
        ep(Some("a"), "1.0", &["m"]),
        ep(None, "1.0", &["m"]),
        ep(Some("b"), "1.0", &["m"]),
    ])
    .unwrap();
    assert_eq!(index(&d, &req("m", Some("a"), None)).unwrap(), 0);
    assert_eq!(index(&d, &req("m", None, None)).unwrap(), 1);
    assert_eq!(index(&d, &req("m", Some("b"), None)).unwrap(), 2);
    assert!(is_unsupported(index(&d, &req("m", Some("c"), None))));
    assert!(is_unsupported(index(&d, &req("m", Some(""), None))));
}

#[test]
fn first_endpoint_in_order_wins() {
    let d = RpcDispatcher::new(vec![
        ep(None, "1.0", &["n"]),
        ep(None, "1.5", &["m"]),
        ep(None, "1.5", &["m"]),
        ep(None, "1.9", &["m"]),
    ])
    .unwrap();
    assert_eq!(index(&d, &req("m", None, Some("1.1"))).unwrap(), 1);
    assert_eq!(index(&d, &req("m", None, Some("1.6"))).unwrap(), 3);
    assert!(is_unsupported(index(&d, &req("m", None, Some("1.10")))));
    let route = d.route(&req("m", None, None)).unwrap();
    assert_eq!(route.method(), "m");
    assert_eq!(route.endpoint().target_version(), Ok(Version::new(1, 5)));
}

#[tokio::test]
async fn ping_endpoint_comes_last() {
    let ping = req(PING_METHOD, None, None);
    let off = RpcDispatcher::new(vec![ep(None, "1.0", &["m"])]).unwrap();
    assert!(is_no_such_method(index(&off, &ping)));

    let d = RpcDispatcher::new(vec![ep(None, "1.0", &["m"])])
        .unwrap()
        .ping(true);
    assert_eq!(index(&d, &ping).unwrap(), 1);
    let mut with_args = ping.clone();
    with_args.args = args(json!({"anything": [1, 2]}));
    assert_eq!(
        d.dispatch(Context::new(), with_args).await,
        Ok(json!("pong"))
    );
    assert!(is_unsupported(index(
        &d,
        &req(PING_METHOD, Some("ns"), None)
    )));
    assert!(is_unsupported(index(
        &d,
        &req(PING_METHOD, None, Some("2.0"))
    )));
    // a user endpoint with the same method is found first
    let shadowed = RpcDispatcher::new(vec![ep(None, "1.0", &[PING_METHOD])])
        .unwrap()
        .ping(true);
    assert_eq!(index(&shadowed, &ping).unwrap(), 0);
    // explicit policy lets ping through; ping(false) removes it again
    let explicit = RpcDispatcher::new(Vec::new())
        .unwrap()
        .access_policy(AccessPolicy::Explicit)
        .ping(true);
    assert_eq!(index(&explicit, &ping).unwrap(), 0);
    assert!(is_unsupported(index(&explicit.ping(false), &ping)));
}

#[tokio::test]
async fn typed_arguments() {
    let d = RpcDispatcher::new(vec![
        Endpoint::new()
            .method("add", |_ctx: Context, a: Add| async move {
                Ok::<_, HandlerError>(a.a + a.b)
            })
            .method("nothing", |_ctx: Context, (): ()| async {
                Ok::<_, HandlerError>(json!({"done": true}))
            })
            .method("parse", |_ctx: Context, a: Map<String, Value>| async move {
                let text = a.get("text").and_then(Value::as_str).unwrap_or_default();
                Ok::<_, HandlerError>(text.parse::<i32>()?)
            }),
    ])
    .unwrap();
    let call = |method: &str, a: Value| {
        let mut r = req(method, None, None);
        r.args = args(a);
        d.dispatch(Context::new(), r)
    };
    assert_eq!(call("add", json!({"a": 2, "b": 40})).await, Ok(json!(42)));
    assert_eq!(call("nothing", json!({})).await, Ok(json!({"done": true})));

    let f = call("add", json!({"a": 2})).await.unwrap_err();
    assert_eq!(
        (f.class.as_str(), f.module.as_str()),
        ("TypeError", "builtins")
    );
    assert!(
        f.message.contains("add()") && f.message.contains("`b`"),
        "{}",
        f.message
    );
    let f = call("add", json!({"a": "two", "b": 1})).await.unwrap_err();
    assert_eq!(f.class, "TypeError");
    let f = call("nothing", json!({"x": 1})).await.unwrap_err();
    assert!(f.message.contains("nothing()"), "{}", f.message);

    let f = call("parse", json!({"text": "x"})).await.unwrap_err();
    assert_eq!(f.class, "ParseIntError");
    assert_eq!(f.args, vec![json!(f.message)]);
}

#[tokio::test]
async fn handler_errors_become_failures() {
    let d = RpcDispatcher::new(vec![
        Endpoint::new()
            .method("fail", |_ctx: Context, (): ()| async {
                Err::<(), _>(HandlerError::with_class(
                    "NotFound",
                    "nova.exception",
                    "gone",
                ))
            })
            .method("expected", |_ctx: Context, (): ()| async {
                Err::<(), _>(HandlerError::new("as documented").expected())
            }),
    ])
    .unwrap();
    let f = d
        .dispatch(Context::new(), req("fail", None, None))
        .await
        .unwrap_err();
    assert_eq!(
        (f.class.as_str(), f.module.as_str(), f.message.as_str()),
        ("NotFound", "nova.exception", "gone")
    );
    let f = d
        .dispatch(Context::new(), req("expected", None, None))
        .await
        .unwrap_err();
    assert_eq!(
        (f.class.as_str(), f.module.as_str()),
        ("HandlerError", "msg")
    );
}

#[tokio::test]
async fn routing_failures_travel_as_oslo_sends_them() {
    let d = RpcDispatcher::new(vec![ep(None, "1.0", &["m"])]).unwrap();
    let f = d
        .dispatch(Context::new(), req("nope", None, None))
        .await
        .unwrap_err();
    assert_eq!(f.class, "NoSuchMethod");
    assert_eq!(f.module, DISPATCHER_MODULE);
    assert_eq!(f.message, "Endpoint does not support RPC method nope");
    assert_eq!(f.args, vec![json!("nope")]);
    assert!(matches!(f.into_error(None), Error::NoSuchMethod { .. }));

    let f = d
        .dispatch(Context::new(), req("m", None, Some("1.4")))
        .await
        .unwrap_err();
    assert_eq!(f.class, "UnsupportedVersion");
    assert_eq!(f.module, DISPATCHER_MODULE);
    assert_eq!(
        f.message,
        "Endpoint does not support RPC version 1.4. Attempted method: m"
    );
    assert_eq!(f.args, vec![json!("1.4")]);
    assert_eq!(f.kwargs.get("method"), Some(&json!("m")));

    let f = d
        .dispatch(Context::new(), req("m", Some("ns"), None))
        .await
        .unwrap_err();
    assert_eq!(
        f.message,
        "Endpoint does not support RPC version 1.0. Attempted method: m"
    );
}

#[tokio::test]
async fn panics_become_failures() {
    let d = RpcDispatcher::new(vec![
        Endpoint::new()
            .method("str", |_ctx: Context, (): ()| async {
                if true {
                    panic!("static message");
                }
                Ok::<(), HandlerError>(())
            })
            .method(
                "string",
                |_ctx: Context, n: Map<String, Value>| async move {
                    if true {
                        panic!("formatted {}", n.len());
                    }
                    Ok::<(), HandlerError>(())
                },
            )
            .method("other", |_ctx: Context, (): ()| async {
                if true {
                    std::panic::panic_any(7_u32);
                }
                Ok::<(), HandlerError>(())
            })
            .method(
                "eager",
                |_ctx: Context, (): ()| -> futures::future::Ready<Result<(), HandlerError>> {
                    panic!("before the future")
                },
            )
            .blocking_method(
                "blocking",
                |_ctx: Context, (): ()| -> Result<(), HandlerError> {
                    panic!("in the blocking pool")
                },
            ),
    ])
    .unwrap();
    for (method, message) in [
        ("str", "static message"),
        ("string", "formatted 0"),
        ("other", "the handler panicked"),
        ("eager", "before the future"),
        ("blocking", "in the blocking pool"),
    ] {
        let f = d
            .dispatch(Context::new(), req(method, None, None))
            .await
            .unwrap_err();
        assert_eq!(
            (f.class.as_str(), f.module.as_str(), f.message.as_str()),
            ("Panic", "msg", message),
            "{method}"
        );
    }
}

#[tokio::test]
async fn blocking_methods_run() {
    let d = RpcDispatcher::new(vec![
        Endpoint::new()
            .blocking_method("add", |ctx: Context, a: Add| {
                assert!(ctx.get("user").is_some());
                Ok::<_, HandlerError>(a.a * a.b)
            })
            .blocking_method("fail", |_ctx: Context, (): ()| {
                "x".parse::<u8>().map_err(HandlerError::from)
            }),
    ])
    .unwrap();
    let mut r = req("add", None, None);
    r.args = args(json!({"a": 6, "b": 7}));
    let ctx = Context::new().with("user", "u");
    assert_eq!(d.dispatch(ctx, r).await, Ok(json!(42)));
    let mut bad = req("add", None, None);
    bad.args = args(json!({"a": 6}));
    assert_eq!(
        d.dispatch(Context::new(), bad).await.unwrap_err().class,
        "TypeError"
    );
    let f = d
        .dispatch(Context::new(), req("fail", None, None))
        .await
        .unwrap_err();
    assert_eq!(f.class, "ParseIntError");
}

/// Doubles numbers on the way in (once the context was deserialized), wraps results on the
/// way out (refusing 0), and refuses the argument `poison`.
#[derive(Debug)]
struct Rewriting;

impl Serializer for Rewriting {
    fn deserialize_context(&self, context: Context) -> CoreResult<Context> {
        if context.get("refuse").is_some() {
            return Err(Error::malformed("refused context"));
        }
        Ok(context.with("deserialized", true))
    }
    fn deserialize_entity(&self, context: &Context, entity: Value) -> CoreResult<Value> {
        assert_eq!(context.get("deserialized"), Some(&json!(true)));
        match entity {
            Value::String(s) if s == "poison" => Err(Error::malformed("poisoned")),
            Value::Number(n) => Ok(json!(n.as_i64().unwrap_or_default() * 2)),
            other => Ok(other),
        }
    }
    fn serialize_entity(&self, context: &Context, entity: Value) -> CoreResult<Value> {
        if entity == json!(0) {
            return Err(Error::malformed("cannot send 0"));
        }
        Ok(json!({"wrapped": entity, "user": context.get("user")}))
    }
}

#[tokio::test]
async fn serializer_hooks_are_applied() {
    let d = RpcDispatcher::new(vec![Endpoint::new().method(
        "add",
        |ctx: Context, a: Add| async move {
            assert_eq!(ctx.get("deserialized"), Some(&json!(true)));
            Ok::<_, HandlerError>(a.a + a.b)
        },
    )])
    .unwrap()
    .serializer(Arc::new(Rewriting));
    let call = |a: Value, ctx: Context| {
        let mut r = req("add", None, None);
        r.args = args(a);
        d.dispatch(ctx, r)
    };
    let ctx = Context::new().with("user", "alice");
    assert_eq!(
        call(json!({"a": 1, "b": 2}), ctx.clone()).await,
        Ok(json!({"wrapped": 6, "user": "alice"}))
    );
    let f = call(json!({"a": 1, "b": "poison"}), ctx.clone())
        .await
        .unwrap_err();
    assert_eq!(
        (f.class.as_str(), f.module.as_str()),
        ("SerializationError", "msg")
    );
    assert!(f.message.contains("argument `b`"), "{}", f.message);
    let f = call(json!({"a": 1, "b": 2}), ctx.clone().with("refuse", 1))
        .await
        .unwrap_err();
    assert!(f.message.contains("context"), "{}", f.message);
    let f = call(json!({"a": -1, "b": 1}), ctx).await.unwrap_err();
    assert!(f.message.contains("result"), "{}", f.message);
    // routing comes first, as oslo: an unknown method is NoSuchMethod even with a bad context
    let mut r = req("nope", None, None);
    r.args = args(json!({"a": "poison"}));
    let f = d
        .dispatch(Context::new().with("refuse", 1), r)
        .await
        .unwrap_err();
    assert_eq!(f.class, "NoSuchMethod");
}

// ---- the routing rule against a reference model ----

const NAMES: [&str; 4] = ["m", "n", "_p", PING_METHOD];

#[derive(Debug, Clone)]
struct EndpointSpec {
    namespace: Option<&'static str>,
    major: u32,
    minor: u32,
    /// `Some(exposed)` for each of `NAMES` the endpoint has.
    methods: Vec<Option<bool>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Endpoint(usize),
    NoSuchMethod,
    UnsupportedVersion,
}

fn namespace() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![Just(None), Just(Some("a")), Just(Some("b"))]
}

fn endpoint_spec() -> impl Strategy<Value = EndpointSpec> {
    (
        namespace(),
        1u32..=2,
        0u32..=3,
        prop::collection::vec(proptest::option::of(any::<bool>()), NAMES.len()),
    )
        .prop_map(|(namespace, major, minor, methods)| EndpointSpec {
            namespace,
            major,
            minor,
            methods,
        })
}

fn request() -> impl Strategy<Value = RpcRequest> {
    let version = prop_oneof![
        Just(None),
        (0u32..=3, 0u32..=4).prop_map(|(a, b)| Some(format!("{a}.{b}"))),
        (1u32..=2).prop_map(|a| Some(a.to_string())),
        Just(Some("bogus".to_string())),
    ];
    let method = prop_oneof![
        Just("m"),
        Just("n"),
        Just("_p"),
        Just("unknown"),
        Just(PING_METHOD)
    ];
    (method, namespace(), version).prop_map(|(m, ns, version)| RpcRequest {
        method: m.to_string(),
        args: Map::new().into(),
        namespace: ns.map(str::to_string),
        version,
    })
}

fn policy() -> impl Strategy<Value = AccessPolicy> {
    prop_oneof![
        Just(AccessPolicy::Default),
        Just(AccessPolicy::Explicit),
        Just(AccessPolicy::All)
    ]
}

/// oslo's loop, written out plainly.
fn model(specs: &[EndpointSpec], ping: bool, policy: AccessPolicy, r: &RpcRequest) -> Outcome {
    let requested = match r.version.as_deref() {
        None => Some((1, 0)),
        Some(v) => match v.split('.').collect::<Vec<_>>()[..] {
            [a] => a.parse().ok().map(|a: u32| (a, 0)),
            [a, b] => a.parse().ok().zip(b.parse().ok()),
            _ => None,
        },
    };
    let Some((major, minor)) = requested else {
        return Outcome::UnsupportedVersion;
    };
    let mut all = specs.to_vec();
    if ping {
        let mut methods = vec![None; NAMES.len()];
        methods[3] = Some(true);
        all.push(EndpointSpec {
            namespace: None,
            major: 1,
            minor: 0,
            methods,
        });
    }
    let mut found_compatible = false;
    for (i, spec) in all.iter().enumerate() {
        if spec.namespace != r.namespace.as_deref() || spec.major != major || spec.minor < minor {
            continue;
        }
        found_compatible = true;
        let exposed = NAMES
            .iter()
            .position(|n| *n == r.method)
            .and_then(|p| spec.methods[p]);
        if let Some(exposed) = exposed {
            let allowed = match policy {
                AccessPolicy::Default => !r.method.starts_with('_'),
                AccessPolicy::Explicit => exposed,
                AccessPolicy::All => true,
            };
            if allowed {
                return Outcome::Endpoint(i);
            }
        }
    }
    if found_compatible {
        Outcome::NoSuchMethod
    } else {
        Outcome::UnsupportedVersion
    }
}

fn build(specs: &[EndpointSpec]) -> Vec<Endpoint> {
    specs
        .iter()
        .map(|s| {
            let mut e = Endpoint::new().version(&format!("{}.{}", s.major, s.minor));
            if let Some(ns) = s.namespace {
                e = e.namespace(ns);
            }
            for (&name, exposed) in NAMES.iter().zip(&s.methods) {
                e = match exposed {
                    Some(true) => e.exposed_method(name, answers(name)),
                    Some(false) => e.method(name, answers(name)),
                    None => e,
                };
            }
            e
        })
        .collect()
}

proptest! {
    #[test]
    fn route_agrees_with_the_model(
        specs in prop::collection::vec(endpoint_spec(), 0..6),
        ping in any::<bool>(),
        policy in policy(),
        r in request(),
    ) {
        let d = RpcDispatcher::new(build(&specs)).unwrap().access_policy(policy).ping(ping);
        let got = match d.route(&r) {
            Ok(route) => {
                prop_assert_eq!(route.method(), r.method.as_str());
                Outcome::Endpoint(route.endpoint_index())
            }
            Err(Error::NoSuchMethod { method, namespace }) => {
                prop_assert_eq!(&method, &r.method);
                prop_assert_eq!(&namespace, &r.namespace);
                Outcome::NoSuchMethod
            }
            Err(Error::UnsupportedVersion { version, namespace }) => {
                prop_assert_eq!(&version, r.version.as_deref().unwrap_or("1.0"));
                prop_assert_eq!(&namespace, &r.namespace);
                Outcome::UnsupportedVersion
            }
            Err(other) => return Err(TestCaseError::fail(format!("unexpected error {other}"))),
        };
        prop_assert_eq!(got, model(&specs, ping, policy, &r));
    }
}

#[test]
fn a_probes_missing_method_is_not_worth_a_warning() {
    let miss = |method: &str| Error::NoSuchMethod {
        method: method.into(),
        namespace: None,
    };
    assert!(is_probe_miss(&miss("check_health_ignore_errors")));
    assert!(!is_probe_miss(&miss("check_health")));
    assert!(!is_probe_miss(&Error::UnsupportedVersion {
        version: "9.0".into(),
        namespace: None,
    }));
}

#[test]
fn legacy_namespaces_are_served_too() {
    let d = RpcDispatcher::new(vec![
        Endpoint::new()
            .namespace("compute")
            .legacy_namespaces([Some("nova")])
            .method("m", answers("compute")),
        Endpoint::new().method("m", answers("root")),
    ])
    .unwrap();
    assert_eq!(index(&d, &req("m", Some("compute"), None)).unwrap(), 0);
    assert_eq!(index(&d, &req("m", Some("nova"), None)).unwrap(), 0);
    assert_eq!(index(&d, &req("m", None, None)).unwrap(), 1);
    assert!(is_unsupported(index(&d, &req("m", Some("volume"), None))));
}
