//! One conformance case as one test: what [`conformance_suite!`](crate::conformance_suite)
//! generates runs [`run_case`] with the driver under test described by a [`Suite`].

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use msg_core::{Capabilities, Capability, DriverFactory};

use crate::cases;
use crate::env::Env;

/// How long one case may run.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// What runs after a case, passed or failed.
type Teardown = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// The driver under test, as one generated test sees it: its factory, the URL it connects
/// to, the capabilities it must declare, and what to clean up after the case.
///
/// A case is skipped (with a `SKIPPED` line naming what the driver lacks) only when the
/// driver doesn't declare a capability the case needs; a required capability the driver
/// doesn't declare fails every case.
///
/// ```
/// use msg_core::Capability;
/// # fn factory() -> std::sync::Arc<dyn msg_core::DriverFactory> { unimplemented!() }
/// # fn example() {
/// let suite = msg_testkit::Suite::new(factory(), "mydriver://localhost")
///     .require([Capability::Replies, Capability::LoadBalancing])
///     .teardown(|| async { /* delete what the case left on the broker */ });
/// assert_eq!(suite.url(), "mydriver://localhost");
/// # }
/// ```
pub struct Suite {
    factory: Arc<dyn DriverFactory>,
    url: String,
    required: Capabilities,
    teardown: Option<Teardown>,
}

impl std::fmt::Debug for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("driver", &self.factory.name())
            .field("url", &self.url)
            .field("required", &self.required)
            .field("teardown", &self.teardown.is_some())
            .finish()
    }
}

impl Suite {
    /// The driver of `factory`, connected to `url` (a new connection per client, server
    /// and listener of a case).
    pub fn new(factory: Arc<dyn DriverFactory>, url: impl Into<String>) -> Self {
        Suite {
            factory,
            url: url.into(),
            required: Capabilities::empty(),
            teardown: None,
        }
    }

    /// The capabilities the driver must declare: the cases needing them must run.
    pub fn require(mut self, caps: impl IntoIterator<Item = Capability>) -> Self {
        self.required = caps.into_iter().collect();
        self
    }

    /// Runs `teardown` after the case, passed or failed (after the case's connections are
    /// cleaned up): e.g. deleting the streams of the case's own subject prefix.
    pub fn teardown<F, Fut>(mut self, teardown: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.teardown = Some(Box::new(move || Box::pin(teardown())));
        self
    }

    /// The URL under test.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// What one case came to.
#[derive(Debug, PartialEq)]
enum Outcome {
    Passed,
    Skipped(Vec<Capability>),
    Failed(String),
}

/// Runs the case `name` against the driver `suite` describes, on a runtime of its own
/// (two worker threads); panics when it fails. `suite` returns `None` when the broker isn't
/// configured (after its own `SKIPPED` line, see [`broker_url`](crate::broker_url)): the
/// test then passes without running.
///
/// What [`conformance_suite!`](crate::conformance_suite) calls; not meant to be called by
/// hand.
#[doc(hidden)]
pub fn run_case<F, Fut>(name: &'static str, suite: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Option<Suite>>,
{
    let Some(case) = cases::all().into_iter().find(|c| c.name == name) else {
        panic!("`{name}` is not a conformance case of this msg-testkit");
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("building the runtime of case `{name}`: {e}"),
    };
    let start = Instant::now();
    let (driver, outcome) = runtime.block_on(async move {
        let Some(mut suite) = suite().await else {
            return (None, None);
        };
        let driver = suite.factory.name().to_string();
        let outcome = run(&case, &suite).await;
        if let Some(teardown) = suite.teardown.take() {
            teardown().await;
        }
        (Some(driver), Some(outcome))
    });
    let (Some(driver), Some(outcome)) = (driver, outcome) else {
        // no broker: the suite said so in its SKIPPED line
        return;
    };
    match outcome {
        Outcome::Passed => {
            tracing::info!(driver, case = name, took = ?start.elapsed(), "conformance case passed");
        }
        Outcome::Skipped(missing) => loud(&format!(
            "SKIPPED: conformance case {name} on the {driver} driver: it lacks {missing:?}"
        )),
        Outcome::Failed(why) => panic!("conformance case {name} on the {driver} driver: {why}"),
    }
}

/// What a case comes to before it runs, from what it needs, what the driver declares and
/// what it must declare: `None` when it must run. A required capability the driver doesn't
/// declare fails the case; a capability the case needs that the driver doesn't declare
/// (and isn't required) skips it.
fn verdict(
    needs: &[Capability],
    declared: Capabilities,
    required: Capabilities,
) -> Option<Outcome> {
    let missing_required: Vec<Capability> =
        required.iter().filter(|c| !declared.contains(*c)).collect();
    if !missing_required.is_empty() {
        return Some(Outcome::Failed(format!(
            "the driver declares {declared:?}, without the required {missing_required:?}"
        )));
    }
    let missing: Vec<Capability> = needs
        .iter()
        .copied()
        .filter(|c| !declared.contains(*c))
        .collect();
    (!missing.is_empty()).then_some(Outcome::Skipped(missing))
}

/// Connects, checks the declared capabilities, and runs the case (or skips it).
async fn run(case: &cases::Case, suite: &Suite) -> Outcome {
    let env = match Env::connect(suite.factory.clone(), &suite.url).await {
        Ok(env) => env,
        Err(e) => return Outcome::Failed(format!("connecting to {}: {e}", suite.url)),
    };
    let outcome = match verdict(case.needs, env.capabilities(), suite.required) {
        Some(outcome) => outcome,
        None => {
            tracing::info!(case = case.name, "conformance case starts");
            // a task of its own: a panic in the case fails it, and the cleanup still runs
            let task = tokio::spawn((case.run)(env.clone()));
            match tokio::time::timeout(CASE_TIMEOUT, task).await {
                Ok(Ok(Ok(()))) => Outcome::Passed,
                Ok(Ok(Err(why))) => Outcome::Failed(why),
                Ok(Err(e)) => Outcome::Failed(format!("the case panicked: {e}")),
                Err(_) => Outcome::Failed(format!("did not finish within {CASE_TIMEOUT:?}")),
            }
        }
    };
    env.cleanup().await;
    outcome
}

/// The broker URL in the environment variable `var`, or `None` after a loud `SKIPPED` line
/// naming `what` when it is unset or empty (once per `what` and test process: the cases of
/// one suite share a line). With `MSG_REQUIRE_BROKERS=1` a missing broker panics instead
/// (CI must run what needs it).
///
/// ```no_run
/// async fn suite() -> Option<msg_testkit::Suite> {
///     let url = msg_testkit::broker_url("MYDRIVER_URL", "mydriver conformance")?;
///     # let factory: std::sync::Arc<dyn msg_core::DriverFactory> = unimplemented!();
///     Some(msg_testkit::Suite::new(factory, url))
/// }
/// ```
pub fn broker_url(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("MSG_REQUIRE_BROKERS").as_deref() != Ok("1"),
                "MSG_REQUIRE_BROKERS=1 but {var} is not set: run `cargo xtask test`, which \
                 starts the brokers and sets it"
            );
            static SAID: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
            let first = SAID
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(what.to_string());
            if first {
                loud(&format!(
                    "SKIPPED: {what}: no broker ({var} is unset; `cargo xtask test` sets it)"
                ));
            }
            None
        }
    }
}

/// Writes a line to the process's stderr, past the test harness's capture (which swallows
/// the output of passing tests): a skip must show in a plain `cargo test` run.
fn loud(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use Capability::{NoResponders, Notifications, Replies};

    #[test]
    fn a_case_runs_when_the_driver_declares_what_it_needs() {
        let declared = Capabilities::empty().with(Replies);
        assert_eq!(verdict(&[Replies], declared, declared), None);
        assert_eq!(verdict(&[], declared, Capabilities::empty()), None);
    }

    #[test]
    fn a_case_is_skipped_for_what_the_driver_lacks_and_names_it() {
        let declared = Capabilities::empty().with(Replies);
        assert_eq!(
            verdict(&[Replies, NoResponders], declared, declared),
            Some(Outcome::Skipped(vec![NoResponders]))
        );
    }

    #[test]
    fn a_required_capability_the_driver_lacks_fails_every_case() {
        let declared = Capabilities::empty().with(Replies);
        let required = declared.with(Notifications);
        for needs in [&[][..], &[Replies][..], &[Notifications][..]] {
            match verdict(needs, declared, required) {
                Some(Outcome::Failed(why)) => assert!(why.contains("Notifications"), "{why}"),
                other => panic!("{needs:?}: expected a failure, got {other:?}"),
            }
        }
    }

    #[test]
    #[should_panic(expected = "is not a conformance case")]
    fn an_unknown_case_fails() {
        run_case("no_such_case", || async { None });
    }

    #[test]
    fn no_broker_passes_without_running() {
        run_case("rpc_call_gets_its_reply", || async { None });
    }
}
