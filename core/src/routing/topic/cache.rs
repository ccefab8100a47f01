//! The match cache: routing key -> the values it matched, bounded and cleared on every change.
//!
//! Invariants:
//! - An entry is only inserted by a matcher that still holds the trie's read lock, and the cache is
//!   cleared by a writer that still holds the trie's write lock. So once an insert or remove has
//!   returned, no entry computed from the trie before it can be served (no generation id needed).
//! - The cache holds at most its capacity of keys, plus at most one per thread inserting at that
//!   very moment (the check and the insert are not one atomic step).

use dashmap::DashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A bounded map from routing key to match result, safe to read from many threads at once.
pub(super) struct MatchCache<T> {
    entries: DashMap<Box<str>, Arc<[T]>>,
    /// The number of entries, kept beside the map because `DashMap::len` locks every shard.
    len: AtomicUsize,
    capacity: usize,
}

impl<T> MatchCache<T> {
    /// An empty cache for at most `capacity` keys (`capacity` > 0).
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            entries: DashMap::new(),
            len: AtomicUsize::new(0),
            capacity,
        }
    }

    /// The most keys it holds.
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The number of keys cached now.
    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// The cached result for `routing_key`.
    pub(super) fn get(&self, routing_key: &str) -> Option<Arc<[T]>> {
        self.entries
            .get(routing_key)
            .map(|entry| Arc::clone(entry.value()))
    }

    /// Caches `result` for `routing_key`, first evicting about half the entries if full.
    ///
    /// Call only while holding the trie's read lock (see the module invariants).
    pub(super) fn insert(&self, routing_key: &str, result: Arc<[T]>) {
        if self.len.load(Ordering::Relaxed) >= self.capacity {
            self.evict_half();
        }
        if self
            .entries
            .insert(Box::from(routing_key), result)
            .is_none()
        {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Removes every other entry in the map's (hash, so effectively random) order: as cheap as
    /// nats' random pruning, without a random number per entry, and it always frees at least one
    /// slot. A cleared cache refills from the hot keys first, since they are the ones asked for.
    fn evict_half(&self) {
        let mut keep = true;
        self.entries.retain(|_, _| {
            keep = !keep;
            if !keep {
                self.len.fetch_sub(1, Ordering::Relaxed);
            }
            keep
        });
    }

    /// Drops every entry. Call only while holding the trie's write lock, after changing it.
    pub(super) fn clear(&self) {
        if self.len.load(Ordering::Relaxed) == 0 {
            return;
        }
        self.entries.clear();
        // No matcher can insert concurrently: they insert under the read lock the caller excludes.
        self.len.store(0, Ordering::Relaxed);
    }
}
