//! Messages leaving a queue without being acknowledged: dead letters and counted drops.
//!
//! Invariant: a queue only collects dead letters while it holds its lock; the sink is called
//! after the lock is released, because the dead-letter exchange may route back into this very
//! queue (or into another one whose lock another thread holds while dead-lettering into this).

use std::sync::Arc;

use crate::message::Message;

use super::QueueConfig;

/// Why a message was dead-lettered; RabbitMQ's `x-death` reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeathReason {
    /// Rejected or nacked with `requeue=false`.
    Rejected,
    /// Its TTL passed.
    Expired,
    /// Dropped or refused by `x-max-length` / `x-max-length-bytes`.
    Maxlen,
    /// Redelivered more often than the queue's delivery limit allows.
    DeliveryLimit,
}

impl DeathReason {
    /// The reason as RabbitMQ writes it in `x-death`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::Maxlen => "maxlen",
            DeathReason::DeliveryLimit => "delivery_limit",
        }
    }
}

impl std::fmt::Display for DeathReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message to republish to the queue's dead-letter exchange.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The message as the queue held it (without the new `x-death` entry).
    pub message: Arc<Message>,
    /// Why it died.
    pub reason: DeathReason,
}

/// Where a queue hands its dead letters: the vhost, which adds `x-death` and routes them through
/// the dead-letter exchange. Called without any queue lock held; it may enqueue into any queue.
pub trait DeadLetterSink: Send + Sync {
    /// Republishes `letters`, which died in the queue described by `from` (whose
    /// `arguments.dead_letter_exchange` is set).
    fn dead_letter(&self, from: &QueueConfig, letters: Vec<DeadLetter>);
}
