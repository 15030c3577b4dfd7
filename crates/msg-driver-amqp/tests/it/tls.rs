//! TLS: a TLS-terminating loopback proxy in front of RabbitMQ, with a CA and a certificate
//! for `localhost` made by the test. `amqps://` and `?ssl=true` connect and verify it; a
//! wrong host name fails clearly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use msg_core::{
    Context, DriverRegistry, EnvelopeVersion, ListenOptions, Notification, Priority, Retry, Target,
};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio_rustls::rustls;

use crate::proxy::Proxy;
use crate::rabbit_url;

struct Pki {
    ca_file: std::path::PathBuf,
    acceptor: tokio_rustls::TlsAcceptor,
}

fn pki() -> Pki {
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

    let ca_file =
        std::env::temp_dir().join(format!("msg-test-ca-{}.pem", uuid::Uuid::new_v4().simple()));
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    Pki {
        ca_file,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    }
}

async fn round_trip(url: &str) -> msg_core::Result<()> {
    let transport = DriverRegistry::new()
        .with(msg_driver_amqp::factory())
        .open(url)
        .await?;
    let topic = format!("tls-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let target = Target::topic(&topic);
    let n = Notification::new(
        "tls.test",
        "e",
        Priority::Info,
        serde_json::json!({"over": "tls"}),
    );
    let d = transport.driver();
    d.send_notification(
        &target,
        &Context::new(),
        &n,
        EnvelopeVersion::V2,
        Retry::Attempts(0),
    )
    .await?;
    let mut l = d
        .listen_for_notifications(&[(target, Priority::Info)], None, &ListenOptions::default())
        .await?;
    let got = tokio::time::timeout(Duration::from_secs(10), l.next())
        .await
        .expect("nothing arrived over TLS")
        .expect("the listener ended");
    assert_eq!(got.notification.message_id, n.message_id);
    got.ack().await?;
    l.stop();
    transport.cleanup().await
}

#[tokio::test]
async fn tls_connects_verifies_and_refuses_a_wrong_host_name() {
    let Some(_) = rabbit_url("amqp TLS") else {
        return;
    };
    let pki = pki();
    let upstream: SocketAddr = "127.0.0.1:5672".parse().unwrap();
    let proxy = Proxy::start_with(upstream, Some(pki.acceptor.clone())).await;
    let ca = pki.ca_file.display();
    let port = proxy.port;

    round_trip(&format!(
        "amqps://guest:guest@localhost:{port}/?ssl_ca_file={ca}&connection_timeout=5"
    ))
    .await
    .expect("amqps:// with the test CA");
    round_trip(&format!(
        "rabbit://guest:guest@localhost:{port}/?ssl=true&ssl_ca_file={ca}&connection_timeout=5"
    ))
    .await
    .expect("rabbit:// with ssl=true");

    // the certificate names `localhost`, not `127.0.0.1`
    let err = round_trip(&format!(
        "amqps://guest:guest@127.0.0.1:{port}/?ssl_ca_file={ca}&connection_timeout=5"
    ))
    .await
    .unwrap_err();
    let text = format!("{err} {:?}", std::error::Error::source(&err));
    eprintln!("wrong host name: {text}");
    assert!(
        text.to_lowercase().contains("certificate") || text.contains("NotValidForName"),
        "a wrong host name must fail on the certificate: {text}"
    );
    // without our CA the certificate isn't trusted
    let err = round_trip(&format!(
        "amqps://guest:guest@localhost:{port}/?connection_timeout=5"
    ))
    .await
    .unwrap_err();
    eprintln!("unknown CA: {err}");
    let _ = std::fs::remove_file(&pki.ca_file);
}
