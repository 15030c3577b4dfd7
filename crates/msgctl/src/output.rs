//! Writing to stdout and stderr: line by line, flushed at once (scripts read it live).

use std::io::{self, Write};

use serde::Serialize;

/// Writes one line to stdout and flushes it.
pub fn line(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Writes a value as one compact JSON line to stdout and flushes it.
pub fn json_line<T: Serialize + ?Sized>(value: &T) -> io::Result<()> {
    let text = serde_json::to_string(value).map_err(io::Error::other)?;
    line(&text)
}

/// Writes one line to stderr (it isn't buffered).
pub fn note(text: &str) {
    let mut err = io::stderr().lock();
    // nothing sensible to do when stderr is gone
    let _ = writeln!(err, "{text}");
}

/// A duration for people: `0.3 ms`, `12.4 ms`, `1.25 s`.
pub fn human_duration(d: std::time::Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(human_duration(Duration::from_micros(300)), "0.3 ms");
        assert_eq!(human_duration(Duration::from_micros(12_440)), "12.4 ms");
        assert_eq!(human_duration(Duration::from_millis(1250)), "1.25 s");
    }
}
