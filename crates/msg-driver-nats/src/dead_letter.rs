//! Dead-lettering: a notification delivered more than `max_deliveries` times goes to its
//! exchange's dead-letter subject (kept by the dead-letter stream) with headers saying where
//! it came from, and is terminated on its consumer.

use async_nats::HeaderMap;
use bytes::Bytes;
use msg_core::{Result, Retry};

use crate::notification_listener::{ListenerState, SourceInfo};
use crate::subject::stream_sequence;

/// The headers a dead-lettered notification carries: the subject it was published on.
pub(crate) const DEAD_LETTER_SUBJECT: &str = "Msg-Dead-Letter-Subject";
/// The consumer that gave up on it.
pub(crate) const DEAD_LETTER_CONSUMER: &str = "Msg-Dead-Letter-Consumer";
/// How often it was delivered.
pub(crate) const DEAD_LETTER_DELIVERIES: &str = "Msg-Dead-Letter-Deliveries";

/// Whether a notification a handler requeues is dead-lettered instead: it was delivered more
/// than `max` times (`max` 0: never).
pub(crate) fn exhausted(delivered: u64, max: u64) -> bool {
    max > 0 && delivered > max
}

/// Whether a notification is dead-lettered as it arrives, never handled: delivered again
/// and again without being settled (a listener that dies on it never gets to requeue it),
/// one delivery past what [`exhausted`] allows.
pub(crate) fn abandoned(delivered: u64, max: u64) -> bool {
    max > 0 && delivered > max.saturating_add(1)
}

/// The `Nats-Msg-Id` of a dead-lettered copy: the same for every attempt at the same
/// message, so the dead-letter stream stores it once.
fn msg_id(stream: &str, consumer: &str, ack: &str) -> String {
    format!(
        "dlq:{stream}:{consumer}:{}",
        stream_sequence(ack).unwrap_or(0)
    )
}

/// Publishes a notification to the dead-letter subject of its exchange and terminates it.
pub(crate) async fn dead_letter(
    state: &ListenerState,
    source: &SourceInfo,
    ack: &str,
    delivered: u64,
    payload: Bytes,
) -> Result<()> {
    let topo = &state.topo;
    let subject =
        topo.layout
            .dead_letter_subject(&source.exchange, &source.topic, source.priority)?;
    let mut headers = HeaderMap::new();
    headers.insert(DEAD_LETTER_SUBJECT, source.spec.filter.as_str());
    headers.insert(DEAD_LETTER_CONSUMER, source.spec.name.as_str());
    headers.insert(DEAD_LETTER_DELIVERIES, delivered.to_string().as_str());
    let msg_id = msg_id(&source.spec.stream, &source.spec.name, ack);
    let exchange = source.exchange.clone();
    topo.publish(
        &subject,
        &msg_id,
        Some(headers),
        payload,
        Retry::Attempts(2),
        || async { topo.dead_letter_stream(&exchange).await.map(|_| ()) },
    )
    .await?;
    msg_core::metrics::dead_lettered(crate::DRIVER_NAME);
    tracing::warn!(
        consumer = source.spec.name,
        topic = source.topic,
        dead_letter = subject,
        deliveries = delivered,
        "notification delivered too often: dead-lettered"
    );
    state.send_ack(ack, b"+TERM").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requeue_dead_letters_past_max_deliveries() {
        assert!(!exhausted(1, 0), "0: never");
        assert!(!exhausted(u64::MAX, 0), "0: never");
        assert!(!exhausted(3, 3));
        assert!(exhausted(4, 3));
        assert!(exhausted(2, 1));
    }

    #[test]
    fn an_arrival_dead_letters_one_delivery_later() {
        assert!(!abandoned(u64::MAX, 0), "0: never");
        assert!(
            !abandoned(4, 3),
            "a handler may still requeue the 4th delivery"
        );
        assert!(abandoned(5, 3));
        assert!(!abandoned(u64::MAX, u64::MAX), "no overflow");
        // every delivery `abandoned` takes is one `exhausted` takes too
        for max in 1..5 {
            for d in 1..10 {
                assert!(!abandoned(d, max) || exhausted(d, max));
            }
        }
    }

    #[test]
    fn the_dead_letter_id_names_the_stream_sequence() {
        let ack = "$JS.ACK.S.C.1.42.7.1700000000000000000.0";
        assert_eq!(msg_id("S", "C", ack), "dlq:S:C:42");
        assert_eq!(msg_id("S", "C", "not an ack"), "dlq:S:C:0");
    }
}
