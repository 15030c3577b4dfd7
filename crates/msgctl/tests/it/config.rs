//! `--config-file` and `--config-dir`: msgctl pointed at a Python service's files.

use std::path::PathBuf;

use crate::{Server, broker_url, fails_with, msgctl, stderr, stdout};

/// A directory of its own under the temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("msgctl-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn serve_and_call_configured_by_a_services_files_on_rabbitmq() {
    let Some(url) = broker_url("MSG_RABBIT_URL") else {
        return;
    };
    let dir = TempDir::new("config-rabbit");
    let exchange = format!("msgctl-config-{}", std::process::id());
    let topic = format!("{exchange}-topic");
    let conf = dir.write(
        "nova.conf",
        &format!(
            "[DEFAULT]\ntransport_url = {url}\ncontrol_exchange = wrong\nrpc_response_timeout = 1\n\
             executor_thread_pool_size = 4\n[oslo_messaging_rabbit]\nheartbeat_timeout_threshold = 20\n\
             kombu_reconnect_delay = 0.5\nkombu_missing_consumer_retry_timeout = 1\n[database]\nconnection = mysql://nova:secret@db/nova\n"
        ),
    );
    // the drop-in directory comes after the file: its exchange wins
    dir.write(
        "nova.conf.d/10-exchange.conf",
        &format!("[DEFAULT]\ncontrol_exchange = {exchange}\n"),
    );
    let conf_dir = dir.0.join("nova.conf.d");
    let conf_dir = conf_dir.to_str().unwrap();
    let files = ["--config-file", conf.as_str(), "--config-dir", conf_dir];
    let server = Server::start_with(&files, &topic);

    let call = |global: &[&str], args: &[&str]| {
        let mut all = global.to_vec();
        all.extend_from_slice(&["call", "--topic", &topic]);
        all.extend_from_slice(args);
        msgctl(&all)
    };
    let o = call(&files, &["add", r#"{"a": 2, "b": 3}"#]);
    assert!(o.status.success(), "call add: {}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "5");
    // the server is on the files' exchange: a plain URL reaches it with that exchange
    let o = call(
        &["--url", url.as_str(), "--exchange", exchange.as_str()],
        &["--timeout", "10", "add", r#"{"a": 1, "b": 1}"#],
    );
    assert!(
        o.status.success(),
        "call add on the exchange: {}",
        stderr(&o)
    );
    assert_eq!(stdout(&o).trim(), "2");
    // the files' rpc_response_timeout is call's --timeout; the server gives the late reply up
    // after the files' kombu_missing_consumer_retry_timeout (1 s, not 60), so it stops at once
    let o = call(&files, &["sleep", r#"{"seconds": 3}"#]);
    let err = fails_with(&o, 1);
    assert!(
        err.contains("timed out") || err.contains("timeout"),
        "{err}"
    );

    let status = server.terminate();
    assert!(status.success(), "serve exited with {status:?}");
}

#[test]
fn a_bad_value_in_a_file_is_bad_input_naming_file_section_and_key() {
    let dir = TempDir::new("config-bad");
    let conf = dir.write(
        "bad.conf",
        "[DEFAULT]\ntransport_url = rabbit://u:s3cret@127.0.0.1:1/\n\n[oslo_messaging_rabbit]\nrabbit_qos_prefetch_count = lots\n",
    );
    let o = msgctl(&["--config-file", &conf, "call", "--topic", "t", "echo"]);
    let err = fails_with(&o, 2);
    assert!(
        err.contains(&format!(
            "{conf}:5: [oslo_messaging_rabbit] rabbit_qos_prefetch_count: "
        )),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    let o = msgctl(&[
        "--config-file",
        "/nonexistent/nova.conf",
        "call",
        "--topic",
        "t",
        "echo",
    ]);
    let err = fails_with(&o, 2);
    assert!(err.contains("/nonexistent/nova.conf"), "{err}");
}

#[test]
fn notify_and_listen_use_the_files_notification_transport_and_topics_on_rabbitmq() {
    let Some(url) = broker_url("MSG_RABBIT_URL") else {
        return;
    };
    let dir = TempDir::new("config-notify");
    let id = std::process::id();
    // RPC on an in-process broker: only the notifications' URL reaches RabbitMQ
    let conf = dir.write(
        "svc.conf",
        &format!(
            "[DEFAULT]\ntransport_url = memory://config-{id}\ncontrol_exchange = msgctl-config-{id}\n\
             [oslo_messaging_notifications]\ntransport_url = {url}\ndriver = messaging\n\
             topics = msgctl-config-{id}-notes\n"
        ),
    );
    let o = msgctl(&[
        "--config-file",
        &conf,
        "notify",
        "--priority",
        "info",
        "--publisher-id",
        "p",
        "--event-type",
        "volume.create",
        r#"{"size": 1}"#,
    ]);
    assert!(o.status.success(), "notify: {}", stderr(&o));
    let o = msgctl(&[
        "--config-file",
        &conf,
        "listen",
        "--count",
        "1",
        "--timeout",
        "20",
        "--json",
    ]);
    assert!(o.status.success(), "listen: {}", stderr(&o));
    let line: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(line["event_type"], "volume.create");
    assert_eq!(line["payload"], serde_json::json!({"size": 1}));
}
