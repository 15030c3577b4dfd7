//! What the process logs, kept for the cases that check log lines (a bad message is logged
//! once, never with its body).
//!
//! [`capture_logs`] installs the process's global `tracing` subscriber once: warnings and
//! errors of every target go into an in-memory buffer the cases read, filtered as msg's docs
//! advise users to (lapin's line for a message the broker returned holds the whole body: off,
//! as `msg_driver_amqp::SILENCE_LAPIN_RETURNS` says); with `MSG_TEST_LOG` set
//! (a filter such as `msg_driver_amqp=debug`) the same events also go to stderr. A test binary
//! that wants both calls it first instead of installing its own subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The most lines kept; older ones are dropped first.
const MAX_LINES: usize = 50_000;

/// The warnings and errors logged since [`capture_logs`] was first called.
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs {
    inner: Arc<Mutex<Kept>>,
}

/// The kept lines, and how many were pushed before the first of them.
#[derive(Debug, Default)]
struct Kept {
    dropped: usize,
    lines: Vec<String>,
}

impl CapturedLogs {
    /// Every kept line that contains `needle`.
    pub fn lines_containing(&self, needle: &str) -> Vec<String> {
        self.lines_since(0, needle)
    }

    /// A mark for [`CapturedLogs::lines_since`]: how many lines were logged so far.
    pub fn mark(&self) -> usize {
        let kept = self.lock();
        kept.dropped + kept.lines.len()
    }

    /// The kept lines logged since `mark` that contain `needle` (lines dropped to bound the
    /// memory are gone, but the count of the others stays right).
    pub fn lines_since(&self, mark: usize, needle: &str) -> Vec<String> {
        let kept = self.lock();
        let skip = mark.saturating_sub(kept.dropped);
        kept.lines
            .iter()
            .skip(skip)
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, line: String) {
        let mut kept = self.lock();
        if kept.lines.len() >= MAX_LINES {
            kept.lines.drain(..MAX_LINES / 2);
            kept.dropped += MAX_LINES / 2;
        }
        kept.lines.push(line);
    }
}

/// Installs the capturing subscriber (once) and returns the capture; `Err` when another global
/// subscriber was installed first, so nothing could be captured.
pub fn capture_logs() -> Result<CapturedLogs, String> {
    static CAPTURE: OnceLock<Result<CapturedLogs, String>> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let logs = CapturedLogs::default();
            let kept = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(LineWriter(logs.clone()))
                .with_filter(EnvFilter::new("warn,lapin::returned_messages=off"));
            let shown = std::env::var("MSG_TEST_LOG").ok().map(|filter| {
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(EnvFilter::new(filter))
            });
            tracing_subscriber::registry()
                .with(kept)
                .with(shown)
                .try_init()
                .map_err(|e| format!("a global tracing subscriber was set first: {e}"))?;
            Ok(logs)
        })
        .clone()
}

/// Hands each formatted event to the capture as one line.
#[derive(Clone)]
struct LineWriter(CapturedLogs);

/// One event's text, pushed when the formatter is done with it.
struct Line(CapturedLogs, Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.1.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.1);
        self.0.push(text.trim_end().to_string());
    }
}

impl<'a> MakeWriter<'a> for LineWriter {
    type Writer = Line;
    fn make_writer(&'a self) -> Line {
        Line(self.0.clone(), Vec::with_capacity(256))
    }
}
