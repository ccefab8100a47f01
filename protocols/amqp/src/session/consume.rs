//! basic.qos, consume, cancel, get, ack, nack, reject and recover.
//!
//! Invariants:
//! - `basic.qos` sets the prefetch of consumers created afterwards on the channel (RabbitMQ's
//!   meaning of `global=false`). `global=true`, RabbitMQ's shared per-channel limit, is applied
//!   the same way, per consumer: the engine has no shared credit pool (docs/AMQP.md).
//! - `consume-ok` is pushed before the engine can deliver to the new consumer, since deliveries
//!   arrive as later events.
//! - An ack, nack or reject of a tag the channel does not hold closes the channel with 406
//!   (RabbitMQ's `unknown delivery tag`); in a transaction it is checked at commit.
//! - A cancelled consumer's unacked messages stay unacked on the channel, as AMQP requires.

use amq_protocol::protocol::{basic, AMQPClass};
use mqgate_core::names::{ConsumerTag, QueueName};
use mqgate_core::outbox::{AckMode, DeliveryTag};
use mqgate_core::ConsumeRequest;
use mqgate_session::Outbound;

use super::deliver::content_frame;
use super::AmqpSession;
use crate::codec::OutFrame;
use crate::convert;
use crate::errors::{self, short, AmqpError};

/// What the session remembers about one consumer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConsumerInfo {
    /// Deliveries need no ack.
    pub(crate) no_ack: bool,
}

fn method(channel: u16, method: basic::AMQPMethod) -> OutFrame {
    OutFrame::Method {
        channel,
        method: AMQPClass::Basic(method),
    }
}

impl AmqpSession {
    pub(super) fn on_basic_method(
        &mut self,
        number: u16,
        method_in: basic::AMQPMethod,
        method_id: u16,
        out: &mut Outbound<OutFrame>,
    ) -> Result<(), AmqpError> {
        // The id, not a clone of the method, to blame errors on: this runs for every publish
        // and ack.
        let caused = |error: AmqpError| error.caused_by_ids(60, method_id);
        match method_in {
            basic::AMQPMethod::Publish(publish) => self.on_publish(number, publish),
            basic::AMQPMethod::Qos(qos) => {
                if let Some(channel) = self.channels.get_mut(&number) {
                    let count = u32::from(qos.prefetch_count);
                    if qos.global {
                        channel.global_prefetch = (count > 0).then_some(count);
                        // Each consumer may hold at most the channel's limit too, so what
                        // waits here stays bounded.
                        if count > 0 {
                            channel.prefetch = count;
                        }
                    } else {
                        channel.prefetch = count;
                    }
                }
                out.push(method(number, basic::AMQPMethod::QosOk(basic::QosOk {})));
                Ok(())
            }
            basic::AMQPMethod::Consume(consume) => {
                self.on_consume(number, consume, out).map_err(caused)
            }
            basic::AMQPMethod::Cancel(cancel) => {
                if let Some(channel) = self.channels.get_mut(&number) {
                    if let Ok(tag) = ConsumerTag::new(cancel.consumer_tag.as_str()) {
                        channel.core.cancel(&tag);
                    }
                    channel.consumers.remove(cancel.consumer_tag.as_str());
                    // Held back by the global prefetch, never sent: back to the queue.
                    let held = std::mem::take(&mut channel.held);
                    for delivery in held {
                        let cancelled = delivery.consumer.as_ref().map(|tag| tag.as_str())
                            == Some(cancel.consumer_tag.as_str());
                        if cancelled {
                            let _ = channel.core.reject(delivery.tag, true);
                        } else {
                            channel.held.push_back(delivery);
                        }
                    }
                }
                if !cancel.nowait {
                    out.push(method(
                        number,
                        basic::AMQPMethod::CancelOk(basic::CancelOk {
                            consumer_tag: cancel.consumer_tag,
                        }),
                    ));
                }
                Ok(())
            }
            basic::AMQPMethod::Get(get) => self.on_get(number, get, out).map_err(caused),
            basic::AMQPMethod::Ack(ack) => {
                self.settle(number, ack.delivery_tag, ack.multiple, None)
                    .map_err(caused)?;
                self.release_held(number, out);
                Ok(())
            }
            basic::AMQPMethod::Nack(nack) => {
                self.settle(number, nack.delivery_tag, nack.multiple, Some(nack.requeue))
                    .map_err(caused)?;
                self.release_held(number, out);
                Ok(())
            }
            basic::AMQPMethod::Reject(reject) => {
                self.settle(number, reject.delivery_tag, false, Some(reject.requeue))
                    .map_err(caused)?;
                self.release_held(number, out);
                Ok(())
            }
            basic::AMQPMethod::Recover(basic::Recover { requeue }) => {
                self.recover(number, requeue, out).map_err(caused)?;
                out.push(method(
                    number,
                    basic::AMQPMethod::RecoverOk(basic::RecoverOk {}),
                ));
                Ok(())
            }
            basic::AMQPMethod::RecoverAsync(basic::RecoverAsync { requeue }) => {
                self.recover(number, requeue, out).map_err(caused)
            }
            _ => Err(caused(AmqpError::new(
                errors::COMMAND_INVALID,
                format!("method 60.{method_id} is not allowed from a client"),
            ))),
        }
    }

    /// Requeues every unacked delivery of the channel (`basic.recover`; `requeue=false` is
    /// RabbitMQ's 540 too: redelivery to the same consumer is not offered).
    fn recover(
        &mut self,
        number: u16,
        requeue: bool,
        out: &mut Outbound<OutFrame>,
    ) -> Result<(), AmqpError> {
        if !requeue {
            return Err(AmqpError::new(errors::NOT_IMPLEMENTED, "requeue=false"));
        }
        if let Some(channel) = self.channels.get_mut(&number) {
            channel.core.recover();
        }
        self.release_held(number, out);
        Ok(())
    }

    /// The queue a method names; "" means the channel's last declared queue, as in RabbitMQ.
    pub(super) fn queue_named(&self, number: u16, name: &str) -> Result<QueueName, AmqpError> {
        if name.is_empty() {
            return self
                .channels
                .get(&number)
                .and_then(|channel| channel.last_queue.clone())
                .ok_or_else(|| {
                    AmqpError::new(
                        errors::NOT_FOUND,
                        "no previously declared queue on this channel",
                    )
                });
        }
        QueueName::new(name).map_err(|error| AmqpError::new(errors::PRECONDITION_FAILED, error))
    }

    fn on_consume(
        &mut self,
        number: u16,
        consume: basic::Consume,
        out: &mut Outbound<OutFrame>,
    ) -> Result<(), AmqpError> {
        let queue = self.queue_named(number, consume.queue.as_str())?;
        let max = self.settings.max_consumers_per_channel;
        let Some(channel) = self.channels.get_mut(&number) else {
            return Ok(());
        };
        if channel.consumers.len() >= max {
            return Err(AmqpError::new(
                errors::NOT_ALLOWED,
                format!("reached maximum ({max}) of consumers per channel"),
            ));
        }
        let arguments = convert::arguments(&consume.arguments);
        let priority = match arguments.get("x-priority") {
            None => 0,
            Some(value) => value
                .as_integer()
                .and_then(|priority| i32::try_from(priority).ok())
                .ok_or_else(|| {
                    AmqpError::new(
                        errors::PRECONDITION_FAILED,
                        format!("invalid arg 'x-priority' for consumer on queue '{queue}': expected an integer"),
                    )
                })?,
        };
        let tag = if consume.consumer_tag.as_str().is_empty() {
            None
        } else {
            Some(
                ConsumerTag::new(consume.consumer_tag.as_str())
                    .map_err(|error| AmqpError::new(errors::PRECONDITION_FAILED, error))?,
            )
        };
        let request = ConsumeRequest {
            queue,
            tag,
            ack_mode: if consume.no_ack {
                AckMode::Auto
            } else {
                AckMode::Manual
            },
            prefetch: channel.prefetch,
            priority,
            exclusive: consume.exclusive,
        };
        let tag = channel
            .core
            .consume(request)
            .map_err(|error| AmqpError::from(&error))?;
        channel.consumers.insert(
            tag.as_str().to_owned(),
            ConsumerInfo {
                no_ack: consume.no_ack,
            },
        );
        if !consume.nowait {
            out.push(method(
                number,
                basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                    consumer_tag: short(tag.as_str()),
                }),
            ));
        }
        Ok(())
    }

    fn on_get(
        &mut self,
        number: u16,
        get: basic::Get,
        out: &mut Outbound<OutFrame>,
    ) -> Result<(), AmqpError> {
        let queue = self.queue_named(number, get.queue.as_str())?;
        let Some(channel) = self.channels.get_mut(&number) else {
            return Ok(());
        };
        let ack_mode = if get.no_ack {
            AckMode::Auto
        } else {
            AckMode::Manual
        };
        match channel
            .core
            .get(&queue, ack_mode)
            .map_err(|error| AmqpError::from(&error))?
        {
            Some((delivery, message_count)) => {
                let get_ok = basic::AMQPMethod::GetOk(basic::GetOk {
                    delivery_tag: delivery.tag.0,
                    redelivered: delivery.redelivered,
                    exchange: short(delivery.message.exchange.as_str()),
                    routing_key: short(delivery.message.routing_key.as_ref()),
                    message_count,
                });
                out.push(content_frame(number, get_ok, &delivery.message));
            }
            None => out.push(method(
                number,
                basic::AMQPMethod::GetEmpty(basic::GetEmpty {}),
            )),
        }
        Ok(())
    }

    /// Ack (`requeue` None) or nack/reject (`Some(requeue)`) a delivery.
    fn settle(
        &mut self,
        number: u16,
        tag: u64,
        multiple: bool,
        requeue: Option<bool>,
    ) -> Result<(), AmqpError> {
        if self.buffer_settlement(number, tag, multiple, requeue)? {
            return Ok(());
        }
        let Some(channel) = self.channels.get_mut(&number) else {
            return Ok(());
        };
        let outcome = match requeue {
            None => channel.core.ack(DeliveryTag(tag), multiple),
            Some(requeue) => channel.core.nack(DeliveryTag(tag), multiple, requeue),
        };
        outcome.map_err(|error| AmqpError::from(&error))
    }
}
