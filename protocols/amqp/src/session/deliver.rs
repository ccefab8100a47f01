//! Engine events to frames: deliveries, publish settlements and consumer cancellations.
//!
//! Invariants:
//! - A delivery for a consumer the client already cancelled is still sent when it needs no ack
//!   (the engine counts it delivered; dropping it would lose it), and is requeued untouched
//!   when it does.
//! - A server-side cancel (the queue was deleted) reaches only clients that declared
//!   `consumer_cancel_notify`, as in RabbitMQ; the consumer is forgotten either way.

use std::sync::Arc;

use amq_protocol::protocol::{basic, AMQPClass};
use mqgate_core::message::Message;
use mqgate_core::outbox::{Delivery, Event};
use mqgate_session::Outbound;

use super::AmqpSession;
use crate::codec::OutFrame;
use crate::convert;
use crate::errors::{short, AmqpError};

/// A content-carrying method with `message`'s properties and body (shared, not copied).
pub(super) fn content_frame(
    channel: u16,
    method: basic::AMQPMethod,
    message: &Arc<Message>,
) -> OutFrame {
    OutFrame::Content {
        channel,
        method: AMQPClass::Basic(method),
        properties: convert::delivery_properties(message),
        body: message.body.clone(),
    }
}

impl AmqpSession {
    /// One engine event for open channel `number`.
    pub(super) fn on_channel_event(
        &mut self,
        number: u16,
        event: Event,
        out: &mut Outbound<OutFrame>,
    ) -> Result<(), AmqpError> {
        match event {
            Event::Delivery(delivery) => {
                self.on_delivery(number, delivery, out);
                Ok(())
            }
            Event::PublishSettled { id, outcome } => {
                self.on_publish_settled(number, id, outcome, out);
                Ok(())
            }
            Event::ConsumerCancelled { consumer, reason } => {
                let notify = self.negotiated.capabilities.consumer_cancel_notify;
                if let Some(channel) = self.channels.get_mut(&number) {
                    channel.core.forget_consumer(&consumer);
                    if channel.consumers.remove(consumer.as_str()).is_some() && notify {
                        tracing::debug!(channel = number, consumer = %consumer, ?reason, "consumer cancelled by the server");
                        out.push(OutFrame::Method {
                            channel: number,
                            method: AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                                consumer_tag: short(consumer.as_str()),
                                nowait: true,
                            })),
                        });
                    }
                }
                Ok(())
            }
            // Flow control is handled for the whole connection, from channel 0.
            _ => Ok(()),
        }
    }

    fn on_delivery(&mut self, number: u16, delivery: Delivery, out: &mut Outbound<OutFrame>) {
        let Some(channel) = self.channels.get_mut(&number) else {
            return;
        };
        let Some(consumer) = delivery.consumer.as_ref() else {
            return;
        };
        let known = channel.consumers.get(consumer.as_str()).copied();
        let needs_ack = known.map_or_else(
            || channel.core.holds_unacked(delivery.tag),
            |info| !info.no_ack,
        );
        if known.is_none() && needs_ack {
            // Cancelled before this delivery was taken: back to the queue, not to the client.
            let _ = channel.core.reject(delivery.tag, true);
            return;
        }
        if needs_ack {
            if let Some(limit) = channel.global_prefetch {
                let sent = channel
                    .core
                    .unacked_count()
                    .saturating_sub(channel.held.len());
                if !channel.held.is_empty() || sent > limit as usize {
                    channel.held.push_back(delivery);
                    return;
                }
            }
        }
        out.push(deliver_frame(number, &delivery));
    }

    /// Sends held deliveries while the channel's global prefetch has room; drops those the
    /// client settled meanwhile (a `multiple` ack with tag 0, a recover).
    pub(super) fn release_held(&mut self, number: u16, out: &mut Outbound<OutFrame>) {
        let Some(channel) = self.channels.get_mut(&number) else {
            return;
        };
        let Some(limit) = channel.global_prefetch.map(|limit| limit as usize) else {
            // The limit was lifted: everything held goes.
            while let Some(delivery) = channel.held.pop_front() {
                if channel.core.holds_unacked(delivery.tag) {
                    out.push(deliver_frame(number, &delivery));
                }
            }
            return;
        };
        while let Some(front) = channel.held.front() {
            if !channel.core.holds_unacked(front.tag) {
                channel.held.pop_front();
                continue;
            }
            let sent = channel
                .core
                .unacked_count()
                .saturating_sub(channel.held.len());
            if sent >= limit {
                break;
            }
            if let Some(delivery) = channel.held.pop_front() {
                out.push(deliver_frame(number, &delivery));
            }
        }
    }
}

/// `basic.deliver` with the delivery's content.
fn deliver_frame(number: u16, delivery: &Delivery) -> OutFrame {
    let consumer = delivery.consumer.as_ref().map_or("", |tag| tag.as_str());
    let deliver = basic::AMQPMethod::Deliver(basic::Deliver {
        consumer_tag: short(consumer),
        delivery_tag: delivery.tag.0,
        redelivered: delivery.redelivered,
        exchange: short(delivery.message.exchange.as_str()),
        routing_key: short(delivery.message.routing_key.as_ref()),
    });
    content_frame(number, deliver, &delivery.message)
}
