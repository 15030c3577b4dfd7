//! Latency histograms, percentiles, and what `--vs-raw` makes of several rounds: medians,
//! spread and the ratio.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The slowest latency recorded exactly (longer ones are recorded as this): 10 minutes.
const MAX_MICROS: u64 = 600_000_000;

/// A latency histogram in microseconds (3 significant figures), shared by the tasks of one
/// run.
#[derive(Clone)]
pub struct Latencies(Arc<Mutex<Histogram<u64>>>);

impl std::fmt::Debug for Latencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Latencies")
            .field("len", &self.lock().len())
            .finish()
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// An empty histogram.
    pub fn new() -> Self {
        let h = Histogram::new_with_bounds(1, MAX_MICROS, 3)
            .expect("1 µs .. 10 min at 3 significant figures is a valid histogram");
        Latencies(Arc::new(Mutex::new(h)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Histogram<u64>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one latency.
    pub fn record(&self, d: Duration) {
        self.record_n(d, 1);
    }

    /// Records `n` latencies of the same length.
    pub fn record_n(&self, d: Duration, n: u64) {
        if n == 0 {
            return;
        }
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        self.lock().saturating_record_n(micros, n);
    }

    /// Records the time since `started`.
    pub fn since(&self, started: Instant) {
        self.record(started.elapsed());
    }

    /// How many latencies were recorded.
    #[cfg(test)]
    pub fn len(&self) -> u64 {
        self.lock().len()
    }

    /// p50, p90, p99 and max, in milliseconds (zeros when nothing was recorded).
    pub fn percentiles(&self) -> Percentiles {
        let h = self.lock();
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Percentiles {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Records the gaps between successive completions (for draining a backlog, where a
/// message has no latency of its own): each completion records the time since the one
/// before, divided among the messages it completed.
#[derive(Debug, Clone)]
pub struct Gaps {
    last: Arc<Mutex<Instant>>,
    latencies: Latencies,
}

impl Gaps {
    /// Gaps counted from `start`, into `latencies`.
    pub fn new(start: Instant, latencies: Latencies) -> Self {
        Gaps {
            last: Arc::new(Mutex::new(start)),
            latencies,
        }
    }

    /// `n` messages completed now.
    pub fn completed(&self, n: u64) {
        if n == 0 {
            return;
        }
        let now = Instant::now();
        let gap = {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            let gap = now.saturating_duration_since(*last);
            *last = now;
            gap
        };
        let each = gap / u32::try_from(n).unwrap_or(u32::MAX);
        self.latencies.record_n(each, n);
    }
}

/// The median of some values (the mean of the middle two for an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

/// How far apart the rounds were: (max - min) / median, a fraction (0.05 = 5 %); 0 for
/// fewer than two values or a zero median.
pub fn spread(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = median(values);
    if m == 0.0 {
        return 0.0;
    }
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    (max - min) / m
}

/// ours / raw, of the median rates; 0 when raw is 0.
pub fn ratio(ours: f64, raw: f64) -> f64 {
    if raw > 0.0 { ours / raw } else { 0.0 }
}

/// A count per second; 0 for no time.
pub fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// A rate for people: `3,512/s`, `27.4 k/s`, `1.20 M/s`.
pub fn human_rate(rate: f64) -> String {
    if rate >= 1_000_000.0 {
        format!("{:.2} M/s", rate / 1_000_000.0)
    } else if rate >= 100_000.0 {
        format!("{:.0} k/s", rate / 1000.0)
    } else {
        format!("{}/s", thousands(rate.round() as u64))
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds for people: `0.27 ms`, `12.4 ms`, `1,250 ms`.
pub fn human_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{} ms", thousands(ms.round() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let l = Latencies::new();
        assert_eq!(l.percentiles(), Percentiles::default());
        // 1..=1000 ms, one each
        for ms in 1..=1000u64 {
            l.record(Duration::from_millis(ms));
        }
        assert_eq!(l.len(), 1000);
        let p = l.percentiles();
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.002;
        assert!(close(p.p50, 500.0), "{p:?}");
        assert!(close(p.p90, 900.0), "{p:?}");
        assert!(close(p.p99, 990.0), "{p:?}");
        assert!(close(p.max, 1000.0), "{p:?}");
    }

    #[test]
    fn sub_millisecond_latencies_keep_their_precision() {
        let l = Latencies::new();
        l.record_n(Duration::from_micros(270), 99);
        l.record(Duration::from_micros(3100));
        let p = l.percentiles();
        assert!((p.p50 - 0.27).abs() < 0.001, "{p:?}");
        assert!((p.p90 - 0.27).abs() < 0.001, "{p:?}");
        assert!((p.max - 3.1).abs() < 0.005, "{p:?}");
        // zero and absurd values don't panic: clamped to the histogram's range
        l.record(Duration::ZERO);
        l.record(Duration::from_secs(100_000));
        assert_eq!(l.len(), 102);
    }

    #[test]
    fn gaps_divide_a_batch() {
        let start = Instant::now() - Duration::from_millis(100);
        let l = Latencies::new();
        let g = Gaps::new(start, l.clone());
        g.completed(10);
        assert_eq!(l.len(), 10);
        let p = l.percentiles();
        assert!(p.p50 >= 10.0 && p.p50 < 15.0, "{p:?}");
        g.completed(0);
        assert_eq!(l.len(), 10);
    }

    #[test]
    fn medians_spread_and_ratio() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0]), 3.0);
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[f64::NAN, 2.0]), 2.0);
        assert_eq!(spread(&[]), 0.0);
        assert_eq!(spread(&[7.0]), 0.0);
        assert!((spread(&[90.0, 100.0, 110.0]) - 0.2).abs() < 1e-12);
        assert_eq!(spread(&[0.0, 0.0]), 0.0);
        assert!((ratio(50.0, 100.0) - 0.5).abs() < 1e-12);
        assert_eq!(ratio(50.0, 0.0), 0.0);
        assert_eq!(rate(100, 0.5), 200.0);
        assert_eq!(rate(100, 0.0), 0.0);
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(human_rate(3512.4), "3,512/s");
        assert_eq!(human_rate(212_000.0), "212 k/s");
        assert_eq!(human_rate(1_200_000.0), "1.20 M/s");
        assert_eq!(human_ms(0.271), "0.27 ms");
        assert_eq!(human_ms(12.44), "12.4 ms");
        assert_eq!(human_ms(1250.0), "1,250 ms");
    }
}
