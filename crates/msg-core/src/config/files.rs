//! The configuration files of a service, read as oslo.config reads them, and the
//! `OS_<GROUP>__<OPTION>` environment variables that override them.

use std::fmt;
use std::path::{Path, PathBuf};

use super::ini::{self, IniEntry};
use super::substitute::substitute;
use super::{ConfigError, ConfigValue, Origin};

/// How deep `$name` references may nest (a deeper chain is taken for a loop).
const MAX_SUBSTITUTION_DEPTH: usize = 16;

/// The files a service was given (`--config-file`, several, and `--config-dir`), in the
/// order given, plus the environment. Lookups follow oslo.config:
///
/// - a single-valued option takes its last value in the last file that sets it; a
///   multi-valued one ([`get_multi`](Self::get_multi)) every value of every file, in order;
/// - an `OS_<GROUP>__<OPTION>` environment variable (`OS_DEFAULT__TRANSPORT_URL`,
///   `OS_OSLO_MESSAGING_RABBIT__SSL`) beats every file;
/// - section names are case-insensitive except `[DEFAULT]`; keys are case-sensitive;
/// - a section does not inherit from `[DEFAULT]`;
/// - `$name`, `${name}` and `$group.name` in a value are replaced by that option's value
///   (`name` is looked up in the value's own section, then in `[DEFAULT]`); `$$` is a `$`.
///
/// ```
/// use msg_core::config::ConfigFiles;
/// let files = ConfigFiles::empty()
///     .text("nova.conf", "[DEFAULT]\nmy_ip = 10.0.0.5\ntransport_url = rabbit://u:p@$my_ip:5672/\n\
///                          [oslo_messaging_notifications]\ndriver = messagingv2\n")?
///     .text("override.conf", "[oslo_messaging_notifications]\ndriver = log\n")?;
/// let url = files.get("DEFAULT", "transport_url")?.unwrap();
/// assert_eq!(url.as_str(), "rabbit://u:p@10.0.0.5:5672/");
/// let drivers: Vec<String> = files
///     .get_multi("oslo_messaging_notifications", "driver")?
///     .iter().map(|v| v.as_str().to_string()).collect();
/// assert_eq!(drivers, ["messagingv2", "log"]);
/// // no inheritance from [DEFAULT]
/// assert!(files.get("oslo_messaging_rabbit", "my_ip")?.is_none());
/// # Ok::<(), msg_core::config::ConfigError>(())
/// ```
#[derive(Clone, Default)]
pub struct ConfigFiles {
    files: Vec<ParsedFile>,
    environment: Vec<(String, String)>,
}

#[derive(Clone)]
struct ParsedFile {
    path: PathBuf,
    /// Assignments in file order, sections already normalized.
    entries: Vec<IniEntry>,
}

impl ConfigFiles {
    /// No files yet, and the process's `OS_*` environment variables.
    pub fn new() -> Self {
        let environment = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with("OS_"));
        ConfigFiles::empty().environment(environment)
    }

    /// No files and no environment.
    pub fn empty() -> Self {
        ConfigFiles::default()
    }

    /// Replaces the environment variables consulted (only `OS_*` ones matter).
    pub fn environment<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.environment = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(k, _)| k.starts_with("OS_"))
            .collect();
        self
    }

    /// Reads and adds one file (`--config-file`); it must exist and parse.
    pub fn file(self, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        self.text(path, &text)
    }

    /// Adds every `*.conf` file of a directory (`--config-dir`), sorted by name, as oslo
    /// does: they come after the files added before, so they win over them.
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let dir = dir.as_ref();
        let read_error = |source| ConfigError::Read {
            path: dir.to_path_buf(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_error)? {
            let path = entry.map_err(read_error)?.path();
            let conf = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".conf") && !n.starts_with('.'));
            if conf && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        for path in paths {
            self = self.file(path)?;
        }
        Ok(self)
    }

    /// Adds a file given as text, named `path` in messages.
    pub fn text(mut self, path: impl Into<PathBuf>, text: &str) -> Result<Self, ConfigError> {
        let path = path.into();
        let mut entries = ini::parse(text).map_err(|e| ConfigError::Syntax {
            path: path.clone(),
            line: e.line,
            reason: e.reason.to_string(),
        })?;
        for e in &mut entries {
            e.section = normalize_group(&e.section);
        }
        self.files.push(ParsedFile { path, entries });
        Ok(self)
    }

    /// The files read, in order.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|f| f.path.as_path())
    }

    /// The value of a single-valued option, `$name`s substituted; `None` when nothing sets it.
    pub fn get(&self, group: &str, key: &str) -> Result<Option<ConfigValue>, ConfigError> {
        let group = normalize_group(group);
        match self.raw(&group, key) {
            Some(v) => Ok(Some(self.substituted(v, 0)?)),
            None => Ok(None),
        }
    }

    /// Every value of a multi-valued option: the environment variable's alone if it is set,
    /// else those of every file, in order.
    pub fn get_multi(&self, group: &str, key: &str) -> Result<Vec<ConfigValue>, ConfigError> {
        let group = normalize_group(group);
        if let Some(v) = self.environment_value(&group, key) {
            return Ok(vec![self.substituted(v, 0)?]);
        }
        self.files
            .iter()
            .flat_map(|f| {
                f.entries
                    .iter()
                    .filter(|e| e.section == group && e.key == key)
                    .map(|e| file_value(f, e))
            })
            .map(|v| self.substituted(v, 0))
            .collect()
    }

    /// The options a section sets (files and environment), each once, with where it was
    /// first set: what a reader checks for names it does not know.
    pub fn keys(&self, group: &str) -> Vec<(String, Origin)> {
        let group = normalize_group(group);
        let mut keys: Vec<(String, Origin)> = Vec::new();
        let prefix = format!("{}__", env_prefix(&group));
        for (var, _) in &self.environment {
            if let Some(key) = var.strip_prefix(&prefix) {
                push_new(
                    &mut keys,
                    key.to_ascii_lowercase(),
                    Origin::Environment {
                        variable: var.clone(),
                    },
                );
            }
        }
        for f in &self.files {
            for e in f.entries.iter().filter(|e| e.section == group) {
                push_new(&mut keys, e.key.clone(), file_value(f, e).origin);
            }
        }
        keys
    }

    /// The value before substitution: the environment's, else the last file's last.
    fn raw(&self, group: &str, key: &str) -> Option<ConfigValue> {
        self.environment_value(group, key).or_else(|| {
            self.files.iter().rev().find_map(|f| {
                f.entries
                    .iter()
                    .rev()
                    .find(|e| e.section == group && e.key == key)
                    .map(|e| file_value(f, e))
            })
        })
    }

    fn environment_value(&self, group: &str, key: &str) -> Option<ConfigValue> {
        let variable = format!("{}__{}", env_prefix(group), key.to_ascii_uppercase());
        self.environment
            .iter()
            .rev()
            .find(|(k, _)| *k == variable)
            .map(|(_, v)| ConfigValue {
                text: v.clone(),
                origin: Origin::Environment {
                    variable: variable.clone(),
                },
                group: group.to_string(),
                key: key.to_string(),
            })
    }

    /// `value` with its references replaced, each by its own substituted value.
    fn substituted(&self, value: ConfigValue, depth: usize) -> Result<ConfigValue, ConfigError> {
        if depth > MAX_SUBSTITUTION_DEPTH {
            return Err(value.invalid(format!(
                "`$` references nest deeper than {MAX_SUBSTITUTION_DEPTH} (a loop?)"
            )));
        }
        let text = substitute(&value.text, |name| {
            let found = match name.split_once('.') {
                Some((g, k)) => self.raw(&normalize_group(g), k),
                None => None,
            }
            .or_else(|| self.raw(&value.group, name))
            .or_else(|| self.raw("DEFAULT", name));
            match found {
                Some(v) => Ok(self.substituted(v, depth + 1)?.text),
                None => Err(value.invalid(format!(
                    "`${name}` names no option set in [{}] or [DEFAULT] (write `$$` for a `$`)",
                    value.group
                ))),
            }
        })?;
        Ok(ConfigValue { text, ..value })
    }
}

/// oslo's section names: `DEFAULT` as it is, any other lower-cased.
fn normalize_group(group: &str) -> String {
    if group == "DEFAULT" {
        group.to_string()
    } else {
        group.to_ascii_lowercase()
    }
}

/// `OS_<GROUP>` for a section.
fn env_prefix(group: &str) -> String {
    format!("OS_{}", group.to_ascii_uppercase())
}

fn file_value(f: &ParsedFile, e: &IniEntry) -> ConfigValue {
    ConfigValue {
        text: e.value.clone(),
        origin: Origin::File {
            path: f.path.clone(),
            line: e.line,
        },
        group: e.section.clone(),
        key: e.key.clone(),
    }
}

fn push_new(keys: &mut Vec<(String, Origin)>, key: String, origin: Origin) {
    if !keys.iter().any(|(k, _)| *k == key) {
        keys.push((key, origin));
    }
}

/// Shows the files, never the values (they hold passwords).
impl fmt::Debug for ConfigFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigFiles")
            .field("files", &self.paths().collect::<Vec<_>>())
            .field(
                "environment",
                &self.environment.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(texts: &[&str]) -> ConfigFiles {
        texts
            .iter()
            .enumerate()
            .fold(ConfigFiles::empty(), |acc, (i, t)| {
                acc.text(format!("f{i}.conf"), t).unwrap()
            })
    }

    fn get(f: &ConfigFiles, g: &str, k: &str) -> Option<String> {
        f.get(g, k).unwrap().map(|v| v.as_str().to_string())
    }

    #[test]
    fn later_files_win_and_multi_values_accumulate() {
        let f = files(&[
            "[DEFAULT]\na = 1\na = 2\nm = x\n[Oslo_Messaging_Rabbit]\nssl = true\n",
            "[DEFAULT]\na = 3\nm = y\nm = z\n[oslo_messaging_rabbit]\n",
        ]);
        assert_eq!(get(&f, "DEFAULT", "a").as_deref(), Some("3"));
        let m: Vec<_> = f.get_multi("DEFAULT", "m").unwrap();
        let m: Vec<_> = m.iter().map(|v| v.as_str()).collect();
        assert_eq!(m, ["x", "y", "z"]);
        // section names are case-insensitive, but not DEFAULT's
        assert_eq!(
            get(&f, "oslo_messaging_rabbit", "ssl").as_deref(),
            Some("true")
        );
        let lower = files(&["[default]\na = 1\n"]);
        assert_eq!(get(&lower, "DEFAULT", "a"), None);
        let v = f.get("DEFAULT", "a").unwrap().unwrap();
        assert_eq!(v.origin().to_string(), "f1.conf:2");
    }

    #[test]
    fn the_environment_beats_the_files() {
        let f = files(&["[DEFAULT]\na = 1\n[oslo_messaging_notifications]\ndriver = log\n"])
            .environment([
                ("OS_DEFAULT__A", "env"),
                ("OS_OSLO_MESSAGING_NOTIFICATIONS__DRIVER", "noop"),
                ("OS_OSLO_MESSAGING_RABBIT__SSL", "1"),
                ("PATH", "/bin"),
            ]);
        assert_eq!(get(&f, "DEFAULT", "a").as_deref(), Some("env"));
        let d = f
            .get_multi("oslo_messaging_notifications", "driver")
            .unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].as_str(), "noop");
        let keys = f.keys("oslo_messaging_rabbit");
        assert_eq!(keys[0].0, "ssl");
        assert_eq!(
            keys[0].1.to_string(),
            "environment variable OS_OSLO_MESSAGING_RABBIT__SSL"
        );
    }

    #[test]
    fn substitution_follows_sections_and_stops_loops() {
        let f = files(&[
            "[DEFAULT]\nhost = h1\nport = 5672\nloop = $loop2\nloop2 = ${loop}\n\
             [g]\nhost = h2\nurl = rabbit://$host:$port/\nother = $DEFAULT.host\nmissing = $nope\n",
        ]);
        assert_eq!(get(&f, "g", "url").as_deref(), Some("rabbit://h2:5672/"));
        assert_eq!(get(&f, "g", "other").as_deref(), Some("h1"));
        let e = f.get("g", "missing").unwrap_err().to_string();
        assert!(e.starts_with("f0.conf:10: [g] missing: `$nope`"), "{e}");
        let e = f.get("DEFAULT", "loop").unwrap_err().to_string();
        assert!(e.contains("loop?"), "{e}");
    }

    #[test]
    fn missing_files_and_directories_are_errors() {
        let dir = std::env::temp_dir().join(format!("msg-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("b.conf"), "[DEFAULT]\nx = b\n").unwrap();
        std::fs::write(dir.join("a.conf"), "[DEFAULT]\nx = a\ny = a\n").unwrap();
        std::fs::write(dir.join("c.txt"), "not ini").unwrap();
        let f = ConfigFiles::empty().dir(&dir).unwrap();
        assert_eq!(get(&f, "DEFAULT", "x").as_deref(), Some("b"));
        assert_eq!(f.paths().count(), 2);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(
            ConfigFiles::empty().file(dir.join("a.conf")),
            Err(ConfigError::Read { .. })
        ));
        assert!(ConfigFiles::empty().dir(&dir).is_err());
    }
}
