//! The conformance suite every msg driver runs against itself: ours (`memory://`,
//! `rabbit://`, `nats://`) and any third-party crate's.
//!
//! The suite is written once, generic over a [`DriverFactory`] and a URL: cases at the
//! driver-contract level, then end-to-end cases (`e2e_rpc_*`, `e2e_notify_*`) that run the
//! real client and server stack (msg-client, msg-server, msg-dispatch) over the driver. Each case names the [`Capability`]s it needs; a case is
//! skipped only when the driver doesn't declare one of them, and the [`Report`] lists those
//! skips. A driver's own test states the capabilities it must have, so a required one that is
//! missing (or a case it would have run that was skipped) fails.
//!
//! ```no_run
//! # async fn example() {
//! use msg_core::Capability;
//! let report = msg_testkit::Conformance::new(my_driver::factory(), "mydriver://localhost")
//!     .require([Capability::LoadBalancing, Capability::Replies])
//!     .run()
//!     .await;
//! report.assert_ok();
//! # }
//! # mod my_driver { pub fn factory() -> std::sync::Arc<dyn msg_core::DriverFactory> { unimplemented!() } }
//! ```
//!
//! It is a test library: it panics (in [`Report::assert_ok`]) to fail the test that runs it.
#![warn(missing_docs)]

/// Fails the case (returns `Err`) with a message when the condition doesn't hold.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// A [`cases::Case`] from an async fn and the capabilities it needs.
macro_rules! case {
    ($name:ident, [$($cap:ident),*]) => {
        $crate::cases::Case {
            name: stringify!($name),
            needs: &[$(::msg_core::Capability::$cap),*],
            run: |env| Box::pin($name(env)),
        }
    };
}

mod batch_poison;
mod cases;
mod e2e;
mod env;
mod hostile;
mod log_capture;
mod notify_e2e;
mod python;
mod rpc_e2e;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use msg_core::{Capabilities, Capability, DriverFactory};

pub use batch_poison::{PoisonAnswer, PoisonOutcome, batch_with_a_poison};
pub use env::Env;
pub use hostile::{
    EXCHANGE as HOSTILE_EXCHANGE, HostileBody, HostileReport, RawPeer, compressed_requests,
    hostile_notifications, hostile_peer_suite, hostile_requests, zlib_bomb,
};
pub use log_capture::{CapturedLogs, capture_logs};
pub use python::{PythonEnv, PythonPeer};

/// A conformance run: a driver factory, the URL to connect to, and the capabilities the
/// driver must have.
#[derive(Debug)]
pub struct Conformance {
    factory: Arc<dyn DriverFactory>,
    url: String,
    required: Capabilities,
    only: Option<String>,
}

impl Conformance {
    /// A run of the whole suite against `url`.
    pub fn new(factory: Arc<dyn DriverFactory>, url: impl Into<String>) -> Self {
        Conformance {
            factory,
            url: url.into(),
            required: Capabilities::empty(),
            only: None,
        }
    }

    /// The capabilities the driver must declare (and whose cases must run).
    pub fn require(mut self, caps: impl IntoIterator<Item = Capability>) -> Self {
        self.required = caps.into_iter().collect();
        self
    }

    /// Runs only the cases whose name contains `filter` (handy while writing a driver).
    pub fn only(mut self, filter: impl Into<String>) -> Self {
        self.only = Some(filter.into());
        self
    }

    /// Runs every case in turn and reports.
    pub async fn run(self) -> Report {
        let env = match Env::connect(self.factory.clone(), &self.url).await {
            Ok(env) => env,
            Err(e) => {
                return Report {
                    driver: self.factory.name().to_string(),
                    capabilities: Capabilities::empty(),
                    required: self.required,
                    outcomes: vec![Outcome {
                        name: "connect",
                        result: CaseResult::Failed(e.to_string()),
                        took: Duration::ZERO,
                    }],
                };
            }
        };
        let caps = env.capabilities();
        let mut outcomes = Vec::new();
        for case in cases::all() {
            if let Some(only) = &self.only
                && !case.name.contains(only.as_str())
            {
                continue;
            }
            let missing: Vec<Capability> = case
                .needs
                .iter()
                .copied()
                .filter(|c| !caps.contains(*c))
                .collect();
            let start = Instant::now();
            let result = if missing.is_empty() {
                tracing::info!(case = case.name, "conformance case starts");
                match tokio::time::timeout(Duration::from_secs(60), (case.run)(env.clone())).await {
                    Ok(Ok(())) => CaseResult::Passed,
                    Ok(Err(e)) => CaseResult::Failed(e),
                    Err(_) => CaseResult::Failed("did not finish within 60 s".into()),
                }
            } else {
                CaseResult::Skipped(missing)
            };
            outcomes.push(Outcome {
                name: case.name,
                result,
                took: start.elapsed(),
            });
        }
        env.cleanup().await;
        Report {
            driver: self.factory.name().to_string(),
            capabilities: caps,
            required: self.required,
            outcomes,
        }
    }
}

/// What happened to one case.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseResult {
    /// It ran and passed.
    Passed,
    /// It ran and failed, with why.
    Failed(String),
    /// It did not run: the driver lacks these capabilities.
    Skipped(Vec<Capability>),
}

/// One case's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The case's name.
    pub name: &'static str,
    /// What happened.
    pub result: CaseResult,
    /// How long it took.
    pub took: Duration,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The driver's name.
    pub driver: String,
    /// What the driver declared.
    pub capabilities: Capabilities,
    /// What it must have.
    pub required: Capabilities,
    /// Every case, in order.
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// The names of the cases that failed, with why.
    pub fn failures(&self) -> Vec<(&'static str, &str)> {
        self.outcomes
            .iter()
            .filter_map(|o| match &o.result {
                CaseResult::Failed(why) => Some((o.name, why.as_str())),
                _ => None,
            })
            .collect()
    }

    /// The cases skipped, with the capabilities they lacked.
    pub fn skips(&self) -> Vec<(&'static str, &[Capability])> {
        self.outcomes
            .iter()
            .filter_map(|o| match &o.result {
                CaseResult::Skipped(missing) => Some((o.name, missing.as_slice())),
                _ => None,
            })
            .collect()
    }

    /// Required capabilities the driver doesn't declare.
    pub fn missing_required(&self) -> Vec<Capability> {
        self.required
            .iter()
            .filter(|c| !self.capabilities.contains(*c))
            .collect()
    }

    /// How many cases passed.
    pub fn passed(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.result == CaseResult::Passed)
            .count()
    }

    /// Panics (failing the calling test) when a case failed, a required capability is
    /// missing, or a case was skipped for lack of a required capability.
    pub fn assert_ok(&self) {
        let failures = self.failures();
        let missing = self.missing_required();
        let required_skips: Vec<_> = self
            .skips()
            .into_iter()
            .filter(|(_, caps)| caps.iter().any(|c| self.required.contains(*c)))
            .collect();
        assert!(
            failures.is_empty()
                && missing.is_empty()
                && required_skips.is_empty()
                && self.passed() > 0,
            "conformance of the {} driver failed:\n{self}",
            self.driver
        );
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "conformance: driver {} declares {:?}",
            self.driver, self.capabilities
        )?;
        for o in &self.outcomes {
            match &o.result {
                CaseResult::Passed => writeln!(f, "  ok       {} ({:?})", o.name, o.took)?,
                CaseResult::Failed(why) => writeln!(f, "  FAILED   {}: {why}", o.name)?,
                CaseResult::Skipped(caps) => {
                    writeln!(f, "  SKIPPED  {} (driver lacks {caps:?})", o.name)?
                }
            }
        }
        let missing = self.missing_required();
        if !missing.is_empty() {
            writeln!(f, "  MISSING required capabilities: {missing:?}")?;
        }
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed(),
            self.failures().len(),
            self.skips().len()
        )
    }
}
