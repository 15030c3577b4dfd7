//! The test binary's log, captured: one global subscriber (lapin logs from its own I/O
//! thread, which only a global subscriber sees), installed by the first test that asks.
//! Tests run in parallel, so a test looks only for lines that name its own queues or ids.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The captured log (everything at warn and above, msg's own lines from debug on), filtered
/// as the driver's docs advise (lapin's line for a returned message, body included, off).
pub fn captured() -> Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let buf = logs.0.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::new("warn,msg_driver_amqp=debug")
                    .add_directive(msg_driver_amqp::SILENCE_LAPIN_RETURNS.parse().unwrap()),
            )
            .with_ansi(false)
            .with_writer(move || Sink(buf.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this test binary");
        logs
    })
    .clone()
}

impl Logs {
    /// The lines that contain every one of `parts`.
    pub fn lines_with(&self, parts: &[&str]) -> Vec<String> {
        let all = self.0.lock().unwrap();
        String::from_utf8_lossy(&all)
            .lines()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .map(str::to_string)
            .collect()
    }

    /// Waits (bounded) for a line that contains every one of `parts`.
    pub async fn wait_for(&self, parts: &[&str], within: Duration) -> Option<String> {
        let start = Instant::now();
        loop {
            if let Some(l) = self.lines_with(parts).into_iter().next() {
                return Some(l);
            }
            if start.elapsed() > within {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
