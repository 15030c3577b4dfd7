//! The local RabbitMQ cluster (`msg-c1@localhost` .. `msg-c3@localhost`): who leads a quorum
//! queue, which node a connection is on, and its faults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::Value;

use crate::env;
use crate::process::{self, output, wait_until};

/// How long one CLI command may take (the CLI boots an Erlang VM of its own).
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// One node of the local RabbitMQ cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RabbitNode {
    /// Its Erlang node name, `msg-cN@localhost`.
    pub name: String,
    /// Its AMQP port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
}

impl RabbitNode {
    fn start_script(&self) -> PathBuf {
        self.dir.join("start")
    }

    /// The node's Erlang VM: the pid in `rabbitmq.pid` when it runs, else the `beam.smp`
    /// child of the start script's process (`launcher.pid`; a node started again by its
    /// script does not always write `rabbitmq.pid`).
    fn vm_pid(&self) -> Option<u32> {
        process::read_pid(&self.dir.join("rabbitmq.pid"))
            .ok()
            .filter(|&pid| process::alive(pid))
            .or_else(|| {
                let launcher = process::read_pid(&self.dir.join("launcher.pid")).ok()?;
                process::child_named(launcher, "beam.smp")
            })
    }

    /// Whether the node runs, or its start script does (a node just started again has no
    /// VM for a moment: it must not be started twice).
    fn process_alive(&self) -> bool {
        self.vm_pid().is_some()
            || process::read_pid(&self.dir.join("launcher.pid")).is_ok_and(process::alive)
    }
}

/// The local 3-node RabbitMQ cluster of `cargo xtask cluster up`.
#[derive(Debug, Clone)]
pub struct RabbitCluster {
    url: String,
    dir: PathBuf,
}

impl RabbitCluster {
    /// The cluster from `MSG_RABBIT_CLUSTER_URL` and `MSG_CLUSTER_DIR`, or `None` after a
    /// loud SKIPPED line naming `suite` (a panic with `MSG_REQUIRE_BROKERS=1`).
    pub fn from_env(suite: &str) -> Option<Self> {
        let url = env::cluster_url("MSG_RABBIT_CLUSTER_URL", suite)?;
        let dir = env::cluster_dir(suite)?.join("rabbit");
        Some(RabbitCluster { url, dir })
    }

    /// The URL listing every node.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The three nodes, in order.
    pub fn nodes(&self) -> Vec<RabbitNode> {
        (1..=3u16)
            .map(|n| RabbitNode {
                name: format!("msg-c{n}@localhost"),
                port: 5680 + n,
                dir: self.dir.join(format!("msg-c{n}")),
            })
            .collect()
    }

    fn node_named(&self, name: &str) -> Result<RabbitNode> {
        self.nodes()
            .into_iter()
            .find(|n| n.name == name)
            .ok_or_else(|| anyhow!("`{name}` is not a node of the local cluster"))
    }

    fn node_on_port(&self, port: u64) -> Result<RabbitNode> {
        self.nodes()
            .into_iter()
            .find(|n| u64::from(n.port) == port)
            .ok_or_else(|| anyhow!("port {port} is not a node of the local cluster"))
    }

    /// Runs `tool` (`rabbitmqctl`, `rabbitmq-queues`: the wrappers with the cluster's cookie)
    /// against `node`.
    async fn cli(&self, tool: &str, node: &RabbitNode, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", node.name.as_str()];
        all.extend_from_slice(args);
        output(&self.dir.join(tool), &all, CLI_TIMEOUT).await
    }

    /// Runs `tool` against the first node that answers (a cluster-wide question).
    async fn cli_any(&self, tool: &str, args: &[&str]) -> Result<String> {
        let mut errors = Vec::new();
        for node in self.nodes() {
            if !node.process_alive() {
                continue;
            }
            match self.cli(tool, &node, args).await {
                Ok(out) => return Ok(out),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        bail!("no node answered `{tool} {}`: {errors:?}", args.join(" "))
    }

    /// The nodes `cluster_status` lists as running.
    pub async fn running_nodes(&self) -> Result<Vec<String>> {
        let out = self
            .cli_any("rabbitmqctl", &["cluster_status", "--formatter", "json"])
            .await?;
        let doc = json_of(&out)?;
        let nodes = doc["running_nodes"]
            .as_array()
            .ok_or_else(|| anyhow!("cluster_status has no running_nodes: {doc}"))?;
        Ok(nodes
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect())
    }

    /// The node that leads quorum queue `queue` (`rabbitmq-queues quorum_status`).
    pub async fn quorum_leader(&self, queue: &str) -> Result<RabbitNode> {
        let out = self
            .cli_any(
                "rabbitmq-queues",
                &["quorum_status", queue, "--formatter", "json"],
            )
            .await?;
        let doc = json_of(&out)?;
        let members = doc
            .as_array()
            .ok_or_else(|| anyhow!("quorum_status {queue} is not a list: {doc}"))?;
        let leader = members
            .iter()
            .find(|m| m["Raft State"].as_str() == Some("leader"))
            .and_then(|m| m["Node Name"].as_str())
            .ok_or_else(|| anyhow!("quorum_status {queue} names no leader: {doc}"))?;
        self.node_named(leader)
    }

    /// The node that connection `connection_name` (the driver's `connection_name` option)
    /// is connected to; its publishing connection (`<name>:publish`) is not this one.
    pub async fn node_of_connection(&self, connection_name: &str) -> Result<RabbitNode> {
        let out = self
            .cli_any(
                "rabbitmqctl",
                &[
                    "list_connections",
                    "port",
                    "client_properties",
                    "--formatter",
                    "json",
                ],
            )
            .await?;
        let doc = json_of(&out)?;
        let quoted = Value::String(connection_name.to_owned()).to_string();
        let port = doc
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["client_properties"].to_string().contains(&quoted))
            .and_then(|c| c["port"].as_u64())
            .ok_or_else(|| anyhow!("no connection named {quoted} on the cluster"))?;
        self.node_on_port(port)
    }

    /// Kills `node`'s Erlang VM with SIGKILL and waits until its AMQP port is closed.
    pub async fn kill(&self, node: &RabbitNode) -> Result<()> {
        let pid = node
            .vm_pid()
            .ok_or_else(|| anyhow!("{} has no running Erlang VM to kill", node.name))?;
        process::kill_9(pid).await?;
        wait_until(
            Duration::from_secs(10),
            &format!("{} (pid {pid}) to stop listening", node.name),
            || async { Ok(!process::listening(node.port).await) },
        )
        .await?;
        Ok(())
    }

    /// Starts `node` again with its start script (it rejoins the cluster from its data).
    pub async fn restart(&self, node: &RabbitNode) -> Result<()> {
        process::run_start_script(&node.start_script(), &node.dir.join("launcher.pid")).await
    }

    /// `rabbitmqctl stop_app` on `node`: the Erlang VM stays, RabbitMQ stops (its
    /// connections close, its queue members go away).
    pub async fn stop_app(&self, node: &RabbitNode) -> Result<()> {
        self.cli("rabbitmqctl", node, &["stop_app"]).await.map(drop)
    }

    /// `rabbitmqctl start_app` on `node`.
    pub async fn start_app(&self, node: &RabbitNode) -> Result<()> {
        self.cli("rabbitmqctl", node, &["start_app"])
            .await
            .map(drop)
    }

    /// Brings the cluster back to 3 running nodes: a node whose VM is gone is started with
    /// its script, a node whose VM runs without RabbitMQ gets `start_app`; then waits
    /// (bounded by `within`) until `cluster_status` lists 3 running nodes and each takes
    /// AMQP connections. How long the wait took.
    pub async fn heal(&self, within: Duration) -> Result<Duration> {
        let mut restarted = Vec::new();
        for node in self.nodes() {
            if !node.process_alive() {
                self.restart(&node).await?;
                restarted.push(node.name.clone());
            }
        }
        let running = self.running_nodes().await.unwrap_or_default();
        for node in self.nodes() {
            if !restarted.contains(&node.name) && !running.contains(&node.name) {
                // a node left stopped by `stop_app` needs it; one still booting refuses it
                // or takes it as a no-op: the wait below decides
                if let Err(e) = self.start_app(&node).await {
                    let first = format!("{e:#}");
                    let first = first.lines().next().unwrap_or_default().to_owned();
                    #[allow(clippy::print_stderr)]
                    {
                        eprintln!("heal: start_app on {} (still booting?): {first}", node.name);
                    }
                }
            }
        }
        wait_until(within, "3 running RabbitMQ nodes", || async {
            let running = self.running_nodes().await?;
            for node in self.nodes() {
                if !running.contains(&node.name) || !process::listening(node.port).await {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .await
    }

    /// The cluster's directory of CLI wrappers (for the commands a report prints).
    pub fn cli_dir(&self) -> &Path {
        &self.dir
    }
}

/// The JSON document in a CLI's output (it may print warnings before it).
fn json_of(out: &str) -> Result<Value> {
    let start = out
        .find(['{', '['])
        .ok_or_else(|| anyhow!("no JSON in the CLI's output: {}", out.trim()))?;
    serde_json::from_str(out.get(start..).unwrap_or_default().trim())
        .with_context(|| format!("the CLI's output is not JSON: {}", out.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_after_warnings_is_read() {
        let v = json_of("warning: x\n[{\"Node Name\": \"a\"}]\n").unwrap_or_default();
        assert_eq!(v[0]["Node Name"], "a");
        assert!(json_of("nothing").is_err());
    }
}
