//! BEGIN, COMMIT and ABORT.
//!
//! Invariants:
//! - The SENDs, ACKs and NACKs of a transaction are checked when they arrive (a SEND's
//!   destination and headers, an ACK's id) and buffered; they take effect together, in order,
//!   at COMMIT, and not at all on ABORT or disconnect. At COMMIT an ACK whose message an
//!   earlier frame already settled (a cumulative `client` ACK) is nothing to do, not an error.
//! - Open transactions and what each buffers (frames and body bytes) are bounded by the
//!   settings; going over is an ERROR and a close.
//! - A buffered frame's RECEIPT goes out when it is buffered (the server has it); COMMIT's
//!   RECEIPT waits for the engine to confirm every SEND it published.

use std::collections::HashMap;

use mqgate_session::{Outbound, Step};

use crate::codec::{Command, Frame, Outbound as Out};
use crate::errors;

use super::StompSession;

/// One open transaction.
#[derive(Debug, Default)]
struct Transaction {
    frames: Vec<Frame>,
    bytes: usize,
}

/// The open transactions of one connection.
#[derive(Debug, Default)]
pub(crate) struct TransactionState {
    open: HashMap<String, Transaction>,
}

impl TransactionState {
    /// Drops every open transaction (disconnect).
    pub(crate) fn clear(&mut self) {
        self.open.clear();
    }
}

impl StompSession {
    fn transaction_name<'f>(frame: &'f Frame, out: &mut Outbound<Out>) -> Result<&'f str, Step> {
        frame.header("transaction").ok_or_else(|| {
            errors::protocol_error(
                out,
                "missing transaction header",
                frame.header("receipt"),
                format!("{} needs a transaction header", frame.command),
            )
        })
    }

    pub(super) fn on_begin(&mut self, frame: &Frame, out: &mut Outbound<Out>) -> Step {
        let name = match Self::transaction_name(frame, out) {
            Ok(name) => name,
            Err(step) => return step,
        };
        let receipt = frame.header("receipt");
        if self.transactions.open.contains_key(name) {
            return errors::protocol_error(
                out,
                "transaction already active",
                receipt,
                format!("transaction '{name}' is already open"),
            );
        }
        if self.transactions.open.len() >= self.settings.max_transactions {
            return errors::limit_reached(
                out,
                &format!(
                    "at most {} open transactions per connection",
                    self.settings.max_transactions
                ),
                receipt,
            );
        }
        self.transactions
            .open
            .insert(name.to_owned(), Transaction::default());
        Self::receipt(frame, out);
        Step::Continue
    }

    /// Buffers a checked SEND, ACK or NACK in its transaction.
    pub(super) fn buffer_in_transaction(
        &mut self,
        name: &str,
        frame: Frame,
        out: &mut Outbound<Out>,
    ) -> Step {
        let receipt = frame.header("receipt");
        let max_frames = self.settings.max_transaction_frames;
        let max_bytes = self.settings.max_transaction_bytes;
        let Some(transaction) = self.transactions.open.get_mut(name) else {
            return errors::protocol_error(
                out,
                "unknown transaction",
                receipt,
                format!("no open transaction '{name}'"),
            );
        };
        let bytes = transaction.bytes.saturating_add(frame.body.len());
        if transaction.frames.len() >= max_frames || bytes > max_bytes {
            return errors::limit_reached(
                out,
                &format!(
                    "a transaction holds at most {max_frames} frames and {max_bytes} body bytes"
                ),
                receipt,
            );
        }
        transaction.bytes = bytes;
        Self::receipt(&frame, out);
        transaction.frames.push(frame);
        Step::Continue
    }

    pub(super) fn on_commit(&mut self, frame: &Frame, out: &mut Outbound<Out>) -> Step {
        let name = match Self::transaction_name(frame, out) {
            Ok(name) => name,
            Err(step) => return step,
        };
        let Some(transaction) = self.transactions.open.remove(name) else {
            return errors::protocol_error(
                out,
                "unknown transaction",
                frame.header("receipt"),
                format!("no open transaction '{name}'"),
            );
        };
        for buffered in &transaction.frames {
            // Receipts of buffered frames were sent when they arrived.
            let step = match buffered.command {
                Command::Send => {
                    self.publishing_paused |= self.flow_blocked;
                    self.publish(buffered, None, out)
                }
                Command::Ack | Command::Nack => {
                    self.settle_committed(buffered, buffered.command == Command::Nack);
                    Step::Continue
                }
                _ => Step::Continue,
            };
            if step != Step::Continue {
                return step;
            }
        }
        self.receipt_after_sends(frame, out);
        Step::Continue
    }

    pub(super) fn on_abort(&mut self, frame: &Frame, out: &mut Outbound<Out>) -> Step {
        let name = match Self::transaction_name(frame, out) {
            Ok(name) => name,
            Err(step) => return step,
        };
        if self.transactions.open.remove(name).is_none() {
            return errors::protocol_error(
                out,
                "unknown transaction",
                frame.header("receipt"),
                format!("no open transaction '{name}'"),
            );
        }
        Self::receipt(frame, out);
        Step::Continue
    }
}
