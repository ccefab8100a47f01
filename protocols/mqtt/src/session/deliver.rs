//! Core deliveries to the client: QoS choice, packet ids, the in-flight window, and the QoS 1/2
//! acknowledgement flows.
//!
//! Invariants:
//! - The delivery QoS is min(best granted QoS among the matching subscriptions, the publish
//!   QoS from `x-mqtt-publish-qos`); a message without that header (AMQP, STOMP) counts as QoS 2.
//! - QoS 0 deliveries are acked to the core when sent; QoS 1 at PUBACK; QoS 2 at PUBREC (the
//!   packet id stays in flight until PUBCOMP).
//! - At most `window` QoS 1/2 publishes are in flight; more wait in `held`, which the consumer's
//!   prefetch (= window) bounds, plus at most `max_retained_per_subscribe` retained messages.
//! - Acks to the core are collected and settled together at the end of the driver's batch
//!   (`on_batch_end`), after 64 of them, and always before the session closes.
//! - A packet id is in use from PUBLISH to PUBACK/PUBCOMP and never reused meanwhile.
//! - A message the topic rules exclude (`$` topics under leading wildcards, topics MQTT cannot
//!   name) is acked and dropped, and counted.
//! - Message expiry (v5): a message with an expiration is sent with the time it has left,
//!   `expiration - (now - enqueued_at)`, counted from the core delivery's enqueue time (kept
//!   across requeues) and checked again when a held publish is finally sent; one with no time
//!   left is acked to the core, not sent, and counted (session and core `expired`).
//! - No Local: a message whose core origin is this client id's is not delivered to its
//!   no-local subscriptions.
//! - Packet ids awaiting PUBCOMP survive a reconnect of a persistent session (they are in the
//!   registry record), stay in flight, and are never allocated meanwhile.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use mqgate_core::message::{FieldValue, Message};
use mqgate_core::metrics::Metrics;
use mqgate_core::names::ConsumerTag;
use mqgate_core::outbox::{CancelReason, Delivery, DeliveryTag};
use mqgate_core::retained::is_retain_requested;
use mqgate_session::{Outbound, Step};
use rumqttd::protocol::{Packet, PubRel, PubRelReason, QoS};

use crate::codec::{MqttCodec, ProtocolVersion};
use crate::convert::{publish_from_message, PublishHeader, QOS_HEADER};
use crate::topic::routing_key_to_topic;

use super::topic_cache::TopicCache;
use super::{min_qos, MqttSession};

/// Deferred acknowledgements settled at once when a batch grows this long.
const PENDING_ACKS_MAX: usize = 64;

/// What an in-flight publish awaits from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Ack,
    Rec,
    Comp,
}

#[derive(Debug)]
struct InFlight {
    tag: Option<DeliveryTag>,
    stage: Stage,
    /// Order of sending, to store packet ids awaiting PUBCOMP in order.
    seq: u64,
}

/// A publish waiting for room in the window.
#[derive(Debug)]
struct Held {
    message: Arc<Message>,
    /// The message's MQTT topic.
    topic: Bytes,
    tag: Option<DeliveryTag>,
    qos: QoS,
    retain: bool,
    dup: bool,
    identifiers: Vec<usize>,
    /// When the message expires (v5 Message Expiry Interval from its enqueue time).
    deadline: Option<Instant>,
}

/// Outbound delivery state of one session.
#[derive(Debug)]
pub(crate) struct DeliverState {
    /// Most QoS 1/2 publishes in flight (client's Receive Maximum, or the v3 default).
    pub(crate) window: u16,
    /// Largest packet the client accepts.
    pub(crate) max_packet_size: Option<usize>,
    /// A copy of the connection's codec, to size publishes before they are pushed.
    pub(crate) sizer: Option<MqttCodec>,
    in_flight: HashMap<u16, InFlight>,
    next_pkid: u16,
    next_seq: u64,
    held: VecDeque<Held>,
    /// Acknowledgements not yet given to the core (see `ack_core`).
    pending_acks: Vec<DeliveryTag>,
    /// The last delivered routing key's topic and matching subscriptions.
    pub(crate) topics: TopicCache,
    /// Deliveries dropped (topic not nameable, excluded by `$` rule, held list full, over the
    /// client's maximum packet size).
    pub(crate) dropped: u64,
    /// Deliveries not sent because their message expiry had passed.
    pub(crate) expired: u64,
}

impl DeliverState {
    pub(crate) fn new(window: u16, max_packet_size: Option<usize>) -> Self {
        Self {
            window: window.max(1),
            max_packet_size,
            sizer: None,
            in_flight: HashMap::new(),
            next_pkid: 1,
            next_seq: 0,
            held: VecDeque::new(),
            pending_acks: Vec::new(),
            topics: TopicCache::default(),
            dropped: 0,
            expired: 0,
        }
    }

    fn insert_flight(&mut self, pkid: u16, tag: Option<DeliveryTag>, stage: Stage) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight.insert(pkid, InFlight { tag, stage, seq });
    }

    /// Packet ids of QoS 2 deliveries awaiting PUBCOMP, oldest first (for the session record).
    pub(crate) fn awaiting_pubcomp(&self) -> Vec<u16> {
        let mut awaiting: Vec<(u64, u16)> = self
            .in_flight
            .iter()
            .filter(|(_, flight)| flight.stage == Stage::Comp)
            .map(|(pkid, flight)| (flight.seq, *pkid))
            .collect();
        awaiting.sort_unstable();
        awaiting.into_iter().map(|(_, pkid)| pkid).collect()
    }

    /// Puts a resumed session's packet ids awaiting PUBCOMP back in flight (at most the window;
    /// ids 0 and repeats are ignored). True if any PUBREL is now owed to the client.
    pub(crate) fn resume_awaiting_pubcomp(&mut self, pkids: &[u16]) -> bool {
        for &pkid in pkids.iter().take(usize::from(self.window)) {
            if pkid != 0 && !self.in_flight.contains_key(&pkid) {
                self.insert_flight(pkid, None, Stage::Comp);
            }
        }
        if let Some(last) = pkids.last() {
            self.next_pkid = last.checked_add(1).unwrap_or(1).max(1);
        }
        !self.in_flight.is_empty()
    }

    fn allocate(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            let candidate = self.next_pkid;
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !self.in_flight.contains_key(&candidate) {
                return Some(candidate);
            }
        }
        None
    }

    fn has_room(&self) -> bool {
        self.in_flight.len() < usize::from(self.window)
    }
}

/// The publish QoS a message carries: `x-mqtt-publish-qos`, or 2 for messages from elsewhere.
pub(crate) fn publish_qos(message: &Message) -> QoS {
    match message
        .headers
        .get(QOS_HEADER)
        .and_then(FieldValue::as_integer)
    {
        Some(level) if level <= 0 => QoS::AtMostOnce,
        Some(1) => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

impl MqttSession {
    /// Handles one core delivery as of `now` (the clock message expiry is measured with).
    pub fn on_delivery_at(
        &mut self,
        delivery: Delivery,
        now: Instant,
        out: &mut Outbound<Packet>,
    ) -> Step {
        let message = Arc::clone(&delivery.message);
        // An expiration too far to represent is no deadline at all.
        let deadline = message
            .properties
            .expiration_ms
            .and_then(|ms| delivery.enqueued_at.checked_add(Duration::from_millis(ms)));
        if deadline.is_some_and(|deadline| deadline <= now) {
            self.expire_delivery(Some(delivery.tag));
            return Step::Continue;
        }
        let own = message.origin.as_ref() == Some(&self.origin);
        let (topic, matched) = self.deliver.topics.lookup(
            &message.routing_key,
            own,
            self.subs.version(),
            self.subs.list(),
        );
        let Some(topic) = topic else {
            tracing::debug!(client_id = %self.client_id, routing_key = %message.routing_key, "message with no MQTT topic dropped");
            return self.drop_delivery(delivery.tag);
        };
        let shared = delivery
            .consumer
            .as_ref()
            .filter(|tag| self.subs.consumer.as_ref() != Some(*tag))
            .and_then(|tag| self.subs.shared_subscription(tag));
        let (granted, retain_as_published, identifiers) = match shared {
            Some(sub) => (
                Some(sub.qos),
                sub.retain_as_published,
                sub.identifier.into_iter().collect(),
            ),
            None => (
                matched.granted,
                matched.retain_as_published,
                matched.identifiers.clone(),
            ),
        };
        let Some(granted) = granted else {
            return self.drop_delivery(delivery.tag);
        };
        let qos = min_qos(granted, publish_qos(&message));
        let retain = retain_as_published && is_retain_requested(&message.headers);
        let held = Held {
            message,
            topic,
            tag: Some(delivery.tag),
            qos,
            retain,
            dup: delivery.redelivered && qos != QoS::AtMostOnce,
            identifiers,
            deadline,
        };
        self.send_or_hold(held, now, out);
        Step::Continue
    }

    /// Resends PUBREL for every QoS 2 delivery awaiting PUBCOMP (a resumed session, before any
    /// new delivery), oldest first.
    pub(super) fn on_resume(&mut self, out: &mut Outbound<Packet>) -> Step {
        for pkid in self.deliver.awaiting_pubcomp() {
            tracing::debug!(client_id = %self.client_id, pkid, "PUBREL resent on resume");
            out.push(Packet::PubRel(
                PubRel {
                    pkid,
                    reason: PubRelReason::Success,
                },
                None,
            ));
        }
        Step::Continue
    }

    fn expire_delivery(&mut self, tag: Option<DeliveryTag>) {
        self.deliver.expired += 1;
        Metrics::bump(&self.core.vhost().metrics().expired);
        tracing::debug!(client_id = %self.client_id, "expired message not delivered");
        self.ack_core(tag);
    }

    /// Sends a retained message on subscribe (no core delivery behind it).
    pub(super) fn send_retained(
        &mut self,
        message: Arc<Message>,
        qos: QoS,
        identifier: Option<usize>,
        out: &mut Outbound<Packet>,
    ) {
        let topic = Bytes::from(routing_key_to_topic(&message.routing_key).into_owned());
        let held = Held {
            message,
            topic,
            tag: None,
            qos,
            retain: true,
            dup: false,
            identifiers: identifier.into_iter().collect(),
            deadline: None,
        };
        let cap = usize::from(self.deliver.window) + self.settings.max_retained_per_subscribe;
        if qos != QoS::AtMostOnce && !self.deliver.has_room() && self.deliver.held.len() >= cap {
            self.count_drop();
            return;
        }
        self.send_or_hold(held, Instant::now(), out);
    }

    /// Counts a delivery not sent to the client, in the session and in the engine's
    /// `undeliverable_dropped`, so no drop is silent.
    fn count_drop(&mut self) {
        self.deliver.dropped += 1;
        Metrics::bump(&self.core.vhost().metrics().undeliverable_dropped);
    }

    fn drop_delivery(&mut self, tag: DeliveryTag) -> Step {
        self.count_drop();
        self.ack_core(Some(tag));
        Step::Continue
    }

    /// Acknowledges a delivery to the core: deferred to the end of the driver's batch (or
    /// [`PENDING_ACKS_MAX`] acks), so a batch of QoS 0 sends or PUBACKs settles under one lock of
    /// the session queue instead of one each.
    fn ack_core(&mut self, tag: Option<DeliveryTag>) {
        if let Some(tag) = tag {
            self.deliver.pending_acks.push(tag);
            if self.deliver.pending_acks.len() >= PENDING_ACKS_MAX {
                self.flush_acks();
            }
        }
    }

    /// Settles the deferred acknowledgements. Runs at the end of every driver batch and before
    /// the session closes, so no acknowledged delivery is requeued.
    pub(super) fn flush_acks(&mut self) {
        if self.deliver.pending_acks.is_empty() {
            return;
        }
        let unknown = self.core.ack_each(&self.deliver.pending_acks);
        self.deliver.pending_acks.clear();
        if unknown > 0 {
            tracing::debug!(client_id = %self.client_id, unknown, "ack of an unknown delivery");
        }
    }

    fn send_or_hold(&mut self, held: Held, now: Instant, out: &mut Outbound<Packet>) {
        if held.qos == QoS::AtMostOnce {
            self.ack_core(held.tag);
            self.push_publish(&held, 0, now, out);
            return;
        }
        if !self.deliver.has_room() || !self.deliver.held.is_empty() {
            self.deliver.held.push_back(held);
            self.release_held_at(now, out);
            return;
        }
        self.start_flight(held, now, out);
    }

    fn start_flight(&mut self, held: Held, now: Instant, out: &mut Outbound<Packet>) {
        if held.deadline.is_some_and(|deadline| deadline <= now) {
            // It expired while it waited for room in the window.
            self.expire_delivery(held.tag);
            return;
        }
        let Some(pkid) = self.deliver.allocate() else {
            self.deliver.held.push_front(held);
            return;
        };
        let stage = if held.qos == QoS::AtLeastOnce {
            Stage::Ack
        } else {
            Stage::Rec
        };
        if self.push_publish(&held, pkid, now, out) {
            self.deliver.insert_flight(pkid, held.tag, stage);
        } else {
            self.ack_core(held.tag);
        }
    }

    /// Pushes the PUBLISH; false if it was dropped (over the client's maximum packet size).
    fn push_publish(
        &mut self,
        held: &Held,
        pkid: u16,
        now: Instant,
        out: &mut Outbound<Packet>,
    ) -> bool {
        let header = PublishHeader {
            qos: held.qos,
            pkid,
            dup: held.dup,
        };
        let remaining = held
            .deadline
            .map(|deadline| deadline.saturating_duration_since(now));
        let (publish, mut properties) = publish_from_message(
            &held.message,
            held.topic.clone(),
            header,
            held.retain,
            self.convert_version(),
            remaining,
        );
        if self.version == ProtocolVersion::V5 && !held.identifiers.is_empty() {
            properties
                .get_or_insert_with(Default::default)
                .subscription_identifiers
                .clone_from(&held.identifiers);
        }
        let packet = Packet::Publish(publish, properties);
        if let Some(sizer) = &self.deliver.sizer {
            if !sizer.fits_outgoing(&packet) {
                self.count_drop();
                tracing::debug!(client_id = %self.client_id, limit = ?self.deliver.max_packet_size, "publish over the client's maximum packet size dropped");
                return false;
            }
        }
        out.push(packet);
        true
    }

    fn release_held(&mut self, out: &mut Outbound<Packet>) {
        self.release_held_at(Instant::now(), out);
    }

    fn release_held_at(&mut self, now: Instant, out: &mut Outbound<Packet>) {
        while self.deliver.has_room() {
            let Some(held) = self.deliver.held.pop_front() else {
                break;
            };
            self.start_flight(held, now, out);
        }
    }

    pub(super) fn on_puback(&mut self, pkid: u16, out: &mut Outbound<Packet>) -> Step {
        match self.deliver.in_flight.get(&pkid).map(|f| f.stage) {
            Some(Stage::Ack) => {
                if let Some(flight) = self.deliver.in_flight.remove(&pkid) {
                    self.ack_core(flight.tag);
                }
                self.release_held(out);
            }
            _ => {
                tracing::debug!(client_id = %self.client_id, pkid, "PUBACK for no publish in flight")
            }
        }
        Step::Continue
    }

    pub(super) fn on_pubrec(&mut self, pkid: u16, out: &mut Outbound<Packet>) -> Step {
        let reason = match self.deliver.in_flight.get_mut(&pkid) {
            Some(flight) if flight.stage == Stage::Rec => {
                flight.stage = Stage::Comp;
                let tag = flight.tag.take();
                self.ack_core(tag);
                PubRelReason::Success
            }
            Some(flight) if flight.stage == Stage::Comp => PubRelReason::Success,
            _ if self.version == ProtocolVersion::V5 => PubRelReason::PacketIdentifierNotFound,
            _ => PubRelReason::Success,
        };
        out.push(Packet::PubRel(PubRel { pkid, reason }, None));
        Step::Continue
    }

    pub(super) fn on_pubcomp(&mut self, pkid: u16, out: &mut Outbound<Packet>) -> Step {
        if self
            .deliver
            .in_flight
            .get(&pkid)
            .is_some_and(|f| f.stage == Stage::Comp)
        {
            self.deliver.in_flight.remove(&pkid);
            self.release_held(out);
        }
        Step::Continue
    }

    pub(super) fn on_consumer_cancelled(
        &mut self,
        consumer: &ConsumerTag,
        reason: CancelReason,
        _out: &mut Outbound<Packet>,
    ) -> Step {
        tracing::warn!(client_id = %self.client_id, %consumer, ?reason, "the engine cancelled a consumer");
        self.core.forget_consumer(consumer);
        if self.subs.consumer.as_ref() == Some(consumer) {
            self.subs.consumer = None;
        } else {
            self.subs.forget_shared(consumer);
        }
        Step::Continue
    }

    /// QoS 1/2 publishes in flight to the client.
    pub fn in_flight(&self) -> usize {
        self.deliver.in_flight.len()
    }

    /// Gives the session a copy of its connection's codec (version and limits set), to size
    /// publishes before pushing them.
    pub fn set_sizer(&mut self, codec: MqttCodec) {
        self.deliver.sizer = Some(codec);
    }

    /// Deliveries dropped so far.
    pub fn dropped(&self) -> u64 {
        self.deliver.dropped
    }

    /// Deliveries not sent because their message had expired.
    pub fn expired(&self) -> u64 {
        self.deliver.expired
    }
}
