//! Messages leaving for good (drops, dead letters), TTL sweeps, purge and deletion.

use std::time::Instant;

use crate::metrics::Metrics;
use crate::outbox::{CancelReason, Event};

use super::death::{DeadLetter, DeathReason};
use super::store::Entry;
use super::{saturate, Deferred, Policy, Queue, QueueState};

impl Queue {
    /// The entry leaves the queue for good: out of storage, off the memory monitor.
    pub(super) fn forget(&self, entry: &Entry) {
        if entry.stored {
            self.env.storage.remove(&self.config.key, entry.id);
        }
        self.env.memory.discharge(entry.weight);
    }

    /// The entry died: forget it, count it, and dead-letter it if the queue has a dead-letter
    /// exchange. Expiry counts `expired` and `drop-head` counts `overflow_dropped` either way; a
    /// rejection with nowhere to go counts `dead_letter_dropped`.
    pub(super) fn discard(
        &self,
        state: &mut QueueState,
        entry: Entry,
        reason: DeathReason,
        deferred: &mut Deferred,
    ) {
        self.forget(&entry);
        let metrics = &self.env.metrics;
        let policy = match reason {
            DeathReason::Expired => {
                Metrics::bump(&metrics.expired);
                Some(Policy::Ttl)
            }
            DeathReason::Maxlen => {
                Metrics::bump(&metrics.overflow_dropped);
                Some(Policy::DropHead)
            }
            DeathReason::Rejected | DeathReason::DeliveryLimit => {
                if !self.dead_letters_enabled() {
                    Metrics::bump(&metrics.dead_letter_dropped);
                }
                None
            }
        };
        if policy.is_some_and(|policy| state.first_time(policy)) {
            tracing::warn!(
                queue = %self.name(),
                reason = reason.as_str(),
                "queue started dropping messages"
            );
        }
        let dead_lettered = self.dead_letters_enabled();
        tracing::debug!(
            queue = %self.name(),
            reason = reason.as_str(),
            entry = entry.id.0,
            dead_lettered,
            "message left the queue"
        );
        if dead_lettered {
            deferred.letters.push(DeadLetter {
                message: entry.message,
                reason,
            });
        }
    }

    /// TTL sweep: drops (or dead-letters) the expired messages at the head of every priority
    /// level, then retries delivery. The broker calls it periodically.
    pub fn expire(&self, now: Instant) {
        let mut deferred = Deferred::default();
        {
            let mut state = self.state.lock();
            state.advance(now);
            for entry in state.ready.pop_expired_heads(now) {
                self.discard(&mut state, entry, DeathReason::Expired, &mut deferred);
            }
            // Also the retry point for consumers whose parking could not register (see dispatch).
            self.dispatch(&mut state, &mut deferred);
        }
        self.finish(deferred);
    }

    /// Removes the ready messages (not the unacked ones, as RabbitMQ); returns how many.
    pub fn purge(&self) -> u32 {
        let mut state = self.state.lock();
        let entries = state.ready.drain();
        for entry in &entries {
            self.forget(entry);
        }
        Metrics::add(&self.env.metrics.purged, entries.len() as u64);
        self.release_held(&mut state);
        saturate(entries.len())
    }

    /// Deletes the queue: every message (ready and unacked) is dropped and counted as purged,
    /// storage is cleared, every consumer gets [`Event::ConsumerCancelled`], later publishes and
    /// consumes are refused and later acks ignored. Returns the number of ready messages dropped
    /// (`queue.delete-ok`'s message count).
    pub fn delete(&self) -> u32 {
        let mut state = self.state.lock();
        if state.deleted {
            return 0;
        }
        state.deleted = true;
        // Dropped held confirmations settle as `QueueDeleted`.
        state.held.clear();
        let ready = state.ready.drain();
        let unacked: Vec<Entry> = state
            .unacked
            .drain()
            .map(|(_, outstanding)| outstanding.entry)
            .collect();
        for entry in ready.iter().chain(&unacked) {
            // Storage is cleared below in one call.
            self.env.memory.discharge(entry.weight);
        }
        self.env.storage.clear(&self.config.key);
        Metrics::add(
            &self.env.metrics.purged,
            (ready.len() + unacked.len()) as u64,
        );
        for consumer in state.consumers.take_all() {
            consumer.spec.outbox.send(Event::ConsumerCancelled {
                consumer: consumer.spec.tag,
                reason: CancelReason::QueueDeleted,
            });
        }
        tracing::debug!(queue = %self.name(), ready = ready.len(), unacked = unacked.len(), "queue deleted");
        saturate(ready.len())
    }
}
