//! oslo's logging pieces: an application's ERROR log event reaches a listener on RabbitMQ
//! as oslo's `error_notification`, and nothing else does; passwords are masked as
//! oslo.utils masks them.

use std::time::Duration;

use msg::notify::{
    Handled, NotificationEndpoint, NotificationLayer, NotificationListener, Notifier,
};
use msg::{Priority, Target, Transport};
use serde_json::json;
use tokio::sync::mpsc;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_log_event_reaches_a_listener_as_oslos_error_notification() {
    let Some(url) = std::env::var("MSG_RABBIT_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        assert!(
            std::env::var("MSG_REQUIRE_BROKERS").as_deref() != Ok("1"),
            "MSG_REQUIRE_BROKERS=1 but MSG_RABBIT_URL is not set"
        );
        eprintln!("SKIPPED: error notifications on RabbitMQ (no MSG_RABBIT_URL)");
        return;
    };
    if msg::builtin_registry().lookup("rabbit").is_none() {
        eprintln!("SKIPPED: error notifications on RabbitMQ (built without the amqp feature)");
        return;
    }
    tokio::time::timeout(Duration::from_secs(60), async {
        let topic = format!(
            "errors-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let transport = Transport::open(&url).await.unwrap();
        let (tx, mut got) = mpsc::unbounded_channel();
        let listener =
            NotificationListener::builder(transport.clone(), [Target::topic(topic.as_str())])
                .endpoint(NotificationEndpoint::new().on(Priority::Error, move |m| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send(m);
                        Handled
                    }
                }))
                .start()
                .await
                .unwrap();

        let notifier = Notifier::new(transport.clone()).topics([topic.as_str()]);
        let layer = NotificationLayer::publish_errors(notifier).unwrap();
        {
            let _guard = tracing::subscriber::set_default(
                tracing_subscriber::registry().with(layer.clone()),
            );
            tracing::warn!(target: "nova.compute", "a warning is not sent");
            tracing::error!(target: "msg_driver_amqp::publish", "msg's own errors are not sent");
            tracing::error!(target: "nova.compute", "instance i-1 failed: password=hunter2");
        }
        layer.flush().await;

        let m = got.recv().await.unwrap();
        assert_eq!(m.event_type, "error_notification");
        assert_eq!(m.publisher_id, "error.publisher");
        assert_eq!(m.priority, Priority::Error);
        assert_eq!(
            m.payload,
            json!({"error": "instance i-1 failed: password=***"})
        );
        // nothing else comes
        let more = tokio::time::timeout(Duration::from_millis(300), got.recv()).await;
        assert!(more.is_err(), "{more:?}");
        listener.shutdown(Duration::from_secs(5)).await.unwrap();
        transport.cleanup().await.unwrap();
    })
    .await
    .unwrap();
}

/// oslo.utils' `mask_password` and `mask_dict_password`, against the Python ones.
#[test]
fn passwords_are_masked_as_oslo_utils_masks_them() {
    let python = match std::env::var("MSG_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            assert!(
                std::env::var("MSG_REQUIRE_BROKERS").as_deref() != Ok("1"),
                "MSG_REQUIRE_BROKERS=1 but MSG_PYTHON is not set"
            );
            eprintln!("SKIPPED: masking parity (no MSG_PYTHON)");
            return;
        }
    };
    let texts = [
        "no secrets here",
        "password=s3cret other=1",
        "Password = 's3cret' and token=\"t0k\"",
        "--password s3cret --user admin",
        "<adminPass>s3cret</adminPass>",
        r#"{"auth_token": "abc", "nested": {"secret": "x"}}"#,
        "'admin_password' : u'aaaa'",
        "mysql://nova:s3cret@db/nova?charset=utf8 passphrase=p",
        "cmd: ['mount', '-o', 'password', '--secret', 's3']",
        "sys_pswd=abc fernetkey: 'k' chappassword 'c'",
    ];
    let dict = json!({"password": "p", "user": "u", "auth": {"token": "t", "ok": "password=x"},
                      "list": ["secret=s", {"private_key": "k"}], "n": 3, "SSLKey": null});
    let script = r#"
import json, sys
from oslo_utils.strutils import mask_password, mask_dict_password
texts, d = json.loads(sys.stdin.read())
print(json.dumps([[mask_password(t) for t in texts], mask_dict_password(d)]))
"#;
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .env("PYTHONWARNINGS", "ignore")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json!([texts, dict]).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let oslo: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours: Vec<String> = texts
        .iter()
        .map(|t| msg::notify::mask_password(t))
        .collect();
    assert_eq!(json!(ours), oslo[0]);
    assert_eq!(msg::notify::mask_value(&dict), oslo[1]);
}
