//! The hostile-peer suite on RabbitMQ: raw lapin publishes malformed, out-of-bounds and
//! compressed bodies onto the queues a running msg server and listener consume.

use std::sync::Arc;

use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use msg_core::{Priority, async_trait, naming};
use msg_testkit::RawPeer;

use crate::{rabbit_url, raw_connection};

struct RawLapin {
    channel: Channel,
    _conn: Connection,
}

impl RawLapin {
    async fn publish(
        &self,
        exchange: &str,
        key: &str,
        body: Vec<u8>,
        compression: Option<&str>,
    ) -> Result<(), String> {
        let mut headers = FieldTable::default();
        if let Some(c) = compression {
            headers.insert("compression".into(), AMQPValue::LongString(c.into()));
        }
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_headers(headers);
        self.channel
            .basic_publish(
                exchange.into(),
                key.into(),
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

#[async_trait]
impl RawPeer for RawLapin {
    async fn send_request(&self, exchange: &str, topic: &str, body: Vec<u8>) -> Result<(), String> {
        self.publish(exchange, topic, body, None).await
    }

    async fn send_notification(
        &self,
        exchange: &str,
        topic: &str,
        priority: Priority,
        body: Vec<u8>,
    ) -> Result<(), String> {
        self.publish(
            exchange,
            &naming::notification_key(topic, priority),
            body,
            None,
        )
        .await
    }

    async fn send_compressed_request(
        &self,
        exchange: &str,
        topic: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<bool, String> {
        self.publish(exchange, topic, body, Some(content_type))
            .await
            .map(|()| true)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_peer_cannot_take_down_a_server_or_listener() {
    let Some(url) = rabbit_url("amqp hostile peer") else {
        return;
    };
    let conn = raw_connection(&url).await;
    let channel = conn.create_channel().await.unwrap();
    // confirmed publishes: each body is in its queue before the suite's next call is sent
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .unwrap();
    let peer = Arc::new(RawLapin {
        channel,
        _conn: conn,
    });
    let report = msg_testkit::hostile_peer_suite(msg_driver_amqp::factory(), &url, peer)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{report:#?}");
    assert!(
        !report.compressed_skipped,
        "RabbitMQ carries kombu's compression header"
    );
}
