//! The local 3-node NATS cluster with clustered JetStream: servers `msg-n1` .. `msg-n3`.
//!
//! Each server runs `/usr/sbin/nats-server -c <node dir>/nats.conf` from a generated
//! `start` script. Readiness is read from each server's monitoring port: `/healthz`
//! with JetStream enabled, and `/jsz` showing one meta leader that every server agrees
//! on, with both other peers current.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::Value;

use super::process::{self, MARKER, Marked};
use super::{Cluster, NodeInfo, wait_until, write_executable, write_file};
use crate::util;

const SERVER: &str = "/usr/sbin/nats-server";
const NODES: u16 = 3;
const CLIENT_BASE: u16 = 4230;
const ROUTE_BASE: u16 = 6230;
const HTTP_BASE: u16 = 8230;
const CLUSTER_NAME: &str = "msg-nats";

/// How long the servers get to elect a JetStream meta leader.
const START_BUDGET: Duration = Duration::from_secs(60);
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
/// The most of a monitoring answer that is read.
const HTTP_MAX_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone)]
struct Node {
    /// 1-based.
    index: u16,
    dir: PathBuf,
}

impl Node {
    fn name(&self) -> String {
        format!("msg-n{}", self.index)
    }

    fn client_port(&self) -> u16 {
        CLIENT_BASE + self.index
    }

    fn route_port(&self) -> u16 {
        ROUTE_BASE + self.index
    }

    fn http_port(&self) -> u16 {
        HTTP_BASE + self.index
    }

    fn script(&self) -> PathBuf {
        self.dir.join("start")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("nats.conf")
    }
}

/// The NATS cluster under `<cluster dir>/nats`.
#[derive(Debug)]
pub struct Nats {
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl Nats {
    pub fn new(cluster_dir: &Path) -> Self {
        let dir = cluster_dir.join("nats");
        let nodes = (1..=NODES)
            .map(|index| Node {
                index,
                dir: dir.join(format!("n{index}")),
            })
            .collect();
        Nats { dir, nodes }
    }

    fn config(&self, node: &Node) -> Result<String> {
        let path = |p: PathBuf| -> Result<String> {
            let s = p.display().to_string();
            if s.contains(['"', '\\', '\n']) {
                bail!("path {s:?} cannot be written into a NATS config file");
            }
            Ok(s)
        };
        let routes: Vec<String> = self
            .nodes
            .iter()
            .filter(|other| other.index != node.index)
            .map(|other| format!("    \"nats-route://127.0.0.1:{}\"\n", other.route_port()))
            .collect();
        Ok(format!(
            "# Server {name} of the local NATS test cluster (cargo xtask cluster up).\n\
             server_name: \"{name}\"\n\
             listen: \"127.0.0.1:{client}\"\n\
             http: \"127.0.0.1:{http}\"\n\
             pid_file: \"{pid}\"\n\
             log_file: \"{log}\"\n\
             jetstream {{\n  \
               store_dir: \"{store}\"\n  \
               max_memory_store: 256MB\n  \
               max_file_store: 4GB\n\
             }}\n\
             cluster {{\n  \
               name: \"{CLUSTER_NAME}\"\n  \
               listen: \"127.0.0.1:{route}\"\n  \
               routes: [\n{routes}  ]\n\
             }}\n",
            name = node.name(),
            client = node.client_port(),
            http = node.http_port(),
            route = node.route_port(),
            pid = path(node.dir.join("nats.pid"))?,
            log = path(node.dir.join("nats.log"))?,
            store = path(node.dir.join("store"))?,
            routes = routes.concat(),
        ))
    }

    fn start_script(node: &Node) -> String {
        let q = |p: PathBuf| util::shell_quote(&p.display().to_string());
        format!(
            "#!/bin/sh\n\
             # Starts NATS server {name} of the local test cluster (written by\n\
             # `cargo xtask cluster up`); run it again to restart the server.\n\
             export {MARKER}={dir}\n\
             echo $$ > {pid}\n\
             exec {SERVER} -c {config} >> {out} 2>&1 < /dev/null\n",
            name = node.name(),
            dir = q(node.dir.clone()),
            pid = q(node.dir.join("launcher.pid")),
            config = q(node.config_path()),
            out = q(node.dir.join("stdout.log")),
        )
    }

    /// The JetStream meta leader `node` reports, after checking its health endpoint.
    fn meta_view(node: &Node) -> Result<MetaView> {
        let (code, body) = http_get(node.http_port(), "/healthz?js-enabled-only=true")?;
        if code != 200 {
            bail!("{}: /healthz answered {code}: {}", node.name(), body.trim());
        }
        let (code, body) = http_get(node.http_port(), "/jsz")?;
        if code != 200 {
            bail!("{}: /jsz answered {code}", node.name());
        }
        let jsz: Value = serde_json::from_str(&body)
            .with_context(|| format!("{}: /jsz is not JSON", node.name()))?;
        meta_view_of(&jsz).with_context(|| node.name())
    }
}

/// What one server's `/jsz` says about the JetStream meta group.
#[derive(Debug, PartialEq, Eq)]
struct MetaView {
    leader: String,
    cluster_size: u64,
    /// The other peers that are current (only the leader lists them).
    current_replicas: usize,
}

fn meta_view_of(jsz: &Value) -> Result<MetaView> {
    let meta = jsz
        .get("meta_cluster")
        .ok_or_else(|| anyhow!("/jsz has no meta_cluster (JetStream not clustered)"))?;
    let leader = meta
        .get("leader")
        .and_then(Value::as_str)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| anyhow!("no JetStream meta leader elected yet"))?;
    let current_replicas = meta
        .get("replicas")
        .and_then(Value::as_array)
        .map_or(0, |replicas| {
            replicas
                .iter()
                .filter(|r| r.get("current").and_then(Value::as_bool) == Some(true))
                .count()
        });
    Ok(MetaView {
        leader: leader.to_owned(),
        cluster_size: meta
            .get("cluster_size")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        current_replicas,
    })
}

/// `GET path` on `127.0.0.1:port` over HTTP/1.0; the status code and body.
pub(super) fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let what = || format!("GET http://127.0.0.1:{port}{path}");
    let mut stream =
        TcpStream::connect_timeout(&process::loopback(port), HTTP_TIMEOUT).with_context(what)?;
    stream
        .set_read_timeout(Some(HTTP_TIMEOUT))
        .with_context(what)?;
    stream
        .set_write_timeout(Some(HTTP_TIMEOUT))
        .with_context(what)?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").with_context(what)?;
    let mut raw = Vec::new();
    stream
        .take(HTTP_MAX_BYTES)
        .read_to_end(&mut raw)
        .with_context(what)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("{}: no HTTP header end", what()))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("{}: bad status line", what()))?;
    Ok((code, body.to_owned()))
}

impl Cluster for Nats {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn env_var(&self) -> &'static str {
        "MSG_NATS_CLUSTER_URL"
    }

    fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.client_port()))
            .collect();
        format!("nats://{}", hosts.join(","))
    }

    fn ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .flat_map(|n| [n.client_port(), n.route_port(), n.http_port()])
            .collect()
    }

    fn nodes(&self) -> Vec<NodeInfo> {
        self.nodes
            .iter()
            .map(|n| NodeInfo {
                name: n.name(),
                dir: n.dir.clone(),
                port: n.client_port(),
            })
            .collect()
    }

    fn check_installed(&self) -> Result<()> {
        if !Path::new(SERVER).is_file() {
            bail!("{SERVER} is not installed");
        }
        Ok(())
    }

    fn health(&self) -> Result<String> {
        let views = self
            .nodes
            .iter()
            .map(|node| Ok((node, Self::meta_view(node)?)))
            .collect::<Result<Vec<_>>>()?;
        let leader = views
            .first()
            .map(|(_, v)| v.leader.clone())
            .ok_or_else(|| anyhow!("no nodes"))?;
        for (node, view) in &views {
            if view.leader != leader {
                bail!(
                    "{} sees meta leader {}, others {leader}",
                    node.name(),
                    view.leader
                );
            }
            if view.cluster_size != u64::from(NODES) {
                bail!(
                    "{} sees a meta group of {} (want {NODES})",
                    node.name(),
                    view.cluster_size
                );
            }
        }
        let (_, leader_view) = views
            .iter()
            .find(|(node, _)| node.name() == leader)
            .ok_or_else(|| anyhow!("meta leader {leader} is not a server of this cluster"))?;
        let want = usize::from(NODES) - 1;
        if leader_view.current_replicas != want {
            bail!(
                "meta leader {leader} has {} current peers (want {want})",
                leader_view.current_replicas
            );
        }
        Ok(format!(
            "{NODES} servers with JetStream, meta leader {leader}, {NODES} peers current"
        ))
    }

    fn write_files(&self) -> Result<()> {
        for node in &self.nodes {
            std::fs::create_dir_all(&node.dir)
                .with_context(|| format!("{}", node.dir.display()))?;
            write_file(&node.config_path(), &self.config(node)?)?;
            write_executable(&node.script(), &Self::start_script(node))?;
        }
        Ok(())
    }

    fn start(&self) -> Result<()> {
        let launchers = self
            .nodes
            .iter()
            .map(|node| process::spawn_script(&node.script()))
            .collect::<Result<Vec<u32>>>()?;
        let mut last = String::new();
        wait_until(START_BUDGET, || {
            for (node, &pid) in self.nodes.iter().zip(&launchers) {
                if !process::alive(pid) {
                    bail!(
                        "{} exited:\n{}\n{}",
                        node.script().display(),
                        util::tail(&node.dir.join("stdout.log"), 10),
                        util::tail(&node.dir.join("nats.log"), 10)
                    );
                }
            }
            match self.health() {
                Ok(_) => Ok(true),
                Err(err) => {
                    last = format!("{err:#}");
                    Ok(false)
                }
            }
        })
        .with_context(|| format!("the NATS cluster did not become ready ({last})"))
    }

    fn stop_gracefully(&self, running: &[Marked]) {
        // nats-server shuts down cleanly on TERM; `terminate` follows up.
        let pids: Vec<u32> = running.iter().map(|m| m.pid).collect();
        process::signal(&pids, "TERM");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Nats {
        Nats::new(Path::new("/w/target/cluster"))
    }

    #[test]
    fn servers_have_their_own_ports() {
        let nats = cluster();
        assert_eq!(
            nats.ports(),
            [4231, 6231, 8231, 4232, 6232, 8232, 4233, 6233, 8233]
        );
        assert_eq!(
            nats.url(),
            "nats://127.0.0.1:4231,127.0.0.1:4232,127.0.0.1:4233"
        );
    }

    #[test]
    fn config_clusters_jetstream_on_loopback() {
        let nats = cluster();
        let config = nats.config(&nats.nodes[1]).expect("config");
        for line in [
            "server_name: \"msg-n2\"\n",
            "listen: \"127.0.0.1:4232\"\n",
            "http: \"127.0.0.1:8232\"\n",
            "  store_dir: \"/w/target/cluster/nats/n2/store\"\n",
            "  name: \"msg-nats\"\n",
            "  listen: \"127.0.0.1:6232\"\n",
            "    \"nats-route://127.0.0.1:6231\"\n",
            "    \"nats-route://127.0.0.1:6233\"\n",
        ] {
            assert!(config.contains(line), "{line:?} missing from:\n{config}");
        }
        assert!(
            !config.contains("6232\"\n    "),
            "no route to itself:\n{config}"
        );
        assert!(!config.contains("4222"), "{config}");
    }

    #[test]
    fn config_refuses_paths_it_cannot_quote() {
        let nats = Nats::new(Path::new("/w/odd\"dir"));
        assert!(nats.config(&nats.nodes[0]).is_err());
    }

    #[test]
    fn start_script_marks_and_execs_the_server() {
        let script = Nats::start_script(&cluster().nodes[2]);
        assert!(script.contains("export MSG_CLUSTER_NODE=/w/target/cluster/nats/n3\n"));
        assert!(script.ends_with(
            "exec /usr/sbin/nats-server -c /w/target/cluster/nats/n3/nats.conf >> \
             /w/target/cluster/nats/n3/stdout.log 2>&1 < /dev/null\n"
        ));
    }

    #[test]
    fn meta_view_reads_the_leader_and_current_peers() {
        let jsz: Value = serde_json::json!({"meta_cluster": {
            "name": "msg-nats", "leader": "msg-n2", "cluster_size": 3,
            "replicas": [{"name": "msg-n1", "current": true}, {"name": "msg-n3", "current": false}]
        }});
        assert_eq!(
            meta_view_of(&jsz).ok(),
            Some(MetaView {
                leader: "msg-n2".into(),
                cluster_size: 3,
                current_replicas: 1
            })
        );
        let no_leader = serde_json::json!({"meta_cluster": {"leader": "", "cluster_size": 3}});
        assert!(meta_view_of(&no_leader).is_err());
        assert!(meta_view_of(&serde_json::json!({"streams": 0})).is_err());
    }
}
