//! `msgctl bench`: end-to-end rates and latencies of msg, and of the raw client under it
//! (lapin, async-nats) doing the same work the fastest way it allows.
//!
//! A run is one side (ours or raw) doing one pattern once, with names of its own (exchange,
//! topic, queues, streams), deleted at its end. `--vs-raw` alternates the sides round by
//! round (ours first in even rounds, raw first in odd ones) and reports the medians.

mod ours;
mod progress;
mod raw_amqp;
mod raw_nats;
mod rss;
mod stats;

use std::future::Future;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::cli::{BenchArgs, BenchPattern, BenchPhase, Global};
use crate::cmd::stdout_error;
use crate::errors::{CliError, Phase, classify};
use crate::output;

use progress::{Counter, Watch};
use rss::RssFigures;
use stats::{Latencies, human_ms, human_rate, median, ratio, spread, thousands};

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// RPC calls answered by a server.
    Call,
    /// Casts (each confirmed), consumed by a server.
    Cast,
    /// Notifications sent with a confirm window.
    Publish,
    /// A preloaded backlog of notifications drained by a listener.
    Consume,
}

impl Work {
    fn pattern(self) -> &'static str {
        match self {
            Work::Call => "rpc",
            Work::Cast => "cast",
            Work::Publish | Work::Consume => "notify",
        }
    }

    fn phase(self) -> &'static str {
        match self {
            Work::Call => "call",
            Work::Cast => "cast",
            Work::Publish => "publish",
            Work::Consume => "consume",
        }
    }

    /// What one unit is called, plural.
    fn units(self) -> &'static str {
        match self {
            Work::Call => "calls",
            Work::Cast => "casts",
            Work::Publish | Work::Consume => "notifications",
        }
    }

    fn default_concurrency(self) -> u64 {
        match self {
            Work::Call => 1,
            Work::Cast | Work::Publish => 100,
            Work::Consume => 64,
        }
    }
}

/// Which raw client a URL's scheme means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawClient {
    /// lapin, for rabbit:// and amqp://.
    Lapin,
    /// async-nats, for nats://.
    AsyncNats,
}

impl RawClient {
    /// The raw client for a scheme, or why there is none (a usage error).
    pub fn for_scheme(scheme: &str) -> Result<Self, CliError> {
        match scheme {
            "rabbit" | "amqp" => Ok(RawClient::Lapin),
            "nats" => Ok(RawClient::AsyncNats),
            "memory" => Err(CliError::usage(
                "--raw and --vs-raw need a broker: memory:// is msg's own in-process broker and \
                 has no raw client to compare with (use rabbit:// or nats://)",
            )),
            "amqps" | "tls" => Err(CliError::usage(format!(
                "--raw and --vs-raw run on plain {}:// on loopback only, not {scheme}://",
                if scheme == "tls" { "nats" } else { "rabbit" }
            ))),
            other => Err(CliError::usage(format!(
                "--raw and --vs-raw know rabbit://, amqp:// and nats://, not {other}://"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            RawClient::Lapin => "lapin",
            RawClient::AsyncNats => "async-nats",
        }
    }
}

/// Everything a run needs, checked before anything connects.
#[derive(Debug, Clone)]
pub struct Spec {
    pub work: Work,
    pub count: u64,
    pub concurrency: usize,
    pub payload_bytes: usize,
    pub prefetch: u16,
    pub batch_size: Option<usize>,
    /// `--raw-ack-every`: how many deliveries the raw consumers settle with one ack.
    pub raw_ack_every: Option<u64>,
    /// The global options: the URL (and `--exchange`, used instead of a per-run exchange).
    pub global: Global,
    pub url: msg::TransportUrl,
    pub watch: Watch,
}

impl Spec {
    /// The payload: a JSON string of `payload_bytes` bytes.
    pub fn payload(&self) -> Value {
        Value::String("x".repeat(self.payload_bytes))
    }

    /// Acks are batched (`multiple`, JetStream's ack policy `all`) every this many
    /// deliveries by the raw consumers: `--raw-ack-every`, else 50; never more than half the
    /// prefetch (the broker must never run out of credit).
    pub fn ack_every(&self) -> u64 {
        let most = (u64::from(self.prefetch) / 2).max(1);
        self.raw_ack_every.unwrap_or(50).clamp(1, most)
    }
}

/// Reads and checks the arguments (usage errors exit 2, before connecting).
pub fn spec(global: &Global, args: &BenchArgs, stderr_is_terminal: bool) -> Result<Spec, CliError> {
    let work = match (args.pattern, args.phase) {
        (BenchPattern::Rpc, None) => Work::Call,
        (BenchPattern::Cast, None) => Work::Cast,
        (BenchPattern::Notify, None | Some(BenchPhase::Publish)) => Work::Publish,
        (BenchPattern::Notify, Some(BenchPhase::Consume)) => Work::Consume,
        (p, Some(_)) => {
            return Err(CliError::usage(format!(
                "--phase is for `bench notify`, not `bench {}`",
                match p {
                    BenchPattern::Rpc => "rpc",
                    _ => "cast",
                }
            )));
        }
    };
    if args.batch_size.is_some() && work != Work::Consume {
        return Err(CliError::usage(
            "--batch-size is for `bench notify --phase consume`",
        ));
    }
    if args.stall_timeout.is_zero() {
        return Err(CliError::usage("--stall-timeout must be more than 0"));
    }
    let url: msg::TransportUrl = global
        .url
        .parse()
        .map_err(|e| classify(&e, Phase::Connect))?;
    if args.raw || args.vs_raw {
        RawClient::for_scheme(url.scheme())?;
    }
    let concurrency = args
        .concurrency
        .unwrap_or_else(|| work.default_concurrency());
    let prefetch = args.prefetch.unwrap_or(concurrency);
    Ok(Spec {
        work,
        count: args.count,
        concurrency: usize::try_from(concurrency).unwrap_or(usize::MAX),
        payload_bytes: usize::try_from(args.payload_bytes).unwrap_or(usize::MAX),
        prefetch: u16::try_from(prefetch).unwrap_or(u16::MAX),
        batch_size: args
            .batch_size
            .map(|b| usize::try_from(b).unwrap_or(usize::MAX)),
        raw_ack_every: args.raw_ack_every,
        global: global.clone(),
        url,
        watch: Watch {
            bar: stderr_is_terminal,
            stall: args.stall_timeout,
            rss: rss::RssLog::default(),
        },
    })
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// From the first message to the last one done (confirmed, answered, handled).
    pub seconds: f64,
    pub latencies: Latencies,
    /// For casts: from the first cast until the server handled the last one.
    pub handled_seconds: Option<f64>,
}

/// One run, as printed (the JSON object of CLI.md, and a few more fields).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub pattern: &'static str,
    pub phase: &'static str,
    pub url_scheme: String,
    pub raw: bool,
    pub count: u64,
    pub concurrency: u64,
    pub payload_bytes: u64,
    pub seconds: f64,
    pub rate: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The client: `msg`, `lapin` or `async-nats`.
    pub client: &'static str,
    pub prefetch: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u64>,
    /// Casts: seconds until the server handled every cast, and that rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handled_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handled_rate: Option<f64>,
    /// The process's resident set over the timed part (KiB; with `--vs-raw`, of the round
    /// that grew most).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss: Option<RssFigures>,
}

impl Report {
    fn new(spec: &Spec, raw: Option<RawClient>, m: &Measured, rss: Option<RssFigures>) -> Self {
        let p = m.latencies.percentiles();
        Report {
            pattern: spec.work.pattern(),
            phase: spec.work.phase(),
            url_scheme: spec.url.scheme().to_string(),
            raw: raw.is_some(),
            count: spec.count,
            concurrency: spec.concurrency as u64,
            payload_bytes: spec.payload_bytes as u64,
            seconds: m.seconds,
            rate: stats::rate(spec.count, m.seconds),
            p50_ms: p.p50,
            p90_ms: p.p90,
            p99_ms: p.p99,
            max_ms: p.max,
            client: raw.map_or("msg", RawClient::name),
            prefetch: u64::from(spec.prefetch),
            batch_size: spec.batch_size.filter(|_| raw.is_none()).map(|b| b as u64),
            handled_seconds: m.handled_seconds,
            handled_rate: m.handled_seconds.map(|s| stats::rate(spec.count, s)),
            rss,
        }
    }
}

/// One side of `--vs-raw`: the medians of its rounds, their spread and every round's rate.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Side {
    #[serde(flatten)]
    pub median: Report,
    pub spread: f64,
    pub rates: Vec<f64>,
}

impl Side {
    /// The medians of some rounds (at least one) of one side.
    pub fn of(rounds: &[Report]) -> Option<Self> {
        let first = rounds.first()?;
        let med = |f: fn(&Report) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
        let rates: Vec<f64> = rounds.iter().map(|r| r.rate).collect();
        let handled = |f: fn(&Report) -> Option<f64>| {
            let v: Vec<f64> = rounds.iter().filter_map(f).collect();
            (!v.is_empty()).then(|| median(&v))
        };
        Some(Side {
            median: Report {
                seconds: med(|r| r.seconds),
                rate: median(&rates),
                p50_ms: med(|r| r.p50_ms),
                p90_ms: med(|r| r.p90_ms),
                p99_ms: med(|r| r.p99_ms),
                max_ms: med(|r| r.max_ms),
                handled_seconds: handled(|r| r.handled_seconds),
                handled_rate: handled(|r| r.handled_rate),
                rss: rounds
                    .iter()
                    .filter_map(|r| r.rss)
                    .max_by(|a, b| a.growth_pct.total_cmp(&b.growth_pct)),
                ..first.clone()
            },
            spread: spread(&rates),
            rates,
        })
    }
}

/// `--vs-raw`'s object.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VsRaw {
    pub ours: Side,
    pub raw: Side,
    /// ours.rate / raw.rate, of the medians.
    pub ratio: f64,
    pub rounds: u64,
}

pub async fn run(global: &Global, args: BenchArgs) -> Result<(), CliError> {
    let spec = spec(global, &args, std::io::stderr().is_terminal())?;
    let client = if args.raw || args.vs_raw {
        Some(RawClient::for_scheme(spec.url.scheme())?)
    } else {
        None
    };
    match (args.vs_raw, client) {
        (true, Some(raw)) => vs_raw(&spec, raw, args.rounds).await,
        _ => {
            let (m, rss) = run_once(&spec, client, "").await?;
            let report = Report::new(&spec, client, &m, rss);
            if global.json {
                output::json_line(&report).map_err(stdout_error)
            } else {
                print_single(&spec, &report)
            }
        }
    }
}

/// One run of one side, and the process's resident set over its timed part.
async fn run_once(
    spec: &Spec,
    raw: Option<RawClient>,
    round: &str,
) -> Result<(Measured, Option<RssFigures>), CliError> {
    let label = format!(
        "{} {}{round}",
        spec.work.phase(),
        raw.map_or("msg", RawClient::name)
    );
    let measured = match raw {
        None => ours::run(spec, &label).await,
        Some(RawClient::Lapin) => raw_amqp::run(spec, &label).await,
        Some(RawClient::AsyncNats) => raw_nats::run(spec, &label).await,
    };
    // the timed part is the phase watched under the run's own label
    let rss = spec.watch.rss.take(&label);
    measured.map(|m| (m, rss))
}

async fn vs_raw(spec: &Spec, raw: RawClient, rounds: u64) -> Result<(), CliError> {
    let mut ours_rounds = Vec::new();
    let mut raw_rounds = Vec::new();
    for r in 0..rounds {
        let tag = format!(" {}/{rounds}", r + 1);
        // alternate who goes first, so neither always runs on a warmer broker
        let order = if r.is_multiple_of(2) {
            [None, Some(raw)]
        } else {
            [Some(raw), None]
        };
        for side in order {
            let (m, rss) = run_once(spec, side, &tag).await?;
            let report = Report::new(spec, side, &m, rss);
            if !spec.global.json {
                output::note(&format!(
                    "round {}/{rounds}: {:<10} {:>12}",
                    r + 1,
                    report.client,
                    human_rate(report.rate)
                ));
            }
            match side {
                None => ours_rounds.push(report),
                Some(_) => raw_rounds.push(report),
            }
        }
    }
    let (Some(ours), Some(raw)) = (Side::of(&ours_rounds), Side::of(&raw_rounds)) else {
        return Err(CliError::failed("no round ran"));
    };
    let result = VsRaw {
        ratio: ratio(ours.median.rate, raw.median.rate),
        ours,
        raw,
        rounds,
    };
    if spec.global.json {
        output::json_line(&result).map_err(stdout_error)
    } else {
        print_vs(spec, &result)
    }
}

fn headline(spec: &Spec, who: &str) -> String {
    let what = match spec.work {
        Work::Call => "in flight",
        Work::Cast | Work::Publish => "awaiting confirms",
        Work::Consume => "handled at once",
    };
    let batch = match spec.batch_size {
        Some(b) if spec.work == Work::Consume => format!(", batches of {b}"),
        _ => String::new(),
    };
    format!(
        "bench {} {} on {}:// ({who}): {} {}, {} {what}, {}-byte payload, prefetch {}{batch}",
        spec.work.pattern(),
        spec.work.phase(),
        spec.url.scheme(),
        thousands(spec.count),
        spec.work.units(),
        spec.concurrency,
        spec.payload_bytes,
        spec.prefetch,
    )
}

fn latency_line(r: &Report) -> String {
    format!(
        "p50 {}, p90 {}, p99 {}, max {}",
        human_ms(r.p50_ms),
        human_ms(r.p90_ms),
        human_ms(r.p99_ms),
        human_ms(r.max_ms)
    )
}

fn rss_line(r: &RssFigures) -> String {
    let mib = |kib: u64| kib as f64 / 1024.0;
    format!(
        "  resident set: start {:.1} MiB, warm (a tenth done) {:.1} MiB, peak {:.1} MiB, end \
         {:.1} MiB: {:+.1} % from warm to peak",
        mib(r.start_kib),
        mib(r.warm_kib),
        mib(r.peak_kib),
        mib(r.end_kib),
        r.growth_pct
    )
}

fn print_single(spec: &Spec, r: &Report) -> Result<(), CliError> {
    let mut lines = vec![
        headline(spec, r.client),
        format!(
            "  {} in {:.3} s: {}",
            spec.work.units(),
            r.seconds,
            human_rate(r.rate)
        ),
        format!(
            "  {}: {}",
            if spec.work == Work::Consume {
                "interval between notifications handled"
            } else {
                "latency"
            },
            latency_line(r)
        ),
    ];
    if let (Some(s), Some(rate)) = (r.handled_seconds, r.handled_rate) {
        lines.push(format!(
            "  handled by the server: all {} in {s:.3} s: {}",
            thousands(r.count),
            human_rate(rate)
        ));
    }
    if let Some(rss) = &r.rss {
        lines.push(rss_line(rss));
    }
    for l in lines {
        output::line(&l).map_err(stdout_error)?;
    }
    Ok(())
}

fn print_vs(spec: &Spec, v: &VsRaw) -> Result<(), CliError> {
    let mut lines = vec![
        headline(spec, &format!("msg vs {}", v.raw.median.client)),
        format!(
            "  medians of {} rounds each{}:",
            v.rounds,
            if spec.work == Work::Consume {
                " (percentiles: interval between notifications handled)"
            } else {
                ""
            }
        ),
    ];
    for side in [&v.ours, &v.raw] {
        let r = &side.median;
        let handled = match r.handled_rate {
            Some(h) => format!("; server handled {}", human_rate(h)),
            None => String::new(),
        };
        lines.push(format!(
            "  {:<10} {:>12} (spread {:.1} %)  {}{handled}",
            r.client,
            human_rate(r.rate),
            side.spread * 100.0,
            latency_line(r)
        ));
    }
    lines.push(format!(
        "  ratio msg/{}: {:.2}",
        v.raw.median.client, v.ratio
    ));
    for l in lines {
        output::line(&l).map_err(stdout_error)?;
    }
    Ok(())
}

/// Unique names of one run.
#[derive(Debug, Clone)]
pub struct Names {
    /// The exchange (`--exchange`, else one of this run's own).
    pub exchange: String,
    /// Whether the exchange is this run's own (and is deleted at its end).
    pub own_exchange: bool,
    pub topic: String,
    pub id: String,
}

/// The server name of the RPC server.
pub const SERVER: &str = "bench";
/// The event type of the notifications.
pub const EVENT_TYPE: &str = "msgbench.event";
/// The publisher id of the notifications.
pub const PUBLISHER_ID: &str = "msgbench";
/// How long one call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long shutting a server or listener down may take.
pub const GRACE: Duration = Duration::from_secs(5);
/// The confirm window of the untimed preloading before `consume`.
pub const PRELOAD_WINDOW: usize = 1000;

impl Names {
    pub fn new(global: &Global) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let (exchange, own_exchange) = match &global.exchange {
            Some(e) => (e.clone(), false),
            None => (format!("msgbench_{id}"), true),
        };
        Names {
            exchange,
            own_exchange,
            topic: format!("msgbench_{id}"),
            id,
        }
    }
}

/// Runs `count` operations with at most `concurrency` in flight, each on a task of its own
/// (`op(i)` makes the i-th; RPC calls, on both sides); records each one's latency in
/// `latencies` and counts it in `done`. The first failure stops the run and is returned.
pub async fn in_flight<F, Fut>(
    count: u64,
    concurrency: usize,
    done: &Counter,
    latencies: &Latencies,
    mut op: F,
) -> Result<(), CliError>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<(), CliError>> + Send + 'static,
{
    let concurrency = concurrency.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(concurrency));
    let failure: Arc<Mutex<Option<CliError>>> = Arc::default();
    let first_failure =
        |f: &Mutex<Option<CliError>>| f.lock().unwrap_or_else(|p| p.into_inner()).take();
    for i in 0..count {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        if let Some(e) = first_failure(&failure) {
            return Err(e);
        }
        let work = op(i);
        let (done, latencies, failure) = (done.clone(), latencies.clone(), failure.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            match work.await {
                Ok(()) => {
                    latencies.since(started);
                    done.add(1);
                }
                Err(e) => {
                    failure
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(e);
                }
            }
            drop(slot);
        });
    }
    // every slot back: every operation ended
    let all = u32::try_from(concurrency).unwrap_or(u32::MAX);
    let _all = slots.acquire_many(all).await;
    match first_failure(&failure) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Runs `count` operations with at most `concurrency` in flight, all in the calling task (a
/// window of futures, as the raw publishers keep their unconfirmed publishes); records each
/// one's latency (from its first poll) in `latencies` and counts it in `done`. The first
/// failure stops the run and is returned.
pub async fn in_window<F, Fut>(
    count: u64,
    concurrency: usize,
    done: &Counter,
    latencies: &Latencies,
    mut op: F,
) -> Result<(), CliError>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<(), CliError>>,
{
    let concurrency = concurrency.max(1);
    let mut pending = FuturesUnordered::new();
    let settle = |r: Result<(), CliError>| {
        r?;
        done.add(1);
        Ok::<(), CliError>(())
    };
    for i in 0..count {
        while pending.len() >= concurrency {
            if let Some(r) = pending.next().await {
                settle(r)?;
            }
        }
        let work = op(i);
        pending.push(async move {
            let started = Instant::now();
            let r = work.await;
            if r.is_ok() {
                latencies.since(started);
            }
            r
        });
        // starts the new one, and takes what is done
        while let Some(Some(r)) = pending.next().now_or_never() {
            settle(r)?;
        }
    }
    while let Some(r) = pending.next().await {
        settle(r)?;
    }
    Ok(())
}

/// Waits until `counter` reaches `target` (polled every millisecond).
pub async fn reached(counter: &Counter, target: u64) -> Result<(), CliError> {
    while counter.get() < target {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// Seconds since `start`.
pub fn seconds_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Spec, CliError> {
        let mut argv = vec!["msgctl"];
        argv.extend_from_slice(args);
        let cli =
            crate::cli::Cli::try_parse_from(argv).map_err(|e| CliError::usage(e.to_string()))?;
        match cli.command {
            crate::cli::Command::Bench(b) => spec(&cli.global, &b, false),
            _ => panic!("not bench"),
        }
    }

    #[test]
    fn defaults_per_pattern() {
        let s = parse(&["bench", "rpc"]).unwrap();
        assert_eq!(
            (s.work, s.count, s.concurrency, s.payload_bytes, s.prefetch),
            (Work::Call, 10_000, 1, 100, 1)
        );
        let s = parse(&["bench", "cast"]).unwrap();
        assert_eq!((s.work, s.concurrency, s.prefetch), (Work::Cast, 100, 100));
        let s = parse(&["bench", "notify"]).unwrap();
        assert_eq!(s.work, Work::Publish);
        let s = parse(&[
            "bench",
            "notify",
            "--phase",
            "consume",
            "--prefetch",
            "500",
            "--batch-size",
            "100",
        ])
        .unwrap();
        assert_eq!(
            (s.work, s.concurrency, s.prefetch, s.batch_size),
            (Work::Consume, 64, 500, Some(100))
        );
        assert_eq!(s.ack_every(), 50);
        assert_eq!(s.payload().as_str().map(str::len), Some(100));
        assert_eq!(s.watch.stall, Duration::from_secs(60));
        let s = parse(&[
            "bench",
            "rpc",
            "--concurrency",
            "32",
            "--payload-bytes",
            "0",
        ])
        .unwrap();
        assert_eq!((s.concurrency, s.prefetch, s.ack_every()), (32, 32, 16));
        assert_eq!(s.payload(), Value::String(String::new()));
        let s = parse(&["bench", "rpc", "--prefetch", "1"]).unwrap();
        assert_eq!(s.ack_every(), 1);
        let consume = |every: &str| {
            parse(&[
                "bench",
                "notify",
                "--phase",
                "consume",
                "--prefetch",
                "1000",
                "--raw-ack-every",
                every,
            ])
            .unwrap()
            .ack_every()
        };
        assert_eq!(consume("1"), 1);
        assert_eq!(consume("100"), 100);
        // never past half the prefetch: the broker would stop delivering
        assert_eq!(consume("5000"), 500);
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for args in [
            &["bench", "rpc", "--phase", "publish"][..],
            &["bench", "cast", "--phase", "consume"],
            &["bench", "notify", "--batch-size", "10"],
            &["bench", "rpc", "--raw"],
            &["bench", "rpc", "--vs-raw"],
            &["--url", "memory://x", "bench", "notify", "--raw"],
            &["--url", "amqps://h/", "bench", "rpc", "--raw"],
            &["--url", "bogus url", "bench", "rpc"],
            &["bench", "rpc", "--count", "0"],
            &["bench", "rpc", "--concurrency", "0"],
            &["bench", "rpc", "--concurrency", "70000"],
            &["bench", "rpc", "--raw", "--vs-raw"],
            &["bench", "rpc", "--rounds", "3"],
            &["bench", "rpc", "--stall-timeout", "0"],
            &["bench", "kafka"],
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.code, 2, "{args:?}: {}", e.line);
        }
        let e = parse(&["bench", "rpc", "--raw"]).unwrap_err();
        assert!(e.line.contains("memory://"), "{}", e.line);
        // the raw client follows the scheme
        assert!(
            parse(&[
                "--url",
                "rabbit://guest:guest@127.0.0.1:5672/",
                "bench",
                "rpc",
                "--vs-raw",
                "--rounds",
                "2"
            ])
            .is_ok()
        );
        assert!(parse(&["--url", "nats://127.0.0.1:4222", "bench", "cast", "--raw"]).is_ok());
        assert_eq!(RawClient::for_scheme("amqp"), Ok(RawClient::Lapin));
        assert_eq!(RawClient::for_scheme("nats"), Ok(RawClient::AsyncNats));
    }

    fn report(rate: f64, p50: f64) -> Report {
        Report {
            pattern: "rpc",
            phase: "call",
            url_scheme: "rabbit".into(),
            raw: false,
            count: 100,
            concurrency: 1,
            payload_bytes: 100,
            seconds: 100.0 / rate,
            rate,
            p50_ms: p50,
            p90_ms: p50 * 2.0,
            p99_ms: p50 * 3.0,
            max_ms: p50 * 4.0,
            client: "msg",
            prefetch: 1,
            batch_size: None,
            handled_seconds: None,
            handled_rate: None,
            rss: None,
        }
    }

    #[test]
    fn sides_take_medians() {
        assert_eq!(Side::of(&[]), None);
        let side = Side::of(&[report(100.0, 1.0), report(300.0, 3.0), report(200.0, 2.0)]).unwrap();
        assert_eq!(side.median.rate, 200.0);
        assert_eq!(side.median.p50_ms, 2.0);
        assert_eq!(side.median.max_ms, 8.0);
        assert_eq!(side.median.seconds, 0.5);
        assert_eq!(side.rates, vec![100.0, 300.0, 200.0]);
        assert!((side.spread - 1.0).abs() < 1e-12);
        let raw = Side::of(&[report(400.0, 1.0)]).unwrap();
        let v = VsRaw {
            ratio: ratio(side.median.rate, raw.median.rate),
            ours: side,
            raw,
            rounds: 3,
        };
        assert_eq!(v.ratio, 0.5);
        let json = serde_json::to_value(&v).unwrap();
        for key in [
            "pattern",
            "phase",
            "url_scheme",
            "raw",
            "count",
            "concurrency",
            "payload_bytes",
            "seconds",
            "rate",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "max_ms",
            "spread",
            "rates",
        ] {
            assert!(
                json["ours"].get(key).is_some(),
                "ours.{key} missing: {json}"
            );
            assert!(json["raw"].get(key).is_some(), "raw.{key} missing: {json}");
        }
        assert_eq!(json["ratio"], 0.5);
        assert_eq!(json["rounds"], 3);
        assert!(json["ours"].get("handled_rate").is_none());
    }

    #[tokio::test]
    async fn in_flight_bounds_concurrency_and_counts() {
        let done = Counter::default();
        let lat = Latencies::new();
        let now = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        in_flight(50, 4, &done, &lat, |_| {
            let (now, peak) = (now.clone(), peak.clone());
            async move {
                use std::sync::atomic::Ordering::SeqCst;
                let n = now.fetch_add(1, SeqCst) + 1;
                peak.fetch_max(n, SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                now.fetch_sub(1, SeqCst);
                Ok(())
            }
        })
        .await
        .unwrap();
        assert_eq!(done.get(), 50);
        assert_eq!(lat.len(), 50);
        assert!(peak.load(std::sync::atomic::Ordering::SeqCst) <= 4);
    }

    #[tokio::test]
    async fn in_flight_stops_at_the_first_failure() {
        let done = Counter::default();
        let e = in_flight(1000, 2, &done, &Latencies::new(), |i| async move {
            if i == 10 {
                Err(CliError::failed("boom"))
            } else {
                Ok(())
            }
        })
        .await
        .unwrap_err();
        assert_eq!(e.line, "boom");
        assert!(done.get() < 1000);
    }
}
