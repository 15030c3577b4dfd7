//! `cargo xtask bench [--quick]`: the end-to-end matrix of `msgctl bench` (msg vs the raw
//! clients, on RabbitMQ, NATS and memory://) plus oslo.messaging (Python) on RabbitMQ, as a
//! markdown table in `target/bench/table.md` (also printed), every JSON result in
//! `target/bench/results.jsonl`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::brokers::Kind;
use crate::{Ctx, python, util};

/// One pattern of the matrix.
#[derive(Debug, Clone)]
struct Row {
    label: &'static str,
    /// `msgctl bench` arguments (after `bench`), without --count.
    args: &'static [&'static str],
    count: u64,
    /// oslo_bench.py arguments (after the pattern), without --count; `None`: no Python run.
    python: Option<&'static [&'static str]>,
    /// The figures for scale: raw lapin, raw async-nats, Python.
    target_lapin: Option<f64>,
    target_nats: Option<f64>,
    target_python: Option<f64>,
}

fn matrix(quick: bool) -> Vec<Row> {
    let (small, large) = if quick { (300, 3_000) } else { (2_000, 20_000) };
    vec![
        Row {
            label: "rpc, sequential",
            args: &["rpc", "--concurrency", "1"],
            count: small,
            python: Some(&["rpc", "--concurrency", "1"]),
            target_lapin: Some(3_600.0),
            target_nats: Some(7_800.0),
            target_python: Some(790.0),
        },
        Row {
            label: "rpc, 32 in flight",
            args: &["rpc", "--concurrency", "32"],
            count: large,
            python: Some(&["rpc", "--concurrency", "32"]),
            target_lapin: Some(27_000.0),
            target_nats: Some(100_000.0),
            target_python: Some(1_060.0),
        },
        Row {
            label: "cast, window 1000",
            args: &["cast", "--concurrency", "1000"],
            count: large,
            python: Some(&["cast", "--concurrency", "32"]),
            target_lapin: Some(38_000.0),
            target_nats: None,
            target_python: Some(2_600.0),
        },
        Row {
            label: "notify publish, window 1000",
            args: &["notify", "--phase", "publish", "--concurrency", "1000"],
            count: large,
            python: Some(&["notify", "--phase", "publish", "--concurrency", "32"]),
            target_lapin: Some(38_000.0),
            target_nats: Some(200_000.0),
            target_python: Some(3_800.0),
        },
        Row {
            label: "notify consume, prefetch 1000",
            args: &[
                "notify",
                "--phase",
                "consume",
                "--concurrency",
                "64",
                "--prefetch",
                "1000",
            ],
            count: large,
            python: Some(&["notify", "--phase", "consume", "--prefetch", "1000"]),
            target_lapin: Some(58_000.0),
            target_nats: Some(200_000.0),
            target_python: Some(10_500.0),
        },
        Row {
            label: "notify consume, batches of 100",
            args: &[
                "notify",
                "--phase",
                "consume",
                "--concurrency",
                "64",
                "--prefetch",
                "1000",
                "--batch-size",
                "100",
            ],
            count: large,
            python: Some(&[
                "notify",
                "--phase",
                "consume",
                "--prefetch",
                "1000",
                "--batch-size",
                "100",
            ]),
            target_lapin: Some(58_000.0),
            target_nats: Some(200_000.0),
            target_python: Some(40_000.0),
        },
    ]
}

/// What one cell measured: the median rate, its spread, and the command that made it.
#[derive(Debug, Clone)]
struct Cell {
    rate: f64,
    spread: f64,
    handled_rate: Option<f64>,
    note: Option<String>,
}

impl Cell {
    fn of(side: &Value) -> Option<Self> {
        Some(Cell {
            rate: side.get("rate")?.as_f64()?,
            spread: side.get("spread").and_then(Value::as_f64).unwrap_or(0.0),
            handled_rate: side.get("handled_rate").and_then(Value::as_f64),
            note: None,
        })
    }

    fn missing(why: impl Into<String>) -> Self {
        Cell {
            rate: f64::NAN,
            spread: 0.0,
            handled_rate: None,
            note: Some(why.into()),
        }
    }

    fn ok(&self) -> bool {
        self.rate.is_finite()
    }

    fn show(&self) -> String {
        match &self.note {
            Some(n) if !self.ok() => n.clone(),
            _ => {
                let mut s = rate(self.rate);
                if self.spread > 0.0 {
                    let _ = write!(s, " ±{:.0} %", self.spread * 50.0);
                }
                if let Some(h) = self.handled_rate {
                    let _ = write!(s, " (handled {})", rate(h));
                }
                s
            }
        }
    }
}

/// A rate for the table: `3,512/s`, `212 k/s`.
fn rate(r: f64) -> String {
    if !r.is_finite() {
        return "n/a".into();
    }
    if r >= 100_000.0 {
        return format!("{:.0} k/s", r / 1000.0);
    }
    let n = r.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out + "/s"
}

/// "met" when `got` is at least 90 % of `target`.
fn verdict(got: &Cell, target: Option<f64>) -> String {
    match target {
        None => "-".into(),
        Some(t) if !got.ok() => format!("{} (not measured)", rate(t)),
        Some(t) => {
            let pct = got.rate / t * 100.0;
            if pct >= 90.0 {
                format!("{}: **met** ({pct:.0} %)", rate(t))
            } else {
                format!("{}: not met ({pct:.0} %)", rate(t))
            }
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

struct Runner {
    msgctl: PathBuf,
    python: Option<PathBuf>,
    script: PathBuf,
    out_dir: PathBuf,
    results: fs::File,
    runs: u32,
}

/// How one child run ended.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Runner {
    fn run(&mut self, mut cmd: Command, limit: Duration) -> Result<Outcome> {
        self.runs += 1;
        let out = self.out_dir.join(format!("run-{}.out", self.runs));
        let err = self.out_dir.join(format!("run-{}.err", self.runs));
        cmd.stdin(Stdio::null())
            .stdout(fs::File::create(&out)?)
            .stderr(fs::File::create(&err)?)
            .env_remove("MSG_TRANSPORT_URL")
            .env_remove("RUST_LOG");
        eprintln!(
            "xtask bench: {}",
            util::redact_url(&util::display_cmd(&cmd))
        );
        let status = util::run_with_deadline(&mut cmd, limit)?;
        let outcome = Outcome {
            code: status.code(),
            stdout: fs::read_to_string(&out).unwrap_or_default(),
            stderr: fs::read_to_string(&err).unwrap_or_default(),
        };
        if let Some(line) = outcome.stdout.lines().find(|l| l.starts_with('{')) {
            use std::io::Write as _;
            writeln!(self.results, "{line}")?;
        }
        Ok(outcome)
    }

    fn msgctl(&self, url: &str, row: &Row, extra: &[&str]) -> Command {
        let mut cmd = Command::new(&self.msgctl);
        cmd.args(["--url", url, "--json", "bench", "--stall-timeout", "15"])
            .args(row.args)
            .args(["--count", &row.count.to_string()])
            .args(extra);
        cmd
    }

    /// ours and raw on a broker, alternating: (ours, raw).
    fn vs_raw(&mut self, url: &str, row: &Row, rounds: u32) -> Result<(Cell, Cell)> {
        let cmd = self.msgctl(url, row, &["--vs-raw", "--rounds", &rounds.to_string()]);
        let o = self.run(cmd, Duration::from_secs(600))?;
        if o.code == Some(0) {
            let v: Value = serde_json::from_str(o.stdout.trim()).context("msgctl's JSON")?;
            let ours = v.get("ours").and_then(Cell::of);
            let raw = v.get("raw").and_then(Cell::of);
            if let (Some(ours), Some(raw)) = (ours, raw) {
                return Ok((ours, raw));
            }
            bail!("msgctl's --vs-raw JSON lacks rates: {}", o.stdout.trim());
        }
        let why = first_line(&o.stderr);
        // ours may be missing while raw works (a driver not in this build yet): raw alone
        let mut raw_rates = Vec::new();
        for _ in 0..rounds {
            let o = self.run(self.msgctl(url, row, &["--raw"]), Duration::from_secs(300))?;
            if o.code != Some(0) {
                return Ok((
                    Cell::missing(format!("failed: {why}")),
                    Cell::missing(format!("failed: {}", first_line(&o.stderr))),
                ));
            }
            let v: Value = serde_json::from_str(o.stdout.trim()).context("msgctl's JSON")?;
            raw_rates.push(v.get("rate").and_then(Value::as_f64).unwrap_or(f64::NAN));
        }
        let spread = spread(&raw_rates);
        Ok((
            Cell::missing(format!("failed: {why}")),
            Cell {
                rate: median(raw_rates),
                spread,
                handled_rate: None,
                note: None,
            },
        ))
    }

    /// ours alone (memory://), the median of `rounds` runs.
    fn ours_only(&mut self, url: &str, row: &Row, rounds: u32) -> Result<Cell> {
        let mut rates = Vec::new();
        let mut handled = Vec::new();
        for _ in 0..rounds {
            let o = self.run(self.msgctl(url, row, &[]), Duration::from_secs(300))?;
            if o.code != Some(0) {
                return Ok(Cell::missing(format!("failed: {}", first_line(&o.stderr))));
            }
            let v: Value = serde_json::from_str(o.stdout.trim()).context("msgctl's JSON")?;
            rates.push(v.get("rate").and_then(Value::as_f64).unwrap_or(f64::NAN));
            if let Some(h) = v.get("handled_rate").and_then(Value::as_f64) {
                handled.push(h);
            }
        }
        Ok(Cell {
            spread: spread(&rates),
            rate: median(rates),
            handled_rate: (!handled.is_empty()).then(|| median(handled)),
            note: None,
        })
    }

    fn python(&mut self, url: &str, row: &Row) -> Result<Cell> {
        let (Some(python), Some(args)) = (&self.python, row.python) else {
            return Ok(Cell::missing("n/a"));
        };
        let mut cmd = Command::new(python);
        cmd.arg(&self.script)
            .args(["--url", url])
            .args(args)
            .args(["--count", &row.count.to_string()])
            .env("PYTHONWARNINGS", "ignore");
        let o = self.run(cmd, Duration::from_secs(600))?;
        if o.code != Some(0) {
            return Ok(Cell::missing(format!("failed: {}", first_line(&o.stderr))));
        }
        let line = o.stdout.lines().find(|l| l.starts_with('{')).unwrap_or("");
        let v: Value = serde_json::from_str(line).context("oslo_bench.py's JSON")?;
        Ok(Cell::of(&v).unwrap_or_else(|| Cell::missing("no rate")))
    }
}

fn spread(v: &[f64]) -> f64 {
    let m = median(v.to_vec());
    if v.len() < 2 || !m.is_finite() || m == 0.0 {
        return 0.0;
    }
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    (max - min) / m
}

/// The failure of a run, short enough for a table cell.
fn first_line(s: &str) -> String {
    let line = last_error(s);
    if line.contains("no driver for scheme") {
        return "no driver for this scheme in msg's build".into();
    }
    let line = line
        .trim_start_matches("msgctl: ")
        .trim_start_matches("oslo_bench: ");
    let mut short: String = line.chars().take(90).collect();
    if short.len() < line.len() {
        short.push_str("...");
    }
    short
}

fn last_error(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| l.starts_with("msgctl:") || l.starts_with("oslo_bench:"))
        .or_else(|| s.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("no output")
        .chars()
        .take(160)
        .collect::<String>()
        .replace('|', "/")
}

fn ratio(a: &Cell, b: &Cell) -> String {
    if a.ok() && b.ok() && b.rate > 0.0 {
        format!("{:.2}", a.rate / b.rate)
    } else {
        "-".into()
    }
}

impl Ctx {
    pub(crate) fn bench(&self, args: &[OsString]) -> Result<ExitCode> {
        let mut quick = false;
        for a in args {
            match a.to_str() {
                Some("--quick") => quick = true,
                _ => bail!("`cargo xtask bench` takes only --quick (got {a:?})"),
            }
        }
        let started = Instant::now();
        let mut build = self.cargo(["build", "--release", "-p", "msgctl"]);
        build.env_remove("RUSTFLAGS");
        if let Some(code) = self.run_cargo(build)? {
            eprintln!("xtask bench: building msgctl failed");
            return Ok(ExitCode::from(code));
        }
        let brokers = self.ensure_brokers()?;
        let url_of = |kind: Kind| {
            brokers
                .iter()
                .find(|b| b.kind == kind)
                .and_then(|b| b.url().map(str::to_string))
        };
        let rabbit = url_of(Kind::Rabbit);
        let nats = url_of(Kind::Nats);
        let python = match rabbit {
            Some(_) => match python::ensure_python_venv(&self.root) {
                Ok(p) => Some(p),
                Err(e) => {
                    eprintln!("xtask bench: no Python column: {e:#}");
                    None
                }
            },
            None => None,
        };
        let out_dir = self.root.join("target").join("bench");
        fs::create_dir_all(&out_dir)?;
        let results_path = out_dir.join("results.jsonl");
        let mut runner = Runner {
            msgctl: self.root.join("target/release/msgctl"),
            python,
            script: self.root.join("bench/python/oslo_bench.py"),
            out_dir: out_dir.clone(),
            results: fs::File::create(&results_path)?,
            runs: 0,
        };
        let rounds = if quick { 2 } else { 5 };
        let rows = matrix(quick);

        let mut table = String::new();
        let _ = writeln!(
            table,
            "| pattern | count | broker | msg | raw | msg/raw | oslo.messaging (Python) | msg/Python | target: raw | target: Python |"
        );
        let _ = writeln!(table, "|---|---|---|---|---|---|---|---|---|---|");
        for row in &rows {
            if let Some(url) = &rabbit {
                let (ours, raw) = runner.vs_raw(url, row, rounds)?;
                let py = runner.python(url, row)?;
                let _ = writeln!(
                    table,
                    "| {} | {} | RabbitMQ | {} | {} | {} | {} | {} | {} | {} |",
                    row.label,
                    row.count,
                    ours.show(),
                    raw.show(),
                    ratio(&ours, &raw),
                    py.show(),
                    ratio(&ours, &py),
                    verdict(&raw, row.target_lapin),
                    verdict(&py, row.target_python),
                );
            } else {
                let _ = writeln!(
                    table,
                    "| {} | {} | RabbitMQ | not running | | | | | | |",
                    row.label, row.count
                );
            }
            if let Some(url) = &nats {
                let (ours, raw) = runner.vs_raw(url, row, rounds)?;
                let _ = writeln!(
                    table,
                    "| {} | {} | NATS | {} | {} | {} | - | - | {} | - |",
                    row.label,
                    row.count,
                    ours.show(),
                    raw.show(),
                    ratio(&ours, &raw),
                    verdict(&raw, row.target_nats),
                );
            } else {
                let _ = writeln!(
                    table,
                    "| {} | {} | NATS | not running | | | | | | |",
                    row.label, row.count
                );
            }
            let ours = runner.ours_only("memory://", row, rounds.min(3))?;
            let _ = writeln!(
                table,
                "| {} | {} | memory:// | {} | - | - | - | - | - | - |",
                row.label,
                row.count,
                ours.show()
            );
        }
        let mut doc = String::new();
        let _ = writeln!(
            doc,
            "# msgctl bench matrix{}\n",
            if quick { " (--quick)" } else { "" }
        );
        doc.push_str(&table);
        let _ = writeln!(
            doc,
            "\nRates are medians of {rounds} rounds (msg and raw alternating, `msgctl bench --vs-raw --rounds {rounds} --json`; memory:// {} runs of msg alone), ± half the spread (max - min) of the rounds; oslo.messaging 18.3.1 one run of `bench/python/oslo_bench.py` (threads: 1 or 32 client threads as its arguments say; the server and listeners use oslo's 64 executor threads). \
Casts show the confirmed rate, then the rate at which the server handled them. \
A target (the issue's figures, measured earlier on this machine) is **met** when the measured rate is at least 90 % of it. \
Every JSON result: `{}`. Took {} s.",
            rounds.min(3),
            results_path
                .strip_prefix(&self.root)
                .unwrap_or(&results_path)
                .display(),
            started.elapsed().as_secs()
        );
        let table_path = out_dir.join("table.md");
        fs::write(&table_path, &doc)?;
        println!("{doc}");
        eprintln!("xtask bench: wrote {}", table_path.display());
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_and_verdicts() {
        let c = Cell {
            rate: 3_512.4,
            spread: 0.1,
            handled_rate: Some(3_000.0),
            note: None,
        };
        assert_eq!(c.show(), "3,512/s ±5 % (handled 3,000/s)");
        assert_eq!(verdict(&c, Some(3_600.0)), "3,600/s: **met** (98 %)");
        assert_eq!(verdict(&c, Some(27_000.0)), "27,000/s: not met (13 %)");
        assert_eq!(verdict(&c, None), "-");
        let m = Cell::missing("failed: x");
        assert_eq!(m.show(), "failed: x");
        assert_eq!(verdict(&m, Some(10.0)), "10/s (not measured)");
        assert_eq!(ratio(&c, &m), "-");
        assert_eq!(rate(212_000.0), "212 k/s");
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert!((spread(&[90.0, 100.0, 110.0]) - 0.2).abs() < 1e-12);
    }

    #[test]
    fn the_matrix_is_bounded() {
        for quick in [true, false] {
            let rows = matrix(quick);
            assert_eq!(rows.len(), 6);
            assert!(rows.iter().all(|r| r.count <= 20_000));
        }
    }
}
