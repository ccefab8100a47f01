//! Ready messages: one store per priority level, each ordered by [`EntryId`].
//!
//! Invariants:
//! - Within a level, entries are ordered by id, so a requeued entry goes back in front of every
//!   newer one without any bookkeeping of positions.
//! - The head of the queue is the lowest id of the highest non-empty level.
//! - `count` and `body_bytes` always equal the sums over every level (`x-max-length` counts
//!   ready messages, `x-max-length-bytes` their body bytes, as RabbitMQ does).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::message::Message;
use crate::outbox::EntryId;

/// One message held by the queue, ready or unacked.
#[derive(Debug)]
pub(super) struct Entry {
    /// Its id: position in the queue's history.
    pub(super) id: EntryId,
    /// The message, shared with every other copy.
    pub(super) message: Arc<Message>,
    /// `message.weight()`, charged to the memory monitor while the queue holds it.
    pub(super) weight: usize,
    /// Its priority level (the message's priority clamped to the queue's maximum).
    pub(super) level: u8,
    /// When it expires; `None` for never. It is alive up to and including this instant.
    pub(super) expires_at: Option<Instant>,
    /// How many times it was handed out.
    pub(super) delivery_count: u32,
    /// When it entered this queue; kept across requeues.
    pub(super) enqueued_at: Instant,
    /// True if storage holds it (persistent message on a durable queue).
    pub(super) stored: bool,
}

impl Entry {
    /// Body bytes, as counted by `x-max-length-bytes`.
    pub(super) fn body_len(&self) -> u64 {
        self.message.body.len() as u64
    }

    /// True once its TTL has passed.
    pub(super) fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|deadline| now > deadline)
    }
}

/// The ready messages of one queue.
#[derive(Debug)]
pub(super) struct ReadyStore {
    levels: Vec<BTreeMap<EntryId, Entry>>,
    count: usize,
    body_bytes: u64,
}

impl ReadyStore {
    /// A store with levels `0..=max_priority` (one level without priorities).
    pub(super) fn new(max_priority: Option<u8>) -> Self {
        let levels = usize::from(max_priority.unwrap_or(0)) + 1;
        Self {
            levels: (0..levels).map(|_| BTreeMap::new()).collect(),
            count: 0,
            body_bytes: 0,
        }
    }

    /// The level a message of priority `priority` goes to (absent = 0, clamped to the maximum).
    pub(super) fn level_of(&self, priority: Option<u8>) -> u8 {
        let top = u8::try_from(self.levels.len() - 1).unwrap_or(u8::MAX);
        priority.unwrap_or(0).min(top)
    }

    /// Number of ready messages.
    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// True when nothing is ready.
    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Sum of the ready messages' body bytes.
    pub(super) fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Adds an entry (new or requeued) at its place by id within its level.
    pub(super) fn push(&mut self, entry: Entry) {
        let level = usize::from(entry.level).min(self.levels.len() - 1);
        self.count += 1;
        self.body_bytes += entry.body_len();
        if let Some(previous) = self.levels[level].insert(entry.id, entry) {
            // Ids are unique, so this cannot happen; keep the counts right if it ever does.
            self.count -= 1;
            self.body_bytes -= previous.body_len();
        }
    }

    fn head_level(&self) -> Option<usize> {
        self.levels.iter().rposition(|level| !level.is_empty())
    }

    /// The next message to hand out.
    pub(super) fn head(&self) -> Option<&Entry> {
        let level = self.head_level()?;
        self.levels[level].first_key_value().map(|(_, entry)| entry)
    }

    /// Takes the next message to hand out.
    pub(super) fn pop_head(&mut self) -> Option<Entry> {
        let level = self.head_level()?;
        let (_, entry) = self.levels[level].pop_first()?;
        self.forget(&entry);
        Some(entry)
    }

    /// Takes entry `id` from level `level`, wherever it is.
    pub(super) fn remove(&mut self, level: u8, id: EntryId) -> Option<Entry> {
        let entry = self.levels.get_mut(usize::from(level))?.remove(&id)?;
        self.forget(&entry);
        Some(entry)
    }

    /// Takes the expired entries at the head of every level (RabbitMQ expires messages only once
    /// they reach the head).
    pub(super) fn pop_expired_heads(&mut self, now: Instant) -> Vec<Entry> {
        let mut expired = Vec::new();
        for level in &mut self.levels {
            while level
                .first_key_value()
                .is_some_and(|(_, entry)| entry.is_expired(now))
            {
                if let Some((_, entry)) = level.pop_first() {
                    expired.push(entry);
                }
            }
        }
        for entry in &expired {
            self.forget(entry);
        }
        expired
    }

    /// Takes every ready entry, in no particular order.
    pub(super) fn drain(&mut self) -> Vec<Entry> {
        self.count = 0;
        self.body_bytes = 0;
        self.levels
            .iter_mut()
            .flat_map(|level| std::mem::take(level).into_values())
            .collect()
    }

    fn forget(&mut self, entry: &Entry) {
        self.count -= 1;
        self.body_bytes -= entry.body_len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::ExchangeName;
    use std::time::Duration;

    fn entry(id: u64, level: u8, body: &str, expires_at: Option<Instant>) -> Entry {
        let message = Arc::new(Message::new(
            ExchangeName::default_exchange(),
            "k",
            body.to_owned(),
        ));
        Entry {
            id: EntryId(id),
            weight: message.weight(),
            message,
            level,
            expires_at,
            delivery_count: 0,
            enqueued_at: Instant::now(),
            stored: false,
        }
    }

    #[test]
    fn higher_level_first_then_by_id() {
        let mut store = ReadyStore::new(Some(5));
        assert_eq!(store.level_of(Some(9)), 5);
        assert_eq!(store.level_of(None), 0);
        store.push(entry(3, 0, "a", None));
        store.push(entry(2, 5, "bb", None));
        store.push(entry(1, 0, "ccc", None));
        assert_eq!(store.len(), 3);
        assert_eq!(store.body_bytes(), 6);
        let order: Vec<u64> = std::iter::from_fn(|| store.pop_head().map(|e| e.id.0)).collect();
        assert_eq!(order, vec![2, 1, 3]);
        assert!(store.is_empty());
        assert_eq!(store.body_bytes(), 0);
    }

    #[test]
    fn expired_heads_of_every_level_are_taken() {
        let now = Instant::now();
        let past = Some(now);
        let later = Some(now + Duration::from_secs(5));
        let mut store = ReadyStore::new(Some(1));
        store.push(entry(1, 0, "a", past));
        store.push(entry(2, 0, "a", later));
        store.push(entry(3, 0, "a", past));
        store.push(entry(4, 1, "a", past));
        let expired = store.pop_expired_heads(now + Duration::from_millis(1));
        let ids: Vec<u64> = expired.iter().map(|e| e.id.0).collect();
        assert_eq!(ids, vec![1, 4], "only heads expire; entry 3 waits behind 2");
        assert_eq!(store.len(), 2);
    }
}
