//! An RPC endpoint: a set of named methods under one namespace and version.

use std::collections::BTreeMap;
use std::fmt;

use msg_core::{BadVersion, Version};
use serde::de::DeserializeOwned;

use crate::rpc::handler::{self, BoxedHandler};
use crate::{BlockingRpcHandler, RpcHandler};

/// A set of RPC methods under an optional namespace, at a version (oslo's endpoint object with
/// its `target`). By default an endpoint has no namespace and version `1.0`.
///
/// Methods are typed: the request's keyword arguments deserialize into the handler's argument
/// type (a struct with one field per argument, or `()` for none), and the handler's result
/// serializes into the reply.
///
/// ```
/// use msg_core::Context;
/// use msg_dispatch::{Endpoint, HandlerError};
///
/// #[derive(serde::Deserialize)]
/// struct Add { a: i64, b: i64 }
///
/// let calc = Endpoint::new()
///     .namespace("calc")
///     .version("1.2")
///     .method("add", |_ctx: Context, args: Add| async move {
///         Ok::<_, HandlerError>(args.a + args.b)
///     })
///     .blocking_method("fib", |_ctx: Context, n: u32| {
///         Ok::<_, HandlerError>((0..n).fold((0u64, 1u64), |(a, b), _| (b, a + b)).0)
///     });
/// assert!(calc.has_method("add") && calc.has_method("fib"));
/// assert_eq!(calc.target_namespace(), Some("calc"));
/// ```
pub struct Endpoint {
    namespace: Option<String>,
    /// Namespaces served besides `namespace` (oslo's `Target.legacy_namespaces`).
    legacy_namespaces: Vec<Option<String>>,
    version: Result<Version, BadVersion>,
    methods: BTreeMap<String, Method>,
}

/// One registered method.
#[derive(Clone)]
pub(crate) struct Method {
    pub(crate) handler: BoxedHandler,
    pub(crate) exposed: bool,
}

impl Endpoint {
    /// An endpoint with no namespace, at version `1.0`, without methods.
    pub fn new() -> Self {
        Endpoint {
            namespace: None,
            legacy_namespaces: Vec::new(),
            version: Ok(Version::DEFAULT),
            methods: BTreeMap::new(),
        }
    }

    /// Puts the endpoint in a namespace: it then serves only requests in that namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Serves requests in these namespaces too (oslo's `Target.legacy_namespaces`: a service
    /// that renamed its namespace keeps answering callers that use the old name). `None`
    /// stands for requests without a namespace.
    ///
    /// ```
    /// use msg_dispatch::Endpoint;
    /// let e = Endpoint::new().namespace("compute").legacy_namespaces([Some("nova"), None]);
    /// assert!(e.accepts_namespace(Some("compute")));
    /// assert!(e.accepts_namespace(Some("nova")));
    /// assert!(e.accepts_namespace(None));
    /// assert!(!e.accepts_namespace(Some("volume")));
    /// ```
    pub fn legacy_namespaces<S: Into<String>>(
        mut self,
        namespaces: impl IntoIterator<Item = Option<S>>,
    ) -> Self {
        self.legacy_namespaces = namespaces.into_iter().map(|n| n.map(Into::into)).collect();
        self
    }

    /// Whether the endpoint serves requests in `namespace` (its own, or a legacy one).
    pub fn accepts_namespace(&self, namespace: Option<&str>) -> bool {
        self.namespace.as_deref() == namespace
            || self
                .legacy_namespaces
                .iter()
                .any(|n| n.as_deref() == namespace)
    }

    /// Sets the endpoint's `major.minor[.revision]` version (it serves requests for the same
    /// major and a minor no higher; with an equal minor, a revision no higher). A string that
    /// is not a version is reported by [`RpcDispatcher::new`](crate::RpcDispatcher::new).
    pub fn version(mut self, version: &str) -> Self {
        self.version = Version::parse(version);
        self
    }

    /// Adds an async method (replacing one of the same name). Which methods a caller may
    /// invoke is up to the dispatcher's [`AccessPolicy`](crate::AccessPolicy).
    pub fn method<A, H>(self, name: impl Into<String>, handler: H) -> Self
    where
        A: DeserializeOwned + 'static,
        H: RpcHandler<A>,
    {
        let name = name.into();
        let handler = handler::erase(&name, handler);
        self.insert(name, handler, false)
    }

    /// Adds an async method marked as exposed: the only kind
    /// [`AccessPolicy::Explicit`](crate::AccessPolicy::Explicit) lets callers invoke (oslo's
    /// `@expose`).
    pub fn exposed_method<A, H>(self, name: impl Into<String>, handler: H) -> Self
    where
        A: DeserializeOwned + 'static,
        H: RpcHandler<A>,
    {
        let name = name.into();
        let handler = handler::erase(&name, handler);
        self.insert(name, handler, true)
    }

    /// Adds a synchronous, CPU-bound method, run on tokio's blocking pool so it doesn't stall
    /// the executor (the dispatch needs a tokio runtime).
    pub fn blocking_method<A, H>(self, name: impl Into<String>, handler: H) -> Self
    where
        A: DeserializeOwned + 'static,
        H: BlockingRpcHandler<A>,
    {
        let name = name.into();
        let handler = handler::erase_blocking(&name, handler);
        self.insert(name, handler, false)
    }

    /// Marks an already added method as exposed (see [`Endpoint::exposed_method`]); a name
    /// without a method is ignored.
    pub fn expose(mut self, name: &str) -> Self {
        match self.methods.get_mut(name) {
            Some(m) => m.exposed = true,
            None => tracing::warn!(method = name, "expose: the endpoint has no such method"),
        }
        self
    }

    /// The namespace, if any.
    pub fn target_namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The version, or why the string given to [`Endpoint::version`] is not one.
    pub fn target_version(&self) -> Result<Version, &BadVersion> {
        self.version.as_ref().copied()
    }

    /// Whether the endpoint has a method of this name (whatever the access policy says).
    pub fn has_method(&self, name: &str) -> bool {
        self.methods.contains_key(name)
    }

    /// The names of the methods, sorted.
    pub fn method_names(&self) -> impl Iterator<Item = &str> {
        self.methods.keys().map(String::as_str)
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<(&str, &Method)> {
        self.methods
            .get_key_value(name)
            .map(|(name, method)| (name.as_str(), method))
    }

    fn insert(mut self, name: String, handler: BoxedHandler, exposed: bool) -> Self {
        if self.methods.contains_key(&name) {
            tracing::debug!(method = %name, "replacing an endpoint method of the same name");
        }
        self.methods.insert(name, Method { handler, exposed });
        self
    }
}

impl Default for Endpoint {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("namespace", &self.namespace)
            .field("legacy_namespaces", &self.legacy_namespaces)
            .field("version", &self.version)
            .field("methods", &self.methods.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Method")
            .field("exposed", &self.exposed)
            .finish_non_exhaustive()
    }
}
