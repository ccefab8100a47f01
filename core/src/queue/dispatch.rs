//! Handing ready messages to consumers, and parking consumers on full transit windows.
//!
//! Dispatch runs under the queue's lock whenever messages and consumer capacity may meet
//! (enqueue, consume, ack, nack, requeue, window opened, TTL sweep). It stops when no message is
//! ready or no consumer may take the head.
//!
//! Parking: a consumer whose outbox refuses the reservation is marked parked and skipped; after
//! the lock is released the queue registers with [`crate::outbox::Outbox::park`], which later calls
//! [`WindowWaiter::window_opened`] from the session's task when it has drained. `park` never calls
//! back on the parking thread: if room appeared between the failed reservation and the
//! registration, it says so and the queue dispatches again itself, a bounded number of times
//! ([`PARK_RETRIES`]); past that the registration stands and the session's next drain wakes it.

use std::sync::{Arc, Weak};

use crate::metrics::Metrics;
use crate::names::SessionId;
use crate::outbox::{AckMode, Delivery, Event, Unacked, UnackedOwner, WindowWaiter};

use super::arguments::Overflow;
use super::death::DeathReason;
use super::store::Entry;
use super::{Deferred, Outstanding, Queue, QueueState};

/// How many times the queue dispatches again when room appeared while it was parking.
const PARK_RETRIES: u8 = 4;

impl Queue {
    /// Hands out ready messages while some consumer can take the head; then, for
    /// `block-publisher`, releases held confirmations if the queue is back within its limits (or
    /// drops its head if its last consumer left).
    pub(super) fn dispatch(&self, state: &mut QueueState, deferred: &mut Deferred) {
        self.hand_out(state, deferred);
        if self.config.arguments.overflow == Overflow::BlockPublisher {
            self.enforce_limits(state, deferred);
        }
    }

    fn hand_out(&self, state: &mut QueueState, deferred: &mut Deferred) {
        if state.consumers.is_empty() || state.ready.is_empty() {
            return;
        }
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let owner: Arc<dyn UnackedOwner> = me;
        let now = state.clock;
        loop {
            let weight = match state.ready.head() {
                None => return,
                Some(head) if head.is_expired(now) => {
                    if let Some(expired) = state.ready.pop_head() {
                        self.discard(state, expired, DeathReason::Expired, deferred);
                    }
                    continue;
                }
                Some(head) => head.weight,
            };
            let Some(index) = self.reserve_consumer(state, weight, deferred) else {
                return;
            };
            let Some(entry) = state.ready.pop_head() else {
                return;
            };
            self.deliver(state, index, entry, &owner);
        }
    }

    /// Finds the consumer to take a message of `weight` bytes and reserves its window; parks
    /// every consumer whose window is full on the way.
    fn reserve_consumer(
        &self,
        state: &mut QueueState,
        weight: usize,
        deferred: &mut Deferred,
    ) -> Option<usize> {
        loop {
            let index = state.consumers.next_eligible()?;
            let consumer = state.consumers.get_mut(index)?;
            if consumer.spec.outbox.try_reserve(weight) {
                return Some(index);
            }
            consumer.parked = true;
            Metrics::bump(&self.env.metrics.consumer_parked);
            let outbox = &consumer.spec.outbox;
            if !deferred.park.iter().any(|(o, _)| Arc::ptr_eq(o, outbox)) {
                deferred.park.push((Arc::clone(outbox), weight));
            }
        }
    }

    /// Sends `entry` to consumer `index`, whose window is already reserved for it.
    fn deliver(
        &self,
        state: &mut QueueState,
        index: usize,
        mut entry: Entry,
        owner: &Arc<dyn UnackedOwner>,
    ) {
        state.consumers.served(index);
        let Some(consumer) = state.consumers.get_mut(index) else {
            // `index` came from `next_eligible` under the same lock; put the entry back if not.
            state.ready.push(entry);
            return;
        };
        let outbox = Arc::clone(&consumer.spec.outbox);
        let tag = outbox.next_tag();
        let delivery = Delivery {
            consumer: Some(consumer.spec.tag.clone()),
            tag,
            queue: self.name().clone(),
            message: Arc::clone(&entry.message),
            redelivered: entry.delivery_count > 0,
            delivery_count: entry.delivery_count,
            weight: entry.weight,
            enqueued_at: entry.enqueued_at,
        };
        entry.delivery_count = entry.delivery_count.saturating_add(1);
        Metrics::bump(&self.env.metrics.delivered);
        match consumer.spec.ack_mode {
            AckMode::Manual => {
                // Tracked before it is sent, so an ack racing the event always finds it.
                outbox.track_unacked(
                    tag,
                    Unacked {
                        queue: Arc::clone(owner),
                        entry: entry.id,
                        consumer: Some(consumer.spec.tag.clone()),
                    },
                );
                consumer.unacked += 1;
                let outstanding = Outstanding {
                    session: consumer.session,
                    consumer: Some(consumer.id),
                    entry,
                };
                state.unacked.insert(outstanding.entry.id, outstanding);
            }
            AckMode::Auto => {
                self.forget(&entry);
                Metrics::bump(&self.env.metrics.acked);
            }
        }
        outbox.send(Event::Delivery(delivery));
    }

    /// Does what was deferred until the lock was released: dead letters, then parking.
    pub(super) fn finish(&self, deferred: Deferred) {
        self.finish_with(deferred, PARK_RETRIES);
    }

    fn finish_with(&self, deferred: Deferred, retries: u8) {
        let Deferred { letters, park } = deferred;
        if !letters.is_empty() {
            self.env.dead_letters.dead_letter(&self.config, letters);
        }
        let waiter: Weak<dyn WindowWaiter> = self.me.clone();
        for (outbox, needed) in park {
            if outbox.park(waiter.clone(), needed) || retries == 0 {
                continue;
            }
            // Room appeared meanwhile: unpark and try again rather than wait for a wake-up
            // that may never come (the session may have nothing left in transit).
            let mut again = Deferred::default();
            {
                let mut state = self.state.lock();
                state.consumers.unpark(outbox.session());
                self.dispatch(&mut state, &mut again);
            }
            self.finish_with(again, retries - 1);
        }
    }
}

impl WindowWaiter for Queue {
    fn window_opened(&self, session: SessionId) {
        let mut deferred = Deferred::default();
        {
            let mut state = self.state.lock();
            if !state.consumers.unpark(session) {
                return;
            }
            self.dispatch(&mut state, &mut deferred);
        }
        self.finish(deferred);
    }
}
