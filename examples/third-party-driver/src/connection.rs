//! Connections: one shared, multiplexed connection per driver for everything that doesn't
//! block, and one of its own for each blocking reader (a blocking `XREADGROUP` or `BLPOP`
//! holds its connection until it returns, so it can't share one).

use std::time::Duration;

use msg_core::{Error, Result};

use crate::errors::from_redis;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

use crate::options::Options;

/// The driver's name, in errors and logs.
pub(crate) const DRIVER: &str = "redis";
/// How long a blocking read waits before it comes back empty (and its reader checks
/// whether it was stopped).
pub(crate) const BLOCK: Duration = Duration::from_millis(1000);
/// How long a command may take to answer on the shared connection.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The client for the URL's server, database and credentials (TLS for `rediss://`).
pub(crate) fn client(o: &Options) -> Result<Client> {
    let addr = if o.tls {
        // redis-rs builds its TLS config with rustls's process-wide crypto provider; when
        // the application has not chosen one (and a build enables more than one, so rustls
        // can't pick), aws-lc-rs it is
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
        ConnectionAddr::TcpTls {
            host: o.host.clone(),
            port: o.port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(o.host.clone(), o.port)
    };
    let mut settings = RedisConnectionInfo::default().set_db(i64::from(o.db));
    if let Some(u) = &o.username {
        settings = settings.set_username(u);
    }
    if let Some(p) = &o.password {
        settings = settings.set_password(p);
    }
    let info: ConnectionInfo = addr
        .into_connection_info()
        .map_err(|e| from_redis("connection settings", e))?
        .set_redis_settings(settings);
    if !o.tls || (o.ssl_ca_file.is_none() && o.ssl_cert_file.is_none()) {
        return Client::open(info).map_err(|e| from_redis("connection settings", e));
    }
    let read = |what: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| Error::Config(format!("{what} `{}`: {e}", path.display())))
    };
    let root_cert = match &o.ssl_ca_file {
        Some(p) => Some(read("ssl_ca_file", p)?),
        None => None,
    };
    let client_tls = match (&o.ssl_cert_file, &o.ssl_key_file) {
        (Some(c), Some(k)) => Some(redis::ClientTlsConfig {
            client_cert: read("ssl_cert_file", c)?,
            client_key: read("ssl_key_file", k)?,
        }),
        _ => None,
    };
    Client::build_with_tls(
        info,
        redis::TlsCertificates {
            client_tls,
            root_cert,
        },
    )
    .map_err(|e| from_redis("TLS settings", e))
}

/// The shared connection: reconnects by itself; a command that fails while it does fails.
pub(crate) async fn shared(client: &Client) -> Result<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_number_of_retries(2);
    ConnectionManager::new_with_config(client.clone(), config)
        .await
        .map_err(|e| from_redis("connecting", e))
}

/// A connection of its own for a blocking reader: its answers may take [`BLOCK`].
pub(crate) async fn blocking(client: &Client) -> Result<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(BLOCK + RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_number_of_retries(2);
    ConnectionManager::new_with_config(client.clone(), config)
        .await
        .map_err(|e| from_redis("connecting a reader", e))
}

/// Whether a Redis error says the group (or the stream) is already there.
pub(crate) fn is_busy_group(e: &redis::RedisError) -> bool {
    e.code() == Some("BUSYGROUP")
}

/// Creates `group` on `key` (and the stream, if missing) at `start` (`$`: only what comes
/// next); an existing group is left as it is.
pub(crate) async fn ensure_group(
    conn: &mut ConnectionManager,
    key: &str,
    group: &str,
    start: &str,
) -> Result<()> {
    let r: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(group)
        .arg(start)
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match r {
        Ok(()) => Ok(()),
        Err(e) if is_busy_group(&e) => Ok(()),
        Err(e) => Err(from_redis("creating a consumer group", e)),
    }
}
