//! `cargo xtask` -- developer and CI tasks for the msg workspace.
//!
//! ```text
//! cargo xtask test [-- <extra cargo test args>]   the project's test command
//! cargo xtask brokers                             probe/start brokers, print their URLs
//! cargo xtask ci [-- <extra cargo test args>]     what .ci/run does: fmt, clippy, test
//! cargo xtask venv                                prepare the Python interop venv
//! cargo xtask bench [--quick]                     msg vs raw vs Python: target/bench/table.md
//! cargo xtask cluster up|down|status [rabbitmq|nats]  local 3-node clusters (target/cluster)
//! cargo xtask cluster test [-- <test args>]       clusters up, the cluster suite, clusters down
//! cargo xtask fuzz [--time N] [--merge] [TARGET...] the cargo-fuzz targets of fuzz/, N s each
//! ```
//!
//! `test` makes sure RabbitMQ (127.0.0.1:5672), NATS (127.0.0.1:4222) and Redis
//! (127.0.0.1:6379) are running when they are installed, exports `MSG_RABBIT_URL` /
//! `MSG_NATS_URL` / `MSG_REDIS_URL` for the ones that are up (values already in the
//! environment win), prepares
//! the Python interop venv (`MSG_PYTHON`) when the interop tests exist or
//! `MSG_INTEROP=1`, then runs `cargo test --workspace --all-targets` and
//! `cargo test --workspace --doc` (all but the cluster suite), then (on a full
//! run) the third-party Redis driver of `examples/third-party-driver` (a package
//! outside the workspace, built in the workspace's target directory), then (on a full
//! run) every fuzz target for a few seconds (see `fuzz.rs`), then (on a full
//! run) the cluster suite (`msg-cluster-tests`, one test at a time): on the
//! clusters of `MSG_RABBIT_CLUSTER_URL` / `MSG_NATS_CLUSTER_URL` /
//! `MSG_CLUSTER_DIR` when all are set, else on local clusters it starts
//! (`cluster up`, in-process) and stops at the end. With
//! `MSG_REQUIRE_BROKERS=1` a missing broker, venv, cargo-fuzz or cluster is an
//! error instead of a loud SKIPPED line.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod brokers;
mod cluster;
mod fuzz;
mod python;
mod util;

use std::env;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::brokers::{Broker, State};

/// The package holding the cluster suite: left out of the workspace runs, run alone after.
const CLUSTER_PACKAGE: &str = "msg-cluster-tests";
/// What the whole cluster step (clusters up, suite, down) may take on the 2-core machine.
const CLUSTER_BUDGET: Duration = Duration::from_secs(8 * 60);

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test [-- <cargo test args>]  start/check brokers, then cargo test --workspace
                               (--all-targets, then --doc), then every fuzz target
                               for 10s; extra args go to both test runs
                               (target-selection flags such as --test NAME or
                               --lib replace them with a single run; -p/--package
                               replaces --workspace; either skips the fuzz targets
                               and the cluster suite); then the cluster suite alone
                               (--test-threads=1) on local clusters it starts and stops
  brokers                      start/check brokers and print `export` lines for them
  ci [-- <cargo test args>]    fmt check, clippy -D warnings, then `test`, with
                               MSG_REQUIRE_BROKERS=1 unless already set (= .ci/run)
  venv                         create/check the Python interop venv
                               (target/interop-venv, oslo.messaging) and print
                               an `export MSG_PYTHON=...` line
  bench [--quick]              build msgctl (release), run `msgctl bench --vs-raw` over
                               the matrix (rpc sequential and 32 in flight, cast,
                               notify publish and consume; RabbitMQ, NATS, memory://)
                               and bench/python/oslo_bench.py on RabbitMQ; writes and
                               prints target/bench/table.md (--quick: fewer, smaller)
  cluster up|down|status [rabbitmq|nats]
                               local 3-node RabbitMQ and NATS (JetStream) clusters on
                               their own loopback ports, state under target/cluster:
                               `up` starts them (a healthy one is left as is) and prints
                               `export` lines for MSG_RABBIT_CLUSTER_URL,
                               MSG_NATS_CLUSTER_URL and MSG_CLUSTER_DIR, `down` stops
                               their nodes, `status` shows them (exit 1 when one is
                               not up); see docs/clusters.md
  cluster test [-- <test args>]
                               the cluster step of `test` alone: the clusters up (unless
                               MSG_*_CLUSTER_URL are set), the cluster suite with
                               --test-threads=1, the clusters down; exit 3 when skipped
  fuzz [--time N] [--merge] [TARGET...]
                               build the cargo-fuzz targets of fuzz/ (installing
                               cargo-fuzz when missing; stable toolchain with
                               RUSTC_BOOTSTRAP=1) and run each (or the named ones)
                               for N seconds (default 60) from fuzz/seeds and
                               fuzz/corpus; --merge folds what adds coverage into
                               fuzz/corpus; a crash is saved in fuzz/artifacts/

environment:
  MSG_REQUIRE_BROKERS=1  a missing broker (or interop venv, cargo-fuzz, or a cluster
                         that can't start) is an error, not a skip
  MSG_RABBIT_CLUSTER_URL, MSG_NATS_CLUSTER_URL, MSG_CLUSTER_DIR
                         all set: the cluster suite uses those clusters (none started)
  MSG_RABBIT_URL, MSG_NATS_URL, MSG_REDIS_URL, MSG_PYTHON
                         if already set, used as given (not probed, not overwritten)
  MSG_INTEROP=1|0        force / suppress the Python interop venv (default: on when
                         crates/msg-driver-amqp/tests/interop exists)
  MSG_FUZZ=0             `test` skips the fuzz targets";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let mut args: Vec<OsString> = env::args_os().skip(1).collect();
    if args.is_empty() {
        eprintln!("{USAGE}");
        return Ok(ExitCode::from(2));
    }
    let command = args.remove(0);
    // `cargo xtask test -- --nocapture`: drop the separator we were given.
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    let command = command
        .to_str()
        .ok_or_else(|| anyhow!("command is not valid UTF-8: {command:?}"))?;
    let ctx = Ctx::new()?;
    match command {
        "test" => Ok(exit_code(ctx.test(&args)?)),
        "brokers" => {
            expect_no_args("brokers", &args)?;
            ctx.brokers()
        }
        "ci" => ctx.ci(&args),
        "bench" => ctx.bench(&args),
        "cluster" if args.first().is_some_and(|a| a == "test") => {
            let interop = ctx.interop()?;
            Ok(match ctx.cluster_suite(harness_args(&args), &interop)? {
                None => ExitCode::SUCCESS,
                Some(ClusterStep::Skipped) => ExitCode::from(3),
                Some(ClusterStep::Failed(code)) => ExitCode::from(code),
            })
        }
        "cluster" => cluster::run(&ctx.root, &args),
        "fuzz" => match ctx.fuzz(&fuzz::Options::parse(&args)?)? {
            fuzz::Outcome::Failed(code) => Ok(ExitCode::from(code)),
            fuzz::Outcome::Passed | fuzz::Outcome::Skipped => Ok(ExitCode::SUCCESS),
        },
        "venv" => {
            expect_no_args("venv", &args)?;
            let python = python::ensure_python_venv(&ctx.root)?;
            println!(
                "export MSG_PYTHON={}",
                util::shell_quote(&python.to_string_lossy())
            );
            Ok(ExitCode::SUCCESS)
        }
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => {
            eprintln!("xtask: unknown command `{other}`\n\n{USAGE}");
            Ok(ExitCode::from(2))
        }
    }
}

fn exit_code(failure: Option<u8>) -> ExitCode {
    failure.map_or(ExitCode::SUCCESS, ExitCode::from)
}

fn expect_no_args(command: &str, args: &[OsString]) -> Result<()> {
    if args.is_empty() {
        Ok(())
    } else {
        bail!("`cargo xtask {command}` takes no arguments (got {args:?})")
    }
}

#[derive(Debug)]
struct Ctx {
    /// The workspace root (parent of the xtask package).
    root: PathBuf,
    /// The cargo that launched us (so toolchain overrides carry over).
    cargo: OsString,
    /// `MSG_REQUIRE_BROKERS=1`: missing brokers / venv are errors.
    require: bool,
    /// Extra variables for every child cargo (e.g. the forced require flag in `ci`).
    child_env: Vec<(&'static str, OsString)>,
}

impl Ctx {
    fn new() -> Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask's manifest directory has no parent")?
            .to_path_buf();
        if !root.join("Cargo.toml").is_file() {
            bail!("workspace root {} has no Cargo.toml", root.display());
        }
        Ok(Ctx {
            root,
            cargo: env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
            require: util::env_flag("MSG_REQUIRE_BROKERS").unwrap_or(false),
            child_env: Vec::new(),
        })
    }

    fn cargo<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.cargo);
        cmd.args(args).current_dir(&self.root);
        for (key, value) in &self.child_env {
            cmd.env(key, value);
        }
        cmd
    }

    /// Runs a cargo command with inherited stdio; `Ok(None)` on success,
    /// `Ok(Some(code))` with a failing exit code otherwise.
    fn run_cargo(&self, mut cmd: Command) -> Result<Option<u8>> {
        let shown = util::display_cmd(&cmd);
        eprintln!("xtask: running `{shown}`");
        let status = cmd
            .status()
            .with_context(|| format!("failed to run `{shown}`"))?;
        if status.success() {
            return Ok(None);
        }
        // Killed by a signal (no code) or an out-of-range code: plain failure.
        let code = status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .filter(|&c| c != 0)
            .unwrap_or(1);
        eprintln!("xtask: `{shown}` failed ({status})");
        Ok(Some(code))
    }

    /// Steps 1-3: probe/start brokers, print status, enforce MSG_REQUIRE_BROKERS.
    fn ensure_brokers(&self) -> Result<Vec<Broker>> {
        let brokers = brokers::ensure_all(&self.root.join("target").join("xtask"));
        let missing: Vec<&str> = brokers
            .iter()
            .filter(|b| b.is_missing())
            .map(|b| b.kind.name())
            .collect();
        if self.require && !missing.is_empty() {
            bail!(
                "MSG_REQUIRE_BROKERS=1 but {} not available (see the SKIPPED line above); \
                 install/start it, or point {} at one",
                missing.join(" and "),
                brokers
                    .iter()
                    .filter(|b| b.is_missing())
                    .map(|b| b.kind.env_var())
                    .collect::<Vec<_>>()
                    .join(" / ")
            );
        }
        Ok(brokers)
    }

    fn brokers(&self) -> Result<ExitCode> {
        for broker in self.ensure_brokers()? {
            let var = broker.kind.env_var();
            match broker.url() {
                Some(url) => println!("export {var}={}", util::shell_quote(url)),
                None => println!("unset {var}"),
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    /// Steps 1-6; `Ok(Some(code))` when cargo test failed.
    fn test(&self, extra: &[OsString]) -> Result<Option<u8>> {
        let started = Instant::now();
        let brokers = self.ensure_brokers()?;
        let interop = self.interop()?;

        let mut notes: Vec<String> = brokers
            .iter()
            .map(|b| {
                let what = match &b.state {
                    State::Up => "up",
                    State::Started => "started",
                    State::Preset(_) => "from env",
                    State::Missing(_) => "SKIPPED",
                };
                format!("{} {what}", b.kind.name())
            })
            .collect();
        notes.push(format!("interop {}", interop.summary()));

        let mut outcome = Vec::new();
        let mut failure = None;
        // The examples' tests run the example binaries as users do: build them as binaries
        // (`cargo test --all-targets` builds them as test harnesses).
        if let Some(code) = self.run_cargo(self.cargo(["build", "--workspace", "--examples"]))? {
            eprintln!("xtask test: building the examples failed");
            return Ok(Some(code));
        }
        for (label, args) in test_invocations(extra) {
            if failure.is_some() {
                outcome.push(format!("{label} not run"));
                continue;
            }
            let mut cmd = self.cargo(&args);
            broker_env(&mut cmd, &brokers);
            if let Interop::Ready(python) = &interop {
                cmd.env("MSG_PYTHON", python);
            }
            match self.run_cargo(cmd)? {
                None => outcome.push(format!("{label} ok")),
                Some(code) => {
                    outcome.push(format!("{label} FAILED"));
                    failure = Some(code);
                }
            }
        }

        if Selection::of(extra).any() {
            outcome.push("third-party driver not run (a selection)".into());
        } else if failure.is_some() {
            outcome.push("third-party driver not run".into());
        } else {
            match self.third_party_driver(&brokers)? {
                None => outcome.push("third-party driver ok".into()),
                Some(code) => {
                    outcome.push("third-party driver FAILED".into());
                    failure = Some(code);
                }
            }
        }

        let mut fuzz_skipped = false;
        if util::env_flag("MSG_FUZZ") == Some(false) {
            outcome.push("fuzz off (MSG_FUZZ)".into());
        } else if Selection::of(extra).any() {
            outcome.push("fuzz not run (a selection)".into());
        } else if failure.is_some() {
            outcome.push("fuzz not run".into());
        } else {
            let opts = fuzz::Options {
                seconds: fuzz::TEST_SECONDS,
                merge: false,
                targets: Vec::new(),
            };
            match self.fuzz(&opts)? {
                fuzz::Outcome::Passed => outcome.push("fuzz ok".into()),
                fuzz::Outcome::Skipped => {
                    outcome.push("fuzz SKIPPED".into());
                    fuzz_skipped = true;
                }
                fuzz::Outcome::Failed(code) => {
                    outcome.push("fuzz FAILED".into());
                    failure = Some(code);
                }
            }
        }

        let mut clusters_skipped = false;
        if Selection::of(extra).any() {
            outcome.push("cluster suite not run (a selection)".into());
        } else if failure.is_some() {
            outcome.push("cluster suite not run".into());
        } else {
            match self.cluster_suite(harness_args(extra), &interop)? {
                None => outcome.push("cluster suite ok".into()),
                Some(ClusterStep::Skipped) => {
                    outcome.push("cluster suite SKIPPED".into());
                    clusters_skipped = true;
                }
                Some(ClusterStep::Failed(code)) => {
                    outcome.push("cluster suite FAILED".into());
                    failure = Some(code);
                }
            }
        }

        let verdict = if failure.is_some() {
            "FAILED"
        } else {
            "PASSED"
        };
        eprintln!(
            "xtask test: {verdict} ({}) in {}s [{}]",
            outcome.join(", "),
            started.elapsed().as_secs(),
            notes.join(", ")
        );
        let skipped: Vec<&str> = brokers
            .iter()
            .filter(|b| b.is_missing())
            .map(|b| b.kind.name())
            .chain(matches!(interop, Interop::Skipped).then_some("python interop"))
            .chain(fuzz_skipped.then_some("fuzz"))
            .chain(clusters_skipped.then_some("cluster"))
            .collect();
        if !skipped.is_empty() {
            eprintln!(
                "xtask test: NOTE: {} suites were SKIPPED",
                skipped.join(", ")
            );
        }
        Ok(failure)
    }

    /// The Redis driver of `examples/third-party-driver`: a package of its own, outside the
    /// workspace as a third party's would be, built and tested against the Redis found or
    /// started here, in the workspace's target directory (so what it shares with the
    /// workspace is built once). `None` when it passed.
    fn third_party_driver(&self, brokers: &[Broker]) -> Result<Option<u8>> {
        let manifest = self.root.join(THIRD_PARTY_DRIVER).join("Cargo.toml");
        let mut cmd = self.cargo([OsStr::new("test"), OsStr::new("--manifest-path")]);
        cmd.arg(&manifest);
        if std::env::var_os("CARGO_TARGET_DIR").is_none() {
            cmd.env("CARGO_TARGET_DIR", self.root.join("target"));
        }
        broker_env(&mut cmd, brokers);
        self.run_cargo(cmd)
    }

    /// The cluster suite, alone and one test at a time (its fault tests kill nodes its
    /// other tests use): built first, then run on the clusters the environment names, or
    /// on local clusters started here (in-process `cluster up`) and stopped at the end.
    /// `None` when it passed.
    /// The cluster suite gets the Python interop venv (its Python peers share quorum queues
    /// with msg) as the main tests do.
    fn cluster_suite(
        &self,
        harness: &[OsString],
        interop: &Interop,
    ) -> Result<Option<ClusterStep>> {
        let suite = |more: &[&str]| {
            let mut cmd = self.cargo(["test", "-p", CLUSTER_PACKAGE, "--test", "cluster"]);
            cmd.args(more);
            cmd
        };
        // built before the clusters start: the step's time is the suite's
        if let Some(code) = self.run_cargo(suite(&["--no-run"]))? {
            return Ok(Some(ClusterStep::Failed(code)));
        }
        let started = Instant::now();
        let preset = [
            "MSG_RABBIT_CLUSTER_URL",
            "MSG_NATS_CLUSTER_URL",
            "MSG_CLUSTER_DIR",
        ]
        .into_iter()
        .all(|var| util::env_nonempty(var).is_some());
        let clusters = if preset {
            eprintln!("xtask test: the cluster suite runs on the clusters of MSG_*_CLUSTER_URL");
            None
        } else {
            match cluster::SuiteClusters::up(&self.root) {
                Ok(clusters) => Some(clusters),
                Err(err) if self.require => {
                    return Err(
                        err.context("MSG_REQUIRE_BROKERS=1 but the local clusters could not start")
                    );
                }
                Err(err) => {
                    let line = format!("SKIPPED: cluster suite (the local clusters: {err:#})");
                    eprintln!("{}", brokers::loud(&line));
                    return Ok(Some(ClusterStep::Skipped));
                }
            }
        };
        let up_took = started.elapsed();
        let mut cmd = suite(&["--", "--test-threads=1"]);
        cmd.args(harness);
        for (var, value) in clusters.iter().flat_map(|c| c.env.iter()) {
            cmd.env(var, value);
        }
        if let Interop::Ready(python) = interop {
            cmd.env("MSG_PYTHON", python);
        }
        let result = self.run_cargo(cmd);
        if let Some(clusters) = clusters
            && let Err(err) = clusters.down()
        {
            eprintln!("xtask test: stopping the clusters: {err:#}");
        }
        let took = started.elapsed();
        eprintln!(
            "xtask test: the cluster step took {}s (clusters up {}s; budget {}s)",
            took.as_secs(),
            up_took.as_secs(),
            CLUSTER_BUDGET.as_secs()
        );
        if took > CLUSTER_BUDGET {
            let line = format!(
                "the cluster step took {}s, over its budget of {}s",
                took.as_secs(),
                CLUSTER_BUDGET.as_secs()
            );
            eprintln!("{}", brokers::loud(&line));
        }
        Ok(result?.map(ClusterStep::Failed))
    }

    /// Step 5: the Python interop venv, when wanted.
    fn interop(&self) -> Result<Interop> {
        if !python::wanted(&self.root) {
            return Ok(Interop::NotWanted);
        }
        if let Some(preset) = util::env_nonempty("MSG_PYTHON") {
            eprintln!("interop: using MSG_PYTHON from environment ({preset})");
            return Ok(Interop::Preset);
        }
        match python::ensure_python_venv(&self.root) {
            Ok(python) => {
                eprintln!("interop: python venv ready ({})", python.display());
                Ok(Interop::Ready(python))
            }
            Err(err) if self.require => Err(err.context(
                "MSG_REQUIRE_BROKERS=1 but the Python interop venv could not be prepared",
            )),
            Err(err) => {
                let line = format!("SKIPPED: python interop suites ({err:#})");
                eprintln!("{}", brokers::loud(&line));
                Ok(Interop::Skipped)
            }
        }
    }

    fn ci(mut self, extra: &[OsString]) -> Result<ExitCode> {
        if env::var_os("MSG_REQUIRE_BROKERS").is_none() {
            self.require = true;
            self.child_env.push(("MSG_REQUIRE_BROKERS", "1".into()));
        }
        let checks: [&[&str]; 2] = [
            &["fmt", "--all", "--", "--check"],
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ];
        for args in checks {
            if let Some(code) = self.run_cargo(self.cargo(args))? {
                eprintln!("xtask ci: FAILED at `cargo {}`", args.join(" "));
                return Ok(ExitCode::from(code));
            }
        }
        let failure = self.test(extra)?;
        if failure.is_some() {
            eprintln!("xtask ci: FAILED at tests");
        } else {
            eprintln!("xtask ci: PASSED");
        }
        Ok(exit_code(failure))
    }
}

#[derive(Debug)]
enum Interop {
    NotWanted,
    Preset,
    Ready(PathBuf),
    Skipped,
}

impl Interop {
    fn summary(&self) -> &'static str {
        match self {
            Interop::NotWanted => "not needed",
            Interop::Preset => "from env",
            Interop::Ready(_) => "ready",
            Interop::Skipped => "SKIPPED",
        }
    }
}

/// How the cluster step went, when it did not pass.
#[derive(Debug)]
enum ClusterStep {
    /// No cluster (and none required).
    Skipped,
    /// It failed with this exit code.
    Failed(u8),
}

/// The arguments after `--` in `extra`: the test harness's.
fn harness_args(extra: &[OsString]) -> &[OsString] {
    extra
        .iter()
        .position(|a| a == "--")
        .and_then(|at| extra.get(at.saturating_add(1)..))
        .unwrap_or_default()
}

/// What the extra `cargo test` arguments select.
#[derive(Debug, Default)]
struct Selection {
    /// `-p`/`--package`.
    package: bool,
    /// Target-selection flags (`--lib`, `--test NAME`, `--doc`, ...).
    targets: bool,
}

impl Selection {
    fn of(extra: &[OsString]) -> Self {
        let mut sel = Selection::default();
        // Only look at cargo's own arguments, not those after `--` for the harness.
        let cargo_args = extra
            .iter()
            .take_while(|a| *a != "--")
            .filter_map(|a| a.to_str());
        for arg in cargo_args {
            let flag = arg.split('=').next().unwrap_or(arg);
            sel.package |= matches!(flag, "-p" | "--package")
                || (arg.starts_with("-p") && !arg.starts_with("--"));
            sel.targets |= matches!(
                flag,
                "--lib"
                    | "--bin"
                    | "--bins"
                    | "--example"
                    | "--examples"
                    | "--test"
                    | "--tests"
                    | "--bench"
                    | "--benches"
                    | "--all-targets"
                    | "--doc"
            );
        }
        sel
    }

    /// Whether the run is narrowed (and so skips the fuzz targets).
    fn any(&self) -> bool {
        self.package || self.targets
    }
}

/// The `cargo test` invocations for `cargo xtask test <extra>`, with labels.
///
/// Normally two runs: `--all-targets` and `--doc` (cargo cannot combine
/// them), each with `extra` appended. If `extra` selects targets itself
/// (`--lib`, `--test NAME`, `--doc`, ...) it is one run with just those.
/// Where the third-party driver package lives (outside the workspace's members).
pub const THIRD_PARTY_DRIVER: &str = "examples/third-party-driver";

/// Gives a test command the brokers' URLs: found or started ones set, missing ones unset
/// (so their suites skip, or fail under `MSG_REQUIRE_BROKERS=1`), preset ones inherited.
fn broker_env(cmd: &mut Command, brokers: &[Broker]) {
    for broker in brokers {
        let var = broker.kind.env_var();
        match &broker.state {
            State::Up | State::Started => {
                if let Some(url) = broker.url() {
                    cmd.env(var, url);
                }
            }
            // Already in our environment; inherited unchanged.
            State::Preset(_) => {}
            // Possibly set but empty: make it unset so tests skip cleanly.
            State::Missing(_) => {
                cmd.env_remove(var);
            }
        }
    }
}

/// `-p`/`--package` in `extra` replaces `--workspace`.
fn test_invocations(extra: &[OsString]) -> Vec<(&'static str, Vec<OsString>)> {
    let Selection {
        package: has_package,
        targets: has_targets,
    } = Selection::of(extra);

    let mut base: Vec<OsString> = vec!["test".into()];
    if !has_package {
        // the cluster suite runs alone afterwards (see `Ctx::cluster_suite`)
        base.extend(["--workspace", "--exclude", CLUSTER_PACKAGE].map(OsString::from));
    }
    let with = |selector: Option<&str>| {
        let mut args = base.clone();
        args.extend(selector.map(OsString::from));
        args.extend(extra.iter().cloned());
        args
    };
    if has_targets {
        vec![("tests", with(None))]
    } else {
        vec![
            ("all targets", with(Some("--all-targets"))),
            ("doctests", with(Some("--doc"))),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(extra: &[&str]) -> Vec<(&'static str, Vec<String>)> {
        let extra: Vec<OsString> = extra.iter().map(OsString::from).collect();
        test_invocations(&extra)
            .into_iter()
            .map(|(label, args)| {
                let args = args
                    .into_iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect();
                (label, args)
            })
            .collect()
    }

    #[test]
    fn default_is_all_targets_then_doc() {
        assert_eq!(
            plan(&[]),
            vec![
                (
                    "all targets",
                    vec![
                        "test".into(),
                        "--workspace".into(),
                        "--exclude".into(),
                        CLUSTER_PACKAGE.into(),
                        "--all-targets".into()
                    ]
                ),
                (
                    "doctests",
                    vec![
                        "test".into(),
                        "--workspace".into(),
                        "--exclude".into(),
                        CLUSTER_PACKAGE.into(),
                        "--doc".into()
                    ]
                ),
            ]
        );
    }

    #[test]
    fn extra_args_go_to_both_runs() {
        let runs = plan(&["--", "--nocapture", "--test-threads=1"]);
        assert_eq!(runs.len(), 2);
        for (_, args) in runs {
            assert!(args.ends_with(&[
                "--".into(),
                "--nocapture".into(),
                "--test-threads=1".into()
            ]));
        }
    }

    #[test]
    fn target_selection_means_one_run() {
        let runs = plan(&["--test", "rabbit", "--", "--lib"]);
        assert_eq!(runs.len(), 1);
        assert_eq!(
            runs[0].1,
            [
                "test",
                "--workspace",
                "--exclude",
                CLUSTER_PACKAGE,
                "--test",
                "rabbit",
                "--",
                "--lib"
            ]
        );
    }

    #[test]
    fn the_cluster_suite_gets_the_harness_args() {
        let extra: Vec<OsString> = ["--release", "--", "--nocapture", "kill"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(harness_args(&extra), &extra[2..]);
        assert!(harness_args(&[]).is_empty());
        assert!(harness_args(&extra[..2]).is_empty());
    }

    #[test]
    fn the_cluster_package_exists() {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("crates")
            .join(CLUSTER_PACKAGE)
            .join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).expect("the cluster suite's manifest");
        assert!(text.contains(&format!("name = \"{CLUSTER_PACKAGE}\"")));
        assert!(
            text.contains("name = \"cluster\""),
            "its test target is `cluster`"
        );
    }

    #[test]
    fn harness_args_do_not_select_targets() {
        assert_eq!(plan(&["--", "--doc"]).len(), 2);
    }

    #[test]
    fn package_replaces_workspace() {
        for extra in [
            &["-p", "msg-core"][..],
            &["-pmsg-core"],
            &["--package=msg-core"],
        ] {
            for (_, args) in plan(extra) {
                assert!(
                    !args.iter().any(|a| a == "--workspace"),
                    "{extra:?}: {args:?}"
                );
            }
        }
    }
}
