//! What a driver can do, declared so the conformance suite knows what to test.

use std::fmt;

/// One thing a driver can do. The conformance suite skips only what a missing capability
/// rules out, and lists those skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Capability {
    /// Messages to a topic are shared among the servers listening to it.
    LoadBalancing,
    /// Messages to `topic.server` reach only that server.
    ServerDirected,
    /// Fanout casts reach every server of a topic.
    Fanout,
    /// Calls get replies correlated by message id.
    Replies,
    /// Calls time out.
    CallTimeout,
    /// Servers send call-monitor heartbeats and clients watch them.
    Heartbeats,
    /// Notifications can be sent and listened to.
    Notifications,
    /// Listener pools: each pool gets one copy, balanced inside it.
    Pools,
    /// Notifications sent before any listener exists are kept and delivered later.
    StoreAndForward,
    /// A listener can send a notification back for redelivery.
    Requeue,
    /// A cast sent while no server listens is kept until one does (RabbitMQ's queues).
    DurableCasts,
    /// A send with nothing bound fails with `Undeliverable` (`at_least_once`).
    Undeliverable,
    /// A call to a topic nobody serves fails at once with `NoResponders`.
    NoResponders,
}

impl Capability {
    /// Every capability.
    pub const ALL: [Capability; 13] = [
        Capability::LoadBalancing,
        Capability::ServerDirected,
        Capability::Fanout,
        Capability::Replies,
        Capability::CallTimeout,
        Capability::Heartbeats,
        Capability::Notifications,
        Capability::Pools,
        Capability::StoreAndForward,
        Capability::Requeue,
        Capability::DurableCasts,
        Capability::Undeliverable,
        Capability::NoResponders,
    ];

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A set of [`Capability`].
///
/// ```
/// use msg_core::{Capabilities, Capability};
/// let caps = Capabilities::empty().with(Capability::Requeue);
/// assert!(caps.contains(Capability::Requeue));
/// assert!(!caps.contains(Capability::Pools));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u32);

impl Capabilities {
    /// No capability.
    pub const fn empty() -> Self {
        Capabilities(0)
    }

    /// Every capability.
    pub fn all() -> Self {
        Capability::ALL.into_iter().collect()
    }

    /// This set plus one.
    pub fn with(self, c: Capability) -> Self {
        Capabilities(self.0 | c.bit())
    }

    /// This set less one.
    pub fn without(self, c: Capability) -> Self {
        Capabilities(self.0 & !c.bit())
    }

    /// Whether the set holds `c`.
    pub fn contains(self, c: Capability) -> bool {
        self.0 & c.bit() != 0
    }

    /// The capabilities in the set.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }
}

impl FromIterator<Capability> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        iter.into_iter()
            .fold(Capabilities::empty(), Capabilities::with)
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}
