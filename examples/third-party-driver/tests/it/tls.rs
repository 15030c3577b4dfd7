//! `rediss://` with AUTH (an ACL user) and a database index, against a redis-server of its
//! own with a TLS port and a CA made here.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use msg_core::{Context, DriverRegistry, SendOptions, Target};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::redis_url;

struct Server {
    child: Child,
    dir: std::path::PathBuf,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS-only redis-server (user `app`, password `s3cret`) on a port below the ephemeral
/// range, with its CA's file; `None` when redis-server isn't installed.
fn tls_server() -> Option<Server> {
    let dir = std::env::temp_dir().join(format!("msg-redis-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
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
    let port = 20_000 + u16::try_from(std::process::id() % 9_000).unwrap();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--tls-cert-file")
        .arg(dir.join("server.pem"))
        .arg("--tls-key-file")
        .arg(dir.join("server.key"))
        .arg("--tls-ca-cert-file")
        .arg(dir.join("ca.pem"))
        .args(["--tls-auth-clients", "no"])
        .args(["--user", "default", "off"])
        .args(["--user", "app", "on", ">s3cret", "~*", "&*", "+@all"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = Server { child, dir, port };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "redis-server didn't open its TLS port"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_auth_and_a_database_index() {
    // run where the other Redis suites run (it needs redis-server, which comes with them)
    if redis_url("redis TLS").is_none() {
        return;
    }
    let Some(server) = tls_server() else {
        eprintln!("SKIPPED: redis TLS: no redis-server to start");
        return;
    };
    let ca = server.dir.join("ca.pem");
    let url = format!(
        "rediss://app:s3cret@localhost:{}/3?ssl_ca_file={}",
        server.port,
        ca.display()
    );
    let registry = DriverRegistry::new().with(msg_driver_redis::factory());
    let t = registry.open(&url).await.unwrap();
    // a cast to a server's stream, then read back raw: it went over TLS, as app, into db 3
    let listener = t
        .driver()
        .listen(&Target::server("tls", "s1"), &Default::default())
        .await
        .unwrap();
    t.driver()
        .cast(
            &Target::topic("tls"),
            &Context::new(),
            &msg_core::RpcRequest::new("ping", Default::default()),
            &SendOptions::default(),
        )
        .await
        .unwrap();
    let mut listener = listener;
    let req = tokio::time::timeout(
        Duration::from_secs(10),
        futures::StreamExt::next(&mut listener),
    )
    .await
    .expect("no request over TLS")
    .unwrap();
    assert_eq!(req.request.method, "ping");
    req.ack().await.unwrap();
    listener.stop();
    let _ = t.cleanup().await;

    // the stream is in database 3, not 0
    let tls = redis::Client::build_with_tls(
        format!("rediss://app:s3cret@localhost:{}/3", server.port),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(std::fs::read(&ca).unwrap()),
        },
    )
    .unwrap();
    let mut conn = tls.get_multiplexed_async_connection().await.unwrap();
    let n: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert!(n > 0, "nothing in database 3");

    // a wrong password is refused, and the error doesn't show the password
    let bad = format!(
        "rediss://app:wrong-pw@localhost:{}/3?ssl_ca_file={}",
        server.port,
        ca.display()
    );
    let e = registry.open(&bad).await.unwrap_err();
    assert!(
        matches!(
            e,
            msg_core::Error::Refused {
                reason: msg_core::Refusal::AccessRefused,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.to_string().contains("wrong-pw"), "{e}");
    // and an untrusted server is refused
    let untrusted = format!("rediss://app:s3cret@localhost:{}/3", server.port);
    assert!(registry.open(&untrusted).await.is_err());
}
