//! The hostile-peer suite on Redis: a plain redis-rs client `XADD`s malformed and
//! out-of-bounds bodies onto the streams a running msg server and listener read.

use std::sync::Arc;

use msg_core::{Priority, async_trait};
use msg_driver_redis::Keys;
use msg_testkit::RawPeer;

use crate::{delete_keys, prefixed, raw_client, redis_url};

struct RawRedis {
    conn: redis::aio::MultiplexedConnection,
    keys: Keys,
}

impl RawRedis {
    async fn add(&self, key: String, body: Vec<u8>) -> Result<(), String> {
        let mut conn = self.conn.clone();
        redis::cmd("XADD")
            .arg(key)
            .arg("*")
            .arg("b")
            .arg(body)
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

#[async_trait]
impl RawPeer for RawRedis {
    async fn send_request(&self, exchange: &str, topic: &str, body: Vec<u8>) -> Result<(), String> {
        self.add(self.keys.rpc_topic(exchange, topic), body).await
    }

    async fn send_notification(
        &self,
        exchange: &str,
        topic: &str,
        priority: Priority,
        body: Vec<u8>,
    ) -> Result<(), String> {
        self.add(self.keys.notify(exchange, topic, priority), body)
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_peer_cannot_take_down_a_server_or_listener() {
    let Some(url) = redis_url("redis hostile peer") else {
        return;
    };
    let (url, prefix) = prefixed(&url);
    let d = msg_driver_redis::RedisDriver::connect(&url.parse().unwrap())
        .await
        .unwrap();
    let conn = raw_client(d.options())
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let peer = Arc::new(RawRedis {
        conn,
        keys: d.keys().clone(),
    });
    let report = msg_testkit::hostile_peer_suite(msg_driver_redis::factory(), &url, peer).await;
    delete_keys(&url, &prefix).await;
    let report = report.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{report:#?}");
    assert!(report.compressed_skipped, "Redis has no compression header");
}
