//! NATS's monitoring endpoints (`/jsz`, `/connz`, `/healthz`): one bounded HTTP/1.0 GET.

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The most a monitoring answer may hold.
const MAX_BYTES: u64 = 16 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(5);

/// `GET http://127.0.0.1:<port><path>`: the status code and the body as JSON.
pub(crate) async fn get_json(port: u16, path: &str) -> Result<(u16, Value)> {
    let what = || format!("GET http://127.0.0.1:{port}{path}");
    let raw = tokio::time::timeout(TIMEOUT, async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await?;
        let mut raw = Vec::new();
        stream.take(MAX_BYTES).read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    })
    .await
    .map_err(|_| anyhow!("{}: no answer within {TIMEOUT:?}", what()))?
    .with_context(what)?;
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("{}: no end of the HTTP header", what());
    };
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("{}: bad status line", what()))?;
    let body = serde_json::from_str(body).with_context(|| format!("{}: not JSON", what()))?;
    Ok((code, body))
}
