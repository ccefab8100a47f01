//! basic.publish, publisher confirms and transactions.
//!
//! Invariants:
//! - In confirm mode every publish gets the next sequence number from 1; its `basic.ack` goes
//!   out only after the engine settled it, and a run of settled publishes at the front of the
//!   outstanding ones is acknowledged with one `multiple` ack. A refused publish gets
//!   `basic.nack` at once.
//! - An unroutable mandatory publish gets `basic.return` 312 before its confirm (the engine's
//!   confirmation arrives as a later event).
//! - In a transaction, publishes, acks, nacks and rejects wait in the channel until
//!   `tx.commit` (bounded by `max_transaction_operations` and `max_transaction_bytes`) and are
//!   then applied in order; `commit-ok` follows the engine's confirmation of every publish in
//!   it. `tx.rollback` drops them.
//! - A publish while the engine blocks publishers pauses this connection's reads.

use std::collections::BTreeMap;

use amq_protocol::protocol::{basic, confirm, tx, AMQPClass};
use bytes::Bytes;
use mqgate_core::message::Message;
use mqgate_core::outbox::{DeliveryTag, PublishId, PublishOutcome};
use mqgate_session::Outbound;

use super::AmqpSession;
use crate::codec::OutFrame;
use crate::convert;
use crate::errors::{self, short, AmqpError};

/// What a channel does with publishes.
#[derive(Debug, Default)]
pub(crate) enum Mode {
    /// Publish and forget.
    #[default]
    Plain,
    /// `confirm.select`: every publish is confirmed.
    Confirm(Confirms),
    /// `tx.select`: publishes and acks wait for `tx.commit`.
    Transaction(Transaction),
}

impl Mode {
    /// Publishes awaiting the engine.
    pub(crate) fn unconfirmed(&self) -> usize {
        match self {
            Mode::Plain => 0,
            Mode::Confirm(confirms) => confirms.outstanding.len(),
            Mode::Transaction(transaction) => transaction.committing,
        }
    }
}

/// Confirm mode's counters.
#[derive(Debug, Default)]
pub(crate) struct Confirms {
    next: u64,
    /// Sequence number -> settled by the engine (and not yet acknowledged to the client).
    outstanding: BTreeMap<u64, bool>,
}

/// One operation a transaction holds until commit.
#[derive(Debug)]
enum TxOperation {
    Publish {
        message: Box<Message>,
        mandatory: bool,
        returned: Option<Returned>,
    },
    Ack {
        tag: u64,
        multiple: bool,
    },
    Nack {
        tag: u64,
        multiple: bool,
        requeue: bool,
    },
}

/// What a `basic.return` needs, kept only for mandatory publishes.
#[derive(Debug)]
struct Returned {
    properties: Box<amq_protocol::protocol::basic::AMQPProperties>,
    body: Bytes,
}

/// A transaction's buffer.
#[derive(Debug, Default)]
pub(crate) struct Transaction {
    operations: Vec<TxOperation>,
    bytes: usize,
    /// Publishes of a commit awaiting the engine; `commit-ok` goes out when it reaches 0.
    committing: usize,
    commit_pending: bool,
    next_id: u64,
}

fn method(channel: u16, method: AMQPClass) -> OutFrame {
    OutFrame::Method { channel, method }
}

impl AmqpSession {
    /// `basic.publish` arrived: check it and wait for its content.
    pub(super) fn on_publish(
        &mut self,
        number: u16,
        publish: basic::Publish,
    ) -> Result<(), AmqpError> {
        if publish.immediate {
            return Err(AmqpError::new(errors::NOT_IMPLEMENTED, "immediate=true")
                .caused_by(&AMQPClass::Basic(basic::AMQPMethod::Publish(publish))));
        }
        if let Some(channel) = self.channels.get_mut(&number) {
            channel.content = Some(super::channel::PendingContent {
                publish,
                header: None,
            });
        }
        Ok(())
    }

    /// The content of a publish is complete: route it (or keep it for the transaction).
    pub(super) fn complete_publish(
        &mut self,
        number: u16,
        out: &mut Outbound<OutFrame>,
    ) -> Result<(), AmqpError> {
        let max_operations = self.settings.max_transaction_operations;
        let max_bytes = self.settings.max_transaction_bytes;
        if self.flow_blocked {
            self.publishing_paused = true;
        }
        let Some(channel) = self.channels.get_mut(&number) else {
            return Ok(());
        };
        let Some(content) = channel.content.take() else {
            return Ok(());
        };
        let Some(header) = content.header else {
            return Ok(());
        };
        let publish = content.publish;
        let body = header.body.into_bytes();
        let mut message = convert::message_from_publish(
            publish.exchange.as_str(),
            publish.routing_key.as_str(),
            &header.properties,
            body.clone(),
            self.negotiated.user.as_str(),
        )
        .map_err(|error| AmqpError::from(&error).caused_by(&publish_class(&publish)))?;
        message.origin = Some(self.origin.clone());
        let returned = publish.mandatory.then(|| Returned {
            properties: header.properties,
            body,
        });
        match &mut channel.mode {
            Mode::Transaction(transaction) => {
                if transaction.operations.len() >= max_operations
                    || transaction.bytes + message.body.len() > max_bytes
                {
                    return Err(AmqpError::new(
                        errors::PRECONDITION_FAILED,
                        format!(
                            "transaction on channel {number} holds more than {max_operations} operations or {max_bytes} bytes"
                        ),
                    ));
                }
                transaction.bytes += message.body.len();
                transaction.operations.push(TxOperation::Publish {
                    message: Box::new(message),
                    mandatory: publish.mandatory,
                    returned,
                });
                Ok(())
            }
            Mode::Confirm(confirms) => {
                confirms.next += 1;
                let seq = confirms.next;
                confirms.outstanding.insert(seq, false);
                self.unconfirmed += 1;
                let mandatory = publish.mandatory;
                let routed = channel
                    .core
                    .publish(message, mandatory, Some(PublishId(seq)))
                    .map_err(|error| AmqpError::from(&error).caused_by(&publish_class(&publish)))?;
                if routed.queues == 0 {
                    push_return(number, &publish, returned, out);
                }
                Ok(())
            }
            Mode::Plain => {
                let routed = channel
                    .core
                    .publish(message, publish.mandatory, None)
                    .map_err(|error| AmqpError::from(&error).caused_by(&publish_class(&publish)))?;
                if routed.queues == 0 {
                    push_return(number, &publish, returned, out);
                }
                Ok(())
            }
        }
    }

    /// The engine settled publish `id` of channel `number`.
    pub(super) fn on_publish_settled(
        &mut self,
        number: u16,
        id: PublishId,
        outcome: PublishOutcome,
        out: &mut Outbound<OutFrame>,
    ) {
        let Some(channel) = self.channels.get_mut(&number) else {
            return;
        };
        match &mut channel.mode {
            Mode::Confirm(confirms) => {
                let Some(settled) = confirms.outstanding.get_mut(&id.0) else {
                    return;
                };
                if let PublishOutcome::Rejected(reason) = outcome {
                    confirms.outstanding.remove(&id.0);
                    self.unconfirmed = self.unconfirmed.saturating_sub(1);
                    tracing::debug!(channel = number, seq = id.0, ?reason, "publish nacked");
                    out.push(method(
                        number,
                        AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
                            delivery_tag: id.0,
                            multiple: false,
                            requeue: false,
                        })),
                    ));
                } else {
                    *settled = true;
                }
                let mut highest = None;
                let mut count = 0usize;
                while let Some(entry) = confirms.outstanding.first_entry() {
                    if !*entry.get() {
                        break;
                    }
                    highest = Some(*entry.key());
                    entry.remove();
                    count += 1;
                }
                self.unconfirmed = self.unconfirmed.saturating_sub(count);
                if let Some(highest) = highest {
                    out.push(method(
                        number,
                        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                            delivery_tag: highest,
                            multiple: count > 1,
                        })),
                    ));
                }
            }
            Mode::Transaction(transaction) => {
                if transaction.committing == 0 {
                    return;
                }
                transaction.committing -= 1;
                self.unconfirmed = self.unconfirmed.saturating_sub(1);
                if transaction.committing == 0 && transaction.commit_pending {
                    transaction.commit_pending = false;
                    out.push(method(
                        number,
                        AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
                    ));
                }
            }
            Mode::Plain => {}
        }
    }

    /// An ack, nack or reject on a transactional channel: keep it for the commit. Returns
    /// false when the channel is not transactional (apply it now).
    pub(super) fn buffer_settlement(
        &mut self,
        number: u16,
        tag: u64,
        multiple: bool,
        nack: Option<bool>,
    ) -> Result<bool, AmqpError> {
        let max_operations = self.settings.max_transaction_operations;
        let Some(channel) = self.channels.get_mut(&number) else {
            return Ok(true);
        };
        let Mode::Transaction(transaction) = &mut channel.mode else {
            return Ok(false);
        };
        if transaction.operations.len() >= max_operations {
            return Err(AmqpError::new(
                errors::PRECONDITION_FAILED,
                format!(
                    "transaction on channel {number} holds more than {max_operations} operations"
                ),
            ));
        }
        transaction.operations.push(match nack {
            None => TxOperation::Ack { tag, multiple },
            Some(requeue) => TxOperation::Nack {
                tag,
                multiple,
                requeue,
            },
        });
        Ok(true)
    }

    pub(super) fn on_confirm_method(
        &mut self,
        number: u16,
        method_in: confirm::AMQPMethod,
        out: &mut Outbound<OutFrame>,
    ) -> Result<(), AmqpError> {
        let confirm::AMQPMethod::Select(select) = method_in else {
            return Err(invalid(number, AMQPClass::Confirm(method_in)));
        };
        let Some(channel) = self.channels.get_mut(&number) else {
            return Ok(());
        };
        match channel.mode {
            Mode::Transaction(_) => {
                return Err(AmqpError::new(
                    errors::PRECONDITION_FAILED,
                    "cannot switch from tx to confirm mode",
                )
                .caused_by(&AMQPClass::Confirm(confirm::AMQPMethod::Select(select))));
            }
            Mode::Plain => channel.mode = Mode::Confirm(Confirms::default()),
            Mode::Confirm(_) => {}
        }
        if !select.nowait {
            out.push(method(
                number,
                AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
            ));
        }
        Ok(())
    }

    pub(super) fn on_tx_method(
        &mut self,
        number: u16,
        method_in: tx::AMQPMethod,
        out: &mut Outbound<OutFrame>,
    ) -> Result<(), AmqpError> {
        let class = AMQPClass::Tx(method_in.clone());
        let Some(channel) = self.channels.get_mut(&number) else {
            return Ok(());
        };
        match method_in {
            tx::AMQPMethod::Select(_) => {
                match channel.mode {
                    Mode::Confirm(_) => {
                        return Err(AmqpError::new(
                            errors::PRECONDITION_FAILED,
                            "cannot switch from confirm to tx mode",
                        )
                        .caused_by(&class));
                    }
                    Mode::Plain => channel.mode = Mode::Transaction(Transaction::default()),
                    Mode::Transaction(_) => {}
                }
                out.push(method(
                    number,
                    AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})),
                ));
                Ok(())
            }
            tx::AMQPMethod::Rollback(_) => {
                let Mode::Transaction(transaction) = &mut channel.mode else {
                    return Err(not_transactional(&class));
                };
                transaction.operations.clear();
                transaction.bytes = 0;
                out.push(method(
                    number,
                    AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
                ));
                Ok(())
            }
            tx::AMQPMethod::Commit(_) => self.commit(number, &class, out),
            other => Err(invalid(number, AMQPClass::Tx(other))),
        }
    }

    fn commit(
        &mut self,
        number: u16,
        class: &AMQPClass,
        out: &mut Outbound<OutFrame>,
    ) -> Result<(), AmqpError> {
        let Some(channel) = self.channels.get_mut(&number) else {
            return Ok(());
        };
        let Mode::Transaction(transaction) = &mut channel.mode else {
            return Err(not_transactional(class));
        };
        let operations = std::mem::take(&mut transaction.operations);
        transaction.bytes = 0;
        let mut published = 0usize;
        for operation in operations {
            match operation {
                TxOperation::Publish {
                    message,
                    mandatory,
                    returned,
                } => {
                    transaction.next_id += 1;
                    let id = PublishId(transaction.next_id);
                    let exchange = message.exchange.as_str().to_owned();
                    let routing_key = message.routing_key.as_ref().to_owned();
                    let routed = channel
                        .core
                        .publish(*message, mandatory, Some(id))
                        .map_err(|error| AmqpError::from(&error).caused_by(class))?;
                    published += 1;
                    transaction.committing += 1;
                    if routed.queues == 0 {
                        let publish = basic::Publish {
                            exchange: short(&exchange),
                            routing_key: short(&routing_key),
                            mandatory,
                            immediate: false,
                        };
                        push_return(number, &publish, returned, out);
                    }
                }
                TxOperation::Ack { tag, multiple } => {
                    channel
                        .core
                        .ack(DeliveryTag(tag), multiple)
                        .map_err(|error| AmqpError::from(&error).caused_by(class))?;
                }
                TxOperation::Nack {
                    tag,
                    multiple,
                    requeue,
                } => {
                    channel
                        .core
                        .nack(DeliveryTag(tag), multiple, requeue)
                        .map_err(|error| AmqpError::from(&error).caused_by(class))?;
                }
            }
        }
        self.unconfirmed += published;
        if transaction.committing == 0 {
            out.push(method(
                number,
                AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
            ));
        } else {
            transaction.commit_pending = true;
        }
        Ok(())
    }
}

fn publish_class(publish: &basic::Publish) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Publish(publish.clone()))
}

fn not_transactional(class: &AMQPClass) -> AmqpError {
    AmqpError::new(errors::PRECONDITION_FAILED, "channel is not transactional").caused_by(class)
}

fn invalid(number: u16, class: AMQPClass) -> AmqpError {
    AmqpError::new(
        errors::COMMAND_INVALID,
        format!(
            "method {}.{} is not allowed from a client on channel {number}",
            class.get_amqp_class_id(),
            class.get_amqp_method_id()
        ),
    )
    .caused_by(&class)
}

/// `basic.return` 312 NO_ROUTE with the publish's own content.
fn push_return(
    number: u16,
    publish: &basic::Publish,
    returned: Option<Returned>,
    out: &mut Outbound<OutFrame>,
) {
    let Some(returned) = returned else {
        return;
    };
    out.push(OutFrame::Content {
        channel: number,
        method: AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
            reply_code: errors::NO_ROUTE,
            reply_text: "NO_ROUTE".into(),
            exchange: publish.exchange.clone(),
            routing_key: publish.routing_key.clone(),
        })),
        properties: *returned.properties,
        body: returned.body,
    });
}
