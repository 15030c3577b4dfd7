//! JetStream topology: a notification stream and a dead-letter stream per exchange, durable
//! pull consumers, all created or updated idempotently and re-checked now and then (and
//! after every reconnect).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, ReplayPolicy, pull};
use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
use async_nats::jetstream::stream::{
    self, ConsumerErrorKind, DiscardPolicy, RetentionPolicy, StorageType,
};
use msg_core::{Error, Refusal, Result};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::connection::Conn;
use crate::earlier;
use crate::options::{StreamRetention, StreamStorage};
use crate::subject::Layout;

/// How long an ensured stream or consumer is trusted before it is checked again.
const ENSURE_TTL: Duration = Duration::from_secs(60);

/// One durable pull consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConsumerSpec {
    pub(crate) stream: String,
    pub(crate) name: String,
    pub(crate) filter: String,
    /// Starts with new messages (a pool) rather than every message kept (the default group).
    pub(crate) deliver_new: bool,
    /// The name earlier releases gave this consumer (moved to `name` when found on a stream
    /// of theirs).
    pub(crate) earlier_name: String,
}

/// Where a notification for one (exchange, topic, priority) goes, and what must exist for
/// it: worked out once per path, not once per send.
#[derive(Debug)]
pub(crate) struct NotifyPath {
    /// The default group's consumer, which the notifier makes too: its stream is the
    /// path's stream, its filter the subject notifications are published on.
    spec: ConsumerSpec,
    stream_subjects: String,
    /// The name earlier releases gave the path's stream.
    earlier_stream: String,
    stream_key: String,
    consumer_key: String,
}

impl NotifyPath {
    /// The subject notifications of this path are published on.
    pub(crate) fn subject(&self) -> &str {
        &self.spec.filter
    }
}

fn stream_key(name: &str) -> String {
    format!("s\0{name}")
}

fn consumer_key(spec: &ConsumerSpec) -> String {
    format!("c\0{}\0{}", spec.stream, spec.name)
}

/// What was ensured lately on one connection.
#[derive(Default)]
struct Ensured {
    /// The connection generation it was ensured on.
    generation: u64,
    /// When each stream or consumer key was ensured.
    at: HashMap<String, Instant>,
    /// The stream in use for each stream name: itself, or the stream an earlier release
    /// made under its earlier name.
    streams: HashMap<String, StreamInUse>,
}

/// The stream in use for a stream name.
#[derive(Debug, Clone)]
struct StreamInUse {
    name: String,
    /// When the server made it (Unix nanoseconds): a stream deleted and made again under
    /// the same name starts its sequence numbers again.
    created: i128,
    /// Its replicas: its consumers get as many.
    replicas: usize,
}

/// Streams and consumers known to exist.
pub(crate) struct Topology {
    pub(crate) conn: Arc<Conn>,
    pub(crate) layout: Layout,
    ensured: Mutex<Ensured>,
    /// Streams of earlier releases, and streams whose settings differ from the URL's, already
    /// reported in the log (reported once each).
    reported: Mutex<HashSet<String>>,
    generations: Mutex<watch::Receiver<u64>>,
    /// One JetStream API round at a time: a burst of first sends ensures once, not once
    /// per send.
    ensuring: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topology")
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

use crate::errors::jetstream as js_err;

impl Topology {
    pub(crate) fn new(conn: Arc<Conn>, layout: Layout) -> Self {
        let generations = conn.generations();
        Topology {
            conn,
            layout,
            ensured: Mutex::default(),
            reported: Mutex::default(),
            generations: Mutex::new(generations),
            ensuring: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether `key` was ensured lately on this connection.
    fn is_fresh(&self, key: &str) -> bool {
        self.are_fresh(&[key])
    }

    /// Whether every one of `keys` was ensured lately on this connection (one look).
    fn are_fresh(&self, keys: &[&str]) -> bool {
        let generation = *self.generations.lock().borrow_and_update();
        let mut ensured = self.ensured.lock();
        if ensured.generation != generation {
            // reconnected: the server may be a new one
            ensured.generation = generation;
            ensured.at.clear();
            ensured.streams.clear();
        }
        keys.iter()
            .all(|k| ensured.at.get(*k).is_some_and(|t| t.elapsed() < ENSURE_TTL))
    }

    fn mark(&self, key: &str) {
        self.ensured
            .lock()
            .at
            .insert(key.to_string(), Instant::now());
    }

    /// Forgets what was ensured (a publish found no stream, a consumer vanished).
    pub(crate) fn forget(&self) {
        let mut ensured = self.ensured.lock();
        ensured.at.clear();
        ensured.streams.clear();
    }

    /// The stream in use for the stream `name`, when ensured on this connection.
    fn stream_in_use(&self, name: &str) -> Option<String> {
        self.ensured
            .lock()
            .streams
            .get(name)
            .map(|s| s.name.clone())
    }

    /// When the stream in use named `in_use` was made, as ensured on this connection.
    pub(crate) fn stream_created(&self, in_use: &str) -> Option<i128> {
        self.ensured
            .lock()
            .streams
            .values()
            .find(|s| s.name == in_use)
            .map(|s| s.created)
    }

    /// Whether `stream` is one an earlier release made (in use under its earlier name).
    fn is_earlier_stream(&self, stream: &str) -> bool {
        self.ensured
            .lock()
            .streams
            .iter()
            .any(|(name, in_use)| in_use.name == stream && name != stream)
    }

    fn stream_config(&self, name: &str, subject: &str, dead_letters: bool) -> stream::Config {
        let o = &self.conn.options;
        stream::Config {
            name: name.to_string(),
            subjects: vec![subject.to_string()],
            retention: match (dead_letters, o.stream_retention) {
                (false, StreamRetention::Interest) => RetentionPolicy::Interest,
                _ => RetentionPolicy::Limits,
            },
            storage: match o.stream_storage {
                StreamStorage::File => StorageType::File,
                StreamStorage::Memory => StorageType::Memory,
            },
            num_replicas: o.stream_replicas,
            max_age: o.stream_max_age,
            max_bytes: o.stream_max_bytes,
            max_messages: o.stream_max_msgs,
            max_messages_per_subject: -1,
            max_consumers: -1,
            discard: DiscardPolicy::Old,
            // JetStream refuses a duplicate window longer than the stream's max age
            duplicate_window: if o.stream_max_age.is_zero() {
                o.duplicate_window
            } else {
                o.duplicate_window.min(o.stream_max_age)
            },
            description: Some(if dead_letters {
                "msg: dead-lettered notifications".into()
            } else {
                "msg: notifications".into()
            }),
            ..stream::Config::default()
        }
    }

    /// The notification stream of an exchange, created or updated: the name of the stream
    /// in use (its own, or the earlier name an earlier release gave it).
    pub(crate) async fn notify_stream(&self, exchange: &str) -> Result<String> {
        self.notify_stream_ensured(exchange, true).await
    }

    /// [`Self::notify_stream`], checked at the server now whatever was ensured lately (a
    /// listener found its consumer gone; what the notifier ensured stays trusted).
    pub(crate) async fn notify_stream_now(&self, exchange: &str) -> Result<String> {
        self.notify_stream_ensured(exchange, false).await
    }

    async fn notify_stream_ensured(&self, exchange: &str, fresh_ok: bool) -> Result<String> {
        let name = self.layout.notify_stream(exchange)?;
        let subjects = self.layout.notify_stream_subjects(exchange)?;
        let earlier = earlier::notify_stream(&self.layout, exchange);
        let key = stream_key(&name);
        self.ensure_stream_keyed(&name, &earlier, &subjects, false, &key, fresh_ok)
            .await
    }

    /// The dead-letter stream of an exchange, created or updated (the name in use).
    pub(crate) async fn dead_letter_stream(&self, exchange: &str) -> Result<String> {
        let name = self.layout.dead_letter_stream(exchange)?;
        let subjects = self.layout.dead_letter_stream_subjects(exchange)?;
        let earlier = earlier::dead_letter_stream(&self.layout, exchange);
        self.ensure_stream_keyed(&name, &earlier, &subjects, true, &stream_key(&name), true)
            .await
    }

    /// The send path of a notification to `exchange`, for the default group's consumer
    /// `spec` (on the exchange's stream, filtered on the path's subject).
    pub(crate) fn notify_path(&self, exchange: &str, spec: ConsumerSpec) -> Result<NotifyPath> {
        Ok(NotifyPath {
            stream_subjects: self.layout.notify_stream_subjects(exchange)?,
            earlier_stream: earlier::notify_stream(&self.layout, exchange),
            stream_key: stream_key(&spec.stream),
            consumer_key: consumer_key(&spec),
            spec,
        })
    }

    /// The stream and the default group's consumer of a send path, created if needed (one
    /// look at what was ensured lately when both were).
    pub(crate) async fn ensure_notify_path(&self, p: &NotifyPath) -> Result<()> {
        if self.are_fresh(&[&p.stream_key, &p.consumer_key]) {
            return Ok(());
        }
        // JetStream API rounds are large futures: boxed, so that every send's state (which
        // holds this one) stays small
        Box::pin(async {
            let stream = self
                .ensure_stream_keyed(
                    &p.spec.stream,
                    &p.earlier_stream,
                    &p.stream_subjects,
                    false,
                    &p.stream_key,
                    true,
                )
                .await?;
            if stream == p.spec.stream {
                self.ensure_consumer_keyed(&p.spec, &p.consumer_key, None, true)
                    .await
            } else {
                // the stream of an earlier release: the consumer lives there
                let spec = ConsumerSpec {
                    stream,
                    ..p.spec.clone()
                };
                self.ensure_consumer(&spec).await?;
                self.mark(&p.consumer_key);
                Ok(())
            }
        })
        .await
    }

    /// Looks up a stream's config and when it was made (`None`: no such stream).
    async fn stream_config_of(&self, name: &str) -> Result<Option<(stream::Config, i128)>> {
        match self.conn.js.get_stream(name).await {
            Ok(s) => {
                let info = s.cached_info();
                Ok(Some((
                    info.config.clone(),
                    info.created.unix_timestamp_nanos(),
                )))
            }
            Err(e) => match e.kind() {
                GetStreamErrorKind::JetStream(je)
                    if je.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    Ok(None)
                }
                _ => Err(js_err(format!("looking up the stream `{name}`"), e)),
            },
        }
    }

    /// Ensures the stream `name` on `subjects` and returns the name of the stream in use:
    /// `name`, or `earlier` when an earlier release made the stream under that name (a stream
    /// can't be renamed, and another can't take its subjects, so it stays in use). With
    /// `fresh_ok`, a stream ensured lately isn't checked again.
    async fn ensure_stream_keyed(
        &self,
        name: &str,
        earlier: &str,
        subjects: &str,
        dead_letters: bool,
        key: &str,
        fresh_ok: bool,
    ) -> Result<String> {
        if fresh_ok
            && self.is_fresh(key)
            && let Some(in_use) = self.stream_in_use(name)
        {
            return Ok(in_use);
        }
        let _one = self.ensuring.lock().await;
        if fresh_ok
            && self.is_fresh(key)
            && let Some(in_use) = self.stream_in_use(name)
        {
            return Ok(in_use);
        }
        let mut in_use = name.to_string();
        let mut existing = self.stream_config_of(name).await?;
        if existing.is_none()
            && let Some(have) = self.stream_config_of(earlier).await?
            && have.0.subjects.iter().any(|s| s == subjects)
        {
            self.report_earlier_stream(earlier, name);
            in_use = earlier.to_string();
            existing = Some(have);
        }
        let js = &self.conn.js;
        let want = self.stream_config(&in_use, subjects, dead_letters);
        let mut created = existing.as_ref().map_or(0, |e| e.1);
        let mut replicas = want.num_replicas;
        let existing = match existing {
            Some((c, _)) => Some(c),
            None => match js.create_stream(want.clone()).await {
                Ok(info) => {
                    tracing::info!(stream = name, subjects, "created a JetStream stream");
                    created = info.cached_info().created.unix_timestamp_nanos();
                    replicas = info.cached_info().config.num_replicas;
                    None
                }
                Err(e) => match e.kind() {
                    // created meanwhile by another process: check it as an existing one
                    CreateStreamErrorKind::JetStream(je)
                        if je.error_code() == ErrorCode::STREAM_NAME_EXIST =>
                    {
                        let (c, at) = self.stream_config_of(name).await?.ok_or_else(|| {
                            Error::refused(
                                Refusal::NotFound,
                                format!(
                                    "the stream `{name}` exists, then doesn't: deleted meanwhile?"
                                ),
                                None,
                            )
                        })?;
                        created = at;
                        Some(c)
                    }
                    _ => {
                        return Err(js_err(
                            format!("creating the stream `{name}` on `{subjects}`"),
                            e,
                        ));
                    }
                },
            },
        };
        if let Some(have) = existing {
            replicas = have.num_replicas;
            if self.conn.options.manage_streams {
                replicas = self.manage_stream(&in_use, &have, &want).await;
            } else {
                self.report_differences(&in_use, &have, &want);
            }
        }
        self.ensured.lock().streams.insert(
            name.to_string(),
            StreamInUse {
                name: in_use.clone(),
                created,
                replicas,
            },
        );
        self.mark(key);
        Ok(in_use)
    }

    /// With `manage_streams`: updates what may change of an existing stream's settings to
    /// this client's (storage and retention stay as they are); returns the stream's replicas.
    async fn manage_stream(
        &self,
        stream: &str,
        have: &stream::Config,
        want: &stream::Config,
    ) -> usize {
        let same = have.subjects == want.subjects
            && have.retention == want.retention
            && have.max_age == want.max_age
            && have.max_bytes == want.max_bytes
            && have.max_messages == want.max_messages
            && have.duplicate_window == want.duplicate_window
            && have.discard == want.discard
            && have.num_replicas == want.num_replicas;
        if same {
            return have.num_replicas;
        }
        let update = stream::Config {
            subjects: want.subjects.clone(),
            max_age: want.max_age,
            max_bytes: want.max_bytes,
            max_messages: want.max_messages,
            duplicate_window: want.duplicate_window,
            discard: want.discard,
            num_replicas: want.num_replicas,
            ..have.clone()
        };
        let replicas = match self.conn.js.update_stream(&update).await {
            Ok(info) => {
                tracing::info!(
                    stream,
                    replicas = info.config.num_replicas,
                    "updated the JetStream stream's limits (manage_streams)"
                );
                info.config.num_replicas
            }
            Err(e) => {
                tracing::warn!(
                    stream,
                    error = %e,
                    "the stream exists with other settings and can't be updated; using it as it is"
                );
                have.num_replicas
            }
        };
        if have.retention != want.retention || have.storage != want.storage {
            tracing::warn!(
                stream,
                retention = ?have.retention,
                storage = ?have.storage,
                "the stream keeps its retention and storage (JetStream can't change them)"
            );
        }
        replicas
    }

    /// Without `manage_streams`: an existing stream is used as it is; where it differs from
    /// what this client's URL asks for (the options the URL sets, and the subjects), one
    /// warning per stream says so.
    fn report_differences(&self, stream: &str, have: &stream::Config, want: &stream::Config) {
        let o = &self.conn.options;
        let mut differences = Vec::new();
        if have.subjects != want.subjects {
            differences.push(format!(
                "subjects {:?} (this client's {:?})",
                have.subjects, want.subjects
            ));
        }
        let mut differ = |key: &str, have: String, want: String| {
            if have != want && o.is_given(key) {
                differences.push(format!("{key} {have} (the URL's {want})"));
            }
        };
        differ(
            "stream_replicas",
            have.num_replicas.to_string(),
            want.num_replicas.to_string(),
        );
        differ(
            "stream_max_age",
            format!("{:?}", have.max_age),
            format!("{:?}", want.max_age),
        );
        differ(
            "stream_max_bytes",
            have.max_bytes.to_string(),
            want.max_bytes.to_string(),
        );
        differ(
            "stream_max_msgs",
            have.max_messages.to_string(),
            want.max_messages.to_string(),
        );
        differ(
            "duplicate_window",
            format!("{:?}", have.duplicate_window),
            format!("{:?}", want.duplicate_window),
        );
        differ(
            "stream_retention",
            format!("{:?}", have.retention),
            format!("{:?}", want.retention),
        );
        differ(
            "stream_storage",
            format!("{:?}", have.storage),
            format!("{:?}", want.storage),
        );
        if differences.is_empty() || !self.reported.lock().insert(format!("limits\0{stream}")) {
            return;
        }
        tracing::warn!(
            stream,
            differences = %differences.join("; "),
            "the stream exists with other settings than this client's URL asks for; using it as \
             it is (a client with `manage_streams=true` updates its limits)"
        );
    }

    /// The replicas of the stream in use named `stream`: as ensured on this connection, or
    /// looked up (0 when it isn't found: the server then chooses).
    async fn stream_replicas(&self, stream: &str) -> Result<usize> {
        let known = self
            .ensured
            .lock()
            .streams
            .values()
            .find(|s| s.name == stream)
            .map(|s| s.replicas);
        match known {
            Some(r) => Ok(r),
            None => Ok(self
                .stream_config_of(stream)
                .await?
                .map_or(0, |(c, _)| c.num_replicas)),
        }
    }

    /// Says once per stream that a stream of an earlier release is in use.
    fn report_earlier_stream(&self, earlier: &str, name: &str) {
        if !self.reported.lock().insert(earlier.to_string()) {
            return;
        }
        if earlier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'~')
        {
            tracing::info!(
                stream = earlier,
                name,
                "using the stream an earlier release made under its earlier name"
            );
        } else {
            tracing::warn!(
                stream = earlier,
                name,
                "using the stream an earlier release made under a name nats-server before 2.9.16 \
                 can't acknowledge on; once it is drained, delete it and the next notifier or \
                 listener makes it under its new name"
            );
        }
    }

    /// A durable pull consumer, created (or updated) if needed.
    pub(crate) async fn ensure_consumer(&self, spec: &ConsumerSpec) -> Result<()> {
        self.ensure_consumer_keyed(spec, &consumer_key(spec), None, true)
            .await
    }

    /// [`Self::ensure_consumer`] for a consumer that vanished under a listener, checked at the
    /// server now: one made again starts at stream sequence `start` when given (where the
    /// listener is), so what the listener had not settled comes again and nothing after it
    /// is skipped.
    pub(crate) async fn ensure_consumer_from(
        &self,
        spec: &ConsumerSpec,
        start: Option<u64>,
    ) -> Result<()> {
        self.ensure_consumer_keyed(spec, &consumer_key(spec), start, false)
            .await
    }

    async fn ensure_consumer_keyed(
        &self,
        spec: &ConsumerSpec,
        key: &str,
        start: Option<u64>,
        fresh_ok: bool,
    ) -> Result<()> {
        if fresh_ok && self.is_fresh(key) {
            return Ok(());
        }
        let _one = self.ensuring.lock().await;
        if fresh_ok && self.is_fresh(key) {
            return Ok(());
        }
        // JetStream can't change a consumer's deliver policy: an existing one keeps its own
        let mut earlier = None;
        let existing = self.consumer_info_of(&spec.stream, &spec.name).await?;
        let deliver_policy = match &existing {
            Some(have) => have.config.deliver_policy,
            None => match self.earlier_consumer(spec).await? {
                Some(start) => {
                    earlier = Some(start);
                    DeliverPolicy::ByStartSequence {
                        start_sequence: start,
                    }
                }
                None => match start {
                    Some(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
                    None if spec.deliver_new => DeliverPolicy::New,
                    None => DeliverPolicy::All,
                },
            },
        };
        // a consumer has as many replicas as its stream: one with fewer would stall its
        // listeners when a node that holds it fails
        let replicas = self.stream_replicas(&spec.stream).await?;
        let o = &self.conn.options;
        let config = |num_replicas: usize| pull::Config {
            durable_name: Some(spec.name.clone()),
            description: Some("msg notification listeners".into()),
            deliver_policy,
            ack_policy: AckPolicy::Explicit,
            ack_wait: o.ack_wait,
            // the driver counts deliveries and dead-letters itself
            max_deliver: -1,
            // one subject: nats-server 2.9 knows no `filter_subjects`
            filter_subject: spec.filter.clone(),
            replay_policy: ReplayPolicy::Instant,
            max_ack_pending: o.max_ack_pending,
            inactive_threshold: o.consumer_inactive_threshold,
            num_replicas,
            ..pull::Config::default()
        };
        let js = &self.conn.js;
        let mut made = js
            .create_consumer_on_stream(config(replicas), spec.stream.as_str())
            .await;
        if let Err(e) = &made
            && let Some(have) = &existing
            && have.config.num_replicas != replicas
        {
            if self
                .reported
                .lock()
                .insert(format!("replicas\0{}\0{}", spec.stream, spec.name))
            {
                tracing::warn!(
                    stream = spec.stream,
                    consumer = spec.name,
                    replicas = have.config.num_replicas,
                    stream_replicas = replicas,
                    error = %e,
                    "the consumer's replicas can't be made its stream's; using it with its own"
                );
            }
            made = js
                .create_consumer_on_stream(config(have.config.num_replicas), spec.stream.as_str())
                .await;
        }
        match made {
            Ok(c) => {
                let info = c.cached_info();
                if info.config.filter_subject != spec.filter {
                    return Err(Error::refused(
                        Refusal::PreconditionFailed,
                        format!(
                            "the consumer `{}` of stream `{}` filters on `{}`, not `{}`",
                            spec.name, spec.stream, info.config.filter_subject, spec.filter
                        ),
                        None,
                    ));
                }
            }
            Err(e) => {
                return Err(js_err(
                    format!(
                        "creating the consumer `{}` of stream `{}` (filter `{}`)",
                        spec.name, spec.stream, spec.filter
                    ),
                    e,
                ));
            }
        }
        if let Some(start) = earlier {
            // the new consumer holds the stream's messages from here on: the earlier one goes
            match self
                .conn
                .js
                .delete_consumer_from_stream(&spec.earlier_name, &spec.stream)
                .await
            {
                Ok(_) => tracing::warn!(
                    stream = spec.stream,
                    consumer = spec.name,
                    earlier = spec.earlier_name,
                    start_sequence = start,
                    "moved a consumer of an earlier release to its new name (what it delivered \
                     without an ack comes again)"
                ),
                Err(e) => tracing::warn!(
                    stream = spec.stream,
                    earlier = spec.earlier_name,
                    error = %e,
                    "deleting a consumer of an earlier release failed (it keeps its own copy \
                     of the stream's messages)"
                ),
            }
        }
        self.mark(key);
        Ok(())
    }

    /// Looks up a consumer (`None`: no such consumer, or no such stream).
    async fn consumer_info_of(
        &self,
        stream: &str,
        name: &str,
    ) -> Result<Option<async_nats::jetstream::consumer::Info>> {
        match self
            .conn
            .js
            .get_consumer_from_stream::<pull::Config, _, _>(name, stream)
            .await
        {
            Ok(c) => Ok(Some(c.cached_info().clone())),
            Err(e) => match e.kind() {
                ConsumerErrorKind::JetStream(je)
                    if je.error_code() == ErrorCode::CONSUMER_NOT_FOUND
                        || je.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    Ok(None)
                }
                _ => Err(js_err(
                    format!("looking up the consumer `{name}` of stream `{stream}`"),
                    e,
                )),
            },
        }
    }

    /// On a stream an earlier release made, the consumer it made under the earlier name: the
    /// stream sequence the consumer under the new name starts from (the first message the
    /// earlier one has not acknowledged: its ack floor + 1).
    async fn earlier_consumer(&self, spec: &ConsumerSpec) -> Result<Option<u64>> {
        if spec.earlier_name == spec.name || !self.is_earlier_stream(&spec.stream) {
            return Ok(None);
        }
        Ok(self
            .consumer_info_of(&spec.stream, &spec.earlier_name)
            .await?
            .map(|info| info.ack_floor.stream_sequence.saturating_add(1)))
    }
}
