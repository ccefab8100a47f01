//! One MQTT session after CONNACK: a synchronous state machine between packets and the core.
//!
//! Split by concern: `open` (restoring or creating the session queue at connect),
//! `publish_in` (client PUBLISH at QoS 0/1/2 and its acknowledgements), `deliver` (core
//! deliveries to the client: packet ids, in-flight window, QoS 1/2 flows), `subscribe`
//! (SUBSCRIBE/UNSUBSCRIBE, bindings, shared subscriptions, retained messages), `keepalive`,
//! `will`, and `inbox` (core events merged with registry control messages).
//!
//! Invariants:
//! - PUBACK/PUBREC for a client publish is sent only after the core confirmed it.
//! - Every per-session collection is bounded: unconfirmed and unreleased inbound publishes by our
//!   Receive Maximum; outbound in-flight publishes by the client's Receive Maximum (v5) or the
//!   default in-flight window (v3), held deliveries by the consumer's prefetch; subscriptions
//!   and topic aliases by the settings.
//! - One copy per message per session: the session's one queue has one binding per filter, and
//!   the QoS is that of the best matching subscription.
//! - `on_close` publishes (or, v5 Will Delay Interval, schedules) the will unless the client
//!   disconnected cleanly, then releases the core session (requeueing what was unacknowledged),
//!   then the client id.
//! - No Local compares the core message's [`Origin`](mqgate_core::message::Origin), which no
//!   adapter renders; no header names the publisher.
//! - A resumed session first resends PUBREL for every QoS 2 delivery still awaiting PUBCOMP
//!   (the inbox yields [`MqttEvent::Resume`] before any core event).

mod deliver;
mod inbox;
mod keepalive;
mod open;
mod publish_in;
mod subscribe;
mod topic_cache;
mod will;

use std::sync::Arc;
use std::time::Duration;

use mqgate_core::message::Origin;
use mqgate_core::names::ExchangeName;
use mqgate_core::outbox::{Event, FlowState};
use mqgate_core::{Connection, Session as CoreSession};
use mqgate_session::{CloseReason, Outbound, Session, Step};
use rumqttd::protocol::{DisconnectReasonCode, Packet, QoS};
use tokio::time::Instant;

use crate::codec::{Inbound, MqttCodec, ProtocolVersion};
use crate::convert::MqttVersion;
use crate::errors;
use crate::registry::{ClientId, Control, LiveHandle};
use crate::settings::MqttSettings;

pub use inbox::{MqttEvent, MqttInbox};
pub use open::session_queue_name;
pub use will::Will;

use deliver::DeliverState;
use keepalive::Keepalive;
use publish_in::InboundState;
use subscribe::SubscriptionState;

/// What the handshake learned, for [`MqttSession::open`].
#[derive(Debug)]
pub struct SessionParams {
    /// The client id (assigned, if the client sent none).
    pub client_id: ClientId,
    /// The protocol version.
    pub version: ProtocolVersion,
    /// The adapter's settings.
    pub settings: Arc<MqttSettings>,
    /// Keepalive in seconds (0: none).
    pub keepalive: u16,
    /// Clean session (v3) / clean start (v5).
    pub clean_start: bool,
    /// How long the session outlives the connection (zero: not at all).
    pub expiry: Duration,
    /// The will, if any.
    pub will: Option<Will>,
    /// v5 Receive Maximum of the client.
    pub client_receive_maximum: Option<u16>,
    /// v5 Maximum Packet Size of the client.
    pub client_max_packet_size: Option<usize>,
    /// v5 Topic Alias Maximum of the client (outbound aliases; we use none).
    pub client_topic_alias_max: u16,
}

/// One connected MQTT client's session.
pub struct MqttSession {
    client_id: ClientId,
    origin: Origin,
    version: ProtocolVersion,
    settings: Arc<MqttSettings>,
    exchange: ExchangeName,
    core: CoreSession,
    connection: Option<Connection>,
    live: Option<LiveHandle>,
    expiry: Duration,
    /// True when this connection resumed a stored session (CONNACK session present).
    resumed: bool,
    keepalive: Keepalive,
    will: Option<Will>,
    /// Set by a clean DISCONNECT: no will (unless v5 0x04 asked for it).
    disconnected_cleanly: bool,
    flow_blocked: bool,
    /// Set when this connection published while the engine blocks publishers: its reads stay
    /// paused until the engine unblocks. A connection that only subscribes keeps being read,
    /// so its acknowledgements keep draining the queues that free the memory (RabbitMQ's rule:
    /// block connections that publish).
    publishing_paused: bool,
    inbound: InboundState,
    deliver: DeliverState,
    subs: SubscriptionState,
}

impl std::fmt::Debug for MqttSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSession")
            .field("client_id", &self.client_id)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl MqttSession {
    /// The client id.
    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }

    /// The protocol version.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The largest packet the client accepts (v5), for the codec.
    pub fn client_max_packet_size(&self) -> Option<usize> {
        self.deliver.max_packet_size
    }

    fn convert_version(&self) -> MqttVersion {
        if self.version == ProtocolVersion::V5 {
            MqttVersion::V5
        } else {
            MqttVersion::V3
        }
    }

    fn violation(
        &self,
        code: DisconnectReasonCode,
        text: &str,
        out: &mut Outbound<Packet>,
    ) -> Step {
        tracing::info!(client_id = %self.client_id, code = ?code, "closing: {text}");
        errors::violation(self.version, code, text, out)
    }

    fn on_packet(&mut self, packet: Packet, out: &mut Outbound<Packet>) -> Step {
        match packet {
            Packet::Publish(publish, properties) => {
                self.publishing_paused |= self.flow_blocked;
                self.on_publish(publish, properties, out)
            }
            Packet::PubAck(ack, _) => self.on_puback(ack.pkid, out),
            Packet::PubRec(rec, _) => self.on_pubrec(rec.pkid, out),
            Packet::PubRel(rel, _) => self.on_pubrel(rel.pkid, out),
            Packet::PubComp(comp, _) => self.on_pubcomp(comp.pkid, out),
            Packet::Subscribe(subscribe, properties) => {
                self.on_subscribe(subscribe, properties, out)
            }
            Packet::Unsubscribe(unsubscribe, _) => self.on_unsubscribe(unsubscribe, out),
            Packet::PingReq(_) => {
                out.push(Packet::PingResp(rumqttd::protocol::PingResp));
                Step::Continue
            }
            Packet::Disconnect(disconnect, properties) => {
                self.on_disconnect(disconnect.reason_code, properties)
            }
            Packet::Connect(..) => {
                self.violation(DisconnectReasonCode::ProtocolError, "a second CONNECT", out)
            }
            other => self.violation(
                DisconnectReasonCode::ProtocolError,
                &format!("unexpected packet from a client: {}", packet_name(&other)),
                out,
            ),
        }
    }

    fn on_disconnect(
        &mut self,
        code: DisconnectReasonCode,
        properties: Option<rumqttd::protocol::DisconnectProperties>,
    ) -> Step {
        if let Some(interval) = properties.and_then(|p| p.session_expiry_interval) {
            // A client may not turn a session that ends at disconnect into a lasting one (3.14.2.2.2).
            if !self.expiry.is_zero() {
                self.expiry =
                    Duration::from_secs(u64::from(interval)).min(self.settings.max_session_expiry);
            }
        }
        self.disconnected_cleanly = code != DisconnectReasonCode::DisconnectWithWillMessage;
        tracing::debug!(client_id = %self.client_id, ?code, "client disconnected");
        Step::Close(CloseReason::Disconnected)
    }
}

impl Session for MqttSession {
    type Codec = MqttCodec;
    type InFrame = Inbound;
    type OutFrame = Packet;
    type Event = MqttEvent;

    fn on_frame(&mut self, frame: Inbound, out: &mut Outbound<Packet>) -> Step {
        self.keepalive.seen(Instant::now());
        match frame {
            Inbound::Packet(packet) => self.on_packet(packet, out),
            Inbound::Invalid(error) => {
                tracing::info!(client_id = %self.client_id, %error, "bad packet");
                errors::codec_failure(self.version, &error, out)
            }
        }
    }

    fn on_event(&mut self, event: MqttEvent, out: &mut Outbound<Packet>) -> Step {
        match event {
            MqttEvent::Control(Control::TakenOver) => {
                tracing::info!(client_id = %self.client_id, "session taken over by a newer connection");
                out.extend_from(errors::disconnect(
                    self.version,
                    DisconnectReasonCode::SessionTakenOver,
                    None,
                ));
                Step::Close(CloseReason::SessionEnded("taken over".to_owned()))
            }
            MqttEvent::Resume => self.on_resume(out),
            MqttEvent::Core(Event::Delivery(delivery)) => {
                self.on_delivery_at(delivery, std::time::Instant::now(), out)
            }
            MqttEvent::Core(Event::PublishSettled { id, outcome }) => {
                self.on_publish_settled(id, outcome, out)
            }
            MqttEvent::Core(Event::ConsumerCancelled { consumer, reason }) => {
                self.on_consumer_cancelled(&consumer, reason, out)
            }
            MqttEvent::Core(Event::Flow(state)) => {
                self.flow_blocked = state == FlowState::Blocked;
                self.publishing_paused &= self.flow_blocked;
                Step::Continue
            }
            MqttEvent::Core(_) => Step::Continue,
        }
    }

    fn on_tick(&mut self, now: Instant, out: &mut Outbound<Packet>) -> Step {
        if self.keepalive.expired(now) {
            tracing::info!(client_id = %self.client_id, "keepalive timed out");
            out.extend_from(errors::disconnect(
                self.version,
                DisconnectReasonCode::KeepAliveTimeout,
                None,
            ));
            return Step::Close(CloseReason::KeepaliveTimeout);
        }
        Step::Continue
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.keepalive.tick_interval()
    }

    fn reads_paused(&self) -> bool {
        self.publishing_paused || self.inbound.is_full()
    }

    fn max_frame_size(&self) -> usize {
        self.settings.max_packet_size
    }

    fn on_shutdown(&mut self, out: &mut Outbound<Packet>) {
        out.extend_from(errors::disconnect(
            self.version,
            DisconnectReasonCode::ServerShuttingDown,
            None,
        ));
    }

    fn on_batch_end(&mut self) {
        self.flush_acks();
    }

    fn on_close(&mut self, reason: &CloseReason) {
        self.flush_acks();
        let will_due = !(matches!(reason, CloseReason::Disconnected) && self.disconnected_cleanly);
        if will_due {
            self.publish_will();
        }
        self.close_core();
        tracing::debug!(client_id = %self.client_id, %reason, "session closed");
    }
}

/// Pushing an optional packet.
trait OutboundExt {
    fn extend_from(&mut self, packet: Option<Packet>);
}

impl OutboundExt for Outbound<Packet> {
    fn extend_from(&mut self, packet: Option<Packet>) {
        if let Some(packet) = packet {
            self.push(packet);
        }
    }
}

fn packet_name(packet: &Packet) -> &'static str {
    match packet {
        Packet::Connect(..) => "CONNECT",
        Packet::ConnAck(..) => "CONNACK",
        Packet::Publish(..) => "PUBLISH",
        Packet::PubAck(..) => "PUBACK",
        Packet::PingReq(..) => "PINGREQ",
        Packet::PingResp(..) => "PINGRESP",
        Packet::Subscribe(..) => "SUBSCRIBE",
        Packet::SubAck(..) => "SUBACK",
        Packet::PubRec(..) => "PUBREC",
        Packet::PubRel(..) => "PUBREL",
        Packet::PubComp(..) => "PUBCOMP",
        Packet::Unsubscribe(..) => "UNSUBSCRIBE",
        Packet::UnsubAck(..) => "UNSUBACK",
        Packet::Disconnect(..) => "DISCONNECT",
    }
}

/// QoS as a number.
fn qos_level(qos: QoS) -> u8 {
    qos as u8
}

/// The lower of two QoS levels.
fn min_qos(a: QoS, b: QoS) -> QoS {
    if qos_level(a) <= qos_level(b) {
        a
    } else {
        b
    }
}

/// The higher of two QoS levels.
fn max_qos(a: QoS, b: QoS) -> QoS {
    if qos_level(a) >= qos_level(b) {
        a
    } else {
        b
    }
}
