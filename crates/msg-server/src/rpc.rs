//! The RPC server.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use msg_core::{
    Error, IncomingRequest, ListenOptions, ReplyHandle, Result, Role, Serializer, Target, Transport,
};
use msg_dispatch::{AccessPolicy, Endpoint, RpcDispatcher};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::dedup::Dedup;
use crate::executor::Executor;
use crate::metrics::ServerMetrics;
use crate::server::{Handle, MessageHandlingServer, Opened, Source};
use crate::tracing_spans;

/// Serves RPC endpoints on a server target: its topic (load-balanced with the other servers
/// of the topic), `topic.server`, and fanout.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use msg_core::{Context, DriverRegistry, Target};
/// use msg_dispatch::{Endpoint, HandlerError};
/// use msg_server::RpcServer;
///
/// #[derive(serde::Deserialize)]
/// struct Add { a: i64, b: i64 }
///
/// let transport = DriverRegistry::new().with(msg_driver_memory::factory()).open("memory://rpc-doc").await.unwrap();
/// let calc = Endpoint::new()
///     .version("1.2")
///     .method("add", |_ctx: Context, Add { a, b }| async move { Ok::<_, HandlerError>(a + b) });
/// let server = RpcServer::builder(transport.clone(), Target::server("calc", "host-1"))
///     .endpoint(calc)
///     .start()
///     .await
///     .unwrap();
/// let client = msg_client::RpcClient::new(transport, Target::topic("calc"));
/// let sum: i64 = client.call(&Context::new(), "add", serde_json::json!({"a": 2, "b": 3})).await.unwrap();
/// assert_eq!(sum, 5);
/// server.shutdown(Duration::from_secs(5)).await.unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct RpcServer {
    server: MessageHandlingServer<IncomingRequest>,
    target: Target,
}

/// Builds an [`RpcServer`].
#[derive(Debug)]
pub struct RpcServerBuilder {
    transport: Transport,
    target: Target,
    endpoints: Vec<Endpoint>,
    executor: Executor,
    prefetch: Option<u32>,
    policy: AccessPolicy,
    serializer: Option<Arc<dyn Serializer>>,
    ping: bool,
}

impl RpcServer {
    /// A builder for a server on `target` (topic and server name needed).
    pub fn builder(transport: impl Into<Transport>, target: Target) -> RpcServerBuilder {
        RpcServerBuilder {
            transport: transport.into(),
            target,
            endpoints: Vec::new(),
            executor: Executor::default(),
            prefetch: None,
            policy: AccessPolicy::Default,
            serializer: None,
            ping: false,
        }
    }

    /// The target served.
    pub fn target(&self) -> &Target {
        &self.target
    }
}

crate::server::lifecycle!(RpcServer);

impl RpcServerBuilder {
    /// Adds an endpoint (dispatch walks them in the order added).
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// Adds endpoints.
    pub fn endpoints(mut self, endpoints: impl IntoIterator<Item = Endpoint>) -> Self {
        self.endpoints.extend(endpoints);
        self
    }

    /// The executor (default `Pool(64)`).
    pub fn executor(mut self, executor: Executor) -> Self {
        self.executor = executor;
        self
    }

    /// The listener's prefetch; by default the executor's capacity (`0`: unlimited).
    pub fn prefetch(mut self, prefetch: u32) -> Self {
        self.prefetch = Some(prefetch);
        self
    }

    /// The access policy (default: `_`-prefixed methods are never callable).
    pub fn access_policy(mut self, policy: AccessPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The serializer for contexts, arguments and results.
    pub fn serializer(mut self, serializer: Arc<dyn Serializer>) -> Self {
        self.serializer = Some(serializer);
        self
    }

    /// Answers oslo's `oslo_rpc_server_ping` with `pong`.
    pub fn ping(mut self, enabled: bool) -> Self {
        self.ping = enabled;
        self
    }

    /// Builds the server without starting it.
    pub fn build(self) -> Result<RpcServer> {
        self.target.validate(Role::RpcServer)?;
        let metrics = ServerMetrics::new(&self.target, &self.endpoints, self.ping);
        let mut dispatcher = RpcDispatcher::new(self.endpoints)?
            .access_policy(self.policy)
            .ping(self.ping);
        if let Some(s) = self.serializer {
            dispatcher = dispatcher.serializer(s);
        }
        let capacity = self.executor.capacity();
        let prefetch = self
            .prefetch
            .unwrap_or_else(|| u32::try_from(capacity).unwrap_or(u32::MAX));
        let system = self.transport.driver().messaging_system();
        let source = Arc::new(RpcSource {
            transport: self.transport,
            target: self.target.clone(),
            options: ListenOptions { prefetch },
        });
        let handler = Arc::new(RpcHandler {
            dispatcher: Arc::new(dispatcher),
            dedup: Dedup::new(capacity.max(prefetch as usize) * 2),
            metrics,
            system,
            topic: self.target.topic.clone().unwrap_or_default(),
        });
        Ok(RpcServer {
            server: MessageHandlingServer::new(source, handler, self.executor),
            target: self.target,
        })
    }

    /// Builds and starts the server.
    pub async fn start(self) -> Result<RpcServer> {
        let server = self.build()?;
        server.start().await?;
        Ok(server)
    }
}

struct RpcSource {
    transport: Transport,
    target: Target,
    options: ListenOptions,
}

impl Source<IncomingRequest> for RpcSource {
    fn open(&self) -> BoxFuture<'static, Result<Opened<IncomingRequest>>> {
        let driver = self.transport.driver().clone();
        let target = self.target.clone();
        let options = self.options;
        async move {
            let listener = driver.listen(&target, &options).await?;
            let stop = listener.stop_handle();
            Ok((futures::StreamExt::boxed(listener), stop))
        }
        .boxed()
    }
}

struct RpcHandler {
    dispatcher: Arc<RpcDispatcher>,
    dedup: Dedup,
    metrics: ServerMetrics,
    /// `messaging.system` and the topic served, for the spans.
    system: &'static str,
    topic: String,
}

impl Handle<IncomingRequest> for RpcHandler {
    fn handle(self: Arc<Self>, req: IncomingRequest) -> BoxFuture<'static, ()> {
        async move { self.handle_request(req).await }.boxed()
    }

    fn reset(&self) {
        self.dedup.clear();
    }
}

impl RpcHandler {
    async fn handle_request(&self, req: IncomingRequest) {
        // at-most-once, as oslo: acknowledged on receipt, before dispatch; a request whose
        // ack failed may come again to another server, so it is not run here
        if let Err(e) = req.ack().await {
            tracing::warn!(
                method = req.request.method,
                error = %e,
                "acknowledging a request failed: skipped, the broker may deliver it again"
            );
            return;
        }
        if !self.dedup.insert(&req.unique_id) {
            tracing::info!(
                unique_id = req.unique_id,
                method = req.request.method,
                "duplicate request dropped"
            );
            return;
        }
        let span = tracing_spans::rpc_receive(self.system, &self.topic, &req);
        self.dispatch_and_reply(req, &span)
            .instrument(span.clone())
            .await;
    }

    async fn dispatch_and_reply(&self, req: IncomingRequest, span: &tracing::Span) {
        let reply = req.reply_handle();
        let heartbeat = match req.call_monitor_timeout.filter(|_| req.is_call()) {
            Some(cmt) => heartbeats(reply.clone(), cmt, &req.request.method),
            None => None,
        };
        let is_call = req.is_call();
        let method = req.request.method.clone();
        let invocation = match self.dispatcher.route(&req.request) {
            Ok(route) => self.metrics.start(&route),
            Err(_) => None,
        };
        let result = self.dispatcher.dispatch(req.context, req.request).await;
        if let Some(invocation) = invocation {
            invocation.finish(&result);
        }
        tracing_spans::rpc_result(span, &result);
        if let Some(h) = heartbeat {
            h.abort();
        }
        if is_call && let Err(e) = reply.reply(result).await {
            log_reply_error(&method, &e);
        }
    }
}

/// Sends call-monitor heartbeats by oslo's rule ([`msg_core::heartbeat_interval`]) until
/// aborted; after a failed one it stops, as oslo does. A timeout too short for the rule is
/// warned about once and gets none.
fn heartbeats(reply: ReplyHandle, cmt: Duration, method: &str) -> Option<JoinHandle<()>> {
    let Some(interval) = msg_core::heartbeat_interval(cmt) else {
        tracing::warn!(
            method,
            call_monitor_timeout = ?cmt,
            "the caller's call-monitor timeout is under 2 s: no heartbeats are sent for it"
        );
        return None;
    };
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = reply.heartbeat().await {
                tracing::warn!(error = %e, "sending a call-monitor heartbeat failed: no more are sent for this call");
                return;
            }
        }
    }))
}

fn log_reply_error(method: &str, e: &Error) {
    tracing::warn!(method, error = %e, "sending a reply failed");
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use msg_core::codec::{Failure, RpcRequest};
    use msg_core::{Context, async_trait};
    use msg_dispatch::HandlerError;
    use serde_json::Value;

    use super::*;

    /// A responder whose ack fails (its channel is gone) and that records what it is asked.
    #[derive(Debug, Default)]
    struct Recording {
        ack_fails: bool,
        replies: Mutex<Vec<std::result::Result<Value, Failure>>>,
        heartbeats: AtomicUsize,
    }

    #[async_trait]
    impl msg_core::Responder for Recording {
        async fn ack(&self) -> Result<()> {
            if self.ack_fails {
                return Err(Error::Closed("the channel is closed".into()));
            }
            Ok(())
        }
        async fn send(&self, reply: msg_core::codec::WireReply) -> Result<()> {
            if !reply.ending {
                self.heartbeats.fetch_add(1, Ordering::SeqCst);
                return Ok(());
            }
            self.replies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(match reply.failure {
                    Some(f) => Err(f),
                    None => Ok(reply.result),
                });
            Ok(())
        }
    }

    fn handler(runs: Arc<AtomicUsize>) -> Arc<RpcHandler> {
        let endpoint = Endpoint::new().method("run", move |_ctx: Context, _: Value| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<_, HandlerError>(1)
            }
        });
        let target = Target::server("t", "s");
        Arc::new(RpcHandler {
            metrics: ServerMetrics::new(&target, std::slice::from_ref(&endpoint), false),
            dispatcher: Arc::new(RpcDispatcher::new(vec![endpoint]).unwrap()),
            dedup: Dedup::new(16),
            system: "test",
            topic: "t".into(),
        })
    }

    fn request(responder: Arc<Recording>, cmt: Option<Duration>) -> IncomingRequest {
        IncomingRequest::new(
            Context::new(),
            RpcRequest::new("run", serde_json::Map::new()),
            msg_core::codec::new_unique_id(),
            Some("m1".into()),
            cmt,
            responder,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_whose_ack_failed_is_not_run() {
        let runs = Arc::new(AtomicUsize::new(0));
        let responder = Arc::new(Recording {
            ack_fails: true,
            ..Recording::default()
        });
        handler(runs.clone())
            .handle_request(request(responder.clone(), None))
            .await;
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        assert!(responder.replies.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_follow_oslos_rule() {
        // 4 s: every 2 s while the 5 s handler runs; 1.5 s (or a nanosecond): none at all
        for (cmt, beats) in [
            (Duration::from_secs(4), 2),
            (Duration::from_millis(1500), 0),
            (Duration::from_nanos(1), 0),
        ] {
            let runs = Arc::new(AtomicUsize::new(0));
            let responder = Arc::new(Recording::default());
            handler(runs.clone())
                .handle_request(request(responder.clone(), Some(cmt)))
                .await;
            assert_eq!(runs.load(Ordering::SeqCst), 1);
            assert_eq!(
                responder.heartbeats.load(Ordering::SeqCst),
                beats,
                "{cmt:?}"
            );
            assert_eq!(responder.replies.lock().unwrap().len(), 1);
        }
    }
}
