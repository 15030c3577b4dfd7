//! Reply queues given up on: a reply that found its reply queue missing for
//! `kombu_missing_consumer_retry_timeout` marks the queue obsolete, and later replies and
//! heartbeats to it are dropped at once instead of each waiting that long (oslo's
//! `ObsoleteReplyQueuesCache`: its last 200 queues, each for a minute).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How many queues are remembered.
const SIZE: usize = 200;
/// How long a queue is remembered.
const TTL: Duration = Duration::from_secs(60);

/// The reply queues taken for gone, with when they were.
#[derive(Debug, Default)]
pub(crate) struct ObsoleteReplyQueues {
    queues: Mutex<HashMap<String, Instant>>,
}

impl ObsoleteReplyQueues {
    /// Whether `queue` was given up on within the last minute.
    pub(crate) fn contains(&self, queue: &str) -> bool {
        let queues = self.queues.lock();
        queues.get(queue).is_some_and(|at| at.elapsed() < TTL)
    }

    /// Marks `queue` obsolete; the oldest entry goes when the cache is full.
    pub(crate) fn add(&self, queue: &str) {
        let mut queues = self.queues.lock();
        queues.retain(|_, at| at.elapsed() < TTL);
        if queues.len() >= SIZE
            && let Some(oldest) = queues
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(q, _)| q.clone())
        {
            queues.remove(&oldest);
        }
        queues.insert(queue.to_string(), Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::{ObsoleteReplyQueues, SIZE};

    #[test]
    fn remembers_the_last_queues_up_to_its_size() {
        let cache = ObsoleteReplyQueues::default();
        assert!(!cache.contains("reply_a"));
        cache.add("reply_a");
        assert!(cache.contains("reply_a"));
        for i in 0..SIZE {
            cache.add(&format!("reply_{i}"));
        }
        assert!(!cache.contains("reply_a"), "the oldest went");
        assert!(cache.contains(&format!("reply_{}", SIZE - 1)));
    }
}
