//! A loopback TCP proxy the fault tests put between the driver and RabbitMQ: it can freeze
//! the connections it carries (bytes stop flowing, sockets stay open: only heartbeats can
//! tell) and cut them; inject AMQP frames towards the client, between the broker's frames
//! (as `connection.blocked` from a broker in alarm, without setting an alarm on a broker
//! other tests share), or play a broker in alarm (each connection that publishes is told
//! it is blocked, as RabbitMQ does); cut them all the moment a client next sends anything (a
//! reset in the middle of whatever the client started); and, with a certificate, terminate
//! TLS in front of the broker.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

struct Carried {
    frozen: watch::Sender<bool>,
    inject: mpsc::UnboundedSender<Vec<u8>>,
    task: JoinHandle<()>,
}

/// Armed, it cuts every connection when a client next sends bytes (they are not forwarded).
#[derive(Default)]
struct Tripwire {
    armed: AtomicBool,
    fired: AtomicUsize,
}

/// The proxy: listens on 127.0.0.1, forwards to `upstream`.
pub struct Proxy {
    pub port: u16,
    carried: Arc<Mutex<Vec<Carried>>>,
    tripwire: Arc<Tripwire>,
    acceptor: JoinHandle<()>,
    /// The alarm played, with its reason.
    alarm: watch::Sender<Option<String>>,
}

/// What one carried connection is steered by.
struct Link {
    frozen: watch::Receiver<bool>,
    injected: mpsc::UnboundedReceiver<Vec<u8>>,
    inject: mpsc::UnboundedSender<Vec<u8>>,
    alarm: watch::Receiver<Option<String>>,
    tripwire: Arc<Tripwire>,
}

impl Proxy {
    /// A plain TCP proxy.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        Self::start_with(upstream, None).await
    }

    /// A proxy that terminates TLS with this server config, then forwards plain TCP.
    pub async fn start_with(upstream: SocketAddr, tls: Option<tokio_rustls::TlsAcceptor>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let carried: Arc<Mutex<Vec<Carried>>> = Arc::default();
        let list = carried.clone();
        let tripwire = Arc::new(Tripwire::default());
        let wire = tripwire.clone();
        let (alarm, alarm_rx) = watch::channel(None);
        let acceptor = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (frozen, rx) = watch::channel(false);
                let (inject, injected) = mpsc::unbounded_channel();
                let link = Link {
                    frozen: rx,
                    injected,
                    inject: inject.clone(),
                    alarm: alarm_rx.clone(),
                    tripwire: wire.clone(),
                };
                let tls = tls.clone();
                let all = list.clone();
                let task = tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (sr, sw) = server.into_split();
                    let tripped = match tls {
                        Some(acceptor) => {
                            let Ok(client) = acceptor.accept(client).await else {
                                return;
                            };
                            let (cr, cw) = tokio::io::split(client);
                            pump_both(cr, cw, sr, sw, link).await
                        }
                        None => {
                            let (cr, cw) = client.into_split();
                            pump_both(cr, cw, sr, sw, link).await
                        }
                    };
                    if tripped {
                        cut_all(&all);
                    }
                });
                list.lock().unwrap().push(Carried {
                    frozen,
                    inject,
                    task,
                });
            }
        });
        Proxy {
            port,
            carried,
            tripwire,
            acceptor,
            alarm,
        }
    }

    /// Cuts every connection carried the moment a client next sends anything (those bytes
    /// are not forwarded); once.
    pub fn cut_when_a_client_sends(&self) {
        self.tripwire.armed.store(true, Ordering::SeqCst);
    }

    /// How often the armed cut happened.
    pub fn armed_cuts(&self) -> usize {
        self.tripwire.fired.load(Ordering::SeqCst)
    }

    /// Plays a broker in a memory alarm: every connection that has published, or publishes
    /// from now on, gets `connection.blocked` with `reason`.
    pub fn alarm(&self, reason: &str) {
        self.alarm.send_replace(Some(reason.to_string()));
    }

    /// Ends the alarm: the blocked connections get `connection.unblocked`.
    pub fn clear_alarm(&self) {
        self.alarm.send_replace(None);
    }

    /// Freezes every connection carried now (new ones flow).
    pub fn freeze(&self) {
        for c in self.carried.lock().unwrap().iter() {
            c.frozen.send_replace(true);
        }
    }

    /// Sends `frame` (whole AMQP frames) to the client of every connection carried now,
    /// between two of the broker's frames.
    pub fn inject_to_clients(&self, frame: &[u8]) {
        for c in self.carried.lock().unwrap().iter() {
            let _ = c.inject.send(frame.to_vec());
        }
    }

    /// Drops every connection carried now.
    pub fn cut(&self) {
        cut_all(&self.carried);
    }

    /// Drops the `index`-th connection it accepted (counting from 0, in the order they
    /// came), leaving the others as they are.
    pub fn cut_one(&self, index: usize) {
        if let Some(c) = self.carried.lock().unwrap().get(index) {
            c.task.abort();
        }
    }

    /// How many connections it has accepted (and not cut), open or closed since.
    pub fn connections_made(&self) -> usize {
        self.carried.lock().unwrap().len()
    }

    /// How many connections it has carried that are still open.
    pub fn open_connections(&self) -> usize {
        self.carried
            .lock()
            .unwrap()
            .iter()
            .filter(|c| !c.task.is_finished())
            .count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.cut();
    }
}

fn cut_all(carried: &Mutex<Vec<Carried>>) {
    for c in carried.lock().unwrap().drain(..) {
        c.task.abort();
    }
}

/// Pumps both ways until either side ends; `true` when the tripwire ended it.
async fn pump_both<CR, CW, SR, SW>(cr: CR, cw: CW, sr: SR, sw: SW, link: Link) -> bool
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    SR: AsyncRead + Unpin,
    SW: AsyncWrite + Unpin,
{
    let Link {
        frozen,
        injected,
        inject,
        alarm,
        tripwire,
    } = link;
    let published = Arc::new(Published::default());
    tokio::select! {
        tripped = pump(cr, sw, frozen.clone(), published.clone(), &tripwire) => tripped,
        _ = pump_frames(sr, cw, frozen, injected) => false,
        _ = play_alarm(alarm, published, inject) => false,
    }
}

/// Whether the client published on this connection (a `basic.publish` went by).
#[derive(Default)]
struct Published {
    yes: AtomicBool,
    changed: Notify,
}

/// Tells the client it is blocked while the alarm is on and it has published; unblocked
/// when the alarm ends.
async fn play_alarm(
    mut alarm: watch::Receiver<Option<String>>,
    published: Arc<Published>,
    inject: mpsc::UnboundedSender<Vec<u8>>,
) {
    let mut blocked = false;
    loop {
        let reason = alarm
            .borrow()
            .clone()
            .filter(|_| published.yes.load(Ordering::Acquire));
        match (reason, blocked) {
            (Some(reason), false) => {
                let _ = inject.send(connection_blocked(&reason));
                blocked = true;
            }
            (None, true) if alarm.borrow().is_none() => {
                let _ = inject.send(connection_unblocked());
                blocked = false;
            }
            _ => {}
        }
        tokio::select! {
            changed = alarm.changed() => if changed.is_err() {
                std::future::pending::<()>().await;
            },
            _ = published.changed.notified() => {}
        }
    }
}

/// Finds `basic.publish` method frames in what the client sends (after its 8-byte protocol
/// header).
#[derive(Default)]
struct PublishScanner {
    seen: usize,
    pending: Vec<u8>,
}

impl PublishScanner {
    fn scan(&mut self, bytes: &[u8]) -> bool {
        let mut bytes = bytes;
        if self.seen < 8 {
            let skip = (8 - self.seen).min(bytes.len());
            self.seen += skip;
            bytes = &bytes[skip..];
        }
        self.pending.extend_from_slice(bytes);
        let mut found = false;
        let mut at = 0;
        while self.pending.len() >= at + 7 {
            let size =
                u32::from_be_bytes(self.pending[at + 3..at + 7].try_into().unwrap()) as usize;
            let end = at + 7 + size + 1;
            if self.pending.len() < end {
                break;
            }
            let payload = &self.pending[at + 7..at + 7 + size];
            if self.pending[at] == 1 && payload.len() >= 4 && payload[..4] == [0, 60, 0, 40] {
                found = true;
            }
            at = end;
        }
        self.pending.drain(..at);
        found
    }
}

/// The broker-to-client direction: whole frames only, so frames injected go between them.
async fn pump_frames<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut from: R,
    mut to: W,
    mut frozen: watch::Receiver<bool>,
    mut injected: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if *frozen.borrow() && frozen.wait_for(|f| !*f).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            },
            Some(frame) = injected.recv() => {
                if to.write_all(&frame).await.is_err() {
                    return;
                }
                continue;
            }
            _ = frozen.changed() => continue,
        }
        if *frozen.borrow() {
            std::future::pending::<()>().await;
        }
        // an AMQP frame: type (1), channel (2), size (4), payload (size), end (1)
        let mut whole = 0;
        while pending.len() >= whole + 7 {
            let size = u32::from_be_bytes(pending[whole + 3..whole + 7].try_into().unwrap());
            let end = whole + 7 + size as usize + 1;
            if pending.len() < end {
                break;
            }
            whole = end;
        }
        if whole > 0 {
            if to.write_all(&pending[..whole]).await.is_err() {
                return;
            }
            pending.drain(..whole);
        }
    }
}

/// A `connection.blocked` frame (class 10, method 60) with this reason.
pub fn connection_blocked(reason: &str) -> Vec<u8> {
    let mut payload = vec![0, 10, 0, 60, u8::try_from(reason.len()).unwrap()];
    payload.extend_from_slice(reason.as_bytes());
    method_frame(&payload)
}

/// A `connection.unblocked` frame (class 10, method 61).
pub fn connection_unblocked() -> Vec<u8> {
    method_frame(&[0, 10, 0, 61])
}

fn method_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![1, 0, 0];
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(payload);
    frame.push(0xCE);
    frame
}

/// The client-to-broker direction; `true` when the armed tripwire stopped it.
async fn pump<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut from: R,
    mut to: W,
    mut frozen: watch::Receiver<bool>,
    published: Arc<Published>,
    tripwire: &Tripwire,
) -> bool {
    let mut scanner = PublishScanner::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if *frozen.borrow() {
            // frozen: nothing flows, the sockets stay open
            if frozen.wait_for(|f| !*f).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            },
            _ = frozen.changed() => continue,
        };
        if *frozen.borrow() {
            std::future::pending::<()>().await;
        }
        if tripwire.armed.swap(false, Ordering::SeqCst) {
            tripwire.fired.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        if !published.yes.load(Ordering::Acquire) && scanner.scan(&buf[..n]) {
            published.yes.store(true, Ordering::Release);
            published.changed.notify_one();
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return false;
        }
    }
}
