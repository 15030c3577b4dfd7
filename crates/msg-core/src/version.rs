//! oslo's `major.minor[.revision]` API versions and the compatibility rule.

use std::fmt;

/// A `major.minor[.revision]` version, as endpoints, requests and version caps carry them.
///
/// ```
/// use msg_core::Version;
/// let v = Version::parse("1.2").unwrap();
/// assert!(Version::parse("1.5").unwrap().is_compatible(v)); // endpoint 1.5 serves 1.2
/// assert!(!Version::parse("2.0").unwrap().is_compatible(v));
/// // a revision counts only between equal minors, as oslo compares them
/// let r = Version::parse("1.2.3").unwrap();
/// assert!(!Version::parse("1.2.1").unwrap().is_compatible(r));
/// assert!(Version::parse("1.3").unwrap().is_compatible(r));
/// assert_eq!(r.to_string(), "1.2.3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// The major number: different majors never match.
    pub major: u32,
    /// The minor number: an endpoint serves every request with a minor no higher than its own.
    pub minor: u32,
    /// The revision (third number; 0 when absent): between equal minors, an endpoint serves
    /// every request with a revision no higher than its own.
    pub revision: u32,
}

/// A version string that is not `major`, `major.minor` or `major.minor.revision`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a `major.minor[.revision]` version")]
pub struct BadVersion(pub String);

impl Version {
    /// `1.0`, what a request without a version asks for.
    pub const DEFAULT: Version = Version::new(1, 0);

    /// `major.minor`, revision 0.
    pub const fn new(major: u32, minor: u32) -> Self {
        Version {
            major,
            minor,
            revision: 0,
        }
    }

    /// Parses `major.minor[.revision]` (a bare `major` means `major.0`).
    pub fn parse(s: &str) -> Result<Self, BadVersion> {
        let bad = || BadVersion(s.to_string());
        let mut parts = s.trim().split('.');
        let mut number = |required: bool| -> Result<u32, BadVersion> {
            match parts.next() {
                Some(p) => p.parse().map_err(|_| bad()),
                None if required => Err(bad()),
                None => Ok(0),
            }
        };
        let major = number(true)?;
        let minor = number(false)?;
        let revision = number(false)?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Version {
            major,
            minor,
            revision,
        })
    }

    /// oslo's `version_is_compatible(self, requested)`: same major, our minor >= the
    /// requested minor, and with equal minors our revision >= the requested revision.
    pub fn is_compatible(self, requested: Version) -> bool {
        self.major == requested.major
            && (self.minor, self.revision) >= (requested.minor, requested.revision)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if self.revision != 0 {
            write!(f, ".{}", self.revision)?;
        }
        Ok(())
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
        assert_eq!(Version::parse("2").unwrap(), Version::new(2, 0));
        assert_eq!(
            Version::parse("1.2.3").unwrap(),
            Version {
                major: 1,
                minor: 2,
                revision: 3
            }
        );
        assert!(Version::parse("1.2.3.4").is_err());
        assert!(Version::parse("1..2").is_err());
        assert!(Version::parse("1.99999999999").is_err());
        let r = Version::parse("1.2.3").unwrap();
        assert!(r.is_compatible(Version::parse("1.2.2").unwrap()));
        assert!(r.is_compatible(Version::parse("1.1.9").unwrap()));
        assert!(!r.is_compatible(Version::parse("1.2.4").unwrap()));
        assert!(Version::parse("1.3.0").unwrap().is_compatible(r));
        assert!(Version::parse("a.b").is_err());
        assert!(Version::parse("").is_err());
        let v12 = Version::parse("1.2").unwrap();
        assert!(v12.is_compatible(Version::parse("1.0").unwrap()));
        assert!(v12.is_compatible(v12));
        assert!(!v12.is_compatible(Version::parse("1.3").unwrap()));
        assert!(!v12.is_compatible(Version::parse("2.0").unwrap()));
    }
}
