//! What goes wrong reading configuration files, and where a value came from.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value was written: a file and line, or an environment variable.
///
/// ```
/// use msg_core::config::Origin;
/// let o = Origin::File { path: "/etc/nova/nova.conf".into(), line: 12 };
/// assert_eq!(o.to_string(), "/etc/nova/nova.conf:12");
/// let e = Origin::Environment { variable: "OS_DEFAULT__TRANSPORT_URL".into() };
/// assert_eq!(e.to_string(), "environment variable OS_DEFAULT__TRANSPORT_URL");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// A line of a configuration file.
    File {
        /// The file, as it was given.
        path: PathBuf,
        /// The line of the assignment (from 1).
        line: usize,
    },
    /// An `OS_<GROUP>__<OPTION>` environment variable.
    Environment {
        /// The variable's name.
        variable: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Environment { variable } => write!(f, "environment variable {variable}"),
        }
    }
}

/// A configuration file that can't be read or parsed, or a value that is wrong. Messages
/// name the file (and line), the section and the key; they never repeat a line's text.
///
/// ```
/// use msg_core::config::{ConfigError, ConfigFiles};
/// let err = ConfigFiles::empty().text("/etc/x.conf", "[DEFAULT]\n  oops\n").unwrap_err();
/// assert!(matches!(err, ConfigError::Syntax { line: 2, .. }));
/// assert!(err.to_string().starts_with("/etc/x.conf:2: "));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file or directory could not be read (missing, not allowed, not text).
    #[error("can't read the configuration {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line breaks oslo.config's INI rules.
    #[error("{path}:{line}: {reason}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A value that is not what its option takes, or whose `$name` can't be substituted.
    #[error("{origin}: [{group}] {key}: {reason}")]
    Value {
        /// Where it was written.
        origin: Origin,
        /// The section (group), as msg looks it up.
        group: String,
        /// The option's name.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<ConfigError> for crate::Error {
    fn from(e: ConfigError) -> Self {
        crate::Error::Config(e.to_string())
    }
}
