//! Handing ready messages to consumers, and parking consumers on full transit windows.
//!
//! Dispatch runs under the queue's lock whenever messages and consumer capacity may meet
//! (enqueue, consume, ack, nack, requeue, window opened, TTL sweep). It stops when no message is
//! ready or no consumer may take the head.
//!
//! Parking: a consumer whose outbox refuses the reservation is marked parked and skipped; after
//! the lock is released the queue registers with [`Outbox::park`], which calls
//! [`WindowWaiter::window_opened`] when the session has drained. `park` may call back at once, on
//! this very thread, when the window is already under half full; but a message larger than the
//! free half still does not fit then, so parking again would wake again, without end. Such a
//! re-entrant wake only unparks the consumers; the parking code dispatches once more and, if that
//! parks again, leaves them unparked for the next dispatch (the next publish, ack, or the
//! broker's periodic [`Queue::expire`] sweep) to retry.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use crate::metrics::Metrics;
use crate::names::SessionId;
use crate::outbox::{AckMode, Delivery, Event, Unacked, UnackedOwner, WindowWaiter};

use super::death::DeathReason;
use super::store::Entry;
use super::{Deferred, Outstanding, Queue, QueueState};

/// How many times the queue dispatches again after `park` woke it re-entrantly.
const PARK_RETRIES: u8 = 1;

thread_local! {
    /// The (queue, session) parks in progress on this thread, and whether each was woken.
    static PARKING: RefCell<Vec<ParkFrame>> = const { RefCell::new(Vec::new()) };
}

struct ParkFrame {
    queue: usize,
    session: SessionId,
    woken: bool,
}

/// Pops this thread's park frame even if `park` unwinds.
struct ParkGuard;

impl Drop for ParkGuard {
    fn drop(&mut self) {
        PARKING.with(|frames| {
            frames.borrow_mut().pop();
        });
    }
}

fn queue_identity(queue: &Queue) -> usize {
    std::ptr::from_ref(queue) as usize
}

impl Queue {
    /// Hands out ready messages while some consumer can take the head.
    pub(super) fn dispatch(&self, state: &mut QueueState, deferred: &mut Deferred) {
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
            if !deferred.park.iter().any(|o| Arc::ptr_eq(o, outbox)) {
                deferred.park.push(Arc::clone(outbox));
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
        for outbox in park {
            let session = outbox.session();
            PARKING.with(|frames| {
                frames.borrow_mut().push(ParkFrame {
                    queue: queue_identity(self),
                    session,
                    woken: false,
                });
            });
            let guard = ParkGuard;
            outbox.park(waiter.clone());
            let woken = PARKING.with(|frames| frames.borrow().last().is_some_and(|f| f.woken));
            drop(guard);
            if woken && retries > 0 {
                let mut again = Deferred::default();
                {
                    let mut state = self.state.lock();
                    self.dispatch(&mut state, &mut again);
                }
                self.finish_with(again, retries - 1);
            }
        }
    }

    /// True (and the park frame marked) if this wake comes from this thread's own `park` call.
    fn woken_while_parking(&self, session: SessionId) -> bool {
        let queue = queue_identity(self);
        PARKING.with(|frames| {
            frames
                .borrow_mut()
                .iter_mut()
                .rev()
                .find(|f| f.queue == queue && f.session == session)
                .map(|frame| frame.woken = true)
                .is_some()
        })
    }
}

impl WindowWaiter for Queue {
    fn window_opened(&self, session: SessionId) {
        if self.woken_while_parking(session) {
            self.state.lock().consumers.unpark(session);
            return;
        }
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
