//! Dropping duplicates by `_unique_id`.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

type Seen = (VecDeque<Arc<str>>, HashSet<Arc<str>>);

/// The last `capacity` unique ids seen (Python keeps 16; we keep at least a prefetch's worth).
#[derive(Debug)]
pub(crate) struct Dedup {
    /// The ids in arrival order, and the same ids for lookups (one allocation each).
    inner: Mutex<Seen>,
    capacity: usize,
}

impl Dedup {
    pub(crate) fn new(capacity: usize) -> Self {
        Dedup {
            inner: Mutex::default(),
            capacity: capacity.max(16),
        }
    }

    /// Records an id; `false` when it was already there (a duplicate). Empty ids are never
    /// duplicates.
    pub(crate) fn insert(&self, id: &str) -> bool {
        if id.is_empty() {
            return true;
        }
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (order, set) = &mut *guard;
        if set.contains(id) {
            return false;
        }
        if order.len() >= self.capacity
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        let id: Arc<str> = Arc::from(id);
        order.push_back(id.clone());
        set.insert(id);
        true
    }

    /// Whether an id was recorded.
    pub(crate) fn contains(&self, id: &str) -> bool {
        !id.is_empty()
            && self
                .inner
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .1
                .contains(id)
    }

    pub(crate) fn clear(&self) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.clear();
        guard.1.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_ids() {
        let d = Dedup::new(16);
        assert!(d.insert("a"));
        assert!(!d.insert("a"));
        assert!(d.insert(""));
        assert!(d.insert(""));
        for i in 0..16 {
            d.insert(&i.to_string());
        }
        assert!(!d.contains("a"));
        assert!(d.insert("a"));
    }
}
