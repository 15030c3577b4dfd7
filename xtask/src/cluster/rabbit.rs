//! The local 3-node RabbitMQ cluster: nodes `msg-c1@localhost` .. `msg-c3@localhost`.
//!
//! Each node runs `/usr/lib/rabbitmq/bin/rabbitmq-server` directly (the Debian
//! `rabbitmq-server` wrapper switches to the `rabbitmq` user) from a generated
//! `start` script that sets its name, ports and directories. The nodes share an
//! Erlang cookie of their own through `HOME` (`rabbit/home/.erlang.cookie`), read
//! only `rabbit/rabbitmq-env.conf` (empty) instead of `/etc/rabbitmq/rabbitmq-env.conf`,
//! and enable no plugin, so no management or Prometheus listener competes for a port.

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};

use super::process::{self, MARKER, Marked};
use super::{Cluster, NodeInfo, wait_until, wait_until_deadline, write_executable, write_file};
use crate::util;

const CLI_DIR: &str = "/usr/lib/rabbitmq/bin";
const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const CTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";
/// The CLI tools that get a wrapper with the cluster's cookie in the cluster directory.
const WRAPPED_TOOLS: [&str; 3] = ["rabbitmqctl", "rabbitmq-queues", "rabbitmq-diagnostics"];
const NODES: usize = 3;
/// The node the others join.
const SEED: u16 = 1;
const AMQP_BASE: u16 = 5680;
const DIST_BASE: u16 = 25680;
const EPMD_PORT: u16 = 4369;

/// How long a node gets from its start to serving AMQP (two busy cores, three nodes).
const BOOT_BUDGET: Duration = Duration::from_secs(120);
/// The limit on one `rabbitmqctl` command.
const CTL_LIMIT: Duration = Duration::from_secs(90);
/// How long the joined cluster gets to report every node running.
const CLUSTER_BUDGET: Duration = Duration::from_secs(60);

/// One node's fixed identity.
#[derive(Debug, Clone)]
struct Node {
    /// 1-based.
    index: u16,
    dir: PathBuf,
}

impl Node {
    fn name(&self) -> String {
        format!("msg-c{}@localhost", self.index)
    }

    fn amqp_port(&self) -> u16 {
        AMQP_BASE + self.index
    }

    fn dist_port(&self) -> u16 {
        DIST_BASE + self.index
    }

    fn script(&self) -> PathBuf {
        self.dir.join("start")
    }

    fn launcher_pid_file(&self) -> PathBuf {
        self.dir.join("launcher.pid")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("log").join(format!("{}.log", self.name()))
    }
}

/// The RabbitMQ cluster under `<cluster dir>/rabbit`.
#[derive(Debug)]
pub struct Rabbit {
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl Rabbit {
    pub fn new(cluster_dir: &Path) -> Self {
        let dir = cluster_dir.join("rabbit");
        let nodes = (1..=NODES as u16)
            .map(|index| Node {
                index,
                dir: dir.join(format!("msg-c{index}")),
            })
            .collect();
        Rabbit { dir, nodes }
    }

    fn home(&self) -> PathBuf {
        self.dir.join("home")
    }

    /// What every `rabbitmqctl` and node of this cluster has in its environment.
    fn common_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("HOME", self.home().display().to_string()),
            (
                "RABBITMQ_CONF_ENV_FILE",
                self.dir.join("rabbitmq-env.conf").display().to_string(),
            ),
        ]
    }

    /// A node's environment, in the order its `start` script exports it.
    fn node_env(&self, node: &Node) -> Vec<(&'static str, String)> {
        let path = |p: PathBuf| p.display().to_string();
        let mut env = vec![(MARKER, path(node.dir.clone()))];
        env.extend(self.common_env());
        env.extend([
            ("RABBITMQ_NODENAME", node.name()),
            ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".to_owned()),
            ("RABBITMQ_NODE_PORT", node.amqp_port().to_string()),
            ("RABBITMQ_DIST_PORT", node.dist_port().to_string()),
            ("RABBITMQ_CONFIG_FILE", path(node.dir.join("rabbitmq.conf"))),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                path(self.dir.join("enabled_plugins")),
            ),
            ("RABBITMQ_MNESIA_BASE", path(node.dir.join("mnesia"))),
            ("RABBITMQ_LOG_BASE", path(node.dir.join("log"))),
            ("RABBITMQ_PID_FILE", path(node.dir.join("rabbitmq.pid"))),
            // One scheduler per node spares the machine's two cores; distribution
            // listens on loopback only.
            (
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "+S 1:1 -kernel inet_dist_use_interface {127,0,0,1}".to_owned(),
            ),
            ("ERL_EPMD_ADDRESS", "127.0.0.1".to_owned()),
        ]);
        env
    }

    /// A node's `rabbitmq.conf`. Nodes 2 and 3 find node 1 through classic peer
    /// discovery and join it while they boot (a fresh node only; a node with data
    /// rejoins its cluster), retrying every 0.5 s for up to 2 minutes, which saves
    /// booting them alone and then `stop_app`, `join_cluster`, `start_app`.
    fn node_config(node: &Node) -> String {
        let mut config = format!(
            "# Node {name} of the local RabbitMQ test cluster (cargo xtask cluster up).\n\
             # No plugin is enabled (see ../enabled_plugins): no management listener.\n\
             listeners.tcp.1 = 127.0.0.1:{port}\n\
             cluster_name = msg-cluster\n\
             cluster_partition_handling = pause_minority\n\
             loopback_users.guest = true\n\
             log.file.level = info\n",
            name = node.name(),
            port = node.amqp_port(),
        );
        if node.index != SEED {
            config.push_str(&format!(
                "cluster_formation.peer_discovery_backend = classic_config\n\
                 cluster_formation.classic_config.nodes.1 = msg-c{SEED}@localhost\n\
                 cluster_formation.discovery_retry_limit = 240\n\
                 cluster_formation.discovery_retry_interval = 500\n"
            ));
        }
        config
    }

    fn start_script(&self, node: &Node) -> String {
        let mut out = format!(
            "#!/bin/sh\n\
             # Starts RabbitMQ node {} of the local test cluster (written by\n\
             # `cargo xtask cluster up`); run it again to restart the node.\n",
            node.name()
        );
        for (key, value) in self.node_env(node) {
            out.push_str(&format!("export {key}={}\n", util::shell_quote(&value)));
        }
        let q = |p: PathBuf| util::shell_quote(&p.display().to_string());
        out.push_str(&format!("echo $$ > {}\n", q(node.launcher_pid_file())));
        out.push_str(&format!(
            "exec {SERVER} >> {} 2>&1 < /dev/null\n",
            q(node.dir.join("stdout.log"))
        ));
        out
    }

    /// A wrapper that runs the CLI `tool` (`rabbitmqctl`, `rabbitmq-queues`) with this
    /// cluster's Erlang cookie.
    fn cli_wrapper(&self, tool: &str) -> String {
        let mut out = format!(
            "#!/bin/sh\n\
             # {tool} with the local RabbitMQ test cluster's Erlang cookie (written by\n\
             # `cargo xtask cluster up`); name the node: `$0 -n msg-c1@localhost ...`.\n"
        );
        for (key, value) in self.common_env() {
            out.push_str(&format!("export {key}={}\n", util::shell_quote(&value)));
        }
        out.push_str(&format!("exec {CLI_DIR}/{tool} \"$@\"\n"));
        out
    }

    /// Runs `rabbitmqctl -n NODE args...` (bounded); `Ok(stdout)` when it exits 0.
    fn ctl(&self, node: &Node, args: &[&str], limit: Duration) -> Result<String> {
        // Output goes to a file, not a pipe: a wait on a pipe cannot be bounded simply.
        let out_dir = self.dir.join("cli-output");
        fs::create_dir_all(&out_dir).with_context(|| format!("{}", out_dir.display()))?;
        let out_path = out_dir.join(format!("msg-c{}-{}.out", node.index, args.join("-")));
        let out = fs::File::create(&out_path).with_context(|| format!("{}", out_path.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(CTL);
        cmd.args(["-n", &node.name()])
            .args(args)
            .envs(self.common_env())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let status = util::run_with_deadline(&mut cmd, limit)?;
        let mut text = String::new();
        fs::File::open(&out_path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .with_context(|| format!("{}", out_path.display()))?;
        if !status.success() {
            bail!(
                "`rabbitmqctl -n {} {}` failed ({status}): {}",
                node.name(),
                args.join(" "),
                text.trim()
            );
        }
        Ok(text)
    }

    /// The cluster's running nodes as node `via` sees them.
    fn running_nodes(&self, via: &Node) -> Result<Vec<String>> {
        let json = self.ctl(via, &["cluster_status", "--formatter", "json"], CTL_LIMIT)?;
        running_nodes_of(&json)
    }

    /// Makes sure an epmd runs on loopback before the nodes start: one that a node
    /// starts itself would carry the node's marker and environment.
    fn ensure_epmd(&self) -> Result<()> {
        if process::answers(EPMD_PORT) {
            return Ok(());
        }
        let epmd = util::find_program("epmd", &["/usr/bin/epmd", "/usr/lib/erlang/bin/epmd"])
            .ok_or_else(|| anyhow!("epmd is not installed"))?;
        let mut cmd = Command::new(epmd);
        cmd.args(["-daemon", "-address", "127.0.0.1"]);
        util::own_process_group(&mut cmd);
        if !util::succeeds_quietly(&mut cmd, Duration::from_secs(10)) {
            bail!("`epmd -daemon -address 127.0.0.1` failed");
        }
        wait_until(Duration::from_secs(10), || Ok(process::answers(EPMD_PORT)))
            .context("epmd did not open 127.0.0.1:4369")
    }

    /// Waits until `node` serves: its Erlang VM up (`ping`), AMQP listening, then
    /// `await_startup`. Fails early when its launcher is gone.
    fn await_node(&self, node: &Node, launcher: u32) -> Result<()> {
        let deadline = Instant::now() + BOOT_BUDGET;
        let check_alive = || -> Result<()> {
            if process::alive(launcher) {
                Ok(())
            } else {
                Err(anyhow!("{} exited", node.script().display()))
            }
        };
        // The distribution port opens when the VM is up; ping then answers at once.
        wait_until_deadline(deadline, || {
            check_alive()?;
            Ok(process::answers(node.dist_port()))
        })
        .with_context(|| {
            format!(
                "the Erlang VM did not listen on 127.0.0.1:{}",
                node.dist_port()
            )
        })?;
        wait_until_deadline(deadline, || {
            check_alive()?;
            Ok(self
                .ctl(node, &["ping", "-t", "5"], Duration::from_secs(20))
                .is_ok())
        })
        .context("`rabbitmqctl ping` did not succeed")?;
        wait_until_deadline(deadline, || {
            check_alive()?;
            Ok(process::answers(node.amqp_port()))
        })
        .with_context(|| format!("AMQP did not listen on 127.0.0.1:{}", node.amqp_port()))?;
        self.ctl(node, &["await_startup", "--timeout", "60"], CTL_LIMIT)?;
        Ok(())
    }

    /// Joins nodes that booted on their own to `seed`: `stop_app` and `start_app` on
    /// all of them at once, the joins one after the other.
    fn join(&self, seed: &Node, nodes: &[&Node]) -> Result<()> {
        let names: Vec<String> = nodes.iter().map(|n| n.name()).collect();
        eprintln!(
            "cluster: rabbitmq: joining {} to {}",
            names.join(", "),
            seed.name()
        );
        let on_all = |args: &[&str]| -> Result<()> {
            thread::scope(|s| {
                let runs: Vec<_> = nodes
                    .iter()
                    .map(|node| s.spawn(move || self.ctl(node, args, CTL_LIMIT)))
                    .collect();
                for run in runs {
                    run.join()
                        .map_err(|_| anyhow!("rabbitmqctl thread panicked"))??;
                }
                Ok(())
            })
        };
        on_all(&["stop_app"])?;
        for node in nodes {
            self.ctl(node, &["join_cluster", &seed.name()], CTL_LIMIT)?;
        }
        on_all(&["start_app"])
    }

    fn failure_report(&self, node: &Node, err: &anyhow::Error) -> anyhow::Error {
        anyhow!(
            "node {}: {err:#}\n--- {} ---\n{}\n--- {} ---\n{}",
            node.name(),
            node.dir.join("stdout.log").display(),
            util::tail(&node.dir.join("stdout.log"), 15),
            node.log().display(),
            util::tail(&node.log(), 15)
        )
    }
}

impl Cluster for Rabbit {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn env_var(&self) -> &'static str {
        "MSG_RABBIT_CLUSTER_URL"
    }

    fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("guest:guest@127.0.0.1:{}", n.amqp_port()))
            .collect();
        format!("rabbit://{}/", hosts.join(","))
    }

    fn ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .flat_map(|n| [n.amqp_port(), n.dist_port()])
            .collect()
    }

    fn nodes(&self) -> Vec<NodeInfo> {
        self.nodes
            .iter()
            .map(|n| NodeInfo {
                name: n.name(),
                dir: n.dir.clone(),
                port: n.amqp_port(),
            })
            .collect()
    }

    fn check_installed(&self) -> Result<()> {
        for program in [SERVER, CTL] {
            if !Path::new(program).is_file() {
                bail!("{program} is not installed");
            }
        }
        Ok(())
    }

    fn health(&self) -> Result<String> {
        let via = self
            .nodes
            .iter()
            .find(|n| process::answers(n.dist_port()))
            .ok_or_else(|| anyhow!("no node is running"))?;
        let running = self.running_nodes(via)?;
        let missing: Vec<String> = self
            .nodes
            .iter()
            .map(Node::name)
            .filter(|name| !running.contains(name))
            .collect();
        if !missing.is_empty() {
            bail!(
                "{} not running in the cluster (running: {})",
                missing.join(", "),
                running.join(", ")
            );
        }
        if let Some(node) = self.nodes.iter().find(|n| !process::answers(n.amqp_port())) {
            bail!(
                "{} does not accept AMQP on 127.0.0.1:{}",
                node.name(),
                node.amqp_port()
            );
        }
        Ok(format!("{} nodes running, clustered", running.len()))
    }

    fn write_files(&self) -> Result<()> {
        let home = self.home();
        fs::create_dir_all(&home).with_context(|| format!("{}", home.display()))?;
        let cookie = home.join(".erlang.cookie");
        write_file(&cookie, &new_cookie()?)?;
        set_mode(&cookie, 0o400)?;
        write_file(&self.dir.join("rabbitmq-env.conf"), "")?;
        write_file(&self.dir.join("enabled_plugins"), "[].\n")?;
        for tool in WRAPPED_TOOLS {
            write_executable(&self.dir.join(tool), &self.cli_wrapper(tool))?;
        }
        for node in &self.nodes {
            fs::create_dir_all(&node.dir).with_context(|| format!("{}", node.dir.display()))?;
            write_file(&node.dir.join("rabbitmq.conf"), &Self::node_config(node))?;
            write_executable(&node.script(), &self.start_script(node))?;
        }
        Ok(())
    }

    fn start(&self) -> Result<()> {
        self.ensure_epmd()?;
        let launchers = self
            .nodes
            .iter()
            .map(|node| process::spawn_script(&node.script()))
            .collect::<Result<Vec<u32>>>()?;
        let started = Instant::now();
        thread::scope(|s| {
            let waits: Vec<_> = self
                .nodes
                .iter()
                .zip(&launchers)
                .map(|(node, &launcher)| {
                    s.spawn(move || {
                        self.await_node(node, launcher)
                            .map_err(|e| self.failure_report(node, &e))
                    })
                })
                .collect();
            waits
                .into_iter()
                .map(|w| w.join().map_err(|_| anyhow!("a node's wait panicked"))?)
                .collect::<Result<Vec<()>>>()
        })?;
        let (seed, joiners) = self
            .nodes
            .split_first()
            .ok_or_else(|| anyhow!("no nodes"))?;
        let running = self.running_nodes(seed)?;
        let alone: Vec<&Node> = joiners
            .iter()
            .filter(|node| !running.contains(&node.name()))
            .collect();
        eprintln!(
            "cluster: rabbitmq: 3 nodes booted in {:.1}s, {} of them clustered",
            started.elapsed().as_secs_f64(),
            running.len()
        );
        if !alone.is_empty() {
            self.join(seed, &alone)?;
        }
        wait_until(CLUSTER_BUDGET, || {
            Ok(self
                .running_nodes(seed)
                .is_ok_and(|running| running.len() == self.nodes.len()))
        })
        .context("the cluster did not report 3 running nodes")
    }

    fn stop_gracefully(&self, running: &[Marked]) {
        // `rabbitmqctl stop` on every node that still runs, all at once.
        thread::scope(|s| {
            for node in &self.nodes {
                if running.iter().any(|m| m.node_dir == node.dir) {
                    s.spawn(move || {
                        if let Err(err) = self.ctl(node, &["stop"], Duration::from_secs(60)) {
                            eprintln!("cluster: rabbitmq: {err:#}; signalling it instead");
                        }
                    });
                }
            }
        });
    }
}

/// `running_nodes` of `rabbitmqctl cluster_status --formatter json`.
pub(super) fn running_nodes_of(json: &str) -> Result<Vec<String>> {
    // The CLI may print warnings before the JSON document.
    let start = json
        .find('{')
        .ok_or_else(|| anyhow!("cluster_status printed no JSON: {}", json.trim()))?;
    let value: serde_json::Value = serde_json::from_str(json[start..].trim())
        .context("cluster_status printed invalid JSON")?;
    let nodes = value
        .get("running_nodes")
        .and_then(|v| v.as_array())
        .ok_or_else(|| anyhow!("cluster_status has no running_nodes list"))?;
    Ok(nodes
        .iter()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect())
}

/// A fresh Erlang cookie: 32 uppercase hex digits from the kernel's random source.
fn new_cookie() -> Result<String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02X}")).collect())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Rabbit {
        Rabbit::new(Path::new("/w/target/cluster"))
    }

    #[test]
    fn nodes_have_their_own_ports_and_directories() {
        let rabbit = cluster();
        assert_eq!(rabbit.ports(), [5681, 25681, 5682, 25682, 5683, 25683]);
        assert_eq!(
            rabbit.url(),
            "rabbit://guest:guest@127.0.0.1:5681,guest:guest@127.0.0.1:5682,\
             guest:guest@127.0.0.1:5683/"
        );
        let node = &rabbit.nodes[1];
        assert_eq!(node.name(), "msg-c2@localhost");
        let env = rabbit.node_env(node);
        let get = |key: &str| {
            env.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("{key} missing"))
        };
        assert_eq!(get(MARKER), "/w/target/cluster/rabbit/msg-c2");
        assert_eq!(get("HOME"), "/w/target/cluster/rabbit/home");
        assert_eq!(
            get("RABBITMQ_CONF_ENV_FILE"),
            "/w/target/cluster/rabbit/rabbitmq-env.conf"
        );
        assert_eq!(get("RABBITMQ_NODENAME"), "msg-c2@localhost");
        assert_eq!(get("RABBITMQ_NODE_PORT"), "5682");
        assert_eq!(get("RABBITMQ_DIST_PORT"), "25682");
        assert_eq!(
            get("RABBITMQ_MNESIA_BASE"),
            "/w/target/cluster/rabbit/msg-c2/mnesia"
        );
        assert!(get("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS").starts_with("+S 1:1 "));
    }

    #[test]
    fn config_listens_on_loopback_with_no_management() {
        let rabbit = cluster();
        let config = Rabbit::node_config(&rabbit.nodes[2]);
        assert!(
            config.contains("listeners.tcp.1 = 127.0.0.1:5683\n"),
            "{config}"
        );
        assert!(
            !config.lines().any(|l| l.starts_with("management")),
            "{config}"
        );
        assert!(
            config.contains("cluster_formation.classic_config.nodes.1 = msg-c1@localhost\n"),
            "{config}"
        );
        let seed = Rabbit::node_config(&rabbit.nodes[0]);
        assert!(!seed.contains("cluster_formation"), "{seed}");
        assert!(!config.contains("5672"), "{config}");
    }

    #[test]
    fn start_script_exports_then_execs_the_server() {
        let rabbit = cluster();
        let script = rabbit.start_script(&rabbit.nodes[0]);
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(
            script.contains(
                "export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=\
                 '+S 1:1 -kernel inet_dist_use_interface {127,0,0,1}'\n"
            ),
            "{script}"
        );
        assert!(script.contains("export MSG_CLUSTER_NODE=/w/target/cluster/rabbit/msg-c1\n"));
        assert!(script.ends_with(
            "exec /usr/lib/rabbitmq/bin/rabbitmq-server >> \
             /w/target/cluster/rabbit/msg-c1/stdout.log 2>&1 < /dev/null\n"
        ));
        let ctl = rabbit.cli_wrapper("rabbitmq-queues");
        assert!(ctl.contains("export HOME=/w/target/cluster/rabbit/home\n"));
        assert!(ctl.ends_with("exec /usr/lib/rabbitmq/bin/rabbitmq-queues \"$@\"\n"));
    }

    #[test]
    fn running_nodes_are_read_from_cluster_status() {
        let json = "warning: something\n{\"running_nodes\":[\"msg-c1@localhost\",\"msg-c2@localhost\"],\"disk_nodes\":[]}\n";
        assert_eq!(
            running_nodes_of(json).ok(),
            Some(vec!["msg-c1@localhost".into(), "msg-c2@localhost".into()])
        );
        assert!(running_nodes_of("Error: nodedown").is_err());
        assert!(running_nodes_of("{\"disk_nodes\":[]}").is_err());
    }

    #[test]
    fn cookies_are_fresh_hex() {
        let (a, b) = (new_cookie().ok(), new_cookie().ok());
        assert_eq!(a.as_ref().map(String::len), Some(32));
        assert_ne!(a, b);
        assert!(a.is_some_and(|c| c.chars().all(|ch| ch.is_ascii_hexdigit())));
    }
}
