//! Where messages on durable queues are kept. Now: in memory. Later: disk, with fsync.
//!
//! The contract that lets a durable store arrive without changing any adapter: a queue hands a
//! persistent message on a durable queue to [`Storage::append`] together with a [`Completion`],
//! and the publisher's confirmation waits for every completion of that publish. The in-memory
//! store completes at once; a disk store will complete after fsync, from its own thread.
//! [`Storage::remove`] is called when the message leaves the queue for good.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::confirm::Completion;
use crate::message::Message;
use crate::names::{QueueName, VhostName};
use crate::outbox::EntryId;

/// Identifies a queue across vhosts for storage.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueueKey {
    /// The vhost.
    pub vhost: VhostName,
    /// The queue.
    pub queue: QueueName,
}

/// Persistence for messages on durable queues.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Keeps `message` as entry `entry` of `queue`; calls `done.complete` once it is safe
    /// (at once, from another thread later, or with a failure).
    fn append(&self, queue: &QueueKey, entry: EntryId, message: &Arc<Message>, done: Completion);
    /// Forgets entry `entry` of `queue`: acked, expired, dropped or dead-lettered.
    fn remove(&self, queue: &QueueKey, entry: EntryId);
    /// Forgets every entry of `queue` (purge or delete).
    fn clear(&self, queue: &QueueKey);
    /// The entries of `queue` in order, for recovery at start.
    fn load(&self, queue: &QueueKey) -> Vec<(EntryId, Arc<Message>)>;
}

/// The in-memory store: keeps what a disk store would, so the code paths are exercised now.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    queues: Mutex<HashMap<QueueKey, BTreeMap<EntryId, Arc<Message>>>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries held for `queue`.
    pub fn len(&self, queue: &QueueKey) -> usize {
        self.queues.lock().get(queue).map_or(0, BTreeMap::len)
    }
}

impl Storage for MemoryStorage {
    fn append(&self, queue: &QueueKey, entry: EntryId, message: &Arc<Message>, done: Completion) {
        self.queues
            .lock()
            .entry(queue.clone())
            .or_default()
            .insert(entry, Arc::clone(message));
        done.complete(Ok(()));
    }

    fn remove(&self, queue: &QueueKey, entry: EntryId) {
        if let Some(entries) = self.queues.lock().get_mut(queue) {
            entries.remove(&entry);
        }
    }

    fn clear(&self, queue: &QueueKey) {
        self.queues.lock().remove(queue);
    }

    fn load(&self, queue: &QueueKey) -> Vec<(EntryId, Arc<Message>)> {
        self.queues
            .lock()
            .get(queue)
            .map_or_else(Vec::new, |entries| {
                entries.iter().map(|(id, m)| (*id, Arc::clone(m))).collect()
            })
    }
}
