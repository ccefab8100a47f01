//! exchange.* and queue.*: declarations, bindings, purge and delete, straight onto the core.
//!
//! Invariants:
//! - Every `-ok` is pushed only after the core applied the method, and is skipped on `nowait`.
//! - An empty queue name means the channel's last declared queue (and an empty binding key on
//!   `queue.bind` then means that queue's name), as the AMQP spec and RabbitMQ say.
//! - Deleting an exchange or queue that does not exist answers `delete-ok`, as RabbitMQ does.

use amq_protocol::protocol::{exchange, queue, AMQPClass};
use mqgate_core::declare::{
    BindingDeclaration, ExchangeDeclaration, ExchangeKind, QueueDeclaration,
};
use mqgate_core::errors::{DeleteExchangeError, DeleteQueueError, QueueAccessError};
use mqgate_core::names::{ExchangeName, QueueName};
use mqgate_session::Outbound;

use super::AmqpSession;
use crate::codec::OutFrame;
use crate::convert;
use crate::errors::{self, short, AmqpError};

fn frame(channel: u16, method: AMQPClass) -> OutFrame {
    OutFrame::Method { channel, method }
}

fn exchange_name(name: &str) -> Result<ExchangeName, AmqpError> {
    ExchangeName::new(name).map_err(|error| AmqpError::new(errors::PRECONDITION_FAILED, error))
}

impl AmqpSession {
    pub(super) fn on_exchange_method(
        &mut self,
        number: u16,
        method: exchange::AMQPMethod,
        out: &mut Outbound<OutFrame>,
    ) -> Result<(), AmqpError> {
        let class = AMQPClass::Exchange(method.clone());
        self.exchange_method(number, method, out)
            .map_err(|error| error.caused_by(&class))
    }

    fn exchange_method(
        &mut self,
        number: u16,
        method: exchange::AMQPMethod,
        out: &mut Outbound<OutFrame>,
    ) -> Result<(), AmqpError> {
        let Some(channel) = self.channels.get_mut(&number) else {
            return Ok(());
        };
        let core = &mut channel.core;
        match method {
            exchange::AMQPMethod::Declare(declare) => {
                let kind = match declare.kind.as_str().parse::<ExchangeKind>() {
                    Ok(kind) => kind,
                    // A passive declare only checks existence; its type is not compared.
                    Err(_) if declare.passive => ExchangeKind::Direct,
                    Err(unknown) => {
                        return Err(AmqpError::new(
                            errors::COMMAND_INVALID,
                            format!("unknown exchange type '{}'", unknown.0),
                        ))
                    }
                };
                core.declare_exchange(ExchangeDeclaration {
                    name: exchange_name(declare.exchange.as_str())?,
                    kind,
                    durable: declare.durable,
                    auto_delete: declare.auto_delete,
                    internal: declare.internal,
                    passive: declare.passive,
                    arguments: convert::arguments(&declare.arguments),
                })
                .map_err(|error| AmqpError::from(&error))?;
                if !declare.nowait {
                    out.push(frame(
                        number,
                        AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(
                            exchange::DeclareOk {},
                        )),
                    ));
                }
            }
            exchange::AMQPMethod::Delete(delete) => {
                if delete.exchange.as_str().is_empty() {
                    return Err(AmqpError::new(
                        errors::ACCESS_REFUSED,
                        "operation not permitted on the default exchange",
                    ));
                }
                let name = exchange_name(delete.exchange.as_str())?;
                match core.delete_exchange(&name, delete.if_unused) {
                    Ok(()) | Err(DeleteExchangeError::NotFound { .. }) => {}
                    Err(error) => return Err(AmqpError::from(&error)),
                }
                if !delete.nowait {
                    out.push(frame(
                        number,
                        AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {})),
                    ));
                }
            }
            exchange::AMQPMethod::Bind(bind) => {
                core.bind_exchange(BindingDeclaration {
                    source: exchange_name(bind.source.as_str())?,
                    destination: bind.destination.as_str().to_owned(),
                    routing_key: bind.routing_key.as_str().to_owned(),
                    arguments: convert::arguments(&bind.arguments),
                })
                .map_err(|error| AmqpError::from(&error))?;
                if !bind.nowait {
                    out.push(frame(
                        number,
                        AMQPClass::Exchange(exchange::AMQPMethod::BindOk(exchange::BindOk {})),
                    ));
                }
            }
            exchange::AMQPMethod::Unbind(unbind) => {
                core.unbind_exchange(BindingDeclaration {
                    source: exchange_name(unbind.source.as_str())?,
                    destination: unbind.destination.as_str().to_owned(),
                    routing_key: unbind.routing_key.as_str().to_owned(),
                    arguments: convert::arguments(&unbind.arguments),
                })
                .map_err(|error| AmqpError::from(&error))?;
                if !unbind.nowait {
                    out.push(frame(
                        number,
                        AMQPClass::Exchange(exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {})),
                    ));
                }
            }
            other => return Err(server_only(AMQPClass::Exchange(other))),
        }
        Ok(())
    }

    pub(super) fn on_queue_method(
        &mut self,
        number: u16,
        method: queue::AMQPMethod,
        out: &mut Outbound<OutFrame>,
    ) -> Result<(), AmqpError> {
        let class = AMQPClass::Queue(method.clone());
        self.queue_method(number, method, out)
            .map_err(|error| error.caused_by(&class))
    }

    fn queue_method(
        &mut self,
        number: u16,
        method: queue::AMQPMethod,
        out: &mut Outbound<OutFrame>,
    ) -> Result<(), AmqpError> {
        match method {
            queue::AMQPMethod::Declare(declare) => {
                if !declare.passive && declare.queue.as_str().starts_with("amq.") {
                    // Even an existing server-named queue: RabbitMQ refuses the redeclare.
                    return Err(AmqpError::new(
                        errors::ACCESS_REFUSED,
                        format!(
                            "queue name '{}' contains reserved prefix 'amq.*'",
                            declare.queue
                        ),
                    ));
                }
                let name = if declare.queue.as_str().is_empty() {
                    None
                } else {
                    Some(
                        QueueName::new(declare.queue.as_str())
                            .map_err(|error| AmqpError::new(errors::PRECONDITION_FAILED, error))?,
                    )
                };
                let Some(channel) = self.channels.get_mut(&number) else {
                    return Ok(());
                };
                let declared = channel
                    .core
                    .declare_queue(QueueDeclaration {
                        name,
                        durable: declare.durable,
                        exclusive: declare.exclusive,
                        auto_delete: declare.auto_delete,
                        passive: declare.passive,
                        arguments: convert::arguments(&declare.arguments),
                    })
                    .map_err(|error| AmqpError::from(&error))?;
                channel.last_queue = Some(declared.name.clone());
                if !declare.nowait {
                    out.push(frame(
                        number,
                        AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                            queue: short(declared.name.as_str()),
                            message_count: declared.messages,
                            consumer_count: declared.consumers,
                        })),
                    ));
                }
            }
            queue::AMQPMethod::Bind(bind) => {
                let queue = self.queue_named(number, bind.queue.as_str())?;
                let routing_key =
                    if bind.queue.as_str().is_empty() && bind.routing_key.as_str().is_empty() {
                        queue.as_str().to_owned()
                    } else {
                        bind.routing_key.as_str().to_owned()
                    };
                let Some(channel) = self.channels.get_mut(&number) else {
                    return Ok(());
                };
                channel
                    .core
                    .bind_queue(BindingDeclaration {
                        source: exchange_name(bind.exchange.as_str())?,
                        destination: queue.as_str().to_owned(),
                        routing_key,
                        arguments: convert::arguments(&bind.arguments),
                    })
                    .map_err(|error| AmqpError::from(&error))?;
                if !bind.nowait {
                    out.push(frame(
                        number,
                        AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {})),
                    ));
                }
            }
            queue::AMQPMethod::Unbind(unbind) => {
                let queue = self.queue_named(number, unbind.queue.as_str())?;
                let Some(channel) = self.channels.get_mut(&number) else {
                    return Ok(());
                };
                channel
                    .core
                    .unbind_queue(BindingDeclaration {
                        source: exchange_name(unbind.exchange.as_str())?,
                        destination: queue.as_str().to_owned(),
                        routing_key: unbind.routing_key.as_str().to_owned(),
                        arguments: convert::arguments(&unbind.arguments),
                    })
                    .map_err(|error| AmqpError::from(&error))?;
                out.push(frame(
                    number,
                    AMQPClass::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {})),
                ));
            }
            queue::AMQPMethod::Purge(purge) => {
                let queue = self.queue_named(number, purge.queue.as_str())?;
                let Some(channel) = self.channels.get_mut(&number) else {
                    return Ok(());
                };
                let message_count = channel
                    .core
                    .purge_queue(&queue)
                    .map_err(|error| AmqpError::from(&error))?;
                if !purge.nowait {
                    out.push(frame(
                        number,
                        AMQPClass::Queue(queue::AMQPMethod::PurgeOk(queue::PurgeOk {
                            message_count,
                        })),
                    ));
                }
            }
            queue::AMQPMethod::Delete(delete) => {
                let queue = self.queue_named(number, delete.queue.as_str())?;
                let Some(channel) = self.channels.get_mut(&number) else {
                    return Ok(());
                };
                let message_count =
                    match channel
                        .core
                        .delete_queue(&queue, delete.if_unused, delete.if_empty)
                    {
                        Ok(count) => count,
                        Err(DeleteQueueError::Access(QueueAccessError::NotFound { .. })) => 0,
                        Err(error) => return Err(AmqpError::from(&error)),
                    };
                if !delete.nowait {
                    out.push(frame(
                        number,
                        AMQPClass::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                            message_count,
                        })),
                    ));
                }
            }
            other => return Err(server_only(AMQPClass::Queue(other))),
        }
        Ok(())
    }
}

/// A method only a server sends (a `-ok`), received from the client.
fn server_only(class: AMQPClass) -> AmqpError {
    AmqpError::new(
        errors::COMMAND_INVALID,
        format!(
            "method {}.{} is sent by servers, not clients",
            class.get_amqp_class_id(),
            class.get_amqp_method_id()
        ),
    )
    .caused_by(&class)
}
