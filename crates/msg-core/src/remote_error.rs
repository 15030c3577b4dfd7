//! Remote errors: what the remote side of a call raised, as data, and a typed way to match
//! one by its class and module (where oslo's Python callers catch a rebuilt `<Class>_Remote`).

/// An error raised by the remote side of a call, as it travelled: never re-instantiated
/// (oslo rebuilds exceptions of `allowed_remote_exmods` modules by name; msg never makes a
/// type from a name on the wire). Match one with [`RemoteError::is`] and a
/// [`RemoteClass`], or with [`RemoteError::is_class`].
///
/// ```
/// use msg_core::{RemoteClass, RemoteError};
///
/// /// nova's `InstanceNotFound`, as a caller matches it.
/// struct InstanceNotFound;
/// impl RemoteClass for InstanceNotFound {
///     const MODULE: &'static str = "nova.exception";
///     const CLASS: &'static str = "InstanceNotFound";
/// }
///
/// let e = RemoteError::new("InstanceNotFound", "nova.exception", "Instance 42 could not be found.");
/// assert_eq!(e.to_string(), "remote error: InstanceNotFound: Instance 42 could not be found.");
/// assert!(e.is::<InstanceNotFound>());
/// assert!(e.is_class("nova.exception", "InstanceNotFound"));
/// assert!(!RemoteError::new("ValueError", "builtins", "boom").is::<InstanceNotFound>());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("remote error: {class}: {message}")]
pub struct RemoteError {
    /// The exception's class name (`ValueError`, `NoSuchMethod`, ...).
    pub class: String,
    /// The module the class lives in (`builtins`, `oslo_messaging.rpc.dispatcher`, ...).
    pub module: String,
    /// The exception's message.
    pub message: String,
    /// The remote traceback, one line per entry, as sent.
    pub traceback: Vec<String>,
}

/// A remote exception class a caller expects, named by its module and class (a marker type
/// per class: `err.remote_is::<InstanceNotFound>()`). A Python server sends the class and
/// module of what it raised; a msg server sends those its handler's `HandlerError` names.
pub trait RemoteClass {
    /// The module (`nova.exception`, `builtins`).
    const MODULE: &'static str;
    /// The class name (`InstanceNotFound`).
    const CLASS: &'static str;
}

impl RemoteError {
    /// A remote error without a traceback.
    pub fn new(
        class: impl Into<String>,
        module: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        RemoteError {
            class: class.into(),
            module: module.into(),
            message: message.into(),
            traceback: Vec::new(),
        }
    }

    /// Whether it is an instance of `C` (same module and class name).
    pub fn is<C: RemoteClass>(&self) -> bool {
        self.is_class(C::MODULE, C::CLASS)
    }

    /// Whether it is `module.class`.
    pub fn is_class(&self, module: &str, class: &str) -> bool {
        self.module == module && self.class == class
    }
}
