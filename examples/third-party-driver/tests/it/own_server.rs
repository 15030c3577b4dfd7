//! A redis-server of the test's own (plain or TLS-only), on a port below the ephemeral
//! range: for what can't be done to the shared Redis (restarting it, a TLS port).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A running redis-server; killed (and its directory removed) when dropped.
pub struct OwnServer {
    child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
    args: Vec<String>,
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl OwnServer {
    /// A plain server; `None` when redis-server isn't installed.
    pub fn plain(port_offset: u16) -> Option<Self> {
        let dir = temp_dir();
        Self::start(dir, port(port_offset), Vec::new())
    }

    /// A TLS-only server (user `app`, password `s3cret`, the default user off) with a CA of
    /// its own, in `dir/ca.pem`.
    pub fn tls(port_offset: u16) -> Option<Self> {
        let dir = temp_dir();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        leaf.use_authority_key_identifier_extension = true;
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.join("server.pem"), leaf_cert.pem()).unwrap();
        std::fs::write(dir.join("server.key"), leaf_key.serialize_pem()).unwrap();
        let d = |f: &str| dir.join(f).display().to_string();
        let port = port(port_offset);
        let args = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &d("server.pem"),
            "--tls-key-file",
            &d("server.key"),
            "--tls-ca-cert-file",
            &d("ca.pem"),
            "--tls-auth-clients",
            "no",
            "--user",
            "default",
            "off",
            "--user",
            "app",
            "on",
            ">s3cret",
            "~*",
            "&*",
            "+@all",
        ]
        .map(String::from)
        .to_vec();
        Self::start(dir, port, args)
    }

    fn start(dir: PathBuf, port: u16, mut args: Vec<String>) -> Option<Self> {
        if !args.iter().any(|a| a == "--tls-port") {
            args.extend(["--port".to_string(), port.to_string()]);
        }
        args.extend(
            [
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ]
            .map(String::from),
        );
        let mut s = OwnServer {
            child: None,
            dir,
            port,
            args,
        };
        s.restart()?;
        Some(s)
    }

    /// Kills the server (as a crash: nothing is kept).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) -> Option<()> {
        self.kill();
        let child = Command::new("redis-server")
            .args(&self.args)
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server didn't open port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(())
    }
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("msg-redis-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A port below the ephemeral range, apart for each process and test.
fn port(offset: u16) -> u16 {
    21_000 + u16::try_from(std::process::id() % 4_000).unwrap() * 2 + offset % 2
}
