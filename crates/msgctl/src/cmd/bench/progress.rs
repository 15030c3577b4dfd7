//! Progress: a counter the workload bumps, a bar on a terminal, and the watchdog that fails a
//! run that stops making progress.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::rss::{RssLog, RssSampler};
use crate::errors::CliError;
use crate::output::human_duration;

/// What the workload counts: messages done (sent, confirmed, handled).
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// One more done; returns the new count.
    pub fn add(&self, n: u64) -> u64 {
        self.0.fetch_add(n, Ordering::Relaxed) + n
    }

    /// How many are done.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// How a run shows, bounds and samples its phases.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Draw a progress bar (on stderr, when it is a terminal).
    pub bar: bool,
    /// Fail when the counter hasn't moved for this long.
    pub stall: Duration,
    /// The resident set of each phase run, by label.
    pub rss: RssLog,
}

/// How often the bar is redrawn and the watchdog looks.
const TICK: Duration = Duration::from_millis(100);

impl Watch {
    /// Runs `work` while watching `counter`: a bar labelled `label` counting to `total`, and
    /// an error when the counter stays still for `stall` (the work is then dropped). The
    /// process's resident set is sampled meanwhile ([`RssSampler`]) and kept in `rss` under
    /// `label` when the work ends.
    pub async fn run<T>(
        &self,
        label: &str,
        total: u64,
        counter: &Counter,
        work: impl Future<Output = Result<T, CliError>>,
    ) -> Result<T, CliError> {
        let bar = if self.bar {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{msg:>24} [{bar:30}] {pos:>9}/{len:9} {elapsed:>4} eta {eta:>4}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(label.to_string());
            bar
        } else {
            ProgressBar::hidden()
        };
        let mut work = std::pin::pin!(work);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = counter.get();
        let mut moved = Instant::now();
        let rss = RssSampler::spawn(counter, total);
        loop {
            tokio::select! {
                biased;
                result = &mut work => {
                    bar.finish_and_clear();
                    if let Some(figures) = rss.finish() {
                        self.rss.keep(label, figures);
                    }
                    return result;
                }
                _ = tick.tick() => {
                    let now = counter.get();
                    bar.set_position(now);
                    if now != last {
                        last = now;
                        moved = Instant::now();
                    } else if moved.elapsed() >= self.stall {
                        bar.abandon();
                        return Err(stalled(label, now, total, self.stall));
                    }
                }
            }
        }
    }

    /// Bounds a step that has no counter (connecting, declaring, cleaning up) by the stall
    /// limit.
    pub async fn bounded<T>(
        &self,
        what: &str,
        work: impl Future<Output = Result<T, CliError>>,
    ) -> Result<T, CliError> {
        match tokio::time::timeout(self.stall, work).await {
            Ok(r) => r,
            Err(_) => Err(CliError::failed(format!(
                "bench stalled: {what} took more than {}",
                human_duration(self.stall)
            ))),
        }
    }
}

fn stalled(label: &str, done: u64, total: u64, after: Duration) -> CliError {
    CliError::failed(format!(
        "bench stalled: {label}: no progress for {} ({done} of {total} done)",
        human_duration(after)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(stall_ms: u64) -> Watch {
        Watch {
            bar: false,
            stall: Duration::from_millis(stall_ms),
            rss: RssLog::default(),
        }
    }

    #[tokio::test]
    async fn a_run_that_finishes_returns_its_result_and_keeps_its_resident_set() {
        let c = Counter::default();
        let w = watch(1000);
        let r = w
            .run("work", 2, &c, async {
                c.add(2);
                Ok(7)
            })
            .await;
        assert_eq!(r, Ok(7));
        #[cfg(target_os = "linux")]
        {
            let f = w.rss.take("work").unwrap();
            assert!(f.samples >= 2 && f.end_kib > 0, "{f:?}");
        }
        assert_eq!(w.rss.take("other"), None);
    }

    #[tokio::test]
    async fn a_run_without_progress_fails_with_one_clear_line() {
        let c = Counter::default();
        c.add(3);
        let e = watch(300)
            .run(
                "calls",
                10,
                &c,
                std::future::pending::<Result<(), CliError>>(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, 1);
        assert!(e.line.contains("bench stalled: calls"), "{}", e.line);
        assert!(e.line.contains("3 of 10 done"), "{}", e.line);
    }

    #[tokio::test]
    async fn progress_keeps_a_slow_run_alive() {
        let c = Counter::default();
        let r = watch(300)
            .run("slow", 8, &c, async {
                for _ in 0..8 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    c.add(1);
                }
                Ok(())
            })
            .await;
        assert_eq!(r, Ok(()));
    }

    #[tokio::test]
    async fn bounded_steps_time_out() {
        let e = watch(100)
            .bounded("connecting", std::future::pending::<Result<(), CliError>>())
            .await
            .unwrap_err();
        assert!(e.line.contains("connecting took more than"), "{}", e.line);
    }
}
