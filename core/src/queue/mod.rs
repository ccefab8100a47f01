//! Queues: ordered stores of messages with consumers, RabbitMQ classic-queue semantics.
//!
//! A [`Queue`] holds ready messages (one ordered store per priority level, [`store`]), the
//! deliveries awaiting acknowledgement, and its consumers ([`consumers`]). Messages enter by
//! [`Queue::enqueue`] and leave by delivery and acknowledgement, `basic.get`, TTL expiry
//! ([`Queue::expire`]), overflow, rejection, purge or deletion; every way out is counted in
//! [`Metrics`](crate::metrics::Metrics), and the ways out that are deaths go to the queue's
//! dead-letter exchange through a [`DeadLetterSink`].
//!
//! Invariants worth naming:
//! - One `parking_lot::Mutex` per queue guards all of its state. Dispatch runs under it, so the
//!   messages of one queue reach each consumer in queue order.
//! - Lock order: while holding the queue's lock the queue may take an outbox's internal locks
//!   (tags, unacked map, channel) and the storage's and memory monitor's, never another queue's.
//!   The dead-letter sink and [`Outbox::park`] (which may call back into this queue) are called
//!   only after the lock is released; work for them is collected in a `Deferred`.
//! - Memory: a message is charged to the [`MemoryMonitor`] exactly once when it enters and
//!   discharged exactly once when it leaves for good (acked, auto-acked on delivery, dropped,
//!   expired, dead-lettered, purged, deleted). A requeue neither charges nor discharges.
//! - Storage: a persistent message on a durable queue is appended once on entry and removed once
//!   when it leaves for good; a deleted queue clears its storage.
//! - Time is passed in: no method reads a clock. Methods without an `Instant` parameter (the
//!   outbox callbacks) use the latest instant the queue has been given.

mod arguments;
mod consumers;
mod death;
mod dispatch;
mod enqueue;
mod hold;
mod lifecycle;
mod settle;
mod store;

#[cfg(test)]
mod tests;

pub use arguments::{ArgumentError, Overflow, QueueArguments};
pub use consumers::{ConsumeError, ConsumerSpec};
pub use death::{DeadLetter, DeadLetterSink, DeathReason};
pub use enqueue::EnqueueOutcome;

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::Instant;

use crate::confirm::Completion;
use crate::memory::MemoryMonitor;
use crate::message::Headers;
use crate::metrics::Metrics;
use crate::names::{ConnectionId, QueueName, SessionId};
use crate::outbox::{EntryId, Outbox};
use crate::storage::{QueueKey, Storage};

use consumers::{ConsumerId, Consumers};
use store::{Entry, ReadyStore};

/// Everything a queue was declared with.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// The vhost and name.
    pub key: QueueKey,
    /// Survives a restart (its persistent messages go to storage).
    pub durable: bool,
    /// The connection that owns an exclusive queue.
    pub exclusive_owner: Option<ConnectionId>,
    /// Deleted when its last consumer goes (having had at least one).
    pub auto_delete: bool,
    /// The parsed arguments.
    pub arguments: QueueArguments,
    /// The arguments as declared, to compare a redeclaration with.
    pub declared_arguments: Headers,
}

/// The broker-wide services a queue uses.
#[derive(Clone)]
pub struct QueueEnv {
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The memory high watermark every held message is charged to.
    pub memory: Arc<MemoryMonitor>,
    /// Where persistent messages of durable queues are kept.
    pub storage: Arc<dyn Storage>,
    /// Where dead letters go (the vhost).
    pub dead_letters: Arc<dyn DeadLetterSink>,
}

impl std::fmt::Debug for QueueEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueEnv")
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

/// A snapshot of a queue's counts (`queue.declare-ok`, management).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Messages ready for delivery.
    pub ready: u32,
    /// Messages delivered and awaiting acknowledgement.
    pub unacked: u32,
    /// Consumers attached.
    pub consumers: u32,
    /// Body bytes of the ready messages.
    pub ready_bytes: u64,
}

/// What removing consumers did to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Removal {
    /// How many consumers were removed.
    pub removed: u32,
    /// True when an auto-delete queue just lost its last consumer (having had at least one):
    /// the caller deletes the queue.
    pub auto_delete: bool,
}

/// A queue. Always shared as `Arc<Queue>`: deliveries hand the outbox an `Arc` of it to settle
/// through, and parked consumers a `Weak` to wake it with.
pub struct Queue {
    me: Weak<Queue>,
    config: QueueConfig,
    env: QueueEnv,
    state: Mutex<QueueState>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("key", &self.config.key)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// A delivery awaiting acknowledgement.
#[derive(Debug)]
struct Outstanding {
    entry: Entry,
    session: SessionId,
    consumer: Option<ConsumerId>,
}

/// Drop policies that log a warning the first time they fire on a queue.
#[derive(Debug, Clone, Copy)]
enum Policy {
    Ttl = 0,
    DropHead = 1,
    RejectPublish = 2,
    BlockPublisher = 3,
}

/// Everything behind the queue's lock.
#[derive(Debug)]
struct QueueState {
    ready: ReadyStore,
    unacked: HashMap<EntryId, Outstanding>,
    consumers: Consumers,
    next_entry: u64,
    /// The latest instant any caller passed in.
    clock: Instant,
    /// The last declare, consume, cancel or get (`x-expires`).
    last_use: Instant,
    had_consumer: bool,
    deleted: bool,
    warned: [bool; 4],
    /// Confirmations `block-publisher` holds until the queue is back within its limits.
    held: VecDeque<Completion>,
}

impl QueueState {
    fn advance(&mut self, now: Instant) {
        if now > self.clock {
            self.clock = now;
        }
    }

    /// True the first time `policy` fires on this queue.
    fn first_time(&mut self, policy: Policy) -> bool {
        !std::mem::replace(&mut self.warned[policy as usize], true)
    }
}

/// Work collected under the lock and done after releasing it.
#[derive(Default)]
struct Deferred {
    letters: Vec<DeadLetter>,
    /// Outboxes whose window refused a reservation, with the bytes that did not fit.
    park: Vec<(Arc<Outbox>, usize)>,
}

impl Queue {
    /// A new, empty queue; `now` is its first use (for `x-expires`).
    pub fn new(config: QueueConfig, env: QueueEnv, now: Instant) -> Arc<Self> {
        let state = QueueState {
            ready: ReadyStore::new(config.arguments.max_priority),
            unacked: HashMap::new(),
            consumers: Consumers::new(config.arguments.single_active_consumer),
            next_entry: 1,
            clock: now,
            last_use: now,
            had_consumer: false,
            deleted: false,
            warned: [false; 4],
            held: VecDeque::new(),
        };
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            config,
            env,
            state: Mutex::new(state),
        })
    }

    /// The queue's name.
    pub fn name(&self) -> &QueueName {
        &self.config.key.queue
    }

    /// What it was declared with.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Counts now.
    pub fn stats(&self) -> QueueStats {
        let state = self.state.lock();
        QueueStats {
            ready: saturate(state.ready.len()),
            unacked: saturate(state.unacked.len()),
            consumers: saturate(state.consumers.len()),
            ready_bytes: state.ready.body_bytes(),
        }
    }

    /// Records a use (a redeclaration) for `x-expires`.
    pub fn touch(&self, now: Instant) {
        let mut state = self.state.lock();
        state.advance(now);
        state.last_use = now;
    }

    /// True if `x-expires` is set, the queue has no consumers, and its last use (declare,
    /// consume, cancel, get) is at least `x-expires` before `now`: the caller deletes it.
    pub fn is_unused_expired(&self, now: Instant) -> bool {
        let Some(expires) = self.config.arguments.expires else {
            return false;
        };
        let state = self.state.lock();
        state.consumers.is_empty()
            && !state.deleted
            && now.saturating_duration_since(state.last_use) >= expires
    }

    /// True when the queue has a dead-letter exchange.
    fn dead_letters_enabled(&self) -> bool {
        self.config.arguments.dead_letter_exchange.is_some()
    }
}

/// A count as the `u32` AMQP carries, saturating.
fn saturate(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}
