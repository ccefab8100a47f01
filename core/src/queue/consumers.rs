//! A queue's consumers: registration, exclusivity, and which one takes the next message.
//!
//! Selection rules (RabbitMQ's): a consumer is eligible when its session is open, it is not
//! parked on a full transit window, and (manual ack) its unacked count is under its prefetch.
//! Among the eligible, the highest `x-priority` wins; within one priority, the one served least
//! recently (round-robin). With `x-single-active-consumer` only the first registered consumer is
//! ever eligible; when it goes, the next by registration order takes over.

use std::sync::Arc;
use std::time::Instant;

use crate::names::{ConsumerTag, QueueName, SessionId};
use crate::outbox::{AckMode, Outbox};

use super::{Deferred, Queue, Removal};

/// What a session asks for when it consumes from a queue.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// The tag, unique within the session.
    pub tag: ConsumerTag,
    /// The session's outbox (its session id identifies the consumer's owner).
    pub outbox: Arc<Outbox>,
    /// Auto or manual acknowledgement.
    pub ack_mode: AckMode,
    /// Most unacked deliveries at once for a manual-ack consumer; 0 = unlimited.
    pub prefetch: u32,
    /// `x-priority`: higher-priority consumers are served first.
    pub priority: i32,
    /// `basic.consume` exclusive: no other consumer on the queue while this one exists.
    pub exclusive: bool,
}

/// Why a consumer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumeError {
    /// An exclusive consumer holds the queue, or an exclusive consumer was asked for while others
    /// exist (AMQP 403 ACCESS_REFUSED).
    #[error("queue '{queue}' in exclusive use")]
    ExclusiveUse {
        /// The queue.
        queue: QueueName,
    },
    /// The session already has a consumer with this tag on the queue (AMQP 530 NOT_ALLOWED).
    #[error("attempt to reuse consumer tag '{tag}'")]
    TagInUse {
        /// The tag.
        tag: ConsumerTag,
    },
    /// The queue was deleted (AMQP 404 NOT_FOUND).
    #[error("no queue '{queue}'")]
    QueueDeleted {
        /// The queue.
        queue: QueueName,
    },
}

/// A queue-local consumer id: outlives tag reuse, so a late ack never credits a newer consumer
/// that took the same tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct ConsumerId(u64);

/// One registered consumer.
#[derive(Debug)]
pub(super) struct Consumer {
    pub(super) id: ConsumerId,
    pub(super) spec: ConsumerSpec,
    pub(super) session: SessionId,
    /// Manual-ack deliveries it holds.
    pub(super) unacked: u32,
    /// Parked on a full transit window until the outbox wakes the queue.
    pub(super) parked: bool,
    /// The serve clock's value at its last delivery (round-robin).
    last_served: u64,
}

impl Consumer {
    /// True if its prefetch allows one more delivery.
    fn has_credit(&self) -> bool {
        self.spec.ack_mode == AckMode::Auto
            || self.spec.prefetch == 0
            || self.unacked < self.spec.prefetch
    }

    fn is_eligible(&self) -> bool {
        !self.parked && self.has_credit() && !self.spec.outbox.is_closed()
    }
}

/// The consumers of one queue, in registration order.
#[derive(Debug)]
pub(super) struct Consumers {
    list: Vec<Consumer>,
    single_active: bool,
    next_id: u64,
    serve_clock: u64,
}

impl Consumers {
    pub(super) fn new(single_active: bool) -> Self {
        Self {
            list: Vec::new(),
            single_active,
            next_id: 0,
            serve_clock: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn add(&mut self, spec: ConsumerSpec, queue: &QueueName) -> Result<(), ConsumeError> {
        let session = spec.outbox.session();
        if self.list.iter().any(|c| c.spec.exclusive) || (spec.exclusive && !self.list.is_empty()) {
            return Err(ConsumeError::ExclusiveUse {
                queue: queue.clone(),
            });
        }
        if self
            .list
            .iter()
            .any(|c| c.session == session && c.spec.tag == spec.tag)
        {
            return Err(ConsumeError::TagInUse { tag: spec.tag });
        }
        self.next_id += 1;
        self.list.push(Consumer {
            id: ConsumerId(self.next_id),
            spec,
            session,
            unacked: 0,
            parked: false,
            // New consumers go to the back of the round-robin.
            last_served: self.serve_clock,
        });
        Ok(())
    }

    fn remove_where(&mut self, mut doomed: impl FnMut(&Consumer) -> bool) -> Vec<Consumer> {
        let mut removed = Vec::new();
        let mut index = 0;
        while index < self.list.len() {
            if doomed(&self.list[index]) {
                // `remove`, not `swap_remove`: registration order decides single-active handover.
                removed.push(self.list.remove(index));
            } else {
                index += 1;
            }
        }
        removed
    }

    /// Removes every consumer (queue deletion).
    pub(super) fn take_all(&mut self) -> Vec<Consumer> {
        std::mem::take(&mut self.list)
    }

    pub(super) fn get_mut(&mut self, index: usize) -> Option<&mut Consumer> {
        self.list.get_mut(index)
    }

    /// Gives back the credit of one settled delivery.
    pub(super) fn settled(&mut self, id: ConsumerId) {
        if let Some(consumer) = self.list.iter_mut().find(|c| c.id == id) {
            consumer.unacked = consumer.unacked.saturating_sub(1);
        }
    }

    /// Unparks the consumers of `session`; true if any was parked.
    pub(super) fn unpark(&mut self, session: SessionId) -> bool {
        let mut any = false;
        for consumer in self.list.iter_mut().filter(|c| c.session == session) {
            any |= std::mem::replace(&mut consumer.parked, false);
        }
        any
    }

    /// The index of the consumer that should take the next message, if any may.
    pub(super) fn next_eligible(&self) -> Option<usize> {
        if self.single_active {
            return self.list.first().filter(|c| c.is_eligible()).map(|_| 0);
        }
        self.list
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_eligible())
            .min_by_key(|(index, c)| (std::cmp::Reverse(c.spec.priority), c.last_served, *index))
            .map(|(index, _)| index)
    }

    /// Records a delivery to consumer `index` for round-robin.
    pub(super) fn served(&mut self, index: usize) {
        self.serve_clock += 1;
        if let Some(consumer) = self.list.get_mut(index) {
            consumer.last_served = self.serve_clock;
        }
    }
}

impl Queue {
    /// Adds a consumer and delivers to it what it can take.
    pub fn consume(&self, consumer: ConsumerSpec, now: Instant) -> Result<(), ConsumeError> {
        let mut deferred = Deferred::default();
        {
            let mut state = self.state.lock();
            state.advance(now);
            if state.deleted {
                return Err(ConsumeError::QueueDeleted {
                    queue: self.name().clone(),
                });
            }
            state.consumers.add(consumer, self.name())?;
            state.had_consumer = true;
            state.last_use = now;
            self.dispatch(&mut state, &mut deferred);
        }
        self.finish(deferred);
        Ok(())
    }

    /// Removes the consumer `tag` of `session`. Its unacked deliveries stay unacked and ackable
    /// (AMQP `basic.cancel`); the session requeues them if it closes.
    pub fn cancel(&self, session: SessionId, tag: &ConsumerTag, now: Instant) -> Removal {
        self.remove_consumers(now, |c| c.session == session && &c.spec.tag == tag)
    }

    /// Removes every consumer of `session`. The session requeues its unacked deliveries itself,
    /// through its outbox.
    pub fn session_closed(&self, session: SessionId, now: Instant) -> Removal {
        self.remove_consumers(now, |c| c.session == session)
    }

    fn remove_consumers(&self, now: Instant, doomed: impl FnMut(&Consumer) -> bool) -> Removal {
        let mut deferred = Deferred::default();
        let removal = {
            let mut state = self.state.lock();
            state.advance(now);
            let removed = state.consumers.remove_where(doomed);
            if removed.is_empty() {
                return Removal::default();
            }
            state.last_use = now;
            // A single-active handover may have made another consumer eligible.
            self.dispatch(&mut state, &mut deferred);
            Removal {
                removed: super::saturate(removed.len()),
                auto_delete: self.config.auto_delete
                    && state.had_consumer
                    && state.consumers.is_empty()
                    && !state.deleted,
            }
        };
        self.finish(deferred);
        removal
    }
}
