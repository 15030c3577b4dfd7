//! Dropping duplicates by `_unique_id`.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

type Seen = (VecDeque<Id>, HashSet<Id>);

/// A unique id as kept: the 32 hex digits that oslo and msg send as a number (no allocation,
/// a short hash), anything else as text. Made once per message ([`Id::of`]) and used for both
/// the lookup and the record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Id {
    Hex(u128),
    Text(Arc<str>),
}

impl Id {
    /// The id of a `_unique_id`; `None` for an empty one (never a duplicate).
    pub(crate) fn of(id: &str) -> Option<Self> {
        if id.is_empty() {
            return None;
        }
        Some(match hex(id) {
            Some(n) => Id::Hex(n),
            None => Id::Text(Arc::from(id)),
        })
    }
}

/// 32 lowercase hex digits (a uuid4's `hex`) as a number; `None` otherwise, so that a
/// differently written id never collides with one of these.
fn hex(id: &str) -> Option<u128> {
    if id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        u128::from_str_radix(id, 16).ok()
    } else {
        None
    }
}

/// The last `capacity` unique ids seen (Python keeps 16; we keep at least a prefetch's worth).
#[derive(Debug)]
pub(crate) struct Dedup {
    /// The ids in arrival order, and the same ids for lookups (at most one allocation each).
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
        Id::of(id).is_none_or(|id| self.insert_id(id))
    }

    /// [`Dedup::insert`] of an id already made.
    pub(crate) fn insert_id(&self, id: Id) -> bool {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (order, set) = &mut *guard;
        if set.contains(&id) {
            return false;
        }
        if order.len() >= self.capacity
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        order.push_back(id.clone());
        set.insert(id);
        true
    }

    /// Whether an id was recorded.
    pub(crate) fn contains(&self, id: &Id) -> bool {
        self.inner
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

    fn contains(d: &Dedup, id: &str) -> bool {
        Id::of(id).is_some_and(|id| d.contains(&id))
    }

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
        assert!(!contains(&d, "a"));
        assert!(d.insert("a"));
    }

    #[test]
    fn hex_ids_stay_apart_from_other_spellings() {
        let d = Dedup::new(16);
        let id = "0123456789abcdef0123456789abcdef";
        assert!(d.insert(id));
        assert!(contains(&d, id));
        assert!(!d.insert(id));
        // the same digits written otherwise are another id, as they were as text
        assert!(!contains(&d, &id.to_uppercase()));
        assert!(d.insert(&id.to_uppercase()));
        assert!(!contains(&d, "+123456789abcdef0123456789abcdef"));
    }
}
