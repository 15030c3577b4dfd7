//! Which endpoint methods a caller may invoke.

/// Which endpoint methods a caller may invoke (oslo's RPC access policies).
///
/// A method the policy denies is, to the caller, a method that does not exist: the dispatcher
/// answers `NoSuchMethod`.
///
/// ```
/// use msg_dispatch::AccessPolicy;
/// assert!(AccessPolicy::Default.allows("add", false));
/// assert!(!AccessPolicy::Default.allows("_reset", false));
/// assert!(!AccessPolicy::Explicit.allows("add", false));
/// assert!(AccessPolicy::Explicit.allows("add", true));
/// assert!(AccessPolicy::All.allows("_reset", false));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AccessPolicy {
    /// Every method except those whose name starts with `_` (oslo's `DefaultRPCAccessPolicy`).
    #[default]
    Default,
    /// Only methods registered with [`Endpoint::exposed_method`](crate::Endpoint::exposed_method)
    /// (oslo's `ExplicitRPCAccessPolicy` and its `@expose`).
    Explicit,
    /// Every method (oslo's `LegacyRPCAccessPolicy`).
    All,
}

impl AccessPolicy {
    /// Whether a method with this name, exposed or not, may be invoked.
    pub fn allows(self, method: &str, exposed: bool) -> bool {
        match self {
            AccessPolicy::Default => !method.starts_with('_'),
            AccessPolicy::Explicit => exposed,
            AccessPolicy::All => true,
        }
    }
}
