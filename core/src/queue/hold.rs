//! Length limits once a message is in: `drop-head`, and `block-publisher`'s held confirmations.
//!
//! `block-publisher` is mqgate's own overflow policy (the default for MQTT session queues). It
//! blocks publishers without pausing anyone's socket or taking another lock:
//! - While the queue has a consumer, a publish over a limit that asked for confirmation joins the
//!   ready messages like any other, but its confirmation is held here until the ready messages
//!   are back within the limits. The publisher's own window of unconfirmed publishes (MQTT
//!   receive maximum, AMQP confirms, STOMP receipts, each bounded by its adapter) then stops it,
//!   so the excess over the limit is bounded by the sum of those windows.
//! - A publish over a limit that asked for no confirmation cannot be held back: it is refused and
//!   counted (`overflow_rejected`), as `reject-publish` does.
//! - With no consumer (an MQTT session whose client is offline) nothing would drain the queue, so
//!   it drops its head as `drop-head` does and releases every held confirmation: an absent
//!   consumer never blocks a publisher. A connected consumer that stops acknowledging does; that
//!   is the price of losing nothing, and `drop-head` remains for users who prefer the loss.
//!
//! Invariants: held confirmations are released together, in arrival order, as soon as the
//! queue is back within its limits (after a delivery, an expiry, a purge) or has no consumer; a
//! deleted queue drops them, which settles them as `QueueDeleted`.

use crate::confirm::Completion;
use crate::metrics::Metrics;

use super::arguments::Overflow;
use super::death::DeathReason;
use super::{Deferred, Policy, Queue, QueueState};

impl Queue {
    /// True while the ready messages are over `x-max-length` or `x-max-length-bytes`.
    pub(super) fn is_over_limit(&self, state: &QueueState) -> bool {
        let arguments = &self.config.arguments;
        arguments
            .max_length
            .is_some_and(|max| state.ready.len() as u64 > max)
            || arguments
                .max_length_bytes
                .is_some_and(|max| state.ready.body_bytes() > max)
    }

    /// Applies the overflow policy after messages entered or consumers changed: `drop-head`
    /// drops from the head while over a limit; `block-publisher` does too when it has no
    /// consumer, and releases held confirmations once it may.
    pub(super) fn enforce_limits(&self, state: &mut QueueState, deferred: &mut Deferred) {
        match self.config.arguments.overflow {
            Overflow::DropHead => self.drop_head_while_over(state, deferred),
            Overflow::BlockPublisher => {
                if state.consumers.is_empty() {
                    self.drop_head_while_over(state, deferred);
                }
                self.release_held(state);
            }
            Overflow::RejectPublish | Overflow::RejectPublishDlx => {}
        }
    }

    /// Holds a confirmation until the queue is back within its limits (`block-publisher`).
    pub(super) fn hold(&self, state: &mut QueueState, held: Completion) {
        Metrics::bump(&self.env.metrics.confirms_held);
        if state.first_time(Policy::BlockPublisher) {
            tracing::warn!(
                queue = %self.name(),
                "queue is full: holding publishers' confirmations until it drains"
            );
        }
        state.held.push_back(held);
    }

    /// Confirms every held publish if the queue is within its limits or has no consumer.
    pub(super) fn release_held(&self, state: &mut QueueState) {
        if state.held.is_empty() || (!state.consumers.is_empty() && self.is_over_limit(state)) {
            return;
        }
        tracing::debug!(queue = %self.name(), held = state.held.len(), "releasing held confirmations");
        for held in state.held.drain(..) {
            held.complete(Ok(()));
        }
    }

    /// Drops from the head while the ready messages are over a limit.
    fn drop_head_while_over(&self, state: &mut QueueState, deferred: &mut Deferred) {
        while self.is_over_limit(state) {
            let Some(entry) = state.ready.pop_head() else {
                break;
            };
            self.discard(state, entry, DeathReason::Maxlen, deferred);
        }
    }
}
