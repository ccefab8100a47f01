//! ACK and NACK.
//!
//! Invariants:
//! - The ack id is the MESSAGE's `ack` header in 1.2 (`id` on the ACK), its `message-id` in 1.0
//!   and 1.1 (1.1 also names the `subscription`, which must match).
//! - In `client` mode an ACK or NACK settles every unsettled message of that subscription up to
//!   and including the named one; in `client-individual` mode only that one.
//! - NACK requeues unless `requeue:false`, which dead-letters (or drops, without a dead-letter
//!   exchange), as RabbitMQ does.
//! - An id this session does not hold unsettled is an ERROR and a close.

use mqgate_core::outbox::DeliveryTag;
use mqgate_session::{Outbound, Step};

use crate::codec::{Frame, Outbound as Out, StompVersion};
use crate::errors;

use super::subscribe::AckKind;
use super::StompSession;

impl StompSession {
    pub(super) fn on_ack(&mut self, frame: Frame, nack: bool, out: &mut Outbound<Out>) -> Step {
        if let Some(transaction) = frame.header("transaction").map(str::to_owned) {
            if let Err(step) = self.check_ack(&frame, out) {
                return step;
            }
            return self.buffer_in_transaction(&transaction, frame, out);
        }
        let step = self.settle(&frame, nack, out);
        if step == Step::Continue {
            Self::receipt(&frame, out);
        }
        step
    }

    /// The header naming the message an ACK/NACK settles: `id` in 1.2, else `message-id`.
    fn id_header(&self) -> &'static str {
        if self.version == StompVersion::V1_2 {
            "id"
        } else {
            "message-id"
        }
    }

    /// Checks an ACK/NACK's headers (for a transaction, before buffering it).
    fn check_ack(&self, frame: &Frame, out: &mut Outbound<Out>) -> Result<(), Step> {
        self.ack_target(frame, out).map(|_| ())
    }

    /// The delivery an ACK/NACK names and its subscription id.
    fn ack_target(
        &self,
        frame: &Frame,
        out: &mut Outbound<Out>,
    ) -> Result<(DeliveryTag, String), Step> {
        let receipt = frame.header("receipt");
        let command = frame.command.as_str();
        let id_header = self.id_header();
        let Some(id) = frame.header(id_header) else {
            return Err(errors::protocol_error(
                out,
                &format!("missing {id_header} header"),
                receipt,
                format!(
                    "{command} needs an {id_header} header in STOMP {}",
                    self.version
                ),
            ));
        };
        let subscription = frame.header("subscription");
        if self.version == StompVersion::V1_1 && subscription.is_none() {
            return Err(errors::protocol_error(
                out,
                "missing subscription header",
                receipt,
                format!("{command} needs a subscription header in STOMP 1.1"),
            ));
        }
        let unknown = |out: &mut Outbound<Out>| {
            errors::protocol_error(
                out,
                "unknown ack id",
                receipt,
                format!(
                    "{command} of '{id}', which is not an unacknowledged message of this session"
                ),
            )
        };
        let Ok(tag) = id.parse::<u64>().map(DeliveryTag) else {
            return Err(unknown(out));
        };
        let Some(owner) = self.subs.unacked.get(&tag) else {
            return Err(unknown(out));
        };
        if subscription.is_some_and(|named| named != owner) {
            return Err(unknown(out));
        }
        Ok((tag, owner.clone()))
    }

    /// Settles the deliveries an ACK/NACK names.
    pub(super) fn settle(&mut self, frame: &Frame, nack: bool, out: &mut Outbound<Out>) -> Step {
        match self.ack_target(frame, out) {
            Ok((tag, subscription)) => {
                self.settle_target(frame, tag, &subscription, nack);
                Step::Continue
            }
            Err(step) => step,
        }
    }

    /// Settles a committed transaction's ACK/NACK. It was checked when it arrived; if an
    /// earlier frame of the transaction (a cumulative `client` ACK) or a plain ACK since then
    /// settled it already, there is nothing left to do, which is not an error.
    pub(super) fn settle_committed(&mut self, frame: &Frame, nack: bool) {
        let id = frame.header(self.id_header());
        let Some(tag) = id.and_then(|id| id.parse::<u64>().ok()).map(DeliveryTag) else {
            return;
        };
        if let Some(subscription) = self.subs.unacked.get(&tag).cloned() {
            self.settle_target(frame, tag, &subscription, nack);
        }
    }

    fn settle_target(&mut self, frame: &Frame, tag: DeliveryTag, subscription: &str, nack: bool) {
        let cumulative = self
            .subs
            .by_id
            .get(subscription)
            .is_some_and(|sub| sub.ack == AckKind::Client);
        let tags = if cumulative {
            self.subs.tags_of(subscription, Some(tag))
        } else {
            vec![tag]
        };
        let requeue = frame.header("requeue") != Some("false");
        for tag in tags {
            self.subs.unacked.remove(&tag);
            let settled = if nack {
                self.core.nack(tag, false, requeue)
            } else {
                self.core.ack(tag, false)
            };
            if let Err(error) = settled {
                tracing::debug!(session = %self.session_id, %error, "settling an already settled delivery");
            }
        }
    }
}
