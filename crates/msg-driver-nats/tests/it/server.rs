//! A nats-server of the test's own: JetStream on, its own store directory (under the target
//! directory), a free loopback port; killed by its process id when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// A running nats-server child process.
pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

impl NatsServer {
    /// Starts one, or `None` (after a loud SKIPPED line) when the binary is missing; with
    /// `MSG_REQUIRE_BROKERS=1` a missing binary fails the test instead.
    pub fn start(suite: &str) -> Option<Self> {
        Self::start_with(suite, &[])
    }

    /// Starts one with more command-line arguments (`--auth TOKEN`, ...).
    pub fn start_with(suite: &str, extra: &[&str]) -> Option<Self> {
        if !std::path::Path::new(NATS_SERVER).is_file() {
            assert!(
                std::env::var("MSG_REQUIRE_BROKERS").as_deref() != Ok("1"),
                "MSG_REQUIRE_BROKERS=1 but {NATS_SERVER} is missing"
            );
            eprintln!("SKIPPED: {suite}: no {NATS_SERVER}");
            return None;
        }
        let port = free_port();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("msg-nats-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = NatsServer {
            child: None,
            port,
            dir,
            extra: extra.iter().map(|a| a.to_string()).collect(),
        };
        s.spawn();
        Some(s)
    }

    fn spawn(&mut self) {
        let child = Command::new(NATS_SERVER)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("nats-server on port {} didn't come up", self.port);
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: no goodbye to its clients).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three nats-servers of the test's own clustered on loopback (JetStream replicated across
/// them); killed when dropped.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts the three nodes, or `None` as [`NatsServer::start`] does.
    pub fn start(suite: &str) -> Option<Self> {
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let name = format!("msgtest-{}", uuid::Uuid::new_v4().simple());
        let mut nodes = Vec::new();
        for (i, port) in routes.iter().enumerate() {
            let others: Vec<String> = routes
                .iter()
                .filter(|p| *p != port)
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect();
            let args = [
                "--server_name".to_string(),
                format!("{name}-n{i}"),
                "--cluster_name".to_string(),
                name.clone(),
                "--cluster".to_string(),
                format!("nats://127.0.0.1:{port}"),
                "--routes".to_string(),
                others.join(","),
            ];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            nodes.push(NatsServer::start_with(suite, &args)?);
        }
        Some(NatsCluster { nodes })
    }

    /// `nats://` with every node.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("nats://{}", hosts.join(","))
    }
}

/// A loopback port free now, below the kernel's ephemeral range (32768 and up): a port from
/// `bind(0)` is released before nats-server takes it, and meanwhile the client connections of
/// the tests running beside it can take it as their source port.
fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // each test process starts at its own offset in 20000..32000
    let base = 20_000 + u16::try_from(std::process::id() % 1200).unwrap() * 10;
    let _ = NEXT.compare_exchange(0, base, Ordering::AcqRel, Ordering::Acquire);
    loop {
        let port = NEXT.fetch_add(1, Ordering::AcqRel);
        assert!(
            port < 32_768,
            "no free loopback port below the ephemeral range"
        );
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
