//! One fault under load, the same way on both clusters: the load warms up, the fault
//! strikes, msg must serve again within a bound, the cluster is restored to 3 healthy
//! nodes, msg must serve again, and the counts must show nothing lost.

use std::future::Future;
use std::time::{Duration, Instant};

use msg_cluster_tests::{Load, LoadReport};

/// A name no other test (or run) uses.
pub fn unique(base: &str) -> String {
    format!(
        "{base}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// What a fault run measured.
#[derive(Debug)]
pub struct Figures {
    label: String,
    injected: Result<(), String>,
    /// From the fault until a call started after it was answered and a notification sent
    /// after it was received.
    serving_again: Result<Duration, String>,
    /// How long restoring 3 healthy nodes took.
    restored: Result<Duration, String>,
    /// From the end of the restore until msg served again.
    serving_after_restore: Result<Duration, String>,
    /// The counts.
    pub report: LoadReport,
}

/// Runs `inject` under `load`, then `restore`, and counts. Waits are bounded: `bound`
/// (plus slack, so that a slow recovery is still measured) for serving again.
pub async fn run<I, R>(label: &str, load: Load, bound: Duration, inject: I, restore: R) -> Figures
where
    I: Future<Output = anyhow::Result<()>>,
    R: Future<Output = anyhow::Result<Duration>>,
{
    let slack = bound.saturating_add(Duration::from_secs(15));
    let warm = load
        .serving_since(Instant::now(), Duration::from_secs(60))
        .await;
    eprintln!("{label}: load warm: {warm:?}");
    let fault_at = Instant::now();
    let injected = inject.await.map_err(|e| format!("{e:#}"));
    let serving_again = match &injected {
        Ok(()) => load
            .serving_since(fault_at, slack)
            .await
            .map_err(|e| format!("{e:#}")),
        Err(e) => Err(format!("no fault: {e}")),
    };
    eprintln!("{label}: serving again after {serving_again:?}");
    let restore_started = Instant::now();
    let restored = restore
        .await
        .map(|_| restore_started.elapsed())
        .map_err(|e| format!("{e:#}"));
    eprintln!("{label}: 3 healthy nodes: {restored:?}");
    let restored_at = Instant::now();
    let serving_after_restore = load
        .serving_since(restored_at, slack)
        .await
        .map_err(|e| format!("{e:#}"));
    let report = load.finish(Duration::from_secs(30)).await;
    let figures = Figures {
        label: label.to_owned(),
        injected,
        serving_again,
        restored,
        serving_after_restore,
        report,
    };
    eprintln!("{figures}");
    figures
}

impl Figures {
    /// Asserts the promises: the fault struck and the cluster came back; no confirmed
    /// notification lost; every call answered or failed clearly within its timeout (none
    /// timed out, none answered wrongly); serving again within `bound` after the fault and
    /// after the restore.
    pub fn assert_held(&self, bound: Duration) {
        let label = &self.label;
        assert!(self.injected.is_ok(), "{label}: {:?}", self.injected);
        assert!(self.restored.is_ok(), "{label}: {:?}", self.restored);
        let r = &self.report;
        assert_eq!(
            r.notifications_lost, 0,
            "{label}: confirmed notifications were lost\n{self}"
        );
        assert!(
            r.notifications_confirmed > 0 && r.calls_ok > 0,
            "{label}: no load went through\n{self}"
        );
        assert_eq!(
            r.calls_lost(),
            0,
            "{label}: calls were neither answered nor failed clearly\n{self}"
        );
        assert_eq!(r.calls_wrong, 0, "{label}: wrong answers\n{self}");
        for (what, took) in [
            ("after the fault", &self.serving_again),
            ("after the restore", &self.serving_after_restore),
        ] {
            match took {
                Ok(took) => assert!(
                    *took <= bound,
                    "{label}: serving again {what} took {took:?}, over {bound:?}\n{self}"
                ),
                Err(e) => panic!("{label}: not serving again {what}: {e}\n{self}"),
            }
        }
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = |r: &Result<Duration, String>| match r {
            Ok(d) => format!("{:.1} s", d.as_secs_f64()),
            Err(e) => format!("never ({e})"),
        };
        writeln!(
            f,
            "FIGURES {}: serving again {} after the fault; 3 healthy nodes {} after the restore began; serving {} after that",
            self.label,
            secs(&self.serving_again),
            secs(&self.restored),
            secs(&self.serving_after_restore)
        )?;
        write!(f, "{}", self.report)
    }
}
