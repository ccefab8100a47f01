//! Messages entering a queue: TTL, length limits and overflow policies, storage, confirmation.
//!
//! Order of events for one publish, as RabbitMQ's classic queues do it:
//! 1. `reject-publish` / `reject-publish-dlx`: if the message would take the ready count over
//!    `x-max-length` or the ready body bytes over `x-max-length-bytes`, it is refused and its
//!    completion fails with [`PublishRejection::QueueFull`] (and it is dead-lettered, for
//!    `reject-publish-dlx`). `block-publisher` with a consumer refuses it too if it asked for no
//!    confirmation, else takes it and holds the confirmation (`hold.rs`).
//! 2. Otherwise it is charged to memory, stored if persistent on a durable queue (storage
//!    completes the confirmation), or confirmed at once, and joins the ready messages.
//! 3. Dispatch: a consumer that can take it now gets it.
//! 4. A message with a TTL of 0 that no consumer took expires at once.
//! 5. `drop-head` (and `block-publisher` without consumers): while over a limit, the head is
//!    dropped (dead-lettered with `maxlen`); held confirmations are released once within limits.

use std::sync::Arc;
use std::time::Instant;

use crate::confirm::Completion;
use crate::message::Message;
use crate::metrics::Metrics;
use crate::outbox::{EntryId, PublishRejection};

use super::arguments::Overflow;
use super::death::{DeadLetter, DeathReason};
use super::store::Entry;
use super::{Deferred, Policy, Queue, QueueState};

/// What became of an enqueued message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnqueueOutcome {
    /// The queue took it. It may have been delivered already, or dropped at once by `drop-head`
    /// or a TTL of 0; either way the publish is confirmed (once stored, for persistent messages
    /// on durable queues).
    Accepted,
    /// Refused by `reject-publish`; the completion failed with `QueueFull`.
    Rejected,
    /// Refused by `reject-publish-dlx`; the completion failed with `QueueFull` and the message
    /// went to the dead-letter exchange (or was dropped and counted when none is set).
    RejectedDeadLettered,
    /// The queue was deleted; the completion failed with `QueueDeleted`.
    QueueDeleted,
}

impl Queue {
    /// Takes a published message; `completion` is settled before this returns, or later by
    /// storage for a persistent message on a durable queue.
    pub fn enqueue(
        &self,
        message: Arc<Message>,
        completion: Completion,
        now: Instant,
    ) -> EnqueueOutcome {
        let mut deferred = Deferred::default();
        let outcome = {
            let mut state = self.state.lock();
            state.advance(now);
            if state.deleted {
                completion.complete(Err(PublishRejection::QueueDeleted));
                return EnqueueOutcome::QueueDeleted;
            }
            let overflow = self.config.arguments.overflow;
            let full = overflow != Overflow::DropHead && self.would_overflow(&state, &message);
            let (refuse, hold) = match overflow {
                Overflow::DropHead => (false, false),
                // Without a consumer, `block-publisher` takes it and drops the head (`hold.rs`).
                Overflow::BlockPublisher if state.consumers.is_empty() => (false, false),
                // With one, it holds the confirmation, or refuses a publish that asked for none.
                Overflow::BlockPublisher => {
                    let unconfirmed = completion.is_detached();
                    (full && unconfirmed, full && !unconfirmed)
                }
                Overflow::RejectPublish | Overflow::RejectPublishDlx => (full, false),
            };
            if refuse {
                completion.complete(Err(PublishRejection::QueueFull));
                self.refuse(&mut state, message, overflow, &mut deferred)
            } else {
                self.admit(&mut state, message, completion, hold, now, &mut deferred);
                EnqueueOutcome::Accepted
            }
        };
        self.finish(deferred);
        outcome
    }

    /// True if one more message would take the ready messages over a limit.
    fn would_overflow(&self, state: &QueueState, message: &Message) -> bool {
        let arguments = &self.config.arguments;
        let count = state.ready.len() as u64;
        let bytes = state.ready.body_bytes();
        arguments.max_length.is_some_and(|max| count + 1 > max)
            || arguments
                .max_length_bytes
                .is_some_and(|max| bytes.saturating_add(message.body.len() as u64) > max)
    }

    fn refuse(
        &self,
        state: &mut QueueState,
        message: Arc<Message>,
        overflow: Overflow,
        deferred: &mut Deferred,
    ) -> EnqueueOutcome {
        Metrics::bump(&self.env.metrics.overflow_rejected);
        if state.first_time(Policy::RejectPublish) {
            tracing::warn!(
                queue = %self.name(),
                policy = overflow.as_str(),
                "queue is full: refusing publishes"
            );
        }
        tracing::debug!(queue = %self.name(), policy = overflow.as_str(), "publish refused: queue full");
        if overflow != Overflow::RejectPublishDlx {
            return EnqueueOutcome::Rejected;
        }
        if self.dead_letters_enabled() {
            deferred.letters.push(DeadLetter {
                message,
                reason: DeathReason::Maxlen,
            });
        }
        EnqueueOutcome::RejectedDeadLettered
    }

    fn admit(
        &self,
        state: &mut QueueState,
        message: Arc<Message>,
        completion: Completion,
        hold: bool,
        now: Instant,
        deferred: &mut Deferred,
    ) {
        if hold {
            self.hold(state, completion.split());
        }
        let id = EntryId(state.next_entry);
        state.next_entry += 1;
        let ttl = match (
            self.config.arguments.message_ttl,
            message
                .properties
                .expiration_ms
                .map(std::time::Duration::from_millis),
        ) {
            (Some(queue), Some(own)) => Some(queue.min(own)),
            (queue, own) => queue.or(own),
        };
        let expires_at = ttl.and_then(|ttl| now.checked_add(ttl));
        let weight = message.weight();
        self.env.memory.charge(weight);
        let stored = self.config.durable && message.properties.persistent;
        if stored {
            self.env
                .storage
                .append(&self.config.key, id, &message, completion);
        } else {
            completion.complete(Ok(()));
        }
        let level = state.ready.level_of(message.properties.priority);
        state.ready.push(Entry {
            id,
            message,
            weight,
            level,
            expires_at,
            delivery_count: 0,
            enqueued_at: now,
            stored,
        });
        self.dispatch(state, deferred);
        // A TTL of 0 means: delivered now or never.
        if expires_at.is_some_and(|deadline| deadline <= now) {
            if let Some(entry) = state.ready.remove(level, id) {
                self.discard(state, entry, DeathReason::Expired, deferred);
            }
        }
        self.enforce_limits(state, deferred);
    }
}
