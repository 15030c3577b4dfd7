//! The hostile-peer suite on NATS: a raw async-nats client publishes malformed and
//! out-of-bounds bodies on the subjects a running msg server and listener consume.

use std::sync::Arc;

use msg_core::{Priority, async_trait};
use msg_driver_nats::Layout;
use msg_testkit::RawPeer;

use crate::nats_url;

struct RawNats {
    client: async_nats::Client,
    layout: Layout,
}

#[async_trait]
impl RawPeer for RawNats {
    async fn send_request(&self, exchange: &str, topic: &str, body: Vec<u8>) -> Result<(), String> {
        let subject = self
            .layout
            .rpc_topic(exchange, topic)
            .map_err(|e| e.to_string())?;
        self.client
            .publish(subject, body.into())
            .await
            .map_err(|e| e.to_string())?;
        self.client.flush().await.map_err(|e| e.to_string())
    }

    async fn send_notification(
        &self,
        exchange: &str,
        topic: &str,
        priority: Priority,
        body: Vec<u8>,
    ) -> Result<(), String> {
        let subject = self
            .layout
            .notify_subject(exchange, topic, priority)
            .map_err(|e| e.to_string())?;
        let js = async_nats::jetstream::new(self.client.clone());
        js.publish(subject, body.into())
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_peer_cannot_take_down_a_server_or_listener() {
    let Some(url) = nats_url("nats hostile peer") else {
        return;
    };
    let client = async_nats::connect(url.as_str()).await.unwrap();
    let peer = Arc::new(RawNats {
        client,
        layout: Layout::new("msg").unwrap(),
    });
    let report = msg_testkit::hostile_peer_suite(msg_driver_nats::factory(), &url, peer)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{report:#?}");
    assert!(report.compressed_skipped, "NATS has no compression header");
}
