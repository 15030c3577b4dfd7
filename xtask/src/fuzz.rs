//! `cargo xtask fuzz`: the libFuzzer targets of `fuzz/` (cargo-fuzz), each for a fixed time.
//!
//! The targets build once (`cargo fuzz build`, no sanitizer: msg's crates forbid `unsafe`, so
//! a panic is what the targets look for, and ASan would double the build) on the stable
//! toolchain with `RUSTC_BOOTSTRAP=1`, then each runs (as many at once as there are cores)
//! from its seeds (`fuzz/seeds/<target>`, real oslo bodies, never rewritten) and its corpus
//! (`fuzz/corpus/<target>`, what earlier runs found), writing what it finds to
//! `fuzz/target/found/<target>` (cleared per run); its output goes to
//! `fuzz/target/logs/<target>.log`.
//! `--merge` then folds the finds that add coverage into `fuzz/corpus` (minimized by set
//! cover; commit the result). A crash is saved by libFuzzer in `fuzz/artifacts/<target>/`.
//! cargo-fuzz is installed when missing.

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::{Ctx, brokers, util};

/// How long `cargo xtask test` runs each target, in seconds.
pub const TEST_SECONDS: u64 = 10;

/// The cargo-fuzz release series installed when none is found.
const CARGO_FUZZ_VERSION: &str = "^0.13";

/// The longest input the fuzzer makes, in bytes (keeps the corpus small; the decoders'
/// paths are all reached well below it).
const MAX_LEN: u32 = 4096;

/// What `cargo xtask fuzz` was asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// Seconds per target.
    pub seconds: u64,
    /// Fold the finds into `fuzz/corpus` afterwards.
    pub merge: bool,
    /// The targets to run; empty for all.
    pub targets: Vec<String>,
}

impl Options {
    /// Parses `[--time N] [--merge] [TARGET...]`.
    pub fn parse(args: &[OsString]) -> Result<Self> {
        let mut opts = Options {
            seconds: 60,
            merge: false,
            targets: Vec::new(),
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let arg = arg
                .to_str()
                .with_context(|| format!("argument is not valid UTF-8: {arg:?}"))?;
            let time = match arg.split_once('=') {
                Some(("--time", value)) => Some(value.to_string()),
                _ if arg == "--time" => Some(
                    args.next()
                        .and_then(|v| v.to_str())
                        .context("`--time` needs a number of seconds")?
                        .to_string(),
                ),
                _ => None,
            };
            if let Some(time) = time {
                opts.seconds = time
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .with_context(|| format!("`--time {time}`: expected whole seconds > 0"))?;
            } else if arg == "--merge" {
                opts.merge = true;
            } else if arg.starts_with('-') {
                bail!("`cargo xtask fuzz`: unknown option `{arg}`");
            } else {
                opts.targets.push(arg.to_string());
            }
        }
        Ok(opts)
    }
}

/// How a fuzz run ended.
#[derive(Debug)]
pub enum Outcome {
    /// Every target ran its time without a failure.
    Passed,
    /// A target failed (a crash, a timeout) or the build failed; the exit code to return.
    Failed(u8),
    /// cargo-fuzz could not be installed (and MSG_REQUIRE_BROKERS is not set).
    Skipped,
}

impl Ctx {
    /// Runs the fuzz targets as `opts` says.
    pub fn fuzz(&self, opts: &Options) -> Result<Outcome> {
        let started = Instant::now();
        if let Err(err) = self.ensure_cargo_fuzz() {
            if self.require {
                return Err(err.context("MSG_REQUIRE_BROKERS=1 but cargo-fuzz is not available"));
            }
            let line = format!("SKIPPED: fuzz targets ({err:#})");
            eprintln!("{}", brokers::loud(&line));
            return Ok(Outcome::Skipped);
        }
        let fuzz_dir = self.root.join("fuzz");
        let all = self.fuzz_targets()?;
        let targets = if opts.targets.is_empty() {
            all
        } else {
            if let Some(unknown) = opts.targets.iter().find(|t| !all.contains(t)) {
                bail!(
                    "no fuzz target `{unknown}` (the targets: {})",
                    all.join(", ")
                );
            }
            opts.targets.clone()
        };

        let mut build = self.cargo_fuzz("build");
        build.args(build_flags());
        if let Some(code) = self.run_cargo(build)? {
            eprintln!("xtask fuzz: building the targets failed");
            return Ok(Outcome::Failed(code));
        }
        let built = started.elapsed().as_secs();

        // libFuzzer runs on one core: as many targets at once as there are cores
        let jobs = thread::available_parallelism().map_or(1, usize::from);
        // the fuzzing time, plus loading the corpus (the build is done)
        let limit = Duration::from_secs(opts.seconds.saturating_mul(2).saturating_add(120));
        let mut failed = Vec::new();
        for batch in targets.chunks(jobs) {
            let mut running = Vec::new();
            for target in batch {
                let found = fuzz_dir.join("target").join("found").join(target);
                fresh_dir(&found)?;
                let mut inputs = vec![found.clone()];
                inputs.extend(existing(&fuzz_dir, target));
                let mut run = self.cargo_fuzz("run");
                run.args(build_flags()).arg(target).args(&inputs).args([
                    "--".to_string(),
                    format!("-max_total_time={}", opts.seconds),
                    format!("-max_len={MAX_LEN}"),
                    "-timeout=10".to_string(),
                    "-rss_limit_mb=2048".to_string(),
                ]);
                running.push((target, found, self.spawn_logged(run, target, limit)?));
            }
            for (target, found, run) in running {
                if !run.finish()? {
                    failed.push(target.as_str());
                } else if opts.merge {
                    self.merge(target, &found)?;
                }
            }
        }
        let verdict = if failed.is_empty() {
            "PASSED".to_string()
        } else {
            format!("FAILED ({})", failed.join(", "))
        };
        eprintln!(
            "xtask fuzz: {verdict}: {} targets, {}s each, {jobs} at a time, in {}s ({built}s to build)",
            targets.len(),
            opts.seconds,
            started.elapsed().as_secs()
        );
        Ok(if failed.is_empty() {
            Outcome::Passed
        } else {
            Outcome::Failed(1)
        })
    }

    /// Installs cargo-fuzz unless `cargo fuzz` already runs.
    fn ensure_cargo_fuzz(&self) -> Result<()> {
        let mut probe = self.cargo(["fuzz", "--version"]);
        if util::succeeds_quietly(&mut probe, Duration::from_secs(30)) {
            return Ok(());
        }
        eprintln!("xtask fuzz: cargo-fuzz not found; installing it (about a minute)");
        let install = self.cargo([
            "install",
            "cargo-fuzz",
            "--locked",
            "--version",
            CARGO_FUZZ_VERSION,
        ]);
        match self.run_cargo(install)? {
            None => Ok(()),
            Some(_) => bail!("`cargo install cargo-fuzz --locked` failed"),
        }
    }

    /// `cargo fuzz <sub>` in the workspace root, on the stable toolchain.
    fn cargo_fuzz(&self, sub: &str) -> Command {
        let mut cmd = self.cargo(["fuzz", sub]);
        cmd.env("RUSTC_BOOTSTRAP", "1");
        cmd
    }

    /// The targets `cargo fuzz list` names.
    fn fuzz_targets(&self) -> Result<Vec<String>> {
        let mut list = self.cargo_fuzz("list");
        let out = list
            .stderr(Stdio::inherit())
            .output()
            .context("failed to run `cargo fuzz list`")?;
        if !out.status.success() {
            bail!("`cargo fuzz list` failed ({})", out.status);
        }
        let targets: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        if targets.is_empty() {
            bail!("`cargo fuzz list` names no target");
        }
        Ok(targets)
    }

    /// Starts one target with its output in `fuzz/target/logs/<label>.log`.
    fn spawn_logged(&self, mut run: Command, label: &str, limit: Duration) -> Result<Running> {
        let logs = self.root.join("fuzz").join("target").join("logs");
        fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        let log_path = logs.join(format!("{label}.log"));
        let log = fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let err = log.try_clone().context("duplicating the log file handle")?;
        run.stdin(Stdio::null()).stdout(log).stderr(err);
        let shown = util::display_cmd(&run);
        eprintln!("xtask fuzz: {label}: `{shown}`");
        let child = run
            .spawn()
            .with_context(|| format!("failed to spawn `{shown}`"))?;
        Ok(Running {
            label: label.to_string(),
            child,
            log_path,
            deadline: Instant::now() + limit,
        })
    }

    /// Folds `found` into `fuzz/corpus/<target>`: the seeds, the corpus and the finds merged
    /// by set cover over the seeds, and what the seeds already cover left out.
    fn merge(&self, target: &str, found: &Path) -> Result<()> {
        let fuzz_dir = self.root.join("fuzz");
        let seeds = fuzz_dir.join("seeds").join(target);
        let corpus = fuzz_dir.join("corpus").join(target);
        let merged = fuzz_dir.join("target").join("merged").join(target);
        fresh_dir(&merged)?;
        let seed_names = copy_files(&seeds, &merged)?;
        let mut run = self.cargo_fuzz("run");
        run.args(build_flags()).arg(target).arg(&merged);
        run.args(
            existing(&fuzz_dir, target)
                .into_iter()
                .filter(|d| *d != seeds),
        );
        run.arg(found).args([
            "--".to_string(),
            "-set_cover_merge=1".to_string(),
            "-use_counters=0".to_string(),
            format!("-max_len={MAX_LEN}"),
        ]);
        let label = format!("{target}-merge");
        if !self
            .spawn_logged(run, &label, Duration::from_secs(300))?
            .finish()?
        {
            bail!("merging the corpus of `{target}` failed");
        }
        for name in &seed_names {
            let path = merged.join(name);
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
        fresh_dir(&corpus)?;
        copy_files(&merged, &corpus)?;
        let (files, bytes) = dir_size(&corpus)?;
        eprintln!(
            "xtask fuzz: {target}: corpus now {files} files, {bytes} bytes ({})",
            corpus.display()
        );
        Ok(())
    }
}

/// A target running, its output going to its log.
#[derive(Debug)]
struct Running {
    label: String,
    child: Child,
    log_path: PathBuf,
    deadline: Instant,
}

impl Running {
    /// Waits for the run (killing it at its deadline); prints its last status line, or its
    /// panic and the input to reproduce it with when it fails. `Ok(true)` when it passed.
    fn finish(mut self) -> Result<bool> {
        let label = &self.label;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() >= self.deadline => {
                    // best effort: it may have exited in the meantime
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break Err(anyhow!("did not finish in time and was killed"));
                }
                Ok(None) => thread::sleep(Duration::from_millis(100)),
                Err(err) => break Err(anyhow!(err).context("waiting for it failed")),
            }
        };
        let lines = read_lines(&self.log_path);
        if matches!(&status, Ok(s) if s.success()) {
            let last = lines
                .iter()
                .rev()
                .find(|l| l.contains("DONE") || l.starts_with("MERGE-OUTER"));
            eprintln!(
                "xtask fuzz: {label}: ok {}",
                last.map_or("", String::as_str)
            );
            return Ok(true);
        }
        // from the panic (or the last 40 lines) to cargo-fuzz's own backtrace
        let start = lines
            .iter()
            .position(|l| l.contains("panicked at"))
            .unwrap_or_else(|| lines.len().saturating_sub(40));
        let end = lines
            .iter()
            .skip(start)
            .position(|l| l.starts_with("Stack backtrace:"))
            .map_or(lines.len(), |n| start + n);
        for line in lines.get(start..end).unwrap_or_default() {
            eprintln!("  | {line}");
        }
        match status {
            Err(err) => eprintln!("xtask fuzz: {label}: FAILED: {err:#}"),
            Ok(status) => eprintln!("xtask fuzz: {label}: FAILED ({status})"),
        }
        if let Some(artifact) = lines
            .iter()
            .find_map(|l| l.split_once("Test unit written to ").map(|(_, p)| p.trim()))
        {
            eprintln!(
                "xtask fuzz: {label}: the input is {artifact}; reproduce with \
                 `RUSTC_BOOTSTRAP=1 cargo fuzz run -s none {label} {artifact}`"
            );
        }
        eprintln!(
            "xtask fuzz: {label}: full log in {}",
            self.log_path.display()
        );
        Ok(false)
    }
}

/// The build flags every `cargo fuzz` command here passes, so they share one build.
fn build_flags() -> [&'static str; 4] {
    ["--sanitizer", "none", "--codegen-units", "16"]
}

/// The seed and corpus directories of `target` that exist.
fn existing(fuzz_dir: &Path, target: &str) -> Vec<PathBuf> {
    ["corpus", "seeds"]
        .iter()
        .map(|d| fuzz_dir.join(d).join(target))
        .filter(|d| d.is_dir())
        .collect()
}

fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Copies the files of `from` (if it exists) into `to`; returns their names.
fn copy_files(from: &Path, to: &Path) -> Result<Vec<OsString>> {
    let mut names = Vec::new();
    if !from.is_dir() {
        return Ok(names);
    }
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            fs::copy(entry.path(), to.join(entry.file_name()))
                .with_context(|| format!("copying {}", entry.path().display()))?;
            names.push(entry.file_name());
        }
    }
    Ok(names)
}

fn dir_size(dir: &Path) -> Result<(usize, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        files += 1;
        bytes += entry?.metadata()?.len();
    }
    Ok((files, bytes))
}

fn read_lines(path: &Path) -> Vec<String> {
    fs::File::open(path)
        .map(|f| {
            BufReader::new(f)
                .lines()
                .map_while(std::result::Result::ok)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        Options::parse(&args)
    }

    #[test]
    fn options() {
        let o = parse(&["--time", "30", "request", "--merge"]).unwrap();
        assert_eq!(
            o,
            Options {
                seconds: 30,
                merge: true,
                targets: vec!["request".into()]
            }
        );
        assert_eq!(parse(&["--time=5"]).unwrap().seconds, 5);
        assert_eq!(parse(&[]).unwrap().seconds, 60);
        for bad in [
            &["--time"][..],
            &["--time", "0"],
            &["--time", "x"],
            &["--fast"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
