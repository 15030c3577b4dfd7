//! `cargo xtask cluster up|down|status [rabbitmq|nats]`: local 3-node clusters for the
//! cluster suites.
//!
//! A 3-node RabbitMQ cluster (`msg-c1@localhost` .. `msg-c3@localhost`, AMQP on
//! 127.0.0.1:5681-5683) and a 3-node NATS cluster with clustered JetStream (`msg-n1` ..
//! `msg-n3`, clients on 127.0.0.1:4231-4233), next to the machine's own brokers and
//! never touching them. State (configs, start scripts, data, logs, pid files) lives
//! under `target/cluster/`. `up` prints `export MSG_RABBIT_CLUSTER_URL=...`,
//! `export MSG_NATS_CLUSTER_URL=...` and `export MSG_CLUSTER_DIR=...` on stdout
//! (progress goes to stderr), so `eval "$(cargo xtask cluster up)"` sets them.
//!
//! - `up` leaves a healthy cluster as it is; otherwise it stops that cluster's nodes,
//!   wipes its directory and starts three fresh nodes at once.
//! - `down` stops every process of the clusters (found by the marker their start
//!   scripts export, see [`process`]); data and logs stay for a post-mortem.
//! - `status` prints each node and the cluster's health; exit status 1 when one is
//!   not up.
//!
//! Every wait is bounded.

mod nats;
mod process;
mod rabbit;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};

use self::process::Marked;
use crate::util;

/// How long stopped nodes get to exit after TERM before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(20);
/// How long a stopped cluster's ports get to close.
const PORTS_BUDGET: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(200);

/// One broker's local cluster.
trait Cluster: Sync {
    /// `rabbitmq` or `nats`.
    fn name(&self) -> &'static str;
    /// Its state directory under `target/cluster/`.
    fn dir(&self) -> &Path;
    /// The variable through which tests learn its URL.
    fn env_var(&self) -> &'static str;
    /// The URL with every node, in node order.
    fn url(&self) -> String;
    /// Every loopback port its nodes listen on.
    fn ports(&self) -> Vec<u16>;
    fn nodes(&self) -> Vec<NodeInfo>;
    /// Fails, naming what is missing, unless the broker is installed.
    fn check_installed(&self) -> Result<()>;
    /// A one-line summary when every node serves and the nodes form one cluster.
    fn health(&self) -> Result<String>;
    /// Writes configs and start scripts into a fresh directory.
    fn write_files(&self) -> Result<()>;
    /// Starts the nodes and waits (bounded) until they form a cluster.
    fn start(&self) -> Result<()>;
    /// Asks the `running` processes to stop the broker's own way (bounded).
    fn stop_gracefully(&self, running: &[Marked]);
}

/// A node as `status` shows it.
#[derive(Debug)]
struct NodeInfo {
    name: String,
    dir: PathBuf,
    /// The port clients connect to.
    port: u16,
}

/// `cargo xtask cluster <args>`.
pub fn run(root: &Path, args: &[OsString]) -> Result<ExitCode> {
    let args: Vec<&str> = args
        .iter()
        .map(|a| {
            a.to_str()
                .ok_or_else(|| anyhow!("argument is not valid UTF-8: {a:?}"))
        })
        .collect::<Result<_>>()?;
    let (action, which) = match args.as_slice() {
        [action] => (*action, None),
        [action, which] => (*action, Some(*which)),
        _ => bail!("usage: cargo xtask cluster up|down|status [rabbitmq|nats] (got {args:?})"),
    };
    let dir = root.join("target").join("cluster");
    let all = both(&dir);
    let selected: Vec<&dyn Cluster> = match which {
        None => all.iter().map(AsRef::as_ref).collect(),
        Some("rabbitmq" | "rabbit") => vec![all[0].as_ref()],
        Some("nats") => vec![all[1].as_ref()],
        Some(other) => bail!("unknown broker `{other}` (expected rabbitmq or nats)"),
    };
    match action {
        "up" => {
            for cluster in &selected {
                up(*cluster).with_context(|| format!("cluster up: {}", cluster.name()))?;
            }
            print_exports(&dir, &selected);
            Ok(ExitCode::SUCCESS)
        }
        "down" => {
            for cluster in &selected {
                down(*cluster).with_context(|| format!("cluster down: {}", cluster.name()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        "status" => {
            let mut all_up = true;
            for cluster in &selected {
                all_up &= status(*cluster);
            }
            if all_up {
                print_exports(&dir, &selected);
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(ExitCode::FAILURE)
            }
        }
        other => bail!("unknown cluster action `{other}` (expected up, down or status)"),
    }
}

/// Both clusters, RabbitMQ first.
fn both(dir: &Path) -> [Box<dyn Cluster>; 2] {
    [
        Box::new(rabbit::Rabbit::new(dir)),
        Box::new(nats::Nats::new(dir)),
    ]
}

/// Both clusters brought up for the cluster suite of `cargo xtask test`.
#[derive(Debug)]
pub struct SuiteClusters {
    /// The variables the suite reads: `MSG_CLUSTER_DIR` and each cluster's URL.
    pub env: Vec<(&'static str, String)>,
    /// The clusters `up` started (a cluster already healthy is left running at the end).
    started: Vec<&'static str>,
    root: PathBuf,
}

impl SuiteClusters {
    /// Brings both clusters up (a healthy one is left as it is); fails when one can't
    /// start, after stopping what it started.
    pub fn up(root: &Path) -> Result<Self> {
        let dir = root.join("target").join("cluster");
        let mut clusters = SuiteClusters {
            env: vec![("MSG_CLUSTER_DIR", dir.display().to_string())],
            started: Vec::new(),
            root: root.to_path_buf(),
        };
        for cluster in both(&dir) {
            let healthy = health(cluster.as_ref()).is_ok();
            let outcome = up(cluster.as_ref());
            if !healthy {
                clusters.started.push(cluster.name());
            }
            if let Err(err) = outcome {
                let err = err.context(format!("cluster up: {}", cluster.name()));
                if let Err(down_err) = clusters.down() {
                    eprintln!("cluster: stopping after a failed up: {down_err:#}");
                }
                return Err(err);
            }
            clusters.env.push((cluster.env_var(), cluster.url()));
        }
        Ok(clusters)
    }

    /// Stops the clusters [`SuiteClusters::up`] started.
    pub fn down(self) -> Result<()> {
        let dir = self.root.join("target").join("cluster");
        for cluster in both(&dir) {
            if self.started.contains(&cluster.name()) {
                down(cluster.as_ref())
                    .with_context(|| format!("cluster down: {}", cluster.name()))?;
            }
        }
        Ok(())
    }
}

/// The `export VAR=URL` lines, on stdout, and `MSG_CLUSTER_DIR` (where a fault test
/// finds each node's `start` script and pid files).
fn print_exports(dir: &Path, clusters: &[&dyn Cluster]) {
    println!(
        "export MSG_CLUSTER_DIR={}",
        util::shell_quote(&dir.display().to_string())
    );
    for cluster in clusters {
        println!(
            "export {}={}",
            cluster.env_var(),
            util::shell_quote(&cluster.url())
        );
    }
}

fn up(cluster: &dyn Cluster) -> Result<()> {
    let name = cluster.name();
    let started = Instant::now();
    let reason = match health(cluster) {
        Ok(summary) => {
            eprintln!("cluster: {name}: already up ({summary})");
            return Ok(());
        }
        Err(err) => format!("{err:#}"),
    };
    cluster.check_installed()?;
    let running = process::marked_under(cluster.dir());
    if !running.is_empty() {
        eprintln!("cluster: {name}: not healthy ({reason}); stopping its nodes to start afresh");
        stop(cluster, &running)?;
    }
    let busy: Vec<u16> = cluster
        .ports()
        .into_iter()
        .filter(|&p| !process::port_free(p))
        .collect();
    if !busy.is_empty() {
        bail!(
            "127.0.0.1 ports {busy:?} are in use by processes that are not nodes of {} \
             (a cluster from another checkout? stop it there)",
            cluster.dir().display()
        );
    }
    if cluster.dir().exists() {
        fs::remove_dir_all(cluster.dir())
            .with_context(|| format!("removing {}", cluster.dir().display()))?;
    }
    cluster.write_files()?;
    eprintln!(
        "cluster: {name}: starting 3 nodes under {}",
        cluster.dir().display()
    );
    if let Err(err) = cluster.start() {
        let left = process::marked_under(cluster.dir());
        if let Err(stop_err) = process::terminate(&left, STOP_GRACE) {
            eprintln!("cluster: {name}: cleaning up: {stop_err:#}");
        }
        return Err(err);
    }
    let summary = health(cluster)?;
    eprintln!(
        "cluster: {name}: up in {:.1}s ({summary}; {} MiB resident)",
        started.elapsed().as_secs_f64(),
        resident_mib(cluster)
    );
    Ok(())
}

fn down(cluster: &dyn Cluster) -> Result<()> {
    let name = cluster.name();
    let running = process::marked_under(cluster.dir());
    if running.is_empty() {
        eprintln!("cluster: {name}: not running");
        return Ok(());
    }
    let started = Instant::now();
    stop(cluster, &running)?;
    eprintln!(
        "cluster: {name}: stopped {} processes in {:.1}s; ports free",
        running.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Stops `running` (the broker's own way, then signals), and waits for the ports.
fn stop(cluster: &dyn Cluster, running: &[Marked]) -> Result<()> {
    cluster.stop_gracefully(running);
    process::terminate(&process::marked_under(cluster.dir()), STOP_GRACE)?;
    process::wait_ports_free(&cluster.ports(), PORTS_BUDGET)
}

/// The cluster's health summary, provided each node runs from this checkout's
/// `target/cluster` (a cluster another checkout started on the same ports is not ours
/// to use or stop).
fn health(cluster: &dyn Cluster) -> Result<String> {
    let running = process::marked_under(cluster.dir());
    if let Some(node) = cluster
        .nodes()
        .into_iter()
        .find(|node| !running.iter().any(|m| m.node_dir == node.dir))
    {
        bail!("{} is not running from {}", node.name, node.dir.display());
    }
    cluster.health()
}

/// Prints each node and the cluster's health; whether it is up.
fn status(cluster: &dyn Cluster) -> bool {
    let name = cluster.name();
    let running = process::marked_under(cluster.dir());
    for node in cluster.nodes() {
        let procs: Vec<&Marked> = running.iter().filter(|m| m.node_dir == node.dir).collect();
        let state = match procs
            .iter()
            .find(|m| m.comm == "beam.smp" || m.comm == "nats-server")
        {
            _ if procs.is_empty() => "stopped".to_owned(),
            main => {
                let kib: u64 = procs.iter().map(|m| process::rss_kib(m.pid)).sum();
                let main = main.map_or_else(String::new, |m| format!("{} pid {}, ", m.comm, m.pid));
                let helpers = procs.len().saturating_sub(1);
                format!(
                    "running ({main}{helpers} helper processes, {} MiB)",
                    kib / 1024
                )
            }
        };
        let listening = if process::answers(node.port) {
            "listening"
        } else {
            "not listening"
        };
        eprintln!(
            "cluster: {name} {} 127.0.0.1:{} {listening}: {state}",
            node.name, node.port
        );
    }
    match health(cluster) {
        Ok(summary) => {
            eprintln!(
                "cluster: {name}: up ({summary}; {} MiB resident)",
                resident_mib(cluster)
            );
            true
        }
        Err(err) => {
            eprintln!("cluster: {name}: NOT UP ({err:#})");
            false
        }
    }
}

/// The resident memory of every process of `cluster`, in MiB.
fn resident_mib(cluster: &dyn Cluster) -> u64 {
    process::marked_under(cluster.dir())
        .iter()
        .map(|m| process::rss_kib(m.pid))
        .sum::<u64>()
        / 1024
}

fn write_file(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

/// Writes a script and makes it executable.
fn write_executable(path: &Path, contents: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    write_file(path, contents)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod 755 {}", path.display()))
}

/// Polls `ready` until it says yes, fails, or `budget` runs out.
fn wait_until(budget: Duration, ready: impl FnMut() -> Result<bool>) -> Result<()> {
    wait_until_deadline(Instant::now() + budget, ready)
}

/// Polls `ready` until it says yes, fails, or `deadline` passes.
fn wait_until_deadline(deadline: Instant, mut ready: impl FnMut() -> Result<bool>) -> Result<()> {
    let started = Instant::now();
    loop {
        if ready()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("gave up after {}s", started.elapsed().as_secs());
        }
        thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_bounded() {
        let started = Instant::now();
        let err = wait_until(Duration::from_millis(300), || Ok(false));
        assert!(err.is_err());
        assert!(started.elapsed() < Duration::from_secs(2));
        let mut calls = 0;
        assert!(
            wait_until(Duration::from_secs(5), || {
                calls += 1;
                Ok(calls == 3)
            })
            .is_ok()
        );
        assert!(wait_until(Duration::from_secs(5), || bail!("broken")).is_err());
    }

    #[test]
    fn clusters_do_not_share_ports_with_each_other_or_the_machine() {
        let dir = Path::new("/w/target/cluster");
        let mut ports = rabbit::Rabbit::new(dir).ports();
        ports.extend(nats::Nats::new(dir).ports());
        let count = ports.len();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), count, "a port is used twice");
        for machine in [5672, 25672, 15672, 4369, 4222, 6222, 8222] {
            assert!(
                !ports.contains(&machine),
                "{machine} belongs to the machine"
            );
        }
    }

    /// Starts both clusters on the installed brokers, checks them from outside (the
    /// RabbitMQ CLI's `cluster_status`, NATS `/jsz`), stops them and checks that no
    /// process is left and every port is free. Ignored by default: it takes the
    /// clusters' fixed ports and stops a cluster this checkout runs.
    #[test]
    #[ignore = "starts real 3-node clusters (about 25 s); run with --ignored"]
    fn up_check_down_on_the_installed_brokers() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("root");
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        let dir = root.join("target").join("cluster");
        let ok = format!("{:?}", ExitCode::SUCCESS);
        let code = run(root, &args(&["up"])).expect("cluster up");
        assert_eq!(format!("{code:?}"), ok);
        let code = run(root, &args(&["status"])).expect("cluster status");
        assert_eq!(format!("{code:?}"), ok);

        let out = std::process::Command::new(dir.join("rabbit").join("rabbitmqctl"))
            .args([
                "-n",
                "msg-c1@localhost",
                "cluster_status",
                "--formatter",
                "json",
            ])
            .output()
            .expect("rabbitmqctl");
        let mut running =
            rabbit::running_nodes_of(&String::from_utf8_lossy(&out.stdout)).expect("json");
        running.sort();
        assert_eq!(
            running,
            ["msg-c1@localhost", "msg-c2@localhost", "msg-c3@localhost"]
        );

        let mut peers = Vec::new();
        for port in [8231, 8232, 8233] {
            let (code, body) = nats::http_get(port, "/jsz").expect("/jsz");
            assert_eq!(code, 200);
            let jsz: serde_json::Value = serde_json::from_str(&body).expect("jsz json");
            let meta = &jsz["meta_cluster"];
            assert_eq!(meta["cluster_size"], 3, "{meta}");
            if let Some(replicas) = meta["replicas"].as_array() {
                peers.push(meta["leader"].as_str().unwrap_or_default().to_owned());
                peers.extend(
                    replicas
                        .iter()
                        .filter_map(|r| r["name"].as_str())
                        .map(str::to_owned),
                );
            }
        }
        peers.sort();
        assert_eq!(peers, ["msg-n1", "msg-n2", "msg-n3"]);

        let code = run(root, &args(&["down"])).expect("cluster down");
        assert_eq!(format!("{code:?}"), ok);
        assert_eq!(process::marked_under(&dir), []);
        let dir_ports = rabbit::Rabbit::new(&dir)
            .ports()
            .into_iter()
            .chain(nats::Nats::new(&dir).ports());
        for port in dir_ports {
            assert!(process::port_free(port), "port {port} still taken");
        }
        let code = run(root, &args(&["status"])).expect("cluster status");
        assert_ne!(format!("{code:?}"), ok);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let root = Path::new("/nonexistent");
        for args in [
            &[][..],
            &["up", "kafka"],
            &["restart"],
            &["up", "nats", "x"],
        ] {
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            assert!(run(root, &args).is_err(), "{args:?}");
        }
    }
}
