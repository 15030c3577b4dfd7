//! The Redis driver against the Redis of `MSG_REDIS_URL`: msg's conformance suite, the
//! hostile-peer suite, and what Redis makes this driver do itself (redelivery of a crashed
//! listener's messages, dead-lettering).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod conformance;
mod hostile;
mod own_server;
mod redelivery;
mod restart;
mod tls;

/// The Redis URL, or `None` (after a loud SKIPPED line) when none is configured; with
/// `MSG_REQUIRE_BROKERS=1` a missing Redis fails the test instead.
pub fn redis_url(suite: &str) -> Option<String> {
    msg_testkit::broker_url("MSG_REDIS_URL", suite)
}

/// `url` with one more query option.
pub fn with_option(url: &str, option: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{option}")
}

/// A key prefix of this run's own, so runs never meet (and what they leave is findable).
pub fn prefixed(url: &str) -> (String, String) {
    let prefix = format!(
        "msgtest-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    (with_option(url, &format!("prefix={prefix}")), prefix)
}

/// Deletes every key under `prefix`.
pub async fn delete_keys(url: &str, prefix: &str) {
    let d = msg_driver_redis::RedisDriver::connect(&url.parse().unwrap())
        .await
        .unwrap();
    let client = raw_client(d.options());
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    for k in keys {
        let _: () = redis::cmd("DEL")
            .arg(k)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

/// A plain redis-rs client for the driver's server and database (no TLS in these tests).
pub fn raw_client(o: &msg_driver_redis::Options) -> redis::Client {
    let mut url = format!("redis://{}:{}/{}", o.host, o.port, o.db);
    if let Some(p) = &o.password {
        url = format!(
            "redis://{}:{}@{}:{}/{}",
            o.username.as_deref().unwrap_or(""),
            p,
            o.host,
            o.port,
            o.db
        );
    }
    redis::Client::open(url).unwrap()
}
