//! What a conformance case gets: connections to the driver under test and helpers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use msg_core::{Capabilities, Driver, DriverFactory, Listener, Result, Transport, TransportUrl};

/// The environment of a case: the driver factory and URL under test. Each call to
/// [`Env::driver`] opens a new connection, so a client and a server in one case talk
/// through the broker as separate processes would.
#[derive(Debug, Clone)]
pub struct Env {
    factory: Arc<dyn DriverFactory>,
    url: TransportUrl,
    caps: Capabilities,
    opened: Arc<Mutex<Vec<Arc<dyn Driver>>>>,
    /// The connection that read the capabilities, handed out by the first [`Env::driver`]
    /// (a connection less per case).
    spare: Arc<Mutex<Option<Arc<dyn Driver>>>>,
}

impl Env {
    pub(crate) async fn connect(factory: Arc<dyn DriverFactory>, url: &str) -> Result<Self> {
        let url = TransportUrl::parse(url)?;
        let first = factory.connect(&url).await?;
        let caps = first.capabilities();
        Ok(Env {
            factory,
            url,
            caps,
            opened: Arc::new(Mutex::new(vec![first.clone()])),
            spare: Arc::new(Mutex::new(Some(first))),
        })
    }

    /// What the driver declares.
    pub fn capabilities(&self) -> Capabilities {
        self.caps
    }

    /// A new connection to the broker under test.
    pub async fn driver(&self) -> Result<Arc<dyn Driver>> {
        if let Some(d) = self.spare.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Ok(d);
        }
        let d = self.factory.connect(&self.url).await?;
        self.opened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(d.clone());
        Ok(d)
    }

    /// A transport over a new connection ([`Env::driver`]): what clients, notifiers,
    /// servers and listeners of the end-to-end cases are built on.
    pub async fn transport(&self) -> Result<Transport> {
        Ok(Transport::new(self.driver().await?, self.url.clone()))
    }

    /// The URL under test.
    pub fn url(&self) -> &TransportUrl {
        &self.url
    }

    /// A connection the suite does not clean up at the end of the run: for a "process" the
    /// case kills (its own runtime is dropped, so a later `cleanup` could not run on it).
    pub(crate) async fn detached_transport(&self) -> Result<Transport> {
        let d = self.factory.connect(&self.url).await?;
        Ok(Transport::new(d, self.url.clone()))
    }

    /// A name no other case (or run) uses, so cases run in parallel on one broker: topics,
    /// pools and exchanges stay apart. It holds a dot, a dash, a colon and an underscore
    /// (`call.1a2b-3c4d:5e6f_7a8b`), which every driver must carry through its topology.
    ///
    /// ```
    /// # async fn example(env: msg_testkit::Env) {
    /// let topic = env.unique("call");
    /// assert!(topic.starts_with("call.") && topic.contains('-') && topic.contains(':'));
    /// # }
    /// ```
    pub fn unique(&self, base: &str) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        format!(
            "{base}.{}-{}:{}_{}",
            &id[..4],
            &id[4..8],
            &id[8..12],
            &id[12..16]
        )
    }

    /// The name of server `tag` of a case (`s1` is `s1.host-1:rack_a`): a host name with
    /// a dot, a dash, a colon and an underscore, as a real server's may be. Unique within
    /// its topic, which [`Env::unique`] makes unique.
    pub fn server(tag: &str) -> String {
        format!("{tag}.host-1:rack_a")
    }

    pub(crate) async fn cleanup(&self) {
        let opened = std::mem::take(&mut *self.opened.lock().unwrap_or_else(|p| p.into_inner()));
        for d in opened {
            let _ = d.cleanup().await;
        }
    }
}

/// Takes the next item of a listener within `within`, or says why not.
pub(crate) async fn next_within<M>(
    listener: &mut Listener<M>,
    within: Duration,
) -> std::result::Result<M, String> {
    match tokio::time::timeout(within, listener.next()).await {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err("the listener ended".into()),
        Err(_) => Err(format!("nothing arrived within {within:?}")),
    }
}

/// Asserts that nothing arrives within `within`.
pub(crate) async fn nothing_within<M>(
    listener: &mut Listener<M>,
    within: Duration,
) -> std::result::Result<(), String> {
    match tokio::time::timeout(within, listener.next()).await {
        Ok(Some(_)) => Err("a message arrived that should not have".into()),
        Ok(None) | Err(_) => Ok(()),
    }
}
