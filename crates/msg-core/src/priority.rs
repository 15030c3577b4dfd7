//! Notification priorities.

use std::fmt;

/// A notification's priority, with oslo's spellings on the wire.
///
/// Parsing is case-insensitive and accepts `warning` for [`Priority::Warn`].
///
/// ```
/// use msg_core::Priority;
/// let p: Priority = "Warning".parse().unwrap();
/// assert_eq!(p, Priority::Warn);
/// assert_eq!(p.wire_name(), "WARN");
/// assert_eq!(p.routing_name(), "warn");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// `audit`
    Audit,
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `warn` (also `warning`)
    Warn,
    /// `error`
    Error,
    /// `critical`
    Critical,
    /// `sample`
    Sample,
}

/// A priority name that is not one of oslo's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown priority `{0}` (expected audit, debug, info, warn, error, critical or sample)")]
pub struct UnknownPriority(pub String);

impl Priority {
    /// Every priority, in oslo's order.
    pub const ALL: [Priority; 7] = [
        Priority::Audit,
        Priority::Debug,
        Priority::Info,
        Priority::Warn,
        Priority::Error,
        Priority::Critical,
        Priority::Sample,
    ];

    /// The upper-case name in a notification body (`INFO`).
    pub fn wire_name(self) -> &'static str {
        match self {
            Priority::Audit => "AUDIT",
            Priority::Debug => "DEBUG",
            Priority::Info => "INFO",
            Priority::Warn => "WARN",
            Priority::Error => "ERROR",
            Priority::Critical => "CRITICAL",
            Priority::Sample => "SAMPLE",
        }
    }

    /// The lower-case name in routing keys and queue names (`info`).
    pub fn routing_name(self) -> &'static str {
        match self {
            Priority::Audit => "audit",
            Priority::Debug => "debug",
            Priority::Info => "info",
            Priority::Warn => "warn",
            Priority::Error => "error",
            Priority::Critical => "critical",
            Priority::Sample => "sample",
        }
    }
}

impl std::str::FromStr for Priority {
    type Err = UnknownPriority;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // no copy: priorities are compared without regard to ASCII case
        const NAMES: [(&str, Priority); 8] = [
            ("info", Priority::Info),
            ("audit", Priority::Audit),
            ("debug", Priority::Debug),
            ("warn", Priority::Warn),
            ("warning", Priority::Warn),
            ("error", Priority::Error),
            ("critical", Priority::Critical),
            ("sample", Priority::Sample),
        ];
        let Some(&(_, p)) = NAMES.iter().find(|(name, _)| name.eq_ignore_ascii_case(s)) else {
            return Err(UnknownPriority(s.to_string()));
        };
        Ok(p)
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.routing_name())
    }
}

impl serde::Serialize for Priority {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.wire_name())
    }
}

impl<'de> serde::Deserialize<'de> for Priority {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Priority::ALL {
            assert_eq!(p.wire_name().parse::<Priority>().unwrap(), p);
            assert_eq!(p.routing_name().parse::<Priority>().unwrap(), p);
        }
        assert_eq!("WARNING".parse::<Priority>().unwrap(), Priority::Warn);
        assert!("loud".parse::<Priority>().is_err());
    }
}
