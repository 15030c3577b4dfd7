//! The command line, as `/work/shared/CLI.md` specifies it: a contract scripts depend on.
//! Options may be added; none may be renamed.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use msg::{Executor, Priority};

/// The transport when neither `--url` nor `MSG_TRANSPORT_URL` names one.
pub const DEFAULT_URL: &str = "memory://";

#[derive(Debug, Parser)]
#[command(
    name = "msgctl",
    version,
    about = "Poke a msg / oslo.messaging bus: call and cast RPC methods, send and tail \
             notifications, run a demo RPC server, or watch a demo of everything.",
    long_about = "Poke a msg / oslo.messaging bus: call and cast RPC methods, send and tail \
                  notifications, run a demo RPC server, or watch a demo of everything.\n\n\
                  Exit status: 0 success; 1 a remote error, a timeout, or nobody answered; \
                  2 bad usage or bad input (arguments, JSON, URL, regex, target); 3 the broker \
                  can't be reached or refuses us. Errors go to stderr as one line.\n\n\
                  Logging goes to stderr; its level comes from RUST_LOG (default `warn`).",
    after_help = "Start with `msgctl demo`: it shows each concept in one process."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Transport URL: `memory://[NAME]`, rabbit://user:pass@host:port/vhost, nats://host:port,
    /// ... (the schemes this build has drivers for). Passwords are never printed.
    #[arg(
        long,
        global = true,
        env = "MSG_TRANSPORT_URL",
        hide_env_values = true,
        default_value = DEFAULT_URL,
        value_name = "URL",
        help_heading = "Global options"
    )]
    pub url: String,

    /// The exchange of every target (RPC and notifications); default: the driver's control
    /// exchange (`openstack`, or the URL's `control_exchange` option).
    #[arg(
        long,
        global = true,
        value_name = "EX",
        help_heading = "Global options"
    )]
    pub exchange: Option<String>,

    /// Machine-readable output: JSON objects on stdout, one per line.
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,

    /// An `[oslo_messaging_tracing]` option, by oslo's name (repeatable):
    /// `--tracing tracing_enabled=true --tracing otel_exporter_otlp_endpoint=http://127.0.0.1:4318`
    /// exports msg's spans over OTLP (keys: tracing_enabled, tracing_service_name,
    /// otel_exporter_otlp_endpoint, otlp_protocol, insecure; needs the `otel` feature, on by
    /// default).
    #[arg(
        long,
        global = true,
        value_name = "KEY=VALUE",
        help_heading = "Global options"
    )]
    pub tracing: Vec<String>,
}

/// The oslo.config files of a Python service to take options from (see `config.rs`).
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// An oslo.config file to read, as a Python service's `--config-file` (repeatable; later
    /// files win): `[DEFAULT] transport_url` is the URL when neither --url nor
    /// MSG_TRANSPORT_URL gives one, and the driver's section (`[oslo_messaging_rabbit]`) adds
    /// options under the URL's query (notify and listen: the notifications' `transport_url`);
    /// `control_exchange`, `rpc_response_timeout` (call's --timeout),
    /// `executor_thread_pool_size` (serve's --executor), `[oslo_messaging_notifications]`
    /// `topics` (--topic) and `driver` (notify's --driver) are defaults.
    #[arg(
        long = "config-file",
        global = true,
        value_name = "PATH",
        help_heading = "Global options"
    )]
    pub config_file: Vec<std::path::PathBuf>,

    /// A directory whose `*.conf` files are read in name order, after the --config-file
    /// options before it, as oslo.config's `--config-dir` (repeatable).
    #[arg(
        long = "config-dir",
        global = true,
        value_name = "DIR",
        help_heading = "Global options"
    )]
    pub config_dir: Vec<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run, in one process, an RPC server and client and a notifier with listeners, and
    /// explain what each step shows.
    #[command(
        long_about = "Run, in one process, a tour of msg: two RPC servers and a client \
        (call, cast, fanout, server-directed call, a remote error, a versioned namespace and \
        an UnsupportedVersion, a timeout), then a notifier with two listener pools (each gets \
        every notification), a publisher filter, a batch listener and a requeue.\n\n\
        Runs on memory:// unless --url names a broker; topics, pools and queues get unique \
        names per run, so it is safe on a shared broker. Each step prints what it did, what \
        happened and how long it took, then what it shows. Exits 0 when every step behaved, \
        1 (with the reason) when one didn't. With --json each step is a JSON line."
    )]
    Demo(DemoArgs),

    /// Serve the demo RPC endpoint on a topic until SIGINT or SIGTERM.
    #[command(
        long_about = "Serve the demo RPC endpoint on a topic until SIGINT or SIGTERM, \
        then stop taking requests and finish those in flight (30 s grace); exits 0.\n\n\
        Methods (keyword arguments as a JSON object):\n  \
        echo(value)      returns value\n  \
        add(a, b)        returns a + b (integers stay integers, otherwise floats)\n  \
        fail(message)    raises a remote error of class ValueError, module builtins \
        (Python's, so oslo.messaging peers see a familiar exception), with this message\n  \
        sleep(seconds)   sleeps, then returns seconds (exercises call-monitor heartbeats)\n  \
        context()        returns the request context as received\n  \
        record(key)      counts one delivery of key (for casts and fanout); returns the count\n  \
        recorded(key)    returns how many deliveries of key were counted (0 if none)\n\
        oslo's `oslo_rpc_server_ping` answers \"pong\" as well.\n\n\
        The endpoint is served in no namespace at version 1.0; with --namespace and/or \
        --version the same methods are also served in namespace N at version V (default \
        1.0), with the same counters.\n\n\
        When ready it prints `msgctl: serving topic T as server S on URL` to stderr (with \
        --json, {\"event\":\"ready\",...} on stdout), so scripts can wait for it."
    )]
    Serve(ServeArgs),

    /// Call an RPC method and print its result as JSON.
    #[command(
        long_about = "Call an RPC method and print its result as compact JSON on \
        stdout. A remote error prints its class, module and message to stderr and exits 1; \
        so do a timeout and a call nobody answers."
    )]
    Call(CallArgs),

    /// Cast an RPC method: send it, nothing comes back.
    #[command(
        long_about = "Cast an RPC method: send it; nothing comes back. Prints nothing \
        on success (with --json: {\"sent\":true}). With --fanout every server of the topic \
        gets it."
    )]
    Cast(CastArgs),

    /// Send notifications, each confirmed by the broker, then print a summary.
    #[command(
        long_about = "Send N notifications (default 1), each awaited until the broker \
        confirms it; a failed send is counted and the rest go on. Ends with a summary on \
        stderr (`sent N, failed F in S s`), or with --json one object on stdout: \
        {\"sent\",\"failed\",\"seconds\"}, `sent` counting only confirmed sends. Exits 1 if \
        any send failed."
    )]
    Notify(NotifyArgs),

    /// Listen for notifications and print each as a JSON line.
    #[command(long_about = "Listen for notifications on every --topic (default \
        `notifications`) and print one compact JSON object per notification and line, \
        flushed at once: {\"priority\",\"publisher_id\",\"event_type\",\"payload\",\
        \"message_id\",\"timestamp\",\"ctxt\"} (priority in oslo's upper-case spelling, e.g. \
        \"INFO\").\n\n\
        Only notifications answered Handled are printed, and each is printed before it is \
        acknowledged: notifications answered Requeue (--requeue-event-type) are not printed; \
        they go back to the broker (with --batch-size, only they: the rest of their batch is \
        printed) and are printed when a later delivery is handled (by \
        another listener of the pool, or by a later run). Exits 0 after --count \
        notifications, when --timeout passes, or on SIGINT/SIGTERM, after stopping and \
        finishing what is in flight; notifications that arrive past --count are requeued \
        when the driver can requeue (otherwise printed: nothing is acked unprinted). With \
        --batch-size a batch is printed whole, so --count may be passed by the rest of the \
        last batch.")]
    Listen(ListenArgs),

    /// Benchmark RPC calls, casts or notifications end to end, against the raw client too.
    #[command(
        long_about = "Benchmark a pattern end to end on --url, in one process: `rpc` \
        (--count calls with --concurrency in flight, answered by an RPC server with an echo \
        endpoint), `cast` (casts with --concurrency in flight, each confirmed by the broker, \
        then waits until the server handled them all), `notify --phase publish` \
        (notifications with a confirm window of --concurrency) or `notify --phase consume` \
        (a backlog of --count notifications is preloaded untimed, then a listener drains \
        it). Each message carries a JSON string of --payload-bytes.\n\n\
        Prints the rate and latency percentiles (p50, p90, p99, max) from an HDR histogram \
        (for `consume`: of the interval between successive notifications handled). A \
        progress bar is drawn on stderr when it is a terminal.\n\n\
        --raw runs the same pattern on the raw client instead (lapin for rabbit://, \
        async-nats for nats://), written the fastest way it allows with the same bodies \
        (oslo envelopes), payload, concurrency, confirm window and prefetch; --vs-raw \
        alternates ours and raw for --rounds rounds and prints both medians, their spread \
        and the ratio ours/raw. memory:// has no raw client: --raw there is a usage \
        error.\n\n\
        Queues, exchanges and streams get unique names per run and are deleted at its end. \
        A run that makes no progress for --stall-timeout seconds fails (exit 1).\n\n\
        With --json: one object {\"pattern\",\"phase\",\"url_scheme\",\"raw\",\"count\",\
        \"concurrency\",\"payload_bytes\",\"seconds\",\"rate\",\"p50_ms\",\"p90_ms\",\"p99_ms\",\
        \"max_ms\",...}; with --vs-raw {\"ours\":{...},\"raw\":{...},\"ratio\",\"rounds\"}, \
        each side holding the medians of its rounds, their \"spread\" ((max-min)/median of \
        the rates) and the \"rates\" of every round."
    )]
    Bench(BenchArgs),
}

/// `msgctl demo` takes only the global options.
#[derive(Debug, Args)]
pub struct DemoArgs {}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The topic to serve.
    #[arg(long, value_name = "T")]
    pub topic: String,

    /// This server's name (server-directed calls and casts use it); default: the host name.
    #[arg(long, value_name = "S")]
    pub server: Option<String>,

    /// Also serve the methods in this namespace.
    #[arg(long, value_name = "N")]
    pub namespace: Option<String>,

    /// The version (major.minor) of the namespaced endpoint (default 1.0).
    #[arg(long, value_name = "V")]
    pub version: Option<String>,

    /// How requests run: `sequential` (one at a time, in order) or `pool:N` (up to N at
    /// once); also `blocking:N`.
    #[arg(long, default_value = "pool:64", value_name = "sequential|pool:N")]
    pub executor: Executor,

    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// Where `serve` and `listen` publish metrics (`docs/operations.md` lists them).
#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics over HTTP on HOST:PORT (scrape http://HOST:PORT/metrics).
    #[arg(long, value_name = "HOST:PORT", value_parser = crate::metrics::parse_addr, help_heading = "Metrics")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Send oslo.messaging's RPC metrics to oslo.metrics's unix socket at PATH, as Python
    /// services do (oslo's default: /var/tmp/metrics_collector.sock).
    #[arg(long, value_name = "PATH", help_heading = "Metrics")]
    pub oslo_metrics_socket: Option<std::path::PathBuf>,

    /// The `process` label of what goes to oslo.metrics (oslo's metrics_process_name).
    #[arg(
        long,
        value_name = "NAME",
        requires = "oslo_metrics_socket",
        help_heading = "Metrics"
    )]
    pub metrics_process_name: Option<String>,
}

/// The target and message of a call or a cast.
#[derive(Debug, Args)]
pub struct RpcArgs {
    /// The topic to send to.
    #[arg(long, value_name = "T")]
    pub topic: String,

    /// Send to this server only (server-directed).
    #[arg(long, value_name = "S")]
    pub server: Option<String>,

    /// The namespace of the method.
    #[arg(long, value_name = "N")]
    pub namespace: Option<String>,

    /// The version (major.minor) the request asks for (default: 1.0 on the server side).
    #[arg(long, value_name = "V")]
    pub version: Option<String>,

    /// The request context, a JSON object (e.g. '{"request_id": "req-1"}').
    #[arg(long, value_name = "JSON-OBJECT")]
    pub context: Option<String>,

    /// The method to invoke.
    #[arg(value_name = "METHOD")]
    pub method: String,

    /// The keyword arguments, a JSON object (e.g. '{"a": 2, "b": 3}'); default {}.
    #[arg(value_name = "ARGS-JSON-OBJECT")]
    pub args: Option<String>,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    #[command(flatten)]
    pub rpc: RpcArgs,

    /// Seconds to wait for the reply (fractions allowed, e.g. 0.5); by default the
    /// transport's rpc_response_timeout (60 s unless a config file sets it).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub timeout: Option<Duration>,

    /// Seconds without a heartbeat from the server after which the call fails; the server
    /// heartbeats every half of it while the method runs.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub call_monitor_timeout: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct CastArgs {
    #[command(flatten)]
    pub rpc: RpcArgs,

    /// Send to every server of the topic.
    #[arg(long, conflicts_with = "server")]
    pub fanout: bool,
}

/// oslo's notify drivers that send through the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NotifyDriverName {
    /// The 2.0 envelope (oslo's default).
    Messagingv2,
    /// The 1.0 form: no envelope.
    Messaging,
}

impl NotifyDriverName {
    /// oslo's name.
    pub fn name(self) -> &'static str {
        match self {
            NotifyDriverName::Messagingv2 => "messagingv2",
            NotifyDriverName::Messaging => "messaging",
        }
    }
}

#[derive(Debug, Args)]
pub struct NotifyArgs {
    /// The topic to send to (repeat it for several: each notification goes to every one).
    #[arg(long = "topic", value_name = "T", default_value = "notifications")]
    pub topics: Vec<String>,

    /// audit, debug, info, warn (or warning), error, critical or sample; any case.
    #[arg(long, value_name = "P")]
    pub priority: Priority,

    /// Who sends (e.g. compute.host1).
    #[arg(long, value_name = "ID")]
    pub publisher_id: String,

    /// What happened (e.g. compute.instance.create.end).
    #[arg(long, value_name = "E")]
    pub event_type: String,

    /// The notify driver: messagingv2 (envelope 2.0) or messaging (1.0, no envelope).
    #[arg(long, value_enum, default_value = "messagingv2")]
    pub driver: NotifyDriverName,

    /// How many to send, one after the other.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub count: u64,

    /// The context, a JSON object (secrets such as auth_token are masked before sending).
    #[arg(long, value_name = "JSON-OBJECT")]
    pub context: Option<String>,

    /// The payload: any JSON value.
    #[arg(value_name = "PAYLOAD-JSON")]
    pub payload: String,
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// A topic to listen on (repeat it for several).
    #[arg(long = "topic", value_name = "T", default_value = "notifications")]
    pub topics: Vec<String>,

    /// Join this listener pool: each pool gets its own copy of every notification, shared
    /// among the pool's listeners. Without it: the topic's default queue.
    #[arg(long, value_name = "NAME")]
    pub pool: Option<String>,

    /// A priority to subscribe to (repeat it for several); default: all seven.
    #[arg(long = "priority", value_name = "P")]
    pub priorities: Vec<Priority>,

    /// Only notifications whose publisher_id matches this regex (anchored at the start, as
    /// Python's re.match).
    #[arg(long, value_name = "RE")]
    pub filter_publisher_id: Option<String>,

    /// Only notifications whose event_type matches this regex (anchored at the start).
    #[arg(long, value_name = "RE")]
    pub filter_event_type: Option<String>,

    /// Hand notifications over in batches of up to N (a batch listener).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: Option<u64>,

    /// Seconds a batch is collected at most before it is handed over partial (default 1).
    #[arg(long, value_name = "SECS", value_parser = parse_secs, requires = "batch_size")]
    pub batch_timeout: Option<Duration>,

    /// Answer Requeue for notifications whose event_type matches this regex (anchored at the
    /// start); they are not printed. With --batch-size only the matching notifications of a
    /// batch go back; the rest of it is printed. Turns allow_requeue on. With no other
    /// listener to take them, they come back again and again until this one exits.
    #[arg(long, value_name = "RE")]
    pub requeue_event_type: Option<String>,

    /// Exit after printing N notifications.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// Exit after this many seconds (fractions allowed).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub timeout: Option<Duration>,

    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// What `msgctl bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchPattern {
    /// RPC calls answered by a server.
    Rpc,
    /// RPC casts, consumed by a server.
    Cast,
    /// Notifications: sent (--phase publish) or drained by a listener (--phase consume).
    Notify,
}

/// The side of notifications `msgctl bench notify` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchPhase {
    /// Sending, with a confirm window of --concurrency.
    Publish,
    /// Draining a preloaded backlog with a listener.
    Consume,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// rpc, cast or notify.
    #[arg(value_enum, value_name = "PATTERN")]
    pub pattern: BenchPattern,

    /// For notify: publish (default) or consume.
    #[arg(long, value_enum)]
    pub phase: Option<BenchPhase>,

    /// How many calls, casts or notifications (at most 10,000,000).
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub count: u64,

    /// How many in flight: calls (1 = sequential), casts or notifications awaiting their
    /// confirm (the confirm window); for notify --phase consume the listener's executor
    /// pool. The server's executor is a pool of this size too. Default: 1 for rpc, 100 for
    /// cast and notify publish, 64 for notify consume.
    #[arg(long, value_name = "C", value_parser = clap::value_parser!(u64).range(1..=65_535))]
    pub concurrency: Option<u64>,

    /// The size of each message's payload: a JSON string of B bytes.
    #[arg(long, value_name = "B", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub payload_bytes: u64,

    /// The prefetch of the server or listener, and of the raw consumer; default: the
    /// executor's capacity (--concurrency), as msg's servers and listeners default to.
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(u64).range(1..=65_535))]
    pub prefetch: Option<u64>,

    /// notify --phase consume: drain with a batch listener, batches of N (the raw consumer
    /// already acks in batches).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch_size: Option<u64>,

    /// The raw consumers settle this many deliveries with one ack (`multiple`, JetStream's
    /// ack policy `all`); default 50, at most half the prefetch. `1` acks every delivery on
    /// its own, as msg's listeners do on NATS (a durable consumer shared by listeners can't
    /// ack for the others).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=65_535))]
    pub raw_ack_every: Option<u64>,

    /// Run the pattern on the raw client (lapin or async-nats) instead of msg.
    #[arg(long, conflicts_with = "vs_raw")]
    pub raw: bool,

    /// Alternate msg and the raw client for --rounds rounds; print medians and the ratio.
    #[arg(long)]
    pub vs_raw: bool,

    /// Rounds of each side with --vs-raw.
    #[arg(long, value_name = "R", default_value_t = 5, requires = "vs_raw",
          value_parser = clap::value_parser!(u64).range(1..=100))]
    pub rounds: u64,

    /// Seconds without progress after which a run fails (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub stall_timeout: Duration,
}

/// Seconds as a non-negative number, fractions allowed (`0.5`).
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!(
            "`{s}` is not a non-negative, finite number of seconds"
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{s}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_secs("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_secs("60"), Ok(Duration::from_secs(60)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("nan").is_err());
        assert!(parse_secs("inf").is_err());
        assert!(parse_secs("soon").is_err());
    }
}
