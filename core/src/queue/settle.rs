//! Settling deliveries (ack, nack, requeue) and `basic.get`.
//!
//! An entry the queue no longer knows (the queue was deleted, or the entry was already settled)
//! is ignored: a late ack is harmless. A requeued entry goes back to its place by id, so it is
//! ahead of every newer message, and its next delivery is flagged redelivered.

use std::sync::Arc;
use std::time::Instant;

use crate::metrics::Metrics;
use crate::names::SessionId;
use crate::outbox::{AckMode, Delivery, EntryId, Outbox, Unacked, UnackedOwner};

use super::death::DeathReason;
use super::store::Entry;
use super::{saturate, Deferred, Outstanding, Queue, QueueState};

impl Queue {
    /// Takes an unacked entry back, giving its consumer its credit back.
    fn take_outstanding(
        &self,
        state: &mut QueueState,
        session: Option<SessionId>,
        entry: EntryId,
    ) -> Option<Entry> {
        let outstanding = state.unacked.get(&entry)?;
        if session.is_some_and(|session| session != outstanding.session) {
            tracing::debug!(queue = %self.name(), entry = entry.0, "settle from another session ignored");
            return None;
        }
        let Outstanding {
            entry, consumer, ..
        } = state.unacked.remove(&entry)?;
        if let Some(consumer) = consumer {
            state.consumers.settled(consumer);
        }
        Some(entry)
    }

    /// Puts entries back among the ready messages, then enforces `drop-head` and dispatches.
    fn put_back(&self, state: &mut QueueState, entries: Vec<Entry>, deferred: &mut Deferred) {
        if entries.is_empty() {
            return;
        }
        Metrics::add(&self.env.metrics.requeued, entries.len() as u64);
        for entry in entries {
            state.ready.push(entry);
        }
        // RabbitMQ enforces the length limit after a requeue too.
        self.enforce_limits(state, deferred);
        self.dispatch(state, deferred);
    }

    /// Requeues the given unacked entries (a closing session's, or a cancelled consumer's),
    /// whichever session they were delivered to.
    pub fn requeue(&self, entries: Vec<EntryId>, now: Instant) {
        let mut deferred = Deferred::default();
        {
            let mut state = self.state.lock();
            state.advance(now);
            let back: Vec<Entry> = entries
                .into_iter()
                .filter_map(|entry| self.take_outstanding(&mut state, None, entry))
                .collect();
            self.put_back(&mut state, back, &mut deferred);
        }
        self.finish(deferred);
    }

    /// `basic.get`: takes the head message, if any, with the number of ready messages left.
    /// A manual-ack get is tracked in `outbox` like a consumer's delivery (without a consumer).
    /// The delivery is returned, not sent, so it is not charged to the transit window: its
    /// `weight` is 0.
    pub fn get(
        &self,
        outbox: &Arc<Outbox>,
        ack_mode: AckMode,
        now: Instant,
    ) -> Option<(Delivery, u32)> {
        let mut deferred = Deferred::default();
        let result = {
            let mut state = self.state.lock();
            state.advance(now);
            state.last_use = now;
            for expired in state.ready.pop_expired_heads(now) {
                self.discard(&mut state, expired, DeathReason::Expired, &mut deferred);
            }
            self.take_head(&mut state, outbox, ack_mode)
        };
        self.finish(deferred);
        result
    }

    fn take_head(
        &self,
        state: &mut QueueState,
        outbox: &Arc<Outbox>,
        ack_mode: AckMode,
    ) -> Option<(Delivery, u32)> {
        // Checked before taking the entry, so a dying queue never loses one.
        let owner: Arc<dyn UnackedOwner> = self.me.upgrade()?;
        let mut entry = state.ready.pop_head()?;
        let tag = outbox.next_tag();
        let delivery = Delivery {
            consumer: None,
            tag,
            queue: self.name().clone(),
            message: Arc::clone(&entry.message),
            redelivered: entry.delivery_count > 0,
            delivery_count: entry.delivery_count,
            weight: 0,
            enqueued_at: entry.enqueued_at,
        };
        entry.delivery_count = entry.delivery_count.saturating_add(1);
        Metrics::bump(&self.env.metrics.delivered);
        match ack_mode {
            AckMode::Manual => {
                outbox.track_unacked(
                    tag,
                    Unacked {
                        queue: owner,
                        entry: entry.id,
                        consumer: None,
                    },
                );
                state.unacked.insert(
                    entry.id,
                    Outstanding {
                        session: outbox.session(),
                        consumer: None,
                        entry,
                    },
                );
            }
            AckMode::Auto => {
                self.forget(&entry);
                Metrics::bump(&self.env.metrics.acked);
            }
        }
        Some((delivery, saturate(state.ready.len())))
    }
}

impl UnackedOwner for Queue {
    fn settle_ack(&self, session: SessionId, entry: EntryId) {
        self.settle_acks(session, &[entry]);
    }

    fn settle_acks(&self, session: SessionId, entries: &[EntryId]) {
        let mut deferred = Deferred::default();
        {
            let mut state = self.state.lock();
            let mut settled = 0;
            for entry in entries {
                if let Some(entry) = self.take_outstanding(&mut state, Some(session), *entry) {
                    self.forget(&entry);
                    settled += 1;
                }
            }
            if settled == 0 {
                return;
            }
            Metrics::add(&self.env.metrics.acked, settled);
            // The consumers' credit is back.
            self.dispatch(&mut state, &mut deferred);
        }
        self.finish(deferred);
    }

    fn settle_nack(&self, session: SessionId, entry: EntryId, requeue: bool) {
        let mut deferred = Deferred::default();
        {
            let mut state = self.state.lock();
            let Some(entry) = self.take_outstanding(&mut state, Some(session), entry) else {
                return;
            };
            if requeue {
                self.put_back(&mut state, vec![entry], &mut deferred);
            } else {
                self.discard(&mut state, entry, DeathReason::Rejected, &mut deferred);
                self.dispatch(&mut state, &mut deferred);
            }
        }
        self.finish(deferred);
    }
}
