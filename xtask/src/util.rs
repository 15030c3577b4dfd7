//! Small process / path / formatting helpers shared by the xtask commands.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// Finds `name` on `PATH`, falling back to the given absolute locations
/// (`/usr/sbin` is often missing from a non-root `PATH`).
pub fn find_program(name: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    let on_path = env::var_os("PATH").and_then(|paths| {
        env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        fallbacks
            .iter()
            .map(PathBuf::from)
            .find(|candidate| candidate.is_file())
    })
}

/// Human-readable rendering of a command line, for log and error messages.
pub fn display_cmd(cmd: &Command) -> String {
    let mut out = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&shell_quote(&arg.to_string_lossy()));
    }
    out
}

/// Spawns `cmd` and waits for it, killing it if it outlives `limit`.
pub fn run_with_deadline(cmd: &mut Command, limit: Duration) -> Result<ExitStatus> {
    let shown = display_cmd(cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("failed to spawn `{shown}`"))?;
    let start = Instant::now();
    loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("failed to wait for `{shown}`"))?
        {
            return Ok(status);
        }
        if start.elapsed() >= limit {
            // Best effort: the child may have exited in the meantime.
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "`{shown}` did not finish within {}s and was killed",
                limit.as_secs()
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `cmd` quietly (all stdio to /dev/null) and reports whether it exited 0
/// within `limit`. Any failure to run counts as `false`.
pub fn succeeds_quietly(cmd: &mut Command, limit: Duration) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    matches!(run_with_deadline(cmd, limit), Ok(status) if status.success())
}

/// Detaches `cmd` from our process group so that a Ctrl-C aimed at
/// `cargo xtask` does not also kill a daemon it is launching.
pub fn own_process_group(cmd: &mut Command) -> &mut Command {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0);
    }
    cmd
}

/// The last `n` lines of a (log) file, or a note that it could not be read.
pub fn tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(n);
            let out = lines[from..].join("\n");
            if out.trim().is_empty() {
                "(empty)".to_owned()
            } else {
                out
            }
        }
        Err(err) => format!("(could not read {}: {err})", path.display()),
    }
}

/// Quotes `s` for a POSIX shell if it contains anything but obviously safe characters.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if safe {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Hides the password of a `scheme://user:password@host/...` URL for display.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    // A transport URL may list several hosts (`a:p@h1,b:q@h2`); redact each.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let redacted: Vec<String> = rest[..authority_end]
        .split(',')
        .map(|host| match host.rfind('@') {
            Some(at) => {
                let userinfo = &host[..at];
                match userinfo.find(':') {
                    Some(colon) => format!("{}:***{}", &userinfo[..colon], &host[at..]),
                    // A bare userinfo may be a token (NATS): hide it all.
                    None => format!("***{}", &host[at..]),
                }
            }
            None => host.to_owned(),
        })
        .collect();
    format!(
        "{}{}{}",
        &url[..rest_start],
        redacted.join(","),
        &rest[authority_end..]
    )
}

/// A non-empty value of environment variable `name`, if any.
pub fn env_nonempty(name: &str) -> Option<String> {
    env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(|v| v.to_string_lossy().into_owned())
}

/// Whether an environment flag is set to exactly `1` (the project convention).
pub fn env_flag(name: &str) -> Option<bool> {
    env::var_os(name).map(|v| v == OsStr::new("1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(
            shell_quote("rabbit://guest:guest@127.0.0.1:5672/"),
            "rabbit://guest:guest@127.0.0.1:5672/"
        );
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("rabbit://guest:secret@10.0.0.1:5672/vh?x=1"),
            "rabbit://guest:***@10.0.0.1:5672/vh?x=1"
        );
        assert_eq!(
            redact_url("rabbit://a:p@h1:5672,b:q@h2:5672/"),
            "rabbit://a:***@h1:5672,b:***@h2:5672/"
        );
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(redact_url("nats://tok@h:4222"), "nats://***@h:4222");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
