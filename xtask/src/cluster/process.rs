//! The cluster's OS processes: found by a marker in their environment, never by name.
//!
//! Every node is started by a script that exports `MSG_CLUSTER_NODE=<node dir>`; the
//! broker inherits it, so `/proc/PID/environ` tells a node of this cluster from the
//! machine's own RabbitMQ or NATS (which never carry the marker). Linux only, as is
//! the rest of `cargo xtask cluster`.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::util;

/// The environment variable that marks a process as a node of a local cluster.
pub const MARKER: &str = "MSG_CLUSTER_NODE";

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const POLL: Duration = Duration::from_millis(100);

/// A live process of a local cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marked {
    pub pid: u32,
    /// The node directory its marker names.
    pub node_dir: PathBuf,
    /// The kernel's short command name (`beam.smp`, `nats-server`, `sh`).
    pub comm: String,
}

/// The `MARKER=...` value of a process environment, if it has one.
fn marker_in(environ: &[u8]) -> Option<PathBuf> {
    let prefix = format!("{MARKER}=");
    environ
        .split(|&b| b == 0)
        .filter_map(|entry| std::str::from_utf8(entry).ok())
        .find_map(|entry| entry.strip_prefix(&prefix).map(PathBuf::from))
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S ...`: the state follows the last `)` (comm may hold one).
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Live processes whose marker names a directory under `cluster_dir`.
///
/// `epmd` is left out even when it carries the marker (an Erlang node starts it when
/// none runs): the machine's RabbitMQ may rely on it.
pub fn marked_under(cluster_dir: &Path) -> Vec<Marked> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<Marked> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let environ = fs::read(format!("/proc/{pid}/environ")).ok()?;
            let node_dir = marker_in(&environ)?;
            if !node_dir.starts_with(cluster_dir) || !alive(pid) {
                return None;
            }
            let comm = fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim_end().to_owned())
                .unwrap_or_default();
            (comm != "epmd").then_some(Marked {
                pid,
                node_dir,
                comm,
            })
        })
        .collect();
    found.sort_by_key(|m| m.pid);
    found
}

/// The resident memory of `pid` in KiB (0 when it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Sends `signal` (`TERM`, `KILL`) to each pid with `kill(1)`; a pid that is already
/// gone is not an error.
pub fn signal(pids: &[u32], signal: &str) {
    if pids.is_empty() {
        return;
    }
    let kill = util::find_program("kill", &["/usr/bin/kill", "/bin/kill"])
        .unwrap_or_else(|| PathBuf::from("kill"));
    let mut cmd = Command::new(kill);
    cmd.args(["-s", signal, "--"])
        .args(pids.iter().map(u32::to_string));
    // Exit status 1 only means some pid had exited already.
    util::succeeds_quietly(&mut cmd, Duration::from_secs(10));
}

/// Waits until none of `pids` is alive; returns those still alive at `budget`.
pub fn wait_gone(pids: &[u32], budget: Duration) -> Vec<u32> {
    let deadline = Instant::now() + budget;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        thread::sleep(POLL);
    }
}

/// Stops `procs`: `TERM`, up to `grace` to exit, then `KILL` and up to 5 s more.
pub fn terminate(procs: &[Marked], grace: Duration) -> Result<()> {
    let pids: Vec<u32> = procs.iter().map(|m| m.pid).collect();
    signal(&pids, "TERM");
    let left = wait_gone(&pids, grace);
    if left.is_empty() {
        return Ok(());
    }
    eprintln!(
        "cluster: pids {left:?} ignored TERM for {}s; sending KILL",
        grace.as_secs()
    );
    signal(&left, "KILL");
    let left = wait_gone(&left, Duration::from_secs(5));
    if !left.is_empty() {
        bail!("pids {left:?} survived KILL");
    }
    Ok(())
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Whether something accepts TCP connections on `127.0.0.1:port`.
pub fn answers(port: u16) -> bool {
    TcpStream::connect_timeout(&loopback(port), CONNECT_TIMEOUT).is_ok()
}

/// Whether `127.0.0.1:port` can be bound (nobody listens on it or on `0.0.0.0:port`).
pub fn port_free(port: u16) -> bool {
    TcpListener::bind(loopback(port)).is_ok()
}

/// Waits until every port in `ports` is free; names the busy ones at `budget`.
pub fn wait_ports_free(ports: &[u16], budget: Duration) -> Result<()> {
    let deadline = Instant::now() + budget;
    loop {
        let busy: Vec<u16> = ports.iter().copied().filter(|&p| !port_free(p)).collect();
        if busy.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "127.0.0.1 ports {busy:?} are still in use after {}s",
                budget.as_secs()
            );
        }
        thread::sleep(POLL);
    }
}

/// Runs `sh script` in its own process group with no stdio (the script redirects its
/// output itself) and returns its pid; the node outlives `cargo xtask`.
pub fn spawn_script(script: &Path) -> Result<u32> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg(script)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    util::own_process_group(&mut cmd);
    let child = cmd
        .spawn()
        .with_context(|| format!("failed to run {}", script.display()))?;
    Ok(child.id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_is_read_from_a_nul_separated_environment() {
        let environ = b"HOME=/root\0MSG_CLUSTER_NODE=/w/target/cluster/nats/n1\0PATH=/bin\0";
        assert_eq!(
            marker_in(environ),
            Some(PathBuf::from("/w/target/cluster/nats/n1"))
        );
        assert_eq!(marker_in(b"HOME=/root\0MSG_CLUSTER_NODEX=/a\0"), None);
        assert_eq!(marker_in(b""), None);
    }

    #[test]
    fn this_process_is_alive_and_unmarked() {
        let me = std::process::id();
        assert!(alive(me));
        assert!(rss_kib(me) > 0);
        assert!(!marked_under(Path::new("/")).iter().any(|m| m.pid == me));
    }
}
