//! oslo's `major.minor` API versions and the compatibility rule.

use std::fmt;

/// A `major.minor` version, as endpoints and requests carry them.
///
/// ```
/// use msg_core::Version;
/// let v = Version::parse("1.2").unwrap();
/// assert!(Version::parse("1.5").unwrap().is_compatible(v)); // endpoint 1.5 serves 1.2
/// assert!(!Version::parse("2.0").unwrap().is_compatible(v));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// The major number: different majors never match.
    pub major: u32,
    /// The minor number: an endpoint serves every request with a minor no higher than its own.
    pub minor: u32,
}

/// A version string that is not `major` or `major.minor`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a `major.minor` version")]
pub struct BadVersion(pub String);

impl Version {
    /// `1.0`, what a request without a version asks for.
    pub const DEFAULT: Version = Version { major: 1, minor: 0 };

    /// Parses `major.minor` (a bare `major` means `major.0`, as oslo).
    pub fn parse(s: &str) -> Result<Self, BadVersion> {
        let bad = || BadVersion(s.to_string());
        let mut parts = s.trim().split('.');
        let major = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let minor = match parts.next() {
            Some(m) => m.parse().map_err(|_| bad())?,
            None => 0,
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Version { major, minor })
    }

    /// oslo's `version_is_compatible(self, requested)`: same major, our minor >= requested minor.
    pub fn is_compatible(self, requested: Version) -> bool {
        self.major == requested.major && self.minor >= requested.minor
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl std::str::FromStr for Version {
    type Err = BadVersion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_compat() {
        assert_eq!(Version::parse("2").unwrap(), Version { major: 2, minor: 0 });
        assert!(Version::parse("1.2.3").is_err());
        assert!(Version::parse("a.b").is_err());
        assert!(Version::parse("").is_err());
        let v12 = Version::parse("1.2").unwrap();
        assert!(v12.is_compatible(Version::parse("1.0").unwrap()));
        assert!(v12.is_compatible(v12));
        assert!(!v12.is_compatible(Version::parse("1.3").unwrap()));
        assert!(!v12.is_compatible(Version::parse("2.0").unwrap()));
    }
}
