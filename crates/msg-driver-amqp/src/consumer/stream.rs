//! Where a consumer of a fanout stream (`rabbit_stream_fanout`) reads from.
//!
//! A stream keeps its messages after they are read (for `x-max-age`), so consuming it says
//! where to start (`x-stream-offset`). As oslo does, each consumer tracks the offsets the
//! broker stamps on what it delivers (the `x-stream-offset` header) and, after a reconnect or
//! a channel lost, reads on from where it was, so nothing is skipped and nothing read is read
//! again. Two differences, in docs/decisions.md: a consumer that starts (or restarts with its
//! process) reads only what comes next (`next`; oslo's `last` reads the newest chunk again,
//! messages handled before the restart among them), and it reads on from the oldest delivery
//! it has not yet settled rather than from the newest one delivered, so a fanout cast
//! delivered but not handled when the connection went is delivered again, as a queue would.

use std::collections::BTreeMap;
use std::sync::Arc;

use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable};
use parking_lot::Mutex;

/// The offset header the broker stamps on a stream's deliveries, and the consume argument.
const OFFSET: &str = "x-stream-offset";

/// One consumer's place in its stream.
#[derive(Debug)]
pub(crate) struct StreamCursor {
    queue: String,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Offsets delivered and not yet settled (a count each: a redelivery after a resume may
    /// overlap what is still being handled).
    in_flight: BTreeMap<i64, u32>,
    /// The newest offset delivered.
    newest: Option<i64>,
}

impl StreamCursor {
    pub(crate) fn new(queue: &str) -> Arc<Self> {
        Arc::new(StreamCursor {
            queue: queue.to_string(),
            state: Mutex::default(),
        })
    }

    /// The stream's queue.
    pub(crate) fn queue(&self) -> &str {
        &self.queue
    }

    /// Where to start reading: the oldest delivery not settled, else the one after the
    /// newest delivered, else only what comes next.
    pub(crate) fn start(&self) -> AMQPValue {
        let st = self.state.lock();
        let next = match st.in_flight.keys().next() {
            Some(&oldest) => Some(oldest),
            None => st.newest.and_then(|n| n.checked_add(1)),
        };
        match next {
            Some(offset) => AMQPValue::LongLongInt(offset),
            None => AMQPValue::LongString("next".into()),
        }
    }

    /// The arguments of `basic.consume` on the stream.
    pub(crate) fn consume_arguments(&self) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert(OFFSET.into(), self.start());
        args
    }

    /// A delivery from the stream: its offset is in flight until the returned mark is dropped
    /// (the delivery acknowledged, rejected, or let go). `None` when it bears no offset the
    /// broker would stamp (not a number, or negative): it is handled, and not tracked.
    pub(crate) fn delivered(self: &Arc<Self>, delivery: &Delivery) -> Option<StreamMark> {
        let offset = delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(OFFSET))
            .and_then(as_offset);
        let Some(offset) = offset else {
            tracing::debug!(
                queue = self.queue.as_str(),
                "a stream delivery without a usable x-stream-offset header"
            );
            return None;
        };
        let mut st = self.state.lock();
        let count = st.in_flight.entry(offset).or_insert(0);
        *count = count.saturating_add(1);
        st.newest = Some(st.newest.map_or(offset, |n| n.max(offset)));
        drop(st);
        Some(StreamMark {
            cursor: self.clone(),
            offset,
        })
    }

    /// Forgets the place (the broker cancelled the consumer: the stream may have been
    /// deleted and made again, its offsets starting over); reading starts with what comes
    /// next, as oslo resets to its start.
    pub(crate) fn reset(&self) {
        let mut st = self.state.lock();
        tracing::warn!(
            queue = self.queue.as_str(),
            newest = ?st.newest,
            "the stream consumer was cancelled; reading on from the stream's next message"
        );
        *st = State::default();
    }

    fn settled(&self, offset: i64) {
        let mut st = self.state.lock();
        if let Some(count) = st.in_flight.get_mut(&offset) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                st.in_flight.remove(&offset);
            }
        }
    }
}

/// A stream offset as the broker stamps it: a non-negative integer.
fn as_offset(v: &AMQPValue) -> Option<i64> {
    let n = match v {
        AMQPValue::LongLongInt(n) => *n,
        AMQPValue::LongInt(n) => i64::from(*n),
        AMQPValue::LongUInt(n) => i64::from(*n),
        AMQPValue::ShortInt(n) => i64::from(*n),
        AMQPValue::ShortUInt(n) => i64::from(*n),
        AMQPValue::ShortShortInt(n) => i64::from(*n),
        AMQPValue::ShortShortUInt(n) => i64::from(*n),
        _ => return None,
    };
    (n >= 0).then_some(n)
}

/// A stream delivery in flight; settled when dropped.
#[derive(Debug)]
pub(crate) struct StreamMark {
    cursor: Arc<StreamCursor>,
    offset: i64,
}

impl Drop for StreamMark {
    fn drop(&mut self) {
        self.cursor.settled(self.offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::BasicProperties;

    fn delivery(offset: Option<AMQPValue>) -> Delivery {
        let mut headers = FieldTable::default();
        if let Some(o) = offset {
            headers.insert(OFFSET.into(), o);
        }
        let mut d = Delivery::mock(1, "".into(), "".into(), false, vec![]);
        d.properties = BasicProperties::default().with_headers(headers);
        d
    }

    fn at(o: i64) -> Delivery {
        delivery(Some(AMQPValue::LongLongInt(o)))
    }

    #[test]
    fn a_new_consumer_reads_only_what_comes_next() {
        let c = StreamCursor::new("t_fanout");
        assert_eq!(c.start(), AMQPValue::LongString("next".into()));
    }

    #[test]
    fn it_reads_on_after_what_it_settled() {
        let c = StreamCursor::new("t_fanout");
        drop(c.delivered(&at(7)));
        drop(c.delivered(&at(8)));
        assert_eq!(c.start(), AMQPValue::LongLongInt(9));
    }

    #[test]
    fn it_reads_again_from_the_oldest_unsettled() {
        let c = StreamCursor::new("t_fanout");
        let seven = c.delivered(&at(7));
        let eight = c.delivered(&at(8));
        drop(c.delivered(&at(9)));
        assert_eq!(c.start(), AMQPValue::LongLongInt(7));
        drop(seven);
        assert_eq!(c.start(), AMQPValue::LongLongInt(8));
        drop(eight);
        assert_eq!(c.start(), AMQPValue::LongLongInt(10));
    }

    #[test]
    fn a_redelivery_overlapping_one_in_flight_is_counted() {
        let c = StreamCursor::new("t_fanout");
        let first = c.delivered(&at(3));
        let again = c.delivered(&at(3));
        drop(first);
        assert_eq!(c.start(), AMQPValue::LongLongInt(3));
        drop(again);
        assert_eq!(c.start(), AMQPValue::LongLongInt(4));
    }

    #[test]
    fn bad_offsets_are_not_tracked_and_a_reset_starts_over() {
        let c = StreamCursor::new("t_fanout");
        assert!(c.delivered(&delivery(None)).is_none());
        assert!(
            c.delivered(&delivery(Some(AMQPValue::LongLongInt(-1))))
                .is_none()
        );
        assert!(
            c.delivered(&delivery(Some(AMQPValue::LongString("1".into()))))
                .is_none()
        );
        assert_eq!(c.start(), AMQPValue::LongString("next".into()));
        drop(c.delivered(&at(i64::MAX)));
        // no offset after the largest: start from what comes next
        assert_eq!(c.start(), AMQPValue::LongString("next".into()));
        drop(c.delivered(&delivery(Some(AMQPValue::LongInt(5)))));
        c.reset();
        assert_eq!(c.start(), AMQPValue::LongString("next".into()));
    }
}
