//! What an RPC handler returns on failure, and how it travels back to the caller.

use std::fmt;

use msg_core::Failure;

/// The class of a [`HandlerError`] made from a message alone.
const DEFAULT_CLASS: &str = "HandlerError";
/// The module of errors that msg itself names.
pub(crate) const MSG_MODULE: &str = "msg";

/// The failure of an RPC handler: a remote exception's class, module and message, as the
/// caller will see them in its [`Failure`].
///
/// Any `std::error::Error + Send + Sync + 'static` converts into it, so `?` works in a
/// handler: the class is the error type's name and the module its path, dotted
/// (`my_crate::errors::QuotaExceeded` becomes class `QuotaExceeded`, module
/// `my_crate.errors`). Like `anyhow::Error`, `HandlerError` is not itself a
/// `std::error::Error`; that is what lets the blanket conversion exist. For the same reason
/// it cannot convert from `String` or `&str` (the compiler must assume those might become
/// errors one day): use [`HandlerError::new`].
///
/// An error marked [`expected`](HandlerError::expected) (oslo's `expected_exceptions`) is part
/// of the method's contract: the dispatcher logs it at debug level instead of error.
///
/// ```
/// use msg_dispatch::HandlerError;
/// let f = HandlerError::new("quota exceeded").into_failure();
/// assert_eq!((f.class.as_str(), f.module.as_str()), ("HandlerError", "msg"));
///
/// let e = HandlerError::with_class("NotFound", "nova.exception", "no such instance").expected();
/// assert!(e.is_expected());
///
/// fn parse(s: &str) -> Result<u32, HandlerError> {
///     Ok(s.parse::<u32>()?)
/// }
/// let err = parse("x").unwrap_err();
/// assert_eq!(err.class(), "ParseIntError");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    class: String,
    module: String,
    message: String,
    expected: bool,
}

impl HandlerError {
    /// An error with a message: class `HandlerError`, module `msg`.
    pub fn new(message: impl Into<String>) -> Self {
        Self::with_class(DEFAULT_CLASS, MSG_MODULE, message)
    }

    /// An error with the class and module the caller should see (`"ValueError"`,
    /// `"builtins"` to look like Python's).
    pub fn with_class(
        class: impl Into<String>,
        module: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        HandlerError {
            class: class.into(),
            module: module.into(),
            message: message.into(),
            expected: false,
        }
    }

    /// This error, marked as expected: part of the method's contract, logged at debug level.
    pub fn expected(mut self) -> Self {
        self.expected = true;
        self
    }

    /// Whether the error is expected (see [`HandlerError::expected`]).
    pub fn is_expected(&self) -> bool {
        self.expected
    }

    /// The class name the caller sees.
    pub fn class(&self) -> &str {
        &self.class
    }

    /// The module the caller sees.
    pub fn module(&self) -> &str {
        &self.module
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The failure that travels back to the caller: `args` is `[message]` and the traceback is
    /// empty (a Rust handler has no Python traceback to share).
    pub fn into_failure(self) -> Failure {
        Failure::new(self.class, self.module, self.message)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(err: E) -> Self {
        let (class, module) = class_and_module(std::any::type_name::<E>());
        HandlerError::with_class(class, module, err.to_string())
    }
}

impl From<HandlerError> for Failure {
    fn from(err: HandlerError) -> Self {
        err.into_failure()
    }
}

/// Splits a Rust type name into a class (the last path segment, generics stripped) and a
/// module (the rest of the path, dotted).
fn class_and_module(type_name: &str) -> (&str, String) {
    let path = type_name.split('<').next().unwrap_or(type_name);
    match path.rsplit_once("::") {
        Some((module, class)) => (class, module.replace("::", ".")),
        None => (path, String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct QuotaExceeded;
    impl fmt::Display for QuotaExceeded {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("over quota")
        }
    }
    impl std::error::Error for QuotaExceeded {}

    #[derive(Debug)]
    struct Generic<T>(T);
    impl<T: fmt::Debug> fmt::Display for Generic<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "generic {:?}", self.0)
        }
    }
    impl<T: fmt::Debug> std::error::Error for Generic<T> {}

    #[test]
    fn new_and_with_class() {
        let e = HandlerError::new("boom");
        assert_eq!(
            (e.class(), e.module(), e.message()),
            ("HandlerError", "msg", "boom")
        );
        assert!(!e.is_expected());
        assert_eq!(e.to_string(), "HandlerError: boom");
        let f = HandlerError::with_class("ValueError", "builtins", "bad")
            .expected()
            .into_failure();
        assert_eq!(f.class, "ValueError");
        assert_eq!(f.module, "builtins");
        assert_eq!(f.message, "bad");
        assert_eq!(f.args, vec![serde_json::json!("bad")]);
        assert!(f.tb.is_empty() && f.kwargs.is_empty());
    }

    #[test]
    fn from_any_error_names_its_type() {
        let e = HandlerError::from(QuotaExceeded);
        assert_eq!(e.class(), "QuotaExceeded");
        assert_eq!(e.module(), "msg_dispatch.handler_error.tests");
        assert_eq!(e.message(), "over quota");

        let e = HandlerError::from(Generic(vec![std::num::Wrapping(1u8)]));
        assert_eq!(e.class(), "Generic");
        assert_eq!(e.module(), "msg_dispatch.handler_error.tests");

        let parse = "x".parse::<i32>().map_err(HandlerError::from);
        let e = parse.unwrap_err();
        assert_eq!(e.class(), "ParseIntError");
        // `core.num.error` today: whatever path std reports, dotted
        assert!(e.module().contains("num") && !e.module().contains("::"));
    }

    #[test]
    fn type_name_splitting() {
        assert_eq!(
            class_and_module("std::num::ParseIntError"),
            ("ParseIntError", "std.num".to_string())
        );
        assert_eq!(
            class_and_module("a::b::C<d::E, f::G<h::I>>"),
            ("C", "a.b".to_string())
        );
        assert_eq!(class_and_module("Bare"), ("Bare", String::new()));
    }
}
