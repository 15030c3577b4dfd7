//! oslo.config files: a Rust service pointed at a Python service's files reaches it on
//! RabbitMQ with the same exchange, timeouts and notification drivers, and reads tricky
//! files as oslo.config does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use msg::config::ConfigFiles;
use msg::{Config, Context, ErrorKind, Target};
use msg_testkit::{PythonEnv, PythonPeer};
use serde_json::{Value, json};

/// Where the Python peer lives.
const PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/config");

/// A name no other test (or run) uses.
fn unique(what: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("config-{what}-{}", &id[..12])
}

/// The RabbitMQ URL and the Python with oslo.messaging, or `None` after a SKIPPED line.
fn python_on_rabbit(suite: &str) -> Option<PythonEnv> {
    let url = std::env::var("MSG_RABBIT_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let compiled = msg::builtin_registry().lookup("rabbit").is_some();
    match url {
        Some(url) if compiled => PythonEnv::from_env(suite, &url, PEERS),
        _ => {
            assert!(
                std::env::var("MSG_REQUIRE_BROKERS").as_deref() != Ok("1") || !compiled,
                "MSG_REQUIRE_BROKERS=1 but MSG_RABBIT_URL is not set"
            );
            eprintln!("SKIPPED: {suite} (no MSG_RABBIT_URL, or built without the amqp feature)");
            None
        }
    }
}

/// The Python of `MSG_PYTHON`, or `None` after a SKIPPED line (a failure with
/// `MSG_REQUIRE_BROKERS=1`).
fn python(suite: &str) -> Option<String> {
    match std::env::var("MSG_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            assert!(
                std::env::var("MSG_REQUIRE_BROKERS").as_deref() != Ok("1"),
                "MSG_REQUIRE_BROKERS=1 but MSG_PYTHON is not set"
            );
            eprintln!("SKIPPED: {suite} (no MSG_PYTHON)");
            None
        }
    }
}

/// A directory of its own under the temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(unique("dir"));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A nova.conf as deployment tools write them: many sections msg does not read, `$`
/// references, the messaging sections.
fn nova_conf(url: &str, exchange: &str, notify_topic: &str) -> String {
    format!(
        "\
[DEFAULT]
# nova.conf, trimmed
debug = False
log_dir = /var/log/nova
state_path = /var/lib/nova
instances_path = $state_path/instances
my_ip = 127.0.0.1
host = compute-1
enabled_apis = osapi_compute,metadata
transport_url = {url}
control_exchange = {exchange}
rpc_response_timeout = 2
executor_thread_pool_size = 16

[api_database]
connection = mysql+pymysql://nova:secret@127.0.0.1/nova_api

[keystone_authtoken]
www_authenticate_uri = http://$DEFAULT.my_ip:5000
auth_type = password
password = secret

[oslo_concurrency]
lock_path = $state_path/tmp

[oslo_messaging_rabbit]
heartbeat_timeout_threshold = 30
rabbit_qos_prefetch_count = 8
rabbit_retry_interval = 1
kombu_reconnect_delay = 0.5
amqp_durable_queues = false

[oslo_messaging_notifications]
driver = messagingv2
topics = {notify_topic}
retry = 3

[placement]
region_name = RegionOne
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_service_given_a_python_services_files_reaches_it() {
    let Some(py) = python_on_rabbit("config: Python service's files") else {
        return;
    };
    tokio::time::timeout(Duration::from_secs(150), async {
        let dir = TempDir::new();
        let exchange = unique("exchange");
        let notify_topic = unique("notifications");
        let (topic, server) = (unique("compute"), "compute-1");
        let conf = dir.write("nova.conf", &nova_conf(&py.url, &exchange, &notify_topic));
        // a drop-in directory, as deployments add: its driver adds to the file's
        dir.write(
            "nova.conf.d/50-notify.conf",
            "[oslo_messaging_notifications]\ndriver = log\n",
        );
        let conf_dir = dir.path().join("nova.conf.d");
        let (conf_s, dir_s) = (conf.to_str().unwrap(), conf_dir.to_str().unwrap());
        let mut python = PythonPeer::spawn(
            &py,
            "py_configured_service.py",
            &[
                "--topic",
                &topic,
                "--server",
                server,
                "--config-file",
                conf_s,
                "--config-dir",
                dir_s,
            ],
        );
        let seen = python.event("ready", Duration::from_secs(60)).await;

        let files = ConfigFiles::empty()
            .file(&conf)
            .unwrap()
            .dir(&conf_dir)
            .unwrap();
        let config = Config::load(files).unwrap();
        // what oslo.config read, msg read
        assert_eq!(seen["control_exchange"], json!(exchange));
        assert_eq!(
            seen["rpc_response_timeout"],
            json!(config.rpc_response_timeout().as_secs())
        );
        assert_eq!(config.executor(), msg::Executor::Pool(16));
        assert_eq!(seen["executor_thread_pool_size"], json!(16));
        assert_eq!(seen["driver"], json!(config.notification_drivers()));
        assert_eq!(config.notification_drivers(), ["messagingv2", "log"]);
        assert_eq!(seen["topics"], json!(config.notification_topics()));
        assert_eq!(config.notification_retry(), msg::Retry::Attempts(3));
        assert_eq!(seen["retry"], json!(3));
        let url = config.transport_url();
        assert_eq!(url.query_value("heartbeat_timeout_threshold"), Some("30"));
        assert_eq!(url.query_value("rabbit_qos_prefetch_count"), Some("8"));
        assert_eq!(url.query_value("control_exchange"), Some(exchange.as_str()));
        assert!(!format!("{config:?}").contains(":guest@"), "{config:?}");

        // RPC: the same exchange (the Python server says which it serves), the file's timeout
        let transport = config.transport().await.unwrap();
        let client = config.rpc_client(&transport, Target::server(topic.as_str(), server));
        let got: Value = client
            .call(&Context::new(), "echo", json!({"value": "hello"}))
            .await
            .unwrap();
        assert_eq!(got, json!({"value": "hello", "exchange": exchange}));
        let slow = client
            .call::<Value>(&Context::new(), "sleep", json!({"seconds": 4}))
            .await
            .unwrap_err();
        assert_eq!(slow.kind(), ErrorKind::Timeout, "{slow}");

        // notifications: the file's drivers, topics and exchange reach the Python listener
        let notifier = config
            .notifier()
            .await
            .unwrap()
            .publisher_id("compute.compute-1");
        notifier
            .info(
                &Context::new(),
                "compute.instance.create.end",
                json!({"instance_id": "i-1"}),
            )
            .await
            .unwrap();
        let got = python.notifications(1, Duration::from_secs(30)).await;
        assert_eq!(got[0]["event_type"], "compute.instance.create.end");
        assert_eq!(got[0]["publisher_id"], "compute.compute-1");
        assert_eq!(got[0]["payload"], json!({"instance_id": "i-1"}));
        python.stop().await;
        transport.cleanup().await.unwrap();
        if let Ok(t) = config.notification_transport().await {
            let _ = t.cleanup().await;
        }
    })
    .await
    .unwrap();
}

#[test]
fn bad_values_name_the_file_the_section_and_the_key() {
    let dir = TempDir::new();
    // the RabbitMQ driver judges its own options: only when it is built in (feature `amqp`)
    let rabbit = cfg!(feature = "amqp").then_some((
        "[DEFAULT]\ntransport_url = rabbit://h/\n[oslo_messaging_rabbit]\n\nrabbit_qos_prefetch_count = many\n",
        ":5: [oslo_messaging_rabbit] rabbit_qos_prefetch_count: ",
    ));
    for (text, wanted) in rabbit.into_iter().chain([
        (
            "[DEFAULT]\nrpc_response_timeout = soon\n",
            ":2: [DEFAULT] rpc_response_timeout: wants an integer, not `soon`",
        ),
        (
            "[oslo_messaging_notifications]\ndriver = smoke-signals\n",
            ":2: [oslo_messaging_notifications] driver: unknown notification driver",
        ),
        (
            "[DEFAULT]\ntransport_url = rabbit://u:s3cret@h:notaport/\n",
            ":2: [DEFAULT] transport_url: ",
        ),
        (
            "[oslo_messaging_notifications]\nretry = $nope\n",
            ":2: [oslo_messaging_notifications] retry: `$nope` names no option",
        ),
    ]) {
        let path = dir.write("bad.conf", text);
        let files = ConfigFiles::empty().file(&path).unwrap();
        let err = Config::load(files).unwrap_err().to_string();
        let at = format!("{}{wanted}", path.display());
        assert!(err.contains(&at), "{err}\nwanted: {at}");
        assert!(!err.contains("s3cret"), "{err}");
    }
    // an environment variable is named as one
    let files = ConfigFiles::empty().environment([("OS_DEFAULT__EXECUTOR_THREAD_POOL_SIZE", "0")]);
    let err = Config::load(files).unwrap_err().to_string();
    assert!(
        err.contains("environment variable OS_DEFAULT__EXECUTOR_THREAD_POOL_SIZE: [DEFAULT] executor_thread_pool_size: wants at least 1"),
        "{err}"
    );
}

#[test]
fn oslo_defaults_when_the_files_say_nothing() {
    let config = Config::load(ConfigFiles::empty()).unwrap();
    assert_eq!(config.transport_url().scheme(), "rabbit");
    assert_eq!(config.rpc_response_timeout(), Duration::from_secs(60));
    assert_eq!(config.executor(), msg::Executor::Pool(64));
    assert!(config.notification_drivers().is_empty());
    assert_eq!(config.notification_topics(), ["notifications"]);
    assert_eq!(config.notification_retry(), msg::Retry::Forever);
}

#[tokio::test]
async fn the_urls_query_wins_over_the_files_and_no_driver_sends_nothing() {
    let files = ConfigFiles::empty()
        .text(
            "a.conf",
            "[DEFAULT]\ntransport_url = memory://config-query?control_exchange=from-url\n\
             control_exchange = from-file\nrpc_response_timeout = 7\n",
        )
        .unwrap();
    let config = Config::load(files).unwrap();
    let transport = config.transport().await.unwrap();
    assert_eq!(
        transport.url().query_value("control_exchange"),
        Some("from-url")
    );
    let notifier = config.notifier().await.unwrap();
    assert!(!notifier.is_enabled());
}

/// The oslo.config rules on a tricky file, against oslo.config itself.
#[test]
fn tricky_files_read_as_oslo_config_reads_them() {
    let Some(python) = python("config: oslo.config parity") else {
        return;
    };
    let dir = TempDir::new();
    let first = dir.write(
        "first.conf",
        "# comment\n[DEFAULT]\nhost = h1\nport = 5672\n\
         transport_url = rabbit://u:p$$w@$host:${port}/  # not a comment\n\
         long = one\n  two\n\t# three\n\n\
         quoted = \"spaced value \"\nsingle = 'x'\ncolon: a=b\ncross = $other.other_key\n\
         [Oslo_Messaging_Notifications]\ndriver = messagingv2\ntopics = a, b\n\
         [other]\nref = $host/$other_key\nother_key = mine\nhost = other-host\n",
    );
    let second = dir.write(
        "second.conf",
        "[DEFAULT]\nport = 5673\nport = 5674\n[oslo_messaging_notifications]\ndriver = log\ndriver = noop\n",
    );
    let env = [("OS_OTHER__OTHER_KEY", "from-env")];
    let script = r#"
import json, os, sys
from oslo_config import cfg
conf = cfg.ConfigOpts()
conf.register_opts([cfg.StrOpt(n) for n in ["host", "port", "transport_url", "long", "quoted", "single", "colon", "cross"]])
conf.register_opts([cfg.MultiStrOpt("driver"), cfg.ListOpt("topics")], group="oslo_messaging_notifications")
conf.register_opts([cfg.StrOpt(n) for n in ["ref", "other_key", "host"]], group="other")
conf(sys.argv[1:], project="parity")
out = {k: conf[k] for k in ["host", "port", "transport_url", "long", "quoted", "single", "colon", "cross"]}
out.update({"driver": conf.oslo_messaging_notifications.driver, "topics": conf.oslo_messaging_notifications.topics})
out.update({"other." + k: conf.other[k] for k in ["ref", "other_key", "host"]})
print(json.dumps(out))
"#;
    let output = std::process::Command::new(python)
        .args(["-c", script, "--config-file"])
        .arg(&first)
        .arg("--config-file")
        .arg(&second)
        .envs(env)
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let oslo: Value = serde_json::from_slice(&output.stdout).unwrap();

    let files = ConfigFiles::empty()
        .environment(env)
        .file(&first)
        .unwrap()
        .file(&second)
        .unwrap();
    let one = |g: &str, k: &str| json!(files.get(g, k).unwrap().unwrap().as_str());
    let mut ours = serde_json::Map::new();
    for k in [
        "host",
        "port",
        "transport_url",
        "long",
        "quoted",
        "single",
        "colon",
        "cross",
    ] {
        ours.insert(k.into(), one("DEFAULT", k));
    }
    let drivers: Vec<String> = files
        .get_multi("oslo_messaging_notifications", "driver")
        .unwrap()
        .iter()
        .map(|v| v.as_str().to_string())
        .collect();
    ours.insert("driver".into(), json!(drivers));
    let topics = files
        .get("oslo_messaging_notifications", "topics")
        .unwrap()
        .unwrap();
    ours.insert("topics".into(), json!(topics.to_list()));
    for k in ["ref", "other_key", "host"] {
        ours.insert(format!("other.{k}"), one("other", k));
    }
    assert_eq!(Value::Object(ours), oslo);
}

/// Every option oslo.messaging 18.3 has in `[oslo_messaging_rabbit]`, with its default, is
/// one the RabbitMQ driver takes.
#[cfg(feature = "amqp")]
#[test]
fn every_oslo_rabbit_option_is_known_to_the_driver() {
    let Some(python) = python("config: oslo's rabbit options") else {
        return;
    };
    let script = r#"
import json, oslo_messaging.opts
for group, opts in oslo_messaging.opts.list_opts():
    if group == "oslo_messaging_rabbit":
        print(json.dumps({o.name: (None if o.default is None else str(o.default)) for o in opts}))
"#;
    let output = std::process::Command::new(python)
        .args(["-c", script])
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let opts: serde_json::Map<String, Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert!(opts.len() > 30, "{opts:?}");
    for (name, default) in opts {
        let value = default.as_str().unwrap_or("");
        assert_eq!(
            msg::amqp::RabbitOptions::check_option(&name, value),
            msg::driver::OptionCheck::Known,
            "{name} = {value:?}"
        );
    }
}

/// The warnings logged while `f` runs (on this thread).
fn warnings_during(f: impl FnOnce()) -> Vec<String> {
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};

    #[derive(Clone, Default)]
    struct Warnings(Arc<Mutex<Vec<String>>>);
    struct Line(String);
    impl tracing::field::Visit for Line {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!("{}={value:?} ", field.name()));
        }
    }
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
        fn on_event(&self, event: &tracing::Event<'_>, _: LayerContext<'_, S>) {
            if *event.metadata().level() == tracing::Level::WARN {
                let mut line = Line(String::new());
                event.record(&mut line);
                self.0.lock().unwrap().push(line.0);
            }
        }
    }
    let warnings = Warnings::default();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(warnings.clone()), f);
    warnings.0.lock().unwrap().clone()
}

#[cfg(feature = "amqp")]
#[test]
fn driver_sections_reach_the_url_under_its_query_and_unknown_options_warn() {
    let files = ConfigFiles::empty()
        .text(
            "svc.conf",
            "[DEFAULT]\ntransport_url = rabbit://u:p@h1:5672/?kombu_reconnect_delay=5\n\
             [oslo_messaging_rabbit]\nkombu_reconnect_delay = 2\nrabbit_qos_prefetch_count = 4\n\
             rabbit_no_such_option = 1\n[oslo_messaging_notifications]\nno_such = 1\ntransport_url = rabbit://u:p@h2:5672/\n",
        )
        .unwrap()
        .environment([("OS_OSLO_MESSAGING_RABBIT__RABBIT_QOS_PREFETCH_COUNT", "9")]);
    let mut config = None;
    let warnings = warnings_during(|| config = Some(Config::load(files).unwrap()));
    let config = config.unwrap();
    let url = config.transport_url();
    // the URL's own query wins over the file; the environment over the file
    assert_eq!(url.query_value("kombu_reconnect_delay"), Some("5"));
    assert_eq!(url.query_value("rabbit_qos_prefetch_count"), Some("9"));
    assert_eq!(url.query_value("rabbit_no_such_option"), None);
    // the notifications' own URL gets the section too (and its unknown option is warned once)
    let notify = config.notification_transport_url();
    assert_eq!(notify.hosts()[0].hostname, "h2");
    assert_eq!(notify.query_value("rabbit_qos_prefetch_count"), Some("9"));
    assert!(
        warnings.iter().any(|w| w.contains("svc.conf:6")
            && w.contains("[oslo_messaging_rabbit] rabbit_no_such_option")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("[oslo_messaging_notifications] no_such")),
        "{warnings:?}"
    );
    // [DEFAULT] is not ours: nova's options there are not warned about
    assert_eq!(warnings.len(), 2, "{warnings:?}");
}

#[cfg(feature = "nats")]
#[test]
fn the_nats_section_is_read_for_nats_urls() {
    let files = ConfigFiles::empty()
        .text(
            "svc.conf",
            "[DEFAULT]\ntransport_url = nats://127.0.0.1:4222\n\
             [oslo_messaging_nats]\nack_wait = 60\nsubject_prefix = nova\n\
             [oslo_messaging_rabbit]\nrabbit_qos_prefetch_count = not-read-for-nats\n",
        )
        .unwrap();
    let config = Config::load(files).unwrap();
    assert_eq!(config.transport_url().query_value("ack_wait"), Some("60"));
    assert_eq!(
        config.transport_url().query_value("subject_prefix"),
        Some("nova")
    );
    let files = ConfigFiles::empty()
        .text(
            "svc.conf",
            "[DEFAULT]\ntransport_url = nats://127.0.0.1:4222\n[oslo_messaging_nats]\nack_wait = soon\n",
        )
        .unwrap();
    let err = Config::load(files).unwrap_err().to_string();
    assert!(
        err.contains("svc.conf:4: [oslo_messaging_nats] ack_wait: "),
        "{err}"
    );
}

/// The `configured_service` example, run as a newcomer runs it: pointed at a service's file.
#[test]
fn the_configured_service_example_runs_from_a_services_file() {
    let Some(url) = std::env::var("MSG_RABBIT_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("SKIPPED: configured_service example (no MSG_RABBIT_URL)");
        return;
    };
    if msg::builtin_registry().lookup("rabbit").is_none() {
        eprintln!("SKIPPED: configured_service example (built without the amqp feature)");
        return;
    }
    let dir = TempDir::new();
    let exchange = unique("exchange");
    let notify_topic = unique("notifications");
    let conf = dir.write(
        "svc.conf",
        &format!(
            "[DEFAULT]\ntransport_url = {url}\ncontrol_exchange = {exchange}\n\
             rpc_response_timeout = 10\nexecutor_thread_pool_size = 3\n\
             [oslo_messaging_notifications]\ndriver = messagingv2\ntopics = {notify_topic}\n"
        ),
    );
    let topic = unique("svc");
    let run = crate::Running::start(
        "configured_service",
        &["--config-file", conf.to_str().unwrap(), "--topic", &topic],
    );
    run.expect_line("serving topic");
    run.expect_line(r#"echo -> {"hello":"world"} (timeout 10s)"#);
    run.expect_line("notified service.started");
    run.exits_ok();

    // the notification waits in the files' exchange, on the files' topic
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let transport = msg::Transport::open(&url).await.unwrap();
        let (tx, mut got) = tokio::sync::mpsc::unbounded_channel();
        let target = Target::topic(notify_topic.as_str()).with_exchange(exchange.as_str());
        let listener = msg::notify::NotificationListener::builder(transport.clone(), [target])
            .endpoint(msg::notify::NotificationEndpoint::new().on_all(move |m| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(m);
                    msg::notify::Handled
                }
            }))
            .start()
            .await
            .unwrap();
        let m = tokio::time::timeout(Duration::from_secs(30), got.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.event_type, "service.started");
        listener.shutdown(Duration::from_secs(5)).await.unwrap();
        transport.cleanup().await.unwrap();
    });
}

/// `[oslo_messaging_tracing]` from a service's files, with the files' line in a bad value's
/// error.
#[test]
fn tracing_options_come_from_the_files() {
    let files = ConfigFiles::empty()
        .text(
            "nova.conf",
            "[DEFAULT]\ntransport_url = memory://\n\
             [oslo_messaging_tracing]\ntracing_enabled = yes\ntracing_service_name = nova-compute\n\
             otel_exporter_otlp_endpoint = http://collector:4318\n",
        )
        .unwrap();
    let config = msg::Config::load(files).unwrap();
    let o = config.tracing_options().unwrap();
    assert!(o.tracing_enabled);
    assert_eq!(o.tracing_service_name, "nova-compute");
    assert_eq!(o.otel_exporter_otlp_endpoint, "http://collector:4318");
    assert_eq!(o.otlp_protocol, msg::OtlpProtocol::HttpProtobuf);
    let bad = ConfigFiles::empty()
        .text(
            "nova.conf",
            "[oslo_messaging_tracing]\n\notlp_protocol = udp\n",
        )
        .unwrap();
    let err = msg::TracingOptions::from_files(&bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nova.conf:3"), "{err}");
    assert!(err.contains("otlp_protocol"), "{err}");
}
