//! Stream id allocation from configured inclusive ranges (Driver Model §11).

use crate::config::StreamIdRange;
use std::collections::BTreeSet;

/// Hands out ids from one inclusive range; an id is busy until released.
#[derive(Debug, Clone)]
pub struct IdPool {
    range: Option<StreamIdRange>,
    busy: BTreeSet<u32>,
}

impl IdPool {
    /// A pool over `range`; `None` (unset or empty) allocates nothing.
    pub fn new(range: Option<StreamIdRange>) -> Self {
        Self {
            range: range.filter(|r| !r.is_empty()),
            busy: BTreeSet::new(),
        }
    }

    /// Whether a range is configured.
    pub fn is_enabled(&self) -> bool {
        self.range.is_some()
    }

    /// Whether `id` lies in the range.
    pub fn contains(&self, id: u32) -> bool {
        self.range.is_some_and(|r| r.contains(id))
    }

    /// Marks `id` busy if it lies in the range (ids taken by other means, e.g. streams
    /// found on disk); returns whether it was marked.
    pub fn reserve(&mut self, id: u32) -> bool {
        self.contains(id) && self.busy.insert(id)
    }

    /// Allocates `preferred` when it lies in the range and is free, otherwise the lowest
    /// free id; `None` when the range is unset or exhausted.
    pub fn allocate(&mut self, preferred: Option<u32>) -> Option<u32> {
        let range = self.range?;
        if let Some(id) = preferred {
            if range.contains(id) && self.busy.insert(id) {
                return Some(id);
            }
        }
        // Lowest free id: walk the busy set in order looking for the first hole.
        let mut candidate = range.start;
        for &id in self.busy.range(range.start..=range.end) {
            if id != candidate {
                break;
            }
            if candidate == range.end {
                return None;
            }
            candidate += 1;
        }
        self.busy.insert(candidate);
        Some(candidate)
    }

    /// Returns `id` to the pool.
    pub fn release(&mut self, id: u32) {
        self.busy.remove(&id);
    }

    /// Ids currently allocated.
    pub fn allocated(&self) -> usize {
        self.busy.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_range_allocates_nothing() {
        let mut pool = IdPool::new(None);
        assert!(!pool.is_enabled());
        assert_eq!(pool.allocate(Some(5)), None);
        assert_eq!(pool.allocate(None), None);
    }

    #[test]
    fn preferred_id_is_granted_when_free_and_in_range() {
        let mut pool = IdPool::new(Some(StreamIdRange::new(10, 20)));
        assert_eq!(pool.allocate(Some(15)), Some(15));
        assert_eq!(
            pool.allocate(Some(15)),
            Some(10),
            "busy preferred id falls back"
        );
        assert_eq!(
            pool.allocate(Some(99)),
            Some(11),
            "out-of-range preferred id falls back"
        );
    }

    #[test]
    fn exhausted_range_returns_none_and_release_frees() {
        let mut pool = IdPool::new(Some(StreamIdRange::new(1, 3)));
        assert_eq!(pool.allocate(None), Some(1));
        assert_eq!(pool.allocate(None), Some(2));
        assert_eq!(pool.allocate(None), Some(3));
        assert_eq!(pool.allocate(None), None);
        pool.release(2);
        assert_eq!(pool.allocate(None), Some(2));
        assert_eq!(pool.allocated(), 3);
    }

    #[test]
    fn range_ending_at_u32_max_does_not_overflow() {
        let mut pool = IdPool::new(Some(StreamIdRange::new(u32::MAX - 1, u32::MAX)));
        assert_eq!(pool.allocate(None), Some(u32::MAX - 1));
        assert_eq!(pool.allocate(None), Some(u32::MAX));
        assert_eq!(pool.allocate(None), None);
    }
}
