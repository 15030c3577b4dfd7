//! The local NATS cluster (`msg-n1` .. `msg-n3`, JetStream): who leads a stream or a
//! consumer, which server a connection is on, and its faults.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow};
use serde_json::Value;

use crate::env;
use crate::monitor::get_json;
use crate::process::{self, wait_until};

/// One server of the local NATS cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsNode {
    /// Its server name, `msg-nN`.
    pub name: String,
    /// Its client port on 127.0.0.1.
    pub port: u16,
    /// Its monitoring port on 127.0.0.1.
    pub monitor_port: u16,
    dir: PathBuf,
}

impl NatsNode {
    /// The server's process: the pid its start script wrote (`launcher.pid`; the script
    /// `exec`s nats-server), else the one in `nats.pid`.
    fn pid(&self) -> Option<u32> {
        ["launcher.pid", "nats.pid"]
            .into_iter()
            .filter_map(|file| process::read_pid(&self.dir.join(file)).ok())
            .find(|&pid| process::alive(pid))
    }

    fn process_alive(&self) -> bool {
        self.pid().is_some()
    }
}

/// The local 3-server NATS cluster of `cargo xtask cluster up`.
#[derive(Debug, Clone)]
pub struct NatsCluster {
    url: String,
    dir: PathBuf,
}

impl NatsCluster {
    /// The cluster from `MSG_NATS_CLUSTER_URL` and `MSG_CLUSTER_DIR`, or `None` after a
    /// loud SKIPPED line naming `suite` (a panic with `MSG_REQUIRE_BROKERS=1`).
    pub fn from_env(suite: &str) -> Option<Self> {
        let url = env::cluster_url("MSG_NATS_CLUSTER_URL", suite)?;
        let dir = env::cluster_dir(suite)?.join("nats");
        Some(NatsCluster { url, dir })
    }

    /// The URL listing every server.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The three servers, in order.
    pub fn nodes(&self) -> Vec<NatsNode> {
        (1..=3u16)
            .map(|n| NatsNode {
                name: format!("msg-n{n}"),
                port: 4230 + n,
                monitor_port: 8230 + n,
                dir: self.dir.join(format!("n{n}")),
            })
            .collect()
    }

    fn node_named(&self, name: &str) -> Result<NatsNode> {
        self.nodes()
            .into_iter()
            .find(|n| n.name == name)
            .ok_or_else(|| anyhow!("`{name}` is not a server of the local cluster"))
    }

    /// `path` on the first live server's monitoring port.
    async fn monitor_any(&self, path: &str) -> Result<Value> {
        let mut errors = Vec::new();
        for node in self.nodes() {
            match get_json(node.monitor_port, path).await {
                Ok((200, body)) => return Ok(body),
                Ok((code, _)) => errors.push(format!("{}: HTTP {code}", node.name)),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        Err(anyhow!("no server answered {path}: {errors:?}"))
    }

    /// The streams `/jsz` shows, with their consumers.
    async fn stream_details(&self) -> Result<Vec<Value>> {
        let jsz = self.monitor_any("/jsz?streams=true&consumers=true").await?;
        Ok(jsz["account_details"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
            .collect())
    }

    /// The server that leads stream `stream` (`/jsz?streams=true`).
    pub async fn stream_leader(&self, stream: &str) -> Result<NatsNode> {
        let details = self.stream_details().await?;
        let leader = details
            .iter()
            .find(|s| s["name"].as_str() == Some(stream))
            .and_then(|s| s["cluster"]["leader"].as_str())
            .ok_or_else(|| anyhow!("/jsz shows no leader of stream {stream}"))?;
        self.node_named(leader)
    }

    /// The server that leads consumer `consumer` of `stream` (`/jsz?consumers=true`).
    pub async fn consumer_leader(&self, stream: &str, consumer: &str) -> Result<NatsNode> {
        let details = self.stream_details().await?;
        let leader = details
            .iter()
            .filter(|s| s["name"].as_str() == Some(stream))
            .flat_map(|s| s["consumer_detail"].as_array().cloned().unwrap_or_default())
            .find(|c| c["name"].as_str() == Some(consumer))
            .and_then(|c| c["cluster"]["leader"].as_str().map(str::to_owned))
            .ok_or_else(|| anyhow!("/jsz shows no leader of consumer {consumer} of {stream}"))?;
        self.node_named(&leader)
    }

    /// The server connection `connection_name` (the driver's `connection_name` option) is
    /// connected to (`/connz` of each server).
    pub async fn node_of_connection(&self, connection_name: &str) -> Result<NatsNode> {
        for node in self.nodes() {
            let Ok((200, connz)) = get_json(node.monitor_port, "/connz?limit=1024").await else {
                continue;
            };
            let found = connz["connections"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["name"].as_str() == Some(connection_name));
            if found {
                return Ok(node);
            }
        }
        Err(anyhow!(
            "no server has a connection named {connection_name}"
        ))
    }

    /// Kills `node` with SIGKILL and waits until its client port is closed.
    pub async fn kill(&self, node: &NatsNode) -> Result<()> {
        let pid = node
            .pid()
            .ok_or_else(|| anyhow!("{} has no running process to kill", node.name))?;
        process::kill_9(pid).await?;
        wait_until(
            Duration::from_secs(10),
            &format!("{} (pid {pid}) to stop listening", node.name),
            || async { Ok(!process::listening(node.port).await) },
        )
        .await?;
        Ok(())
    }

    /// Starts `node` again with its start script (it rejoins the cluster from its store).
    pub async fn restart(&self, node: &NatsNode) -> Result<()> {
        process::run_start_script(&node.dir.join("start"), &node.dir.join("launcher.pid")).await
    }

    /// Brings the cluster back to 3 healthy servers: a server whose process is gone is
    /// started with its script; then waits (bounded by `within`) until each answers
    /// `/healthz?js-enabled-only=true` and all three name the same JetStream meta leader.
    /// How long the wait took.
    pub async fn heal(&self, within: Duration) -> Result<Duration> {
        for node in self.nodes() {
            if !node.process_alive() {
                self.restart(&node).await?;
            }
        }
        wait_until(within, "3 healthy NATS servers", || async {
            let mut leaders = Vec::new();
            for node in self.nodes() {
                let (code, _) =
                    get_json(node.monitor_port, "/healthz?js-enabled-only=true").await?;
                if code != 200 {
                    return Ok(false);
                }
                let (_, jsz) = get_json(node.monitor_port, "/jsz").await?;
                leaders.push(
                    jsz["meta_cluster"]["leader"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
            let first = leaders.first().cloned().unwrap_or_default();
            Ok(!first.is_empty() && leaders.iter().all(|l| *l == first))
        })
        .await
    }
}
