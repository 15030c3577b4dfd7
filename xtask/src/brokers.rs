//! Finding (and, if installed, starting) the local RabbitMQ, NATS and Redis brokers.
//!
//! Only loopback is ever probed: 127.0.0.1:5672 (AMQP), 127.0.0.1:4222 (NATS)
//! and 127.0.0.1:6379 (Redis, for the third-party driver of
//! `examples/third-party-driver`). A broker whose URL variable (`MSG_RABBIT_URL` /
//! `MSG_NATS_URL` / `MSG_REDIS_URL`) is already set is taken as given and neither
//! probed nor started.

use std::fmt;
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::util;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long the launcher command itself (not the broker) may take to return.
const LAUNCHER_LIMIT: Duration = Duration::from_secs(60);
/// After a launcher reports failure, how long to still look for the port.
const FAILED_LAUNCH_GRACE: Duration = Duration::from_secs(5);

const NATS_SERVER: &str = "/usr/sbin/nats-server";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rabbit,
    Nats,
    Redis,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Rabbit, Kind::Nats, Kind::Redis];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Rabbit => "rabbitmq",
            Kind::Nats => "nats",
            Kind::Redis => "redis",
        }
    }

    fn port(self) -> u16 {
        match self {
            Kind::Rabbit => 5672,
            Kind::Nats => 4222,
            Kind::Redis => 6379,
        }
    }

    fn addr(self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port()))
    }

    /// The environment variable through which tests learn the broker URL.
    pub fn env_var(self) -> &'static str {
        match self {
            Kind::Rabbit => "MSG_RABBIT_URL",
            Kind::Nats => "MSG_NATS_URL",
            Kind::Redis => "MSG_REDIS_URL",
        }
    }

    fn local_url(self) -> &'static str {
        match self {
            Kind::Rabbit => "rabbit://guest:guest@127.0.0.1:5672/",
            Kind::Nats => "nats://127.0.0.1:4222",
            Kind::Redis => "redis://127.0.0.1:6379/",
        }
    }

    /// How long a freshly launched broker gets to open its port.
    fn start_budget(self) -> Duration {
        match self {
            Kind::Rabbit => Duration::from_secs(60),
            Kind::Nats | Kind::Redis => Duration::from_secs(10),
        }
    }

    /// Extra wait after a freshly launched broker's port first answers.
    fn settle(self) -> Duration {
        match self {
            Kind::Rabbit => Duration::from_secs(2),
            Kind::Nats | Kind::Redis => Duration::ZERO,
        }
    }

    /// The command that starts this broker as a daemon, if it is installed.
    fn launcher(self) -> Option<Command> {
        match self {
            Kind::Rabbit => {
                let server = util::find_program("rabbitmq-server", &["/usr/sbin/rabbitmq-server"])?;
                let mut cmd = Command::new(server);
                cmd.arg("-detached");
                Some(cmd)
            }
            Kind::Nats => {
                if !Path::new(NATS_SERVER).is_file() {
                    return None;
                }
                let ssd = util::find_program(
                    "start-stop-daemon",
                    &["/usr/sbin/start-stop-daemon", "/sbin/start-stop-daemon"],
                )
                // Let the spawn fail with a clear "not found" if it is missing.
                .unwrap_or_else(|| PathBuf::from("start-stop-daemon"));
                let mut cmd = Command::new(ssd);
                cmd.args(["--start", "--oknodo", "--background", "--exec", NATS_SERVER])
                    .args(["--", "-a", "127.0.0.1", "-p", "4222", "-js"])
                    .args(["-sd", "/var/lib/nats-server"])
                    .args(["-l", "/var/log/nats-server.log"]);
                Some(cmd)
            }
            Kind::Redis => {
                let server = util::find_program("redis-server", &["/usr/bin/redis-server"])?;
                // nothing on disk: store-and-forward holds while this server runs
                let mut cmd = Command::new(server);
                cmd.args(["--daemonize", "yes", "--bind", "127.0.0.1", "-::1"])
                    .args(["--port", "6379", "--save", "", "--appendonly", "no"]);
                Some(cmd)
            }
        }
    }
}

#[derive(Debug)]
pub enum State {
    /// Already listening on loopback.
    Up,
    /// Was down; we started it and it now listens.
    Started,
    /// The URL variable was already set; used as is, not probed.
    Preset(String),
    /// Not available; the reason is shown in the SKIPPED line.
    Missing(String),
}

#[derive(Debug)]
pub struct Broker {
    pub kind: Kind,
    pub state: State,
}

impl Broker {
    /// The URL to export to tests, or `None` when the broker is missing.
    /// A preset URL is returned as well (it is already in the environment).
    pub fn url(&self) -> Option<&str> {
        match &self.state {
            State::Up | State::Started => Some(self.kind.local_url()),
            State::Preset(url) => Some(url),
            State::Missing(_) => None,
        }
    }

    pub fn is_missing(&self) -> bool {
        matches!(self.state, State::Missing(_))
    }
}

impl fmt::Display for Broker {
    /// The one-line status report for this broker.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.kind.name();
        let addr = self.kind.addr();
        match &self.state {
            State::Up => write!(f, "brokers: {name} {addr} up"),
            State::Started => write!(f, "brokers: {name} {addr} started"),
            State::Preset(url) => write!(
                f,
                "brokers: {name} from {} ({}), not probed",
                self.kind.env_var(),
                util::redact_url(url)
            ),
            State::Missing(reason) => write!(f, "SKIPPED: {name} suites ({reason})"),
        }
    }
}

/// Probes every broker, starting installed ones that are down, and prints one
/// status line per broker (to stderr) as it goes.
pub fn ensure_all(log_dir: &Path) -> Vec<Broker> {
    Kind::ALL
        .into_iter()
        .map(|kind| {
            let broker = Broker {
                kind,
                state: ensure(kind, log_dir),
            };
            if broker.is_missing() {
                eprintln!("{}", loud(&broker.to_string()));
            } else {
                eprintln!("{broker}");
            }
            broker
        })
        .collect()
}

/// Makes a line impossible to miss in a scrolling CI log.
pub fn loud(line: &str) -> String {
    let bar = "!".repeat(line.len().clamp(20, 100));
    format!("{bar}\n{line}\n{bar}")
}

fn ensure(kind: Kind, log_dir: &Path) -> State {
    if let Some(url) = util::env_nonempty(kind.env_var()) {
        return State::Preset(url);
    }
    let addr = kind.addr();
    if answers(addr) {
        return State::Up;
    }
    let Some(launcher) = kind.launcher() else {
        return State::Missing(format!("no broker on {addr} and none installed"));
    };
    eprintln!("brokers: {} {addr} down; starting it ...", kind.name());
    match start(kind, launcher, log_dir) {
        Ok(()) => State::Started,
        Err(err) => State::Missing(format!(
            "no broker on {addr}; starting the installed one failed: {err:#}"
        )),
    }
}

/// Whether something accepts TCP connections on `addr`.
fn answers(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).is_ok()
}

/// Waits until `addr` answers or `budget` runs out.
fn wait_for(addr: SocketAddr, budget: Duration) -> bool {
    let deadline = Instant::now() + budget;
    loop {
        if answers(addr) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL_INTERVAL);
    }
}

fn start(kind: Kind, mut launcher: Command, log_dir: &Path) -> Result<()> {
    fs::create_dir_all(log_dir).with_context(|| format!("cannot create {}", log_dir.display()))?;
    let log_path = log_dir.join(format!("{}-start.log", kind.name()));
    let log =
        File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .with_context(|| format!("cannot reopen {}", log_path.display()))?;
    // stdio goes to a file, never a pipe: a daemon that keeps inherited
    // descriptors open must not be able to make us wait for it.
    launcher.stdin(Stdio::null()).stdout(log).stderr(log_err);
    util::own_process_group(&mut launcher);
    let shown = util::display_cmd(&launcher);

    let status = util::run_with_deadline(&mut launcher, LAUNCHER_LIMIT)?;
    let budget = if status.success() {
        kind.start_budget()
    } else {
        eprintln!(
            "brokers: `{shown}` exited with {status}; still checking {} briefly",
            kind.addr()
        );
        FAILED_LAUNCH_GRACE
    };
    if !wait_for(kind.addr(), budget) {
        bail!(
            "`{shown}` ({status}) but nothing answered on {} within {}s; launcher output ({}):\n{}",
            kind.addr(),
            budget.as_secs(),
            log_path.display(),
            util::tail(&log_path, 20)
        );
    }
    thread::sleep(kind.settle());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let line = |kind, state| Broker { kind, state }.to_string();
        assert_eq!(
            line(Kind::Rabbit, State::Up),
            "brokers: rabbitmq 127.0.0.1:5672 up"
        );
        assert_eq!(
            line(Kind::Nats, State::Started),
            "brokers: nats 127.0.0.1:4222 started"
        );
        assert_eq!(
            line(
                Kind::Rabbit,
                State::Missing("no broker on 127.0.0.1:5672 and none installed".into())
            ),
            "SKIPPED: rabbitmq suites (no broker on 127.0.0.1:5672 and none installed)"
        );
    }

    #[test]
    fn urls() {
        let url = |kind, state| Broker { kind, state }.url().map(str::to_owned);
        assert_eq!(
            url(Kind::Rabbit, State::Up).as_deref(),
            Some("rabbit://guest:guest@127.0.0.1:5672/")
        );
        assert_eq!(
            url(Kind::Nats, State::Started).as_deref(),
            Some("nats://127.0.0.1:4222")
        );
        assert_eq!(
            url(Kind::Redis, State::Up).as_deref(),
            Some("redis://127.0.0.1:6379/")
        );
        assert_eq!(url(Kind::Nats, State::Missing(String::new())), None);
    }
}
