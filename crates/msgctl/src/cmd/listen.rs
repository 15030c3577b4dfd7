//! `msgctl listen`: print notifications as JSON lines.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use msg::notify::{
    BatchNotificationListener, BatchResult, NotificationEndpoint, NotificationFilter,
    NotificationListener, NotificationMessage, NotificationResult,
};
use msg::{Capability, Executor, Priority, Role, Target};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::Notify;

use crate::cli::{Global, ListenArgs};
use crate::cmd::rpc::close;
use crate::cmd::shutdown_signal;
use crate::errors::CliError;
use crate::input;
use crate::output;

/// How long handlers in flight may take to finish once the listener stops.
const GRACE: Duration = Duration::from_secs(30);
/// How many notifications the broker may hand over unacknowledged. Handlers run one at a
/// time (in order), but a notification answered Requeue goes back to the head of its queue:
/// with a prefetch of one it would come straight back and hold up everything behind it.
const PREFETCH: usize = 64;
/// The batch timeout when `--batch-size` comes without `--batch-timeout`.
const DEFAULT_BATCH_TIMEOUT: Duration = Duration::from_secs(1);

/// One printed notification, in the order of CLI.md.
#[derive(Serialize)]
struct Line<'a> {
    priority: &'static str,
    publisher_id: &'a str,
    event_type: &'a str,
    payload: &'a msg::Payload,
    message_id: &'a Value,
    timestamp: &'a Value,
    ctxt: &'a Map<String, Value>,
}

fn line(m: &NotificationMessage) -> Result<String, serde_json::Error> {
    serde_json::to_string(&Line {
        priority: m.priority.wire_name(),
        publisher_id: &m.publisher_id,
        event_type: &m.event_type,
        payload: &m.payload,
        message_id: m.metadata.get("message_id").unwrap_or(&Value::Null),
        timestamp: m.metadata.get("timestamp").unwrap_or(&Value::Null),
        ctxt: m.context.as_map(),
    })
}

/// Where printed lines go (stdout, flushed line by line; a capture in tests).
type WriteLine = Box<dyn Fn(&str) -> std::io::Result<()> + Send + Sync>;

/// Prints what handlers hand it, counts it, and says when `--count` is reached. A
/// notification is printed (and flushed) before its handler answers Handled, so nothing is
/// acknowledged unprinted.
struct Printer {
    write: WriteLine,
    state: Mutex<PrintState>,
    limit: Option<u64>,
    /// Whether answering Requeue gives the notification back (allow_requeue is on).
    can_requeue: bool,
    requeue: Option<NotificationFilter>,
    done: Notify,
}

#[derive(Default)]
struct PrintState {
    printed: u64,
    /// stdout is gone (a closed pipe): stop.
    broken: bool,
}

impl Printer {
    /// Prints one notification and answers for it.
    fn offer_one(&self, m: &NotificationMessage) -> NotificationResult {
        match self.offer(std::slice::from_ref(m)) {
            BatchResult::Handled => NotificationResult::Handled,
            BatchResult::Requeue | BatchResult::RequeueOnly(_) => NotificationResult::Requeue,
        }
    }

    /// Prints a group (one notification, or one batch of one priority) and answers for it:
    /// the notifications `--requeue-event-type` matches go back, one by one, and the others
    /// are printed.
    fn offer(&self, group: &[NotificationMessage]) -> BatchResult {
        let matched: Vec<bool> = group
            .iter()
            .map(|m| self.requeue.as_ref().is_some_and(|re| re.matches(m)))
            .collect();
        let back = |from: usize| -> Vec<usize> {
            (0..group.len())
                .filter(|&i| i >= from || matched.get(i) == Some(&true))
                .collect()
        };
        if !group.is_empty() && matched.iter().all(|m| *m) {
            return BatchResult::RequeueOnly(back(group.len()));
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let full = self.limit.is_some_and(|l| state.printed >= l);
        if (full || state.broken) && self.can_requeue {
            // past --count (or stdout gone): back to the broker, for someone else
            return BatchResult::Requeue;
        }
        if state.broken {
            return BatchResult::Handled;
        }
        for (i, (m, matched)) in group.iter().zip(&matched).enumerate() {
            if *matched {
                continue;
            }
            let written = line(m)
                .map_err(std::io::Error::other)
                .and_then(|l| (self.write)(&l));
            if let Err(e) = written {
                tracing::warn!(error = %e, "can't write to stdout: stopping");
                state.broken = true;
                self.done.notify_one();
                if !self.can_requeue {
                    return BatchResult::Handled;
                }
                // what is not printed goes back
                return BatchResult::RequeueOnly(back(i));
            }
            state.printed += 1;
        }
        if self.limit.is_some_and(|l| state.printed >= l) {
            self.done.notify_one();
        }
        let positions = back(group.len());
        if positions.is_empty() {
            BatchResult::Handled
        } else {
            BatchResult::RequeueOnly(positions)
        }
    }
}

/// Either kind of listener, to stop the same way.
enum Running {
    Single(NotificationListener),
    Batch(BatchNotificationListener),
}

impl Running {
    async fn shutdown(&self, grace: Duration) -> msg::Result<()> {
        match self {
            Running::Single(l) => l.shutdown(grace).await,
            Running::Batch(l) => l.shutdown(grace).await,
        }
    }
}

pub async fn run(global: &Global, args: ListenArgs) -> Result<(), CliError> {
    crate::metrics::install(&args.metrics)?;
    listen(global, args, Box::new(output::line)).await
}

async fn listen(global: &Global, args: ListenArgs, write: WriteLine) -> Result<(), CliError> {
    // read and check everything before connecting
    let targets: Vec<Target> = args
        .topics
        .iter()
        .map(|t| input::with_exchange(Target::topic(t), global))
        .collect();
    for t in &targets {
        t.validate(Role::NotificationListener)?;
    }
    let mut filter = NotificationFilter::new();
    if let Some(re) = &args.filter_publisher_id {
        filter = filter
            .publisher_id(re)
            .map_err(|e| flag_error("--filter-publisher-id", &e))?;
    }
    if let Some(re) = &args.filter_event_type {
        filter = filter
            .event_type(re)
            .map_err(|e| flag_error("--filter-event-type", &e))?;
    }
    let requeue = args
        .requeue_event_type
        .as_deref()
        .map(|re| NotificationFilter::new().event_type(re))
        .transpose()
        .map_err(|e| flag_error("--requeue-event-type", &e))?;
    let mut priorities = if args.priorities.is_empty() {
        Priority::ALL.to_vec()
    } else {
        args.priorities.clone()
    };
    priorities.sort_unstable();
    priorities.dedup();

    let transport = input::open_transport(global).await?;
    // Requeue also gives back what arrives past --count, when the driver can requeue.
    let allow_requeue = requeue.is_some()
        || (args.count.is_some() && transport.capabilities().contains(Capability::Requeue));
    let printer = Arc::new(Printer {
        write,
        state: Mutex::new(PrintState::default()),
        limit: args.count,
        can_requeue: allow_requeue,
        requeue,
        done: Notify::new(),
    });
    if args.count == Some(0) {
        printer.done.notify_one();
    }

    let mut endpoint = NotificationEndpoint::new().filter(filter);
    let signal = shutdown_signal()?;
    let started = match args.batch_size {
        None => {
            for p in &priorities {
                let printer = printer.clone();
                endpoint = endpoint.on(*p, move |m: NotificationMessage| {
                    let printer = printer.clone();
                    async move { printer.offer_one(&m) }
                });
            }
            let mut builder = NotificationListener::builder(transport.clone(), targets)
                .endpoint(endpoint)
                .allow_requeue(allow_requeue)
                .executor(Executor::Sequential)
                .prefetch(prefetch(PREFETCH));
            if let Some(pool) = &args.pool {
                builder = builder.pool(pool);
            }
            builder.start().await.map(Running::Single)
        }
        Some(size) => {
            for p in &priorities {
                let printer = printer.clone();
                endpoint = endpoint.on_batch(*p, move |ms: Vec<NotificationMessage>| {
                    let printer = printer.clone();
                    async move { printer.offer(&ms) }
                });
            }
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            let timeout = args.batch_timeout.unwrap_or(DEFAULT_BATCH_TIMEOUT);
            let mut builder =
                BatchNotificationListener::builder(transport.clone(), targets, size, timeout)
                    .endpoint(endpoint)
                    .allow_requeue(allow_requeue)
                    .executor(Executor::Sequential)
                    // an explicit prefetch caps a batch: never below its size
                    .prefetch(prefetch(size.max(PREFETCH)));
            if let Some(pool) = &args.pool {
                builder = builder.pool(pool);
            }
            builder.start().await.map(Running::Batch)
        }
    };
    let listener = match started {
        Ok(l) => l,
        Err(e) => {
            close(&transport).await;
            return Err(e.into());
        }
    };

    let timeout = async {
        match args.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let why = tokio::select! {
        () = printer.done.notified() => "count",
        () = timeout => "timeout",
        s = signal => s,
    };
    tracing::debug!(why, "stopping the listener");
    // stop, then let what is in flight finish (printed before it is acked)
    let result = listener.shutdown(GRACE).await;
    close(&transport).await;
    result?;
    Ok(())
}

fn prefetch(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn flag_error(flag: &str, e: &msg::Error) -> CliError {
    CliError::usage(format!("{flag}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use msg::notify::Notifier;
    use msg::{Context, Notification, Transport};

    fn global(url: &str) -> Global {
        Global {
            url: url.to_string(),
            exchange: None,
            json: false,
            tracing: Vec::new(),
        }
    }

    fn args() -> ListenArgs {
        ListenArgs {
            topics: vec!["notifications".into()],
            pool: None,
            priorities: Vec::new(),
            filter_publisher_id: None,
            filter_event_type: None,
            batch_size: None,
            batch_timeout: None,
            requeue_event_type: None,
            count: None,
            timeout: Some(Duration::from_millis(300)),
            metrics: crate::cli::MetricsArgs {
                metrics_addr: None,
                oslo_metrics_socket: None,
                metrics_process_name: None,
            },
        }
    }

    /// Runs `listen` and returns the event types it printed.
    async fn printed(url: &str, args: ListenArgs) -> Vec<String> {
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let capture = lines.clone();
        let write: WriteLine = Box::new(move |l: &str| {
            capture.lock().unwrap().push(l.to_string());
            Ok(())
        });
        listen(&global(url), args, write).await.unwrap();
        let lines = lines.lock().unwrap().clone();
        lines
            .iter()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["event_type"].as_str().unwrap().to_string()
            })
            .collect()
    }

    async fn send(url: &str, events: &[&str]) {
        let transport = Transport::open(url).await.unwrap();
        let notifier = Notifier::new(transport).publisher_id("test.host");
        for e in events {
            notifier
                .info(&Context::new(), e, serde_json::json!({}))
                .await
                .unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn count_stops_without_losing_the_rest() {
        let url = "memory://msgctl-listen-count";
        send(url, &["e1", "e2", "e3"]).await;
        let mut a = args();
        a.count = Some(2);
        a.timeout = Some(Duration::from_secs(5));
        assert_eq!(printed(url, a).await, ["e1", "e2"]);
        // the third was left (or put back) at the broker, not acknowledged unprinted
        assert_eq!(printed(url, args()).await, ["e3"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requeued_notifications_are_not_printed_and_come_back() {
        let url = "memory://msgctl-listen-requeue";
        send(url, &["skip.me", "keep.me"]).await;
        let mut a = args();
        a.requeue_event_type = Some("skip".into());
        assert_eq!(printed(url, a).await, ["keep.me"]);
        assert_eq!(printed(url, args()).await, ["skip.me"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn filters_and_priorities() {
        let url = "memory://msgctl-listen-filter";
        send(url, &["compute.a", "network.b", "compute.c"]).await;
        let mut a = args();
        a.filter_event_type = Some("compute".into());
        a.priorities = vec![Priority::Info, Priority::Info];
        assert_eq!(printed(url, a).await, ["compute.a", "compute.c"]);
        let mut a = args();
        a.priorities = vec![Priority::Warn];
        send(url, &["left"]).await;
        assert!(printed(url, a).await.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_are_printed_whole() {
        let url = "memory://msgctl-listen-batch";
        send(url, &["b1", "b2", "b3"]).await;
        let mut a = args();
        a.batch_size = Some(2);
        a.batch_timeout = Some(Duration::from_millis(50));
        assert_eq!(printed(url, a).await, ["b1", "b2", "b3"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_batches_only_the_matching_ones_are_requeued() {
        let url = "memory://msgctl-listen-batch-requeue";
        send(url, &["skip.1", "keep.1", "skip.2", "keep.2"]).await;
        let mut a = args();
        a.batch_size = Some(4);
        a.batch_timeout = Some(Duration::from_millis(50));
        a.requeue_event_type = Some("skip".into());
        assert_eq!(printed(url, a).await, ["keep.1", "keep.2"]);
        // each went back on its own (to the head of the queue, in turn)
        let mut rest = printed(url, args()).await;
        rest.sort_unstable();
        assert_eq!(rest, ["skip.1", "skip.2"]);
    }

    #[test]
    fn a_batch_answer_names_the_matching_ones() {
        let printer = Printer {
            write: Box::new(|_: &str| Ok(())),
            state: Mutex::new(PrintState::default()),
            limit: None,
            can_requeue: true,
            requeue: Some(NotificationFilter::new().event_type("skip").unwrap()),
            done: Notify::new(),
        };
        let batch: Vec<NotificationMessage> = ["skip.1", "keep.1", "skip.2", "keep.2"]
            .into_iter()
            .map(|e| {
                NotificationMessage::new(
                    Context::new(),
                    Notification::new("p", e, Priority::Info, serde_json::json!({})),
                )
            })
            .collect();
        assert_eq!(printer.offer(&batch), BatchResult::RequeueOnly(vec![0, 2]));
        assert_eq!(printer.state.lock().unwrap().printed, 2);
        assert_eq!(
            printer.offer(&batch[..1]),
            BatchResult::RequeueOnly(vec![0])
        );
        assert_eq!(printer.offer_one(&batch[1]), NotificationResult::Handled);
        assert_eq!(printer.offer_one(&batch[0]), NotificationResult::Requeue);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_regexes_are_usage_errors() {
        let mut a = args();
        a.requeue_event_type = Some("(".into());
        let write: WriteLine = Box::new(|_: &str| Ok(()));
        let e = listen(&global("memory://msgctl-listen-bad"), a, write)
            .await
            .unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.line.starts_with("--requeue-event-type"), "{}", e.line);
    }

    #[test]
    fn a_line_has_the_fields_of_cli_md_in_order() {
        let n = Notification::new(
            "compute.host1",
            "compute.instance.create.end",
            Priority::Info,
            serde_json::json!({"id": 12}),
        );
        let m = NotificationMessage::new(Context::new().with("user", "u1"), n);
        let text = line(&m).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["priority"], "INFO");
        assert_eq!(v["publisher_id"], "compute.host1");
        assert_eq!(v["payload"]["id"], 12);
        assert_eq!(v["ctxt"]["user"], "u1");
        assert!(v["message_id"].is_string() && v["timestamp"].is_string());
        let keys: Vec<&str> = [
            "priority",
            "publisher_id",
            "event_type",
            "payload",
            "message_id",
            "timestamp",
            "ctxt",
        ]
        .into_iter()
        .collect();
        let mut at = 0;
        for k in keys {
            let found = text[at..].find(&format!("\"{k}\":")).unwrap();
            at += found;
        }
        assert!(!text.contains('\n'));
    }
}
