//! Client PUBLISH at QoS 0, 1 and 2, and the acknowledgements the client receives.
//!
//! Invariants:
//! - PUBACK (QoS 1) and PUBREC (QoS 2) go out only on `Event::PublishSettled` Confirmed.
//! - A QoS 2 packet id is remembered from its confirmation until PUBREL: a duplicate PUBLISH
//!   meanwhile is answered with PUBREC again and never republished. A duplicate of a publish
//!   still awaiting confirmation is ignored (its acknowledgement is coming).
//! - Unconfirmed publishes are bounded by our Receive Maximum: reads pause at it, and a v5
//!   client that exceeds it (counting unreleased QoS 2) gets DISCONNECT 0x93.
//! - Topic aliases: at most Topic Alias Maximum entries; 0 or above it is DISCONNECT 0x94.

use std::collections::{HashMap, HashSet};

use mqgate_core::outbox::{PublishId, PublishOutcome};
use mqgate_session::{CloseReason, Outbound, Step};
use rumqttd::protocol::{
    DisconnectReasonCode, Packet, PubAck, PubAckReason, PubComp, PubCompReason, PubRec,
    PubRecReason, Publish, PublishProperties, QoS,
};

use crate::codec::ProtocolVersion;
use crate::convert::message_from_publish;
use crate::convert::packet::publish_header;
use crate::errors;
use crate::topic::{validate_topic_name, TopicError};

use super::{MqttSession, OutboundExt};

/// Inbound publish state of one session.
#[derive(Debug)]
pub(crate) struct InboundState {
    next_id: u64,
    confirming: HashMap<PublishId, (u16, QoS)>,
    confirming_pkids: HashSet<u16>,
    awaiting_rel: HashSet<u16>,
    aliases: HashMap<u16, String>,
    alias_max: u16,
    receive_maximum: u16,
}

impl InboundState {
    pub(crate) fn new(receive_maximum: u16, alias_max: u16) -> Self {
        Self {
            next_id: 1,
            confirming: HashMap::new(),
            confirming_pkids: HashSet::new(),
            awaiting_rel: HashSet::new(),
            aliases: HashMap::new(),
            alias_max,
            receive_maximum: receive_maximum.max(1),
        }
    }

    /// True when as many publishes await confirmation as Receive Maximum allows: stop reading.
    pub(crate) fn is_full(&self) -> bool {
        self.confirming.len() >= usize::from(self.receive_maximum)
    }

    fn in_flight(&self) -> usize {
        self.confirming.len() + self.awaiting_rel.len()
    }
}

impl MqttSession {
    pub(super) fn on_publish(
        &mut self,
        publish: Publish,
        properties: Option<PublishProperties>,
        out: &mut Outbound<Packet>,
    ) -> Step {
        let header = publish_header(&publish);
        let Ok(mut topic) = std::str::from_utf8(&publish.topic).map(str::to_owned) else {
            return self.violation(
                DisconnectReasonCode::MalformedPacket,
                "topic is not UTF-8",
                out,
            );
        };
        if let Some(alias) = properties.as_ref().and_then(|p| p.topic_alias) {
            if alias == 0 || alias > self.inbound.alias_max {
                return self.violation(
                    DisconnectReasonCode::TopicAliasInvalid,
                    &format!("topic alias {alias} outside 1..={}", self.inbound.alias_max),
                    out,
                );
            }
            if topic.is_empty() {
                match self.inbound.aliases.get(&alias) {
                    Some(known) => topic.clone_from(known),
                    None => {
                        return self.violation(
                            DisconnectReasonCode::ProtocolError,
                            &format!("unknown topic alias {alias}"),
                            out,
                        )
                    }
                }
            } else if validate_topic_name(&topic).is_ok() {
                self.inbound.aliases.insert(alias, topic.clone());
            }
        }
        match validate_topic_name(&topic) {
            Ok(()) => {}
            Err(TopicError::EmptyTopic) => {
                return self.violation(
                    DisconnectReasonCode::ProtocolError,
                    "PUBLISH with an empty topic",
                    out,
                )
            }
            Err(error) => {
                return self.violation(
                    DisconnectReasonCode::TopicNameInvalid,
                    &error.to_string(),
                    out,
                )
            }
        }
        let pkid = header.pkid;
        match header.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce if self.inbound.confirming_pkids.contains(&pkid) => {
                return Step::Continue;
            }
            QoS::ExactlyOnce if self.inbound.awaiting_rel.contains(&pkid) => {
                out.push(pubrec(pkid, PubRecReason::Success));
                return Step::Continue;
            }
            QoS::ExactlyOnce if self.inbound.confirming_pkids.contains(&pkid) => {
                return Step::Continue;
            }
            _ => {
                if self.version == ProtocolVersion::V5
                    && self.inbound.in_flight() >= usize::from(self.inbound.receive_maximum)
                {
                    return self.violation(
                        DisconnectReasonCode::ReceiveMaximumExceeded,
                        "more unacknowledged QoS 1/2 publishes than Receive Maximum",
                        out,
                    );
                }
            }
        }
        let mut message =
            message_from_publish(&self.exchange, &topic, &publish, properties.as_ref());
        message.origin = Some(self.origin.clone());
        if header.qos == QoS::AtMostOnce {
            if let Err(error) = self.core.publish(message, false, None) {
                tracing::warn!(client_id = %self.client_id, %error, "QoS 0 publish failed");
            }
            return Step::Continue;
        }
        let id = PublishId(self.inbound.next_id);
        self.inbound.next_id += 1;
        self.inbound.confirming.insert(id, (pkid, header.qos));
        self.inbound.confirming_pkids.insert(pkid);
        match self.core.publish(message, false, Some(id)) {
            Ok(_) => Step::Continue,
            Err(error) => {
                self.inbound.confirming.remove(&id);
                self.inbound.confirming_pkids.remove(&pkid);
                tracing::warn!(client_id = %self.client_id, %error, "publish failed");
                let verdict = errors::publish_failed(self.version, header.qos, pkid, &error);
                out.extend_from(verdict.reply);
                verdict.close.map_or(Step::Continue, Step::Close)
            }
        }
    }

    pub(super) fn on_publish_settled(
        &mut self,
        id: PublishId,
        outcome: PublishOutcome,
        out: &mut Outbound<Packet>,
    ) -> Step {
        let Some((pkid, qos)) = self.inbound.confirming.remove(&id) else {
            return Step::Continue;
        };
        self.inbound.confirming_pkids.remove(&pkid);
        match outcome {
            PublishOutcome::Confirmed => {
                match qos {
                    QoS::AtLeastOnce => out.push(puback(pkid)),
                    QoS::ExactlyOnce => {
                        self.inbound.awaiting_rel.insert(pkid);
                        out.push(pubrec(pkid, PubRecReason::Success));
                    }
                    QoS::AtMostOnce => {}
                }
                Step::Continue
            }
            PublishOutcome::Rejected(rejection) => {
                tracing::info!(client_id = %self.client_id, ?rejection, pkid, "publish rejected by the engine");
                let verdict = errors::publish_rejected(self.version, qos, pkid, rejection);
                out.extend_from(verdict.reply);
                verdict
                    .close
                    .map_or(Step::Continue, |reason: CloseReason| Step::Close(reason))
            }
        }
    }

    pub(super) fn on_pubrel(&mut self, pkid: u16, out: &mut Outbound<Packet>) -> Step {
        let reason =
            if self.inbound.awaiting_rel.remove(&pkid) || self.version != ProtocolVersion::V5 {
                PubCompReason::Success
            } else {
                PubCompReason::PacketIdentifierNotFound
            };
        out.push(Packet::PubComp(PubComp { pkid, reason }, None));
        Step::Continue
    }
}

fn puback(pkid: u16) -> Packet {
    Packet::PubAck(
        PubAck {
            pkid,
            reason: PubAckReason::Success,
        },
        None,
    )
}

fn pubrec(pkid: u16, reason: PubRecReason) -> Packet {
    Packet::PubRec(PubRec { pkid, reason }, None)
}
