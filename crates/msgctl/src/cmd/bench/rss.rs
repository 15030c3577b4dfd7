//! The process's resident set over a timed run: sampled when the run starts, every
//! `EVERY` on a task of its own (a run whose work never yields is sampled all the same) and
//! when it ends, and summed up as start, warm (once a tenth of the run is done: buffers,
//! pools and caches filled), peak and end, and the growth from warm to the highest sample
//! after it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;

use super::progress::Counter;

/// How often the resident set is sampled.
const EVERY: Duration = Duration::from_millis(100);

/// The share of a run after which its resident set counts as warm: one tenth.
const WARM_DIVISOR: u64 = 10;

/// The resident set of this process now, in KiB (`VmRSS` of `/proc/self/status`), or `None`
/// where there is no such file (not Linux) or it can't be read.
pub fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    vm_rss_kib(&status)
}

/// `VmRSS` of a `/proc/<pid>/status` text, in KiB.
fn vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line.split_whitespace().skip(1);
    let kib = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kib)
}

/// The resident set of one timed run, as reported (KiB).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct RssFigures {
    /// When the run started.
    pub start_kib: u64,
    /// At the first sample once a tenth of the run was done.
    pub warm_kib: u64,
    /// The highest sample of the whole run.
    pub peak_kib: u64,
    /// When the run ended.
    pub end_kib: u64,
    /// From warm to the highest sample after it, in % of warm.
    pub growth_pct: f64,
    /// How many samples were taken.
    pub samples: u64,
}

/// The samples of one run so far.
#[derive(Debug, Clone, Default)]
pub struct RssTrack {
    start: Option<u64>,
    warm: Option<u64>,
    peak: u64,
    peak_after_warm: u64,
    last: Option<u64>,
    samples: u64,
}

impl RssTrack {
    /// A track whose first sample is now.
    pub fn start() -> Self {
        let mut t = RssTrack::default();
        t.take(resident_kib(), 0, 1);
        t
    }

    /// Samples now, `done` of `total` being done.
    pub fn sample(&mut self, done: u64, total: u64) {
        self.take(resident_kib(), done, total);
    }

    fn take(&mut self, kib: Option<u64>, done: u64, total: u64) {
        let Some(kib) = kib else {
            return;
        };
        self.samples = self.samples.saturating_add(1);
        self.start.get_or_insert(kib);
        self.peak = self.peak.max(kib);
        self.last = Some(kib);
        if self.warm.is_none() && done.saturating_mul(WARM_DIVISOR) >= total && done > 0 {
            self.warm = Some(kib);
        }
        if self.warm.is_some() {
            self.peak_after_warm = self.peak_after_warm.max(kib);
        }
    }

    /// The figures, after a last sample (`done` of `total`); `None` without samples.
    pub fn finish(mut self, done: u64, total: u64) -> Option<RssFigures> {
        self.sample(done, total);
        self.figures()
    }

    /// The figures of the samples so far. A run too short to reach its tenth between two
    /// samples counts as warm at its last one.
    fn figures(&self) -> Option<RssFigures> {
        let (start, end) = (self.start?, self.last?);
        let warm = self.warm.unwrap_or(end);
        let growth = self.peak_after_warm.max(warm).saturating_sub(warm);
        let growth_pct = if warm == 0 {
            0.0
        } else {
            growth as f64 * 100.0 / warm as f64
        };
        Some(RssFigures {
            start_kib: start,
            warm_kib: warm,
            peak_kib: self.peak,
            end_kib: end,
            growth_pct,
            samples: self.samples,
        })
    }
}

/// A task sampling the resident set while a run counts up to its total; stopped when
/// finished or dropped.
#[derive(Debug)]
pub struct RssSampler {
    track: Arc<Mutex<RssTrack>>,
    task: JoinHandle<()>,
    counter: Counter,
    total: u64,
}

impl RssSampler {
    /// Starts sampling now (`counter` counts the run's progress to `total`).
    pub fn spawn(counter: &Counter, total: u64) -> Self {
        let track = Arc::new(Mutex::new(RssTrack::start()));
        let task = {
            let (track, counter) = (track.clone(), counter.clone());
            tokio::spawn(async move {
                let mut every = tokio::time::interval(EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                every.tick().await;
                loop {
                    every.tick().await;
                    let done = counter.get();
                    lock(&track).sample(done, total);
                }
            })
        };
        RssSampler {
            track,
            task,
            counter: counter.clone(),
            total,
        }
    }

    /// Stops sampling, samples a last time and sums up.
    pub fn finish(self) -> Option<RssFigures> {
        self.task.abort();
        let track = std::mem::take(&mut *lock(&self.track));
        track.finish(self.counter.get(), self.total)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(track: &Mutex<RssTrack>) -> std::sync::MutexGuard<'_, RssTrack> {
    track.lock().unwrap_or_else(|p| p.into_inner())
}

/// The figures of the runs watched so far, by label, for the bench to take once a run ended.
#[derive(Debug, Clone, Default)]
pub struct RssLog(Arc<Mutex<Vec<(String, RssFigures)>>>);

impl RssLog {
    /// Keeps the figures of the run labelled `label`.
    pub fn keep(&self, label: &str, figures: RssFigures) {
        self.lock().push((label.to_string(), figures));
    }

    /// Takes the figures of the run labelled `label`, if it was watched.
    pub fn take(&self, label: &str) -> Option<RssFigures> {
        let mut log = self.lock();
        let i = log.iter().rposition(|(l, _)| l == label)?;
        Some(log.swap_remove(i).1)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, RssFigures)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tmsgctl\nVmPeak:\t  99 kB\nVmRSS:\t   43080 kB\nThreads:\t3\n";
        assert_eq!(vm_rss_kib(status), Some(43_080));
        assert_eq!(vm_rss_kib("VmRSS:\t12 MB\n"), None);
        assert_eq!(vm_rss_kib("VmRSS:\tlots kB\n"), None);
        assert_eq!(vm_rss_kib("Name:\tx\n"), None);
        #[cfg(target_os = "linux")]
        assert!(resident_kib().is_some_and(|k| k > 0));
    }

    #[test]
    fn growth_counts_from_warm() {
        let mut t = RssTrack::default();
        t.take(Some(1000), 0, 100);
        // filling buffers before a tenth is done is not growth
        t.take(Some(3000), 5, 100);
        t.take(Some(4000), 10, 100);
        t.take(Some(4200), 50, 100);
        t.take(Some(4100), 90, 100);
        t.take(Some(4100), 100, 100);
        let f = t.figures().unwrap();
        assert_eq!(
            (f.start_kib, f.warm_kib, f.peak_kib, f.end_kib, f.samples),
            (1000, 4000, 4200, 4100, 6)
        );
        assert!((f.growth_pct - 5.0).abs() < 1e-9, "{}", f.growth_pct);
    }

    #[test]
    fn a_short_run_is_warm_at_its_end_and_no_samples_mean_no_figures() {
        let mut t = RssTrack::default();
        t.take(Some(2000), 0, 10);
        t.take(Some(2500), 10, 10);
        let f = t.figures().unwrap();
        assert_eq!((f.warm_kib, f.end_kib, f.growth_pct), (2500, 2500, 0.0));
        assert_eq!(RssTrack::default().figures(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_that_never_yields_is_sampled_all_the_same() {
        let counter = Counter::default();
        let sampler = RssSampler::spawn(&counter, 10);
        // busy, never yielding, for three sampling periods
        let busy = std::time::Instant::now();
        while busy.elapsed() < EVERY * 3 {
            std::hint::spin_loop();
        }
        counter.add(10);
        let f = sampler.finish();
        #[cfg(target_os = "linux")]
        assert!(f.is_some_and(|f| f.samples >= 3), "{f:?}");
        #[cfg(not(target_os = "linux"))]
        assert_eq!(f, None);
    }

    #[test]
    fn the_log_gives_each_run_its_own() {
        let log = RssLog::default();
        let mut t = RssTrack::default();
        t.take(Some(10), 1, 1);
        let f = t.figures().unwrap();
        log.keep("publish msg preload", f);
        log.keep("publish msg", RssFigures { end_kib: 11, ..f });
        assert_eq!(log.take("publish msg").map(|f| f.end_kib), Some(11));
        assert_eq!(log.take("publish msg"), None);
        assert_eq!(log.take("publish msg preload"), Some(f));
    }
}
