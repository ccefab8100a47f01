//! SEND, the engine's confirmations, the receipts that wait for them, and DISCONNECT.
//!
//! Invariants:
//! - Every SEND is published with a confirmation request; its RECEIPT goes out only on
//!   `Event::PublishSettled` Confirmed, a rejection is an ERROR (with the SEND's receipt as
//!   `receipt-id`) and a close.
//! - A barrier receipt (DISCONNECT, COMMIT) waits for every SEND published before it: it is
//!   released once no earlier publish is unconfirmed. A DISCONNECT barrier then closes.
//! - Unconfirmed SENDs plus waiting barriers are bounded by `max_unconfirmed_sends`: reads pause
//!   at the limit (and after DISCONNECT), so a client cannot pile them up.

use std::collections::{BTreeMap, VecDeque};

use mqgate_core::outbox::{PublishId, PublishOutcome};
use mqgate_session::{CloseReason, Outbound, Step};

use mqgate_core::message::Message;

use crate::codec::{Frame, Outbound as Out};
use crate::convert::{message_from_send, ConvertError};
use crate::destination::{Destination, DestinationError, QueueOptions, TEMP_QUEUE_PREFIX};
use crate::errors;

use super::{receipt_frame, StompSession};

/// A receipt waiting for every publish before it.
#[derive(Debug)]
struct Barrier {
    /// Publishes with an id below this one must be settled first.
    before: PublishId,
    /// The receipt to send, if the frame asked for one.
    receipt: Option<String>,
    /// Close (DISCONNECT) once released.
    close: bool,
}

/// Unconfirmed SENDs and the receipts that wait for them.
#[derive(Debug)]
pub(crate) struct SendState {
    next_id: u64,
    confirming: BTreeMap<PublishId, Option<String>>,
    barriers: VecDeque<Barrier>,
    limit: usize,
    closing: bool,
}

impl SendState {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            next_id: 1,
            confirming: BTreeMap::new(),
            barriers: VecDeque::new(),
            limit: limit.max(1),
            closing: false,
        }
    }

    /// True when as many SENDs and receipts wait as allowed: stop reading.
    pub(crate) fn is_full(&self) -> bool {
        self.confirming.len() + self.barriers.len() >= self.limit
    }

    /// True once DISCONNECT arrived: nothing more is read.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing
    }

    fn next(&mut self) -> PublishId {
        let id = PublishId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Queues a barrier after every publish so far, or releases it at once when none waits.
    /// Returns true when it was released now.
    fn barrier(&mut self, receipt: Option<String>, close: bool, out: &mut Outbound<Out>) -> bool {
        let before = PublishId(self.next_id);
        self.barriers.push_back(Barrier {
            before,
            receipt,
            close,
        });
        self.release(out)
    }

    /// Sends the receipts of barriers no unconfirmed publish precedes; true if one of them
    /// closes the connection.
    fn release(&mut self, out: &mut Outbound<Out>) -> bool {
        let oldest = self.confirming.keys().next().copied();
        while let Some(barrier) = self.barriers.front() {
            if oldest.is_some_and(|oldest| oldest < barrier.before) {
                break;
            }
            let Some(barrier) = self.barriers.pop_front() else {
                break;
            };
            if let Some(receipt) = &barrier.receipt {
                out.push(receipt_frame(receipt));
            }
            if barrier.close {
                return true;
            }
        }
        false
    }
}

/// An ERROR's (message, detail) for a SEND that cannot become a message.
fn convert_error(error: ConvertError) -> (String, String) {
    let message = match error {
        ConvertError::Destination(_) => "invalid destination",
        _ => "invalid SEND",
    };
    (message.to_owned(), error.to_string())
}

/// True when a SEND's headers set none of the queue's properties (`durable`, `auto-delete`,
/// `exclusive`, `x-*` arguments).
fn names_no_queue_property(options: &QueueOptions) -> bool {
    options.durable.is_none()
        && options.auto_delete.is_none()
        && options.exclusive.is_none()
        && options.arguments.is_empty()
}

impl StompSession {
    pub(super) fn on_send(&mut self, frame: Frame, out: &mut Outbound<Out>) -> Step {
        if frame.header("destination").is_none() {
            return errors::protocol_error(
                out,
                "missing destination header",
                frame.header("receipt"),
                "SEND needs a destination header",
            );
        }
        if let Some(step) = self.check_user_id(&frame, out) {
            return step;
        }
        if let Some(transaction) = frame.header("transaction").map(str::to_owned) {
            // Checked now, so a COMMIT cannot fail half-way on a SEND that was never valid.
            if let Err((message, detail)) = self.check_send(&frame) {
                return errors::protocol_error(out, &message, frame.header("receipt"), detail);
            }
            return self.buffer_in_transaction(&transaction, frame, out);
        }
        self.publishing_paused |= self.flow_blocked;
        self.publish(&frame, frame.header("receipt"), out)
    }

    /// A `user-id` header must name the authenticated user (RabbitMQ's rule).
    pub(super) fn check_user_id(&self, frame: &Frame, out: &mut Outbound<Out>) -> Option<Step> {
        let claimed = frame.header("user-id")?;
        (claimed != self.user.as_str()).then(|| {
            errors::protocol_error(
                out,
                "user-id mismatch",
                frame.header("receipt"),
                format!(
                    "user-id header '{claimed}' does not match the authenticated user '{}'",
                    self.user
                ),
            )
        })
    }

    /// Publishes a SEND (directly, or from a committed transaction) with a confirmation;
    /// `receipt` is sent once the engine confirms it.
    pub(super) fn publish(
        &mut self,
        frame: &Frame,
        receipt: Option<&str>,
        out: &mut Outbound<Out>,
    ) -> Step {
        let message = match self.message_for_send(frame) {
            Ok(message) => message,
            Err((message, detail)) => {
                return errors::protocol_error(out, &message, receipt, detail)
            }
        };
        let id = self.sends.next();
        self.sends.confirming.insert(id, receipt.map(str::to_owned));
        match self.core.publish(message, false, Some(id)) {
            Ok(_) => Step::Continue,
            Err(error) => {
                self.sends.confirming.remove(&id);
                tracing::info!(session = %self.session_id, %error, "SEND refused by the engine");
                errors::publish_failed(out, &error, receipt)
            }
        }
    }

    /// Checks what [`Self::message_for_send`] will check, without declaring anything: the
    /// destination, the queue headers and the message headers (a `/temp-queue/` reply-to is
    /// resolved only when the SEND is published).
    fn check_send(&self, frame: &Frame) -> Result<(), (String, String)> {
        let invalid =
            |error: DestinationError| ("invalid destination".to_owned(), error.to_string());
        let raw = frame.header("destination").unwrap_or_default();
        let destination = Destination::parse(raw).map_err(invalid)?;
        QueueOptions::for_send(&frame.headers).map_err(invalid)?;
        let headers: Vec<(String, String)> = match frame.header("reply-to") {
            Some(reply_to) if reply_to.starts_with(TEMP_QUEUE_PREFIX) => {
                match Destination::parse(reply_to) {
                    Ok(Destination::TempQueue { .. }) => {}
                    _ => {
                        return Err((
                            "invalid reply-to".to_owned(),
                            format!("'{reply_to}' is not a valid temp queue"),
                        ))
                    }
                }
                let first = frame.headers.iter().position(|(n, _)| n == "reply-to");
                frame
                    .headers
                    .iter()
                    .enumerate()
                    .filter(|(index, _)| Some(*index) != first)
                    .map(|(_, header)| header.clone())
                    .collect()
            }
            _ => frame.headers.clone(),
        };
        message_from_send(
            &destination,
            &headers,
            frame.body.clone(),
            self.user.as_str(),
        )
        .map(|_| ())
        .map_err(convert_error)
    }

    /// The core message for a SEND: parses its destination, declares a `/queue/` on first
    /// use, converts headers and body. `Err` is an ERROR's (message, detail).
    fn message_for_send(&mut self, frame: &Frame) -> Result<Message, (String, String)> {
        let invalid =
            |error: DestinationError| ("invalid destination".to_owned(), error.to_string());
        let raw = frame.header("destination").unwrap_or_default();
        let destination = Destination::parse(raw).map_err(invalid)?;
        let options = QueueOptions::for_send(&frame.headers).map_err(invalid)?;
        if let Some(declaration) = destination.send_declaration(&options) {
            // A SEND that names no queue property publishes to the queue as it is (declared
            // by a SUBSCRIBE with `x-*` arguments, or by another protocol); one that names
            // some declares with them, and an existing queue must match (RabbitMQ's rule).
            let exists = || {
                declaration
                    .name
                    .as_ref()
                    .is_some_and(|name| self.core.vhost().queue(name).is_some())
            };
            if !(names_no_queue_property(&options) && exists()) {
                self.core
                    .declare_queue(declaration)
                    .map_err(|error| ("cannot declare the queue".to_owned(), error.to_string()))?;
            }
        }
        let headers = self.resolve_reply_to(&frame.headers)?;
        let mut message = message_from_send(
            &destination,
            &headers,
            frame.body.clone(),
            self.user.as_str(),
        )
        .map_err(convert_error)?;
        message.origin = Some(self.origin.clone());
        Ok(message)
    }

    pub(super) fn on_publish_settled(
        &mut self,
        id: PublishId,
        outcome: PublishOutcome,
        out: &mut Outbound<Out>,
    ) -> Step {
        let Some(receipt) = self.sends.confirming.remove(&id) else {
            return Step::Continue;
        };
        match outcome {
            PublishOutcome::Confirmed => {
                if let Some(receipt) = receipt {
                    out.push(receipt_frame(&receipt));
                }
                if self.sends.release(out) {
                    return Step::Close(CloseReason::Disconnected);
                }
                Step::Continue
            }
            PublishOutcome::Rejected(rejection) => {
                errors::publish_rejected(out, rejection, receipt.as_deref())
            }
        }
    }

    /// A receipt that waits for every earlier SEND (COMMIT's); sent now if none is pending.
    pub(super) fn receipt_after_sends(&mut self, frame: &Frame, out: &mut Outbound<Out>) {
        if let Some(receipt) = frame.header("receipt") {
            let _ = self.sends.barrier(Some(receipt.to_owned()), false, out);
        }
    }

    pub(super) fn on_disconnect(&mut self, frame: &Frame, out: &mut Outbound<Out>) -> Step {
        self.sends.closing = true;
        let receipt = frame.header("receipt").map(str::to_owned);
        if self.sends.barrier(receipt, true, out) {
            Step::Close(CloseReason::Disconnected)
        } else {
            Step::Continue
        }
    }
}
