//! A loopback TCP proxy the fault tests put between the driver and RabbitMQ: it can freeze
//! the connections it carries (bytes stop flowing, sockets stay open: only heartbeats can
//! tell) and cut them; and, with a certificate, terminate TLS in front of the broker.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

struct Carried {
    frozen: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The proxy: listens on 127.0.0.1, forwards to `upstream`.
pub struct Proxy {
    pub port: u16,
    carried: Arc<Mutex<Vec<Carried>>>,
    acceptor: JoinHandle<()>,
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
        let acceptor = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (frozen, rx) = watch::channel(false);
                let tls = tls.clone();
                let task = tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (sr, sw) = server.into_split();
                    match tls {
                        Some(acceptor) => {
                            let Ok(client) = acceptor.accept(client).await else {
                                return;
                            };
                            let (cr, cw) = tokio::io::split(client);
                            pump_both(cr, cw, sr, sw, rx).await;
                        }
                        None => {
                            let (cr, cw) = client.into_split();
                            pump_both(cr, cw, sr, sw, rx).await;
                        }
                    }
                });
                list.lock().unwrap().push(Carried { frozen, task });
            }
        });
        Proxy {
            port,
            carried,
            acceptor,
        }
    }

    /// Freezes every connection carried now (new ones flow).
    pub fn freeze(&self) {
        for c in self.carried.lock().unwrap().iter() {
            c.frozen.send_replace(true);
        }
    }

    /// Drops every connection carried now.
    pub fn cut(&self) {
        for c in self.carried.lock().unwrap().drain(..) {
            c.task.abort();
        }
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

async fn pump_both<CR, CW, SR, SW>(cr: CR, cw: CW, sr: SR, sw: SW, frozen: watch::Receiver<bool>)
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    SR: AsyncRead + Unpin,
    SW: AsyncWrite + Unpin,
{
    tokio::select! {
        _ = pump(cr, sw, frozen.clone()) => {}
        _ = pump(sr, cw, frozen) => {}
    }
}

async fn pump<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut from: R,
    mut to: W,
    mut frozen: watch::Receiver<bool>,
) {
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
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = frozen.changed() => continue,
        };
        if *frozen.borrow() {
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
