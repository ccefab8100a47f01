//! SUBSCRIBE, UNSUBSCRIBE, and the MESSAGE frames of each subscription.
//!
//! Invariants:
//! - One core consumer per subscription: `ack:auto` consumes with auto-ack, `client` and
//!   `client-individual` with manual ack and a prefetch capped by `max_prefetch` (so the
//!   unacknowledged deliveries this session tracks are bounded).
//! - `/queue/<q>` reads the shared queue `q` (declared durable on first use); `/amq/queue/<q>`
//!   an existing queue; `/topic/<key>` and `/exchange/<x>/<key>` a private queue bound for
//!   this subscription and deleted with it.
//! - A subscription id is unique on the connection (1.1+ require one; 1.0 uses the destination).
//! - UNSUBSCRIBE requeues what the subscription received and did not acknowledge.

use std::collections::{BTreeMap, HashMap};

use mqgate_core::names::{ConsumerTag, QueueName};
use mqgate_core::outbox::{AckMode, CancelReason, Delivery, DeliveryTag};
use mqgate_core::session::ConsumeRequest;
use mqgate_core::Session as CoreSession;
use mqgate_session::{CloseReason, Outbound, Step};

use crate::codec::{Frame, Outbound as Out, ServerCommand, ServerFrame, StompVersion};
use crate::destination::{Destination, DestinationError, QueueOptions};
use crate::errors;

use super::reply::TempQueue;
use super::StompSession;

/// A subscription's acknowledgement mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckKind {
    /// Delivered means acknowledged.
    Auto,
    /// ACK/NACK settle every earlier message of the subscription too.
    Client,
    /// ACK/NACK settle one message.
    ClientIndividual,
}

impl AckKind {
    fn parse(value: Option<&str>) -> Option<Self> {
        match value {
            None | Some("auto") => Some(Self::Auto),
            Some("client") => Some(Self::Client),
            Some("client-individual") => Some(Self::ClientIndividual),
            Some(_) => None,
        }
    }
}

/// One subscription.
#[derive(Debug)]
pub(crate) struct Subscription {
    pub(crate) destination: String,
    pub(crate) ack: AckKind,
    pub(crate) consumer: ConsumerTag,
    /// A queue made for this subscription alone, deleted with it.
    pub(crate) private_queue: Option<QueueName>,
}

/// Subscriptions of one connection and its unacknowledged deliveries.
#[derive(Debug, Default)]
pub(crate) struct SubscriptionState {
    pub(crate) by_id: HashMap<String, Subscription>,
    pub(crate) by_consumer: HashMap<ConsumerTag, String>,
    /// Manual-ack deliveries not yet settled, with their subscription id.
    pub(crate) unacked: BTreeMap<DeliveryTag, String>,
    /// The connection's `/temp-queue/` reply queues, by temp-queue name.
    pub(crate) temp_queues: HashMap<String, TempQueue>,
    /// The temp-queue name of each reply queue's internal consumer.
    pub(crate) temp_by_consumer: HashMap<ConsumerTag, String>,
    next_consumer: u64,
}

impl SubscriptionState {
    /// Cancels every consumer and deletes the private queues (the core session then requeues
    /// what was unacknowledged).
    pub(crate) fn release(&mut self, core: &mut CoreSession) {
        for (_, sub) in self.by_id.drain() {
            core.cancel(&sub.consumer);
            if let Some(queue) = &sub.private_queue {
                let _ = core.delete_queue(queue, false, false);
            }
        }
        for (_, temp) in self.temp_queues.drain() {
            core.cancel(&temp.consumer);
            let _ = core.delete_queue(&temp.queue, false, false);
        }
        self.by_consumer.clear();
        self.temp_by_consumer.clear();
        self.unacked.clear();
    }

    /// A fresh consumer tag `<prefix>-<n>`, unique on the connection.
    pub(crate) fn next_tag(&mut self, prefix: &str) -> Result<ConsumerTag, String> {
        self.next_consumer += 1;
        ConsumerTag::new(format!("{prefix}-{}", self.next_consumer))
            .map_err(|_| "cannot name the consumer".to_owned())
    }

    /// The unacked tags of subscription `id`, up to and including `upto` (all when `None`).
    pub(crate) fn tags_of(&self, id: &str, upto: Option<DeliveryTag>) -> Vec<DeliveryTag> {
        let upper = upto.unwrap_or(DeliveryTag(u64::MAX));
        self.unacked
            .range(..=upper)
            .filter(|(_, sub)| sub.as_str() == id)
            .map(|(tag, _)| *tag)
            .collect()
    }
}

impl StompSession {
    pub(super) fn on_subscribe(&mut self, frame: &Frame, out: &mut Outbound<Out>) -> Step {
        let receipt = frame.header("receipt");
        let Some(destination) = frame.header("destination") else {
            return errors::protocol_error(
                out,
                "missing destination header",
                receipt,
                "SUBSCRIBE needs a destination header",
            );
        };
        let id = match (frame.header("id"), self.version) {
            (Some(id), _) => id.to_owned(),
            (None, StompVersion::V1_0) => destination.to_owned(),
            (None, _) => {
                return errors::protocol_error(
                    out,
                    "missing id header",
                    receipt,
                    "SUBSCRIBE needs an id header in STOMP 1.1 and 1.2",
                )
            }
        };
        if self.subs.by_id.contains_key(&id) {
            return errors::protocol_error(
                out,
                "duplicated subscription identifier",
                receipt,
                format!("a subscription with id '{id}' already exists"),
            );
        }
        if self.subs.by_id.len() >= self.settings.max_subscriptions {
            return errors::limit_reached(
                out,
                &format!(
                    "at most {} subscriptions per connection",
                    self.settings.max_subscriptions
                ),
                receipt,
            );
        }
        let Some(ack) = AckKind::parse(frame.header("ack")) else {
            return errors::protocol_error(
                out,
                "invalid ack header",
                receipt,
                "ack must be auto, client or client-individual",
            );
        };
        let prefetch = match frame.header("prefetch-count").map(str::parse::<u32>) {
            None => self.settings.max_prefetch,
            Some(Ok(0)) => self.settings.max_prefetch,
            Some(Ok(n)) => n.min(self.settings.max_prefetch),
            Some(Err(_)) => {
                return errors::protocol_error(
                    out,
                    "invalid prefetch-count header",
                    receipt,
                    "prefetch-count must be a non-negative integer",
                )
            }
        };
        let (queue, private_queue) = match self.subscription_queue(destination, frame) {
            Ok(found) => found,
            Err(Refusal::Client(message, detail)) => {
                return errors::protocol_error(out, &message, receipt, detail)
            }
            Err(Refusal::Engine(detail)) => return errors::subscribe_failed(out, detail, receipt),
        };
        let tag = match self.subs.next_tag("stomp-sub") {
            Ok(tag) => tag,
            Err(detail) => return errors::subscribe_failed(out, detail, receipt),
        };
        let request = ConsumeRequest {
            tag: Some(tag),
            ack_mode: if ack == AckKind::Auto {
                AckMode::Auto
            } else {
                AckMode::Manual
            },
            prefetch: if ack == AckKind::Auto { 0 } else { prefetch },
            ..ConsumeRequest::auto(queue)
        };
        let consumer = match self.core.consume(request) {
            Ok(consumer) => consumer,
            Err(error) => {
                if let Some(queue) = &private_queue {
                    let _ = self.core.delete_queue(queue, false, false);
                }
                return errors::subscribe_failed(out, error, receipt);
            }
        };
        self.subs.by_consumer.insert(consumer.clone(), id.clone());
        self.subs.by_id.insert(
            id,
            Subscription {
                destination: destination.to_owned(),
                ack,
                consumer,
                private_queue,
            },
        );
        Self::receipt(frame, out);
        Step::Continue
    }

    pub(super) fn on_unsubscribe(&mut self, frame: &Frame, out: &mut Outbound<Out>) -> Step {
        let receipt = frame.header("receipt");
        let id = match (frame.header("id"), self.version) {
            (Some(id), _) => id,
            (None, StompVersion::V1_0) => match frame.header("destination") {
                Some(destination) => destination,
                None => {
                    return errors::protocol_error(
                        out,
                        "missing id header",
                        receipt,
                        "UNSUBSCRIBE needs an id or a destination header",
                    )
                }
            },
            (None, _) => {
                return errors::protocol_error(
                    out,
                    "missing id header",
                    receipt,
                    "UNSUBSCRIBE needs an id header",
                )
            }
        };
        let Some(sub) = self.subs.by_id.remove(id) else {
            return errors::protocol_error(
                out,
                "no subscription found",
                receipt,
                format!("no subscription with id '{id}'"),
            );
        };
        self.subs.by_consumer.remove(&sub.consumer);
        self.core.cancel(&sub.consumer);
        for tag in self.subs.tags_of(id, None) {
            self.subs.unacked.remove(&tag);
            let _ = self.core.nack(tag, false, true);
        }
        if let Some(queue) = &sub.private_queue {
            let _ = self.core.delete_queue(queue, false, false);
        }
        Self::receipt(frame, out);
        Step::Continue
    }

    pub(super) fn on_delivery(&mut self, delivery: Delivery, out: &mut Outbound<Out>) -> Step {
        let sub = delivery
            .consumer
            .as_ref()
            .and_then(|consumer| self.subs.by_consumer.get(consumer))
            .and_then(|id| self.subs.by_id.get(id).map(|sub| (id.clone(), sub)));
        let Some((id, sub)) = sub else {
            if let Some(frame) = self.temp_message_frame(&delivery) {
                out.push(Out::Frame(frame));
                return Step::Continue;
            }
            // A delivery that crossed its subscription's cancellation goes back.
            let _ = self.core.nack(delivery.tag, false, true);
            return Step::Continue;
        };
        let manual = sub.ack != AckKind::Auto;
        let ack_id = delivery.tag.0.to_string();
        let frame = self.message_frame(&delivery, &id, manual, &ack_id);
        if manual {
            self.subs.unacked.insert(delivery.tag, id);
        }
        out.push(Out::Frame(frame));
        Step::Continue
    }

    pub(super) fn on_consumer_cancelled(
        &mut self,
        consumer: &ConsumerTag,
        reason: CancelReason,
        out: &mut Outbound<Out>,
    ) -> Step {
        self.core.forget_consumer(consumer);
        if let Some(name) = self.subs.temp_by_consumer.remove(consumer) {
            // A reply queue deleted under us: the next SEND naming it makes a new one.
            self.subs.temp_queues.remove(&name);
            return Step::Continue;
        }
        let Some(id) = self.subs.by_consumer.remove(consumer) else {
            return Step::Continue;
        };
        let destination = self
            .subs
            .by_id
            .remove(&id)
            .map(|sub| sub.destination)
            .unwrap_or_default();
        errors::fail(
            out,
            "subscription cancelled",
            None,
            &format!("subscription '{id}' to '{destination}' ended: {reason:?}"),
            CloseReason::SessionEnded(format!("consumer cancelled: {reason:?}")),
        )
    }

    /// The MESSAGE frame for a delivery to a `/temp-queue/`'s internal (auto-ack) consumer:
    /// `subscription` is the temp-queue destination, `destination` the `/reply-queue/` the
    /// responder sent to. `None` when the delivery is not for one.
    fn temp_message_frame(&self, delivery: &Delivery) -> Option<ServerFrame> {
        let name = self
            .subs
            .temp_by_consumer
            .get(delivery.consumer.as_ref()?)?;
        let temp = self.subs.temp_queues.get(name)?;
        let ack_id = delivery.tag.0.to_string();
        let mut headers =
            crate::convert::message_frame_headers(delivery, &temp.subscription, &ack_id, None);
        if let Some((_, destination)) = headers.iter_mut().find(|(n, _)| n == "destination") {
            *destination = crate::destination::reply_queue_destination(&temp.queue);
        }
        Some(ServerFrame {
            command: ServerCommand::Message,
            headers,
            body: delivery.message.body.clone(),
        })
    }

    /// The MESSAGE frame for a delivery.
    fn message_frame(
        &self,
        delivery: &Delivery,
        subscription: &str,
        manual: bool,
        ack_id: &str,
    ) -> ServerFrame {
        let ack = (manual && self.version == StompVersion::V1_2).then_some(ack_id);
        let headers = crate::convert::message_frame_headers(delivery, subscription, ack_id, ack);
        ServerFrame {
            command: ServerCommand::Message,
            headers,
            body: delivery.message.body.clone(),
        }
    }
}

impl StompSession {
    /// Finds or makes the queue a SUBSCRIBE reads (declaring and binding as the destination
    /// says); returns it and, when it exists for this subscription alone, its name again so
    /// UNSUBSCRIBE deletes it.
    fn subscription_queue(
        &mut self,
        destination: &str,
        frame: &Frame,
    ) -> Result<(QueueName, Option<QueueName>), Refusal> {
        let client = |error: DestinationError| {
            Refusal::Client("invalid destination".to_owned(), error.to_string())
        };
        let parsed = Destination::parse(destination).map_err(client)?;
        let options = QueueOptions::for_subscribe(&frame.headers).map_err(client)?;
        let target = parsed.subscribe_target(&options).map_err(client)?;
        let declared = self
            .core
            .declare_queue(target.declaration.clone())
            .map_err(|error| Refusal::Engine(error.to_string()))?;
        let private =
            (!target.declaration.durable && target.bind.is_some()).then(|| declared.name.clone());
        if let Some(binding) = target.binding(&declared.name) {
            if let Err(error) = self.core.bind_queue(binding) {
                if let Some(queue) = &private {
                    let _ = self.core.delete_queue(queue, false, false);
                }
                return Err(Refusal::Engine(error.to_string()));
            }
        }
        Ok((declared.name, private))
    }
}

/// Why a SUBSCRIBE's queue could not be found or made.
#[derive(Debug)]
pub(super) enum Refusal {
    /// The client's fault: (message, detail).
    Client(String, String),
    /// The engine refused.
    Engine(String),
}
