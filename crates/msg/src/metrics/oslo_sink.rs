//! A recorder that sends oslo.messaging's metrics to oslo.metrics, as Python services do.

use std::fmt::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// oslo.messaging's default `[oslo_messaging_metrics] metrics_socket_file`.
pub const DEFAULT_SOCKET: &str = "/var/tmp/metrics_collector.sock";

/// The metrics oslo.metrics knows: `oslo_messaging_<name>`, sent as module
/// `oslo_messaging`, name `<name>`.
const MODULE: &str = "oslo_messaging";

/// oslo's `metrics_buffer_size`: datagrams waiting to be sent; past it new ones are dropped.
const BUFFER: usize = 1000;

/// Attempts at one datagram (1 s apart) before it is dropped: oslo.metrics may be
/// restarting.
const ATTEMPTS: u32 = 10;

/// A [`Recorder`] that sends each event of oslo.messaging's metrics (those named
/// `oslo_messaging_*`) to oslo.metrics's unix socket as the JSON datagram Python
/// oslo.messaging sends: one per increment (`inc`) or observation (`observe`), labels as
/// oslo's (a `"None"` value goes as `null`, `fanout` as a boolean) plus `process`. So the
/// oslo.metrics exporter of a deployment shows Rust services beside Python ones. msg's other
/// metrics (`msg_*`) are not sent: oslo.metrics would reject them.
///
/// Sending happens on a thread of its own, from a queue of 1,000 datagrams (oslo's
/// `metrics_buffer_size`); a full queue drops new events with a warning, and a datagram that
/// can't be sent is tried again each second, 10 times. To feed Prometheus as well, combine
/// it with another recorder (`metrics_util::layers::FanoutBuilder`).
///
/// ```no_run
/// let sink = msg::metrics::OsloMetricsSink::new(msg::metrics::DEFAULT_SOCKET).process("nova-compute");
/// metrics::set_global_recorder(sink).expect("no recorder installed yet");
/// ```
#[derive(Debug)]
pub struct OsloMetricsSink {
    process: String,
    queue: Arc<Queue>,
}

#[derive(Debug)]
struct Queue {
    tx: SyncSender<String>,
    warned_full: AtomicBool,
}

impl OsloMetricsSink {
    /// A sink sending to the unix datagram socket at `socket` (oslo.metrics's
    /// `metrics_socket_file`), with an empty `process` label (oslo's default
    /// `metrics_process_name`). Starts the sending thread.
    pub fn new(socket: impl AsRef<Path>) -> Self {
        let (tx, rx) = mpsc::sync_channel(BUFFER);
        let socket = socket.as_ref().to_path_buf();
        let spawned = std::thread::Builder::new()
            .name("oslo-metrics-sink".into())
            .spawn(move || send_loop(&socket, &rx));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the oslo.metrics sender thread: no metrics will be sent");
        }
        OsloMetricsSink {
            process: String::new(),
            queue: Arc::new(Queue {
                tx,
                warned_full: AtomicBool::new(false),
            }),
        }
    }

    /// The `process` label (oslo's `metrics_process_name`).
    pub fn process(mut self, name: impl Into<String>) -> Self {
        self.process = name.into();
        self
    }

    /// The event for `key` as a datagram around its value, or `None` when oslo.metrics
    /// doesn't know the metric.
    fn event(&self, key: &Key, action: &'static str) -> Option<Arc<Event>> {
        let name = key.name().strip_prefix(MODULE)?.strip_prefix('_')?;
        let mut labels = String::from("{");
        for label in key.labels() {
            push_label(&mut labels, label.key(), label.value());
        }
        push_label(&mut labels, "process", &self.process);
        labels.push('}');
        Some(Arc::new(Event {
            head: format!(
                r#"{{"module": "{MODULE}", "name": {}, "action": {{"value": "#,
                json_string(name)
            ),
            tail: format!(r#", "action": "{action}"}}, "labels": {labels}}}"#),
            queue: self.queue.clone(),
        }))
    }
}

/// Appends `"key": value` to a JSON object being written, with oslo's types: `"None"` is
/// Python's `None` and `fanout` a boolean.
fn push_label(out: &mut String, key: &str, value: &str) {
    if out.len() > 1 {
        out.push_str(", ");
    }
    out.push_str(&json_string(key));
    out.push_str(": ");
    match (key, value) {
        (_, super::NONE) => out.push_str("null"),
        ("fanout", "True") => out.push_str("true"),
        ("fanout", "False") => out.push_str("false"),
        _ => out.push_str(&json_string(value)),
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// One metric's datagram, but for its value.
#[derive(Debug)]
struct Event {
    head: String,
    tail: String,
    queue: Arc<Queue>,
}

impl Event {
    fn send(&self, value: impl std::fmt::Display) {
        let mut datagram = String::with_capacity(self.head.len() + self.tail.len() + 24);
        datagram.push_str(&self.head);
        // writing to a String can't fail
        let _ = write!(datagram, "{value}");
        datagram.push_str(&self.tail);
        match self.queue.tx.try_send(datagram) {
            Ok(()) => self.queue.warned_full.store(false, Ordering::Relaxed),
            Err(TrySendError::Full(_)) => {
                if !self.queue.warned_full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "the oslo.metrics queue is full ({BUFFER} datagrams): metrics are dropped"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

impl CounterFn for Event {
    fn increment(&self, value: u64) {
        // oslo sends `inc` with no value for one
        if value == 1 {
            self.send("null");
        } else if value > 1 {
            self.send(value);
        }
    }

    fn absolute(&self, _value: u64) {}
}

impl HistogramFn for Event {
    fn record(&self, value: f64) {
        if value.is_finite() {
            self.send(value);
        }
    }
}

impl Recorder for OsloMetricsSink {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.event(key, "inc")
            .map_or_else(Counter::noop, Counter::from_arc)
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.event(key, "observe")
            .map_or_else(Histogram::noop, Histogram::from_arc)
    }
}

/// Sends what comes from `rx` to `socket` until every sender is gone.
fn send_loop(socket: &PathBuf, rx: &Receiver<String>) {
    let sock = match UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot make a unix datagram socket: no oslo.metrics metrics will be sent");
            return;
        }
    };
    let mut failing = false;
    while let Ok(datagram) = rx.recv() {
        for attempt in 1..=ATTEMPTS {
            match sock.send_to(datagram.as_bytes(), socket) {
                Ok(_) => {
                    if failing {
                        tracing::info!(socket = %socket.display(), "sending metrics to oslo.metrics again");
                        failing = false;
                    }
                    break;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(socket = %socket.display(), error = %e, "cannot send metrics to oslo.metrics: trying again each second");
                        failing = true;
                    }
                    if attempt < ATTEMPTS {
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use metrics::Label;

    use super::*;

    #[test]
    fn a_datagram_is_the_one_python_sends() {
        let dir = std::env::temp_dir().join(format!("msg-oslo-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("collector.sock");
        let _ = std::fs::remove_file(&path);
        let collector = UnixDatagram::bind(&path).unwrap();
        collector
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let sink = OsloMetricsSink::new(&path).process("svc");
        let key = Key::from_parts(
            "oslo_messaging_rpc_client_invocation_start_total",
            vec![
                Label::new("call_type", "cast"),
                Label::new("server", "None"),
                Label::new("fanout", "True"),
                Label::new("method", "a\"b"),
            ],
        );
        let meta = Metadata::new("t", metrics::Level::INFO, None);
        sink.register_counter(&key, &meta).increment(1);
        sink.register_histogram(&Key::from_name("oslo_messaging_x_seconds"), &meta)
            .record(0.5);
        // not oslo's: nothing sent
        sink.register_counter(&Key::from_name("msg_reconnects_total"), &meta)
            .increment(1);
        let mut buf = [0u8; 4096];
        let n = collector.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            r#"{"module": "oslo_messaging", "name": "rpc_client_invocation_start_total", "action": {"value": null, "action": "inc"}, "labels": {"call_type": "cast", "server": null, "fanout": true, "method": "a\"b", "process": "svc"}}"#
        );
        let n = collector.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            r#"{"module": "oslo_messaging", "name": "x_seconds", "action": {"value": 0.5, "action": "observe"}, "labels": {"process": "svc"}}"#
        );
        collector
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        assert!(collector.recv(&mut buf).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
