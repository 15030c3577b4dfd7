//! One option's value as found, with where it came from, and its conversions by oslo.config's
//! types (each error names the file or variable, the section and the key).

use std::fmt;
use std::str::FromStr;

use super::{ConfigError, Origin};

/// An option's value (after `$name` substitution) and where it was written.
///
/// ```
/// use msg_core::config::ConfigFiles;
/// let files = ConfigFiles::empty()
///     .text("a.conf", "[DEFAULT]\nrpc_response_timeout = 30\nflag = Yes\ntopics = a, b ,c\n")?;
/// let v = files.get("DEFAULT", "rpc_response_timeout")?.unwrap();
/// assert_eq!(v.to_int::<u32>()?, 30);
/// assert!(files.get("DEFAULT", "flag")?.unwrap().to_bool()?);
/// assert_eq!(files.get("DEFAULT", "topics")?.unwrap().to_list(), ["a", "b", "c"]);
/// let err = files.get("DEFAULT", "flag")?.unwrap().to_int::<u32>().unwrap_err();
/// assert_eq!(err.to_string(), "a.conf:3: [DEFAULT] flag: wants an integer, not `Yes`");
/// # Ok::<(), msg_core::config::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigValue {
    pub(crate) text: String,
    pub(crate) origin: Origin,
    pub(crate) group: String,
    pub(crate) key: String,
}

impl ConfigValue {
    /// The value as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Where it was written.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The section it was read from.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The option's name.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// An error about this value, naming where it was written, its section and key.
    pub fn invalid(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError::Value {
            origin: self.origin.clone(),
            group: self.group.clone(),
            key: self.key.clone(),
            reason: reason.into(),
        }
    }

    /// oslo's `BoolOpt`: `true`, `1`, `on`, `yes` or `false`, `0`, `off`, `no`, in any case.
    pub fn to_bool(&self) -> Result<bool, ConfigError> {
        match self.text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "on" | "yes" => Ok(true),
            "false" | "0" | "off" | "no" => Ok(false),
            _ => Err(self.invalid(format!("wants true or false, not `{}`", self.shown()))),
        }
    }

    /// oslo's `IntOpt`, into any integer type (its range is the type's).
    pub fn to_int<T: FromStr>(&self) -> Result<T, ConfigError> {
        self.text
            .trim()
            .parse()
            .map_err(|_| self.invalid(format!("wants an integer, not `{}`", self.shown())))
    }

    /// oslo's `FloatOpt`: a finite number.
    pub fn to_float(&self) -> Result<f64, ConfigError> {
        match self.text.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(f),
            _ => Err(self.invalid(format!("wants a number, not `{}`", self.shown()))),
        }
    }

    /// oslo's `ListOpt`: comma-separated items, each trimmed, empty ones dropped.
    pub fn to_list(&self) -> Vec<String> {
        self.text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The text as an error may show it: at most 80 characters.
    fn shown(&self) -> String {
        self.text.chars().take(80).collect()
    }
}

/// Shows where the value came from, never the value (it may be a password or a URL
/// holding one).
impl fmt::Debug for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigValue")
            .field("group", &self.group)
            .field("key", &self.key)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}
