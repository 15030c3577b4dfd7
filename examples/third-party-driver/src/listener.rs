//! The listeners' intake: msg-core's channel-fed listener ([`msg_core::feed`]) over the
//! deliveries the reader tasks take. Decoding happens as a message is yielded; what is given
//! back (at stop, or when the listener is dropped) goes back to its group, one `XCLAIM` per
//! stream; stopping tells the readers to stop.

use msg_core::Listener;
use msg_core::feed::{Feed, Intake, feed};
use tokio::sync::watch;

use crate::delivery::{self, Delivery};

/// Turns a delivery into what the listener yields; `None` when it can't be decoded (logged
/// once and removed).
pub(crate) type Decode<M> = Box<dyn Fn(Delivery) -> Option<M> + Send + Sync>;

/// A Redis listener's intake.
pub(crate) struct RedisIntake<M> {
    decode: Decode<M>,
    stop: watch::Sender<bool>,
}

impl<M: Send + 'static> Intake for RedisIntake<M> {
    type Raw = Delivery;
    type Item = M;

    fn decode(&self, d: Delivery) -> Option<M> {
        (self.decode)(d)
    }

    fn give_back(&self, raws: Vec<Delivery>) {
        delivery::give_back_all(raws);
    }

    fn stop(&self) {
        self.stop.send_replace(true);
    }
}

/// A new listener: the feed its readers push into, the stop signal they watch, and the
/// listener itself.
pub(crate) fn channel<M: Send + 'static>(
    decode: Decode<M>,
) -> (Feed<RedisIntake<M>>, watch::Receiver<bool>, Listener<M>) {
    let (stop, stopped) = watch::channel(false);
    let (feed, listener) = feed(RedisIntake { decode, stop });
    (feed, stopped, listener)
}
