//! The one place that maps failures to MQTT's answers, and decides whether the connection goes on.
//!
//! Inputs are the adapter's own refusals ([`Refusal`], [`SubscribeFailure`]), the codec's
//! [`CodecError`]s and the core's errors and rejections; outputs are packets for the version the
//! client speaks (CONNACK, SUBACK, PUBACK/PUBREC, DISCONNECT) and a [`Step`].
//!
//! Invariants:
//! - A v3 client never receives a v5-only code, nor a DISCONNECT from the server (3.1.1 has
//!   none): where 3.1.1 has no code, the connection closes.
//! - Packets for v3 clients never carry properties (`rumqttd`'s v4 writer cannot encode them).
//! - Every close names its cause in the [`CloseReason`] for the logs.

use mqgate_core::errors::PublishError;
use mqgate_core::outbox::PublishRejection;
use mqgate_session::{CloseReason, Outbound, Step};
use rumqttd::protocol::{
    ConnAck, ConnAckProperties, ConnectReturnCode, Disconnect, DisconnectProperties,
    DisconnectReasonCode, Packet, PubAck, PubAckProperties, PubAckReason, PubRec, PubRecProperties,
    PubRecReason, QoS, SubscribeReasonCode,
};

use crate::codec::{CodecError, ProtocolVersion};

/// Why a CONNECT is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Protocol name or level not supported (v3 0x01, v5 0x84).
    UnsupportedVersion,
    /// Client identifier not acceptable (v3 0x02, v5 0x85).
    IdentifierRejected,
    /// Credentials refused (v3 0x04, v5 0x86).
    BadCredentials,
    /// No right to connect: anonymous logins off, no access to the vhost (v3 0x05, v5 0x87).
    NotAuthorized,
    /// The engine cannot serve the client now (v3 0x03, v5 0x88).
    ServerUnavailable,
    /// Too many sessions (v3 0x03, v5 0x89).
    ServerBusy,
    /// The CONNECT could not be parsed (v5 0x81; v3 closes).
    Malformed,
    /// The CONNECT broke a rule (v5 0x82; v3 closes).
    Protocol,
    /// The CONNECT was too large (v5 0x95; v3 closes).
    PacketTooLarge,
}

impl Refusal {
    /// The refusal for a codec error met while reading CONNECT.
    pub fn for_codec_error(error: &CodecError) -> Refusal {
        match error {
            CodecError::UnsupportedProtocolVersion { .. } => Refusal::UnsupportedVersion,
            CodecError::PacketTooLarge { .. } => Refusal::PacketTooLarge,
            CodecError::Malformed(..) => Refusal::Malformed,
            _ => Refusal::Protocol,
        }
    }

    fn v3_code(self) -> Option<ConnectReturnCode> {
        match self {
            Refusal::UnsupportedVersion => Some(ConnectReturnCode::RefusedProtocolVersion),
            Refusal::IdentifierRejected => Some(ConnectReturnCode::ClientIdentifierNotValid),
            Refusal::BadCredentials => Some(ConnectReturnCode::BadUserNamePassword),
            Refusal::NotAuthorized => Some(ConnectReturnCode::NotAuthorized),
            Refusal::ServerUnavailable | Refusal::ServerBusy => {
                Some(ConnectReturnCode::ServiceUnavailable)
            }
            Refusal::Malformed | Refusal::Protocol | Refusal::PacketTooLarge => None,
        }
    }

    fn v5_code(self) -> ConnectReturnCode {
        match self {
            Refusal::UnsupportedVersion => ConnectReturnCode::UnsupportedProtocolVersion,
            Refusal::IdentifierRejected => ConnectReturnCode::ClientIdentifierNotValid,
            Refusal::BadCredentials => ConnectReturnCode::BadUserNamePassword,
            Refusal::NotAuthorized => ConnectReturnCode::NotAuthorized,
            Refusal::ServerUnavailable => ConnectReturnCode::ServerUnavailable,
            Refusal::ServerBusy => ConnectReturnCode::ServerBusy,
            Refusal::Malformed => ConnectReturnCode::MalformedPacket,
            Refusal::Protocol => ConnectReturnCode::ProtocolError,
            Refusal::PacketTooLarge => ConnectReturnCode::PacketTooLarge,
        }
    }

    /// The CONNACK that refuses, if the version has a code for it (else the connection just
    /// closes). `version` is `None` when the CONNECT's version is unknown: the 3.1.1 form is
    /// used, which every MQTT version's client can read (MQTT 5 section 3.1.4).
    pub fn connack(self, version: Option<ProtocolVersion>, reason: &str) -> Option<Packet> {
        match version {
            Some(ProtocolVersion::V5) => Some(Packet::ConnAck(
                ConnAck {
                    session_present: false,
                    code: self.v5_code(),
                },
                Some(ConnAckProperties {
                    reason_string: Some(reason.to_owned()),
                    ..ConnAckProperties::default()
                }),
            )),
            _ => self.v3_code().map(|code| {
                Packet::ConnAck(
                    ConnAck {
                        session_present: false,
                        code,
                    },
                    None,
                )
            }),
        }
    }

    /// The close reason recorded for this refusal.
    pub fn close_reason(self, detail: &str) -> CloseReason {
        CloseReason::HandshakeRejected(format!("{self:?}: {detail}"))
    }
}

/// A server DISCONNECT for v5 clients; `None` for v3 (they get a plain close).
pub fn disconnect(
    version: ProtocolVersion,
    code: DisconnectReasonCode,
    reason: Option<&str>,
) -> Option<Packet> {
    (version == ProtocolVersion::V5).then(|| {
        Packet::Disconnect(
            Disconnect { reason_code: code },
            reason.map(|text| DisconnectProperties {
                session_expiry_interval: None,
                reason_string: Some(text.to_owned()),
                user_properties: Vec::new(),
                server_reference: None,
            }),
        )
    })
}

/// The DISCONNECT reason named by a numeric v5 reason code (unknown codes are 0x80).
pub fn disconnect_code(code: u8) -> DisconnectReasonCode {
    use DisconnectReasonCode as D;
    match code {
        0x00 => D::NormalDisconnection,
        0x04 => D::DisconnectWithWillMessage,
        0x81 => D::MalformedPacket,
        0x82 => D::ProtocolError,
        0x83 => D::ImplementationSpecificError,
        0x87 => D::NotAuthorized,
        0x89 => D::ServerBusy,
        0x8B => D::ServerShuttingDown,
        0x8D => D::KeepAliveTimeout,
        0x8E => D::SessionTakenOver,
        0x8F => D::TopicFilterInvalid,
        0x90 => D::TopicNameInvalid,
        0x93 => D::ReceiveMaximumExceeded,
        0x94 => D::TopicAliasInvalid,
        0x95 => D::PacketTooLarge,
        0x96 => D::MessageRateTooHigh,
        0x97 => D::QuotaExceeded,
        0x98 => D::AdministrativeAction,
        0x99 => D::PayloadFormatInvalid,
        _ => D::UnspecifiedError,
    }
}

/// Ends the session for a protocol violation: a v5 DISCONNECT with `code` (v3: nothing), then
/// close.
pub fn violation(
    version: ProtocolVersion,
    code: DisconnectReasonCode,
    text: &str,
    out: &mut Outbound<Packet>,
) -> Step {
    if let Some(packet) = disconnect(version, code, Some(text)) {
        out.push(packet);
    }
    Step::Close(CloseReason::Protocol(text.to_owned()))
}

/// The session's answer to a codec error after CONNECT: v5 DISCONNECT with the codec's reason
/// code, then close.
pub fn codec_failure(
    version: ProtocolVersion,
    error: &CodecError,
    out: &mut Outbound<Packet>,
) -> Step {
    let code = disconnect_code(error.reason_code());
    violation(version, code, &error.to_string(), out)
}

/// What to do with a QoS 1/2 publish the engine refused.
#[derive(Debug)]
pub struct PublishVerdict {
    /// The PUBACK or PUBREC to send (v5, with a failure code).
    pub reply: Option<Packet>,
    /// Close the connection (v3 has no negative acknowledgement).
    pub close: Option<CloseReason>,
}

/// The answer to a rejected QoS 1/2 publish: v5 PUBACK/PUBREC 0x97 (queue full) or 0x80; v3
/// closes the connection, as 3.1.1 cannot say no to a publish.
pub fn publish_rejected(
    version: ProtocolVersion,
    qos: QoS,
    pkid: u16,
    rejection: PublishRejection,
) -> PublishVerdict {
    let quota = matches!(rejection, PublishRejection::QueueFull);
    let text = format!("publish refused by the engine: {rejection:?}");
    negative_ack(version, qos, pkid, quota, text)
}

/// The answer to a publish the engine could not route at all (its exchange is missing).
pub fn publish_failed(
    version: ProtocolVersion,
    qos: QoS,
    pkid: u16,
    error: &PublishError,
) -> PublishVerdict {
    negative_ack(version, qos, pkid, false, error.to_string())
}

fn negative_ack(
    version: ProtocolVersion,
    qos: QoS,
    pkid: u16,
    quota: bool,
    text: String,
) -> PublishVerdict {
    if version != ProtocolVersion::V5 {
        return PublishVerdict {
            reply: None,
            close: Some(CloseReason::SessionEnded(text)),
        };
    }
    let reply = match qos {
        QoS::AtMostOnce => None,
        QoS::AtLeastOnce => Some(Packet::PubAck(
            PubAck {
                pkid,
                reason: if quota {
                    PubAckReason::QuotaExceeded
                } else {
                    PubAckReason::UnspecifiedError
                },
            },
            Some(PubAckProperties {
                reason_string: Some(text),
                user_properties: Vec::new(),
            }),
        )),
        QoS::ExactlyOnce => Some(Packet::PubRec(
            PubRec {
                pkid,
                reason: if quota {
                    PubRecReason::QuotaExceeded
                } else {
                    PubRecReason::UnspecifiedError
                },
            },
            Some(PubRecProperties {
                reason_string: Some(text),
                user_properties: Vec::new(),
            }),
        )),
    };
    PublishVerdict { reply, close: None }
}

/// Why one filter of a SUBSCRIBE failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeFailure {
    /// The filter is not a valid MQTT filter (v5 0x8F).
    InvalidFilter,
    /// The session holds the most subscriptions allowed (v5 0x97).
    Quota,
    /// The engine refused the queue, binding or consumer (v5 0x80).
    Engine,
    /// Not allowed (v5 0x87).
    NotAuthorized,
}

/// The SUBACK code for a failed filter: 0x80 for v3, the specific code for v5.
pub fn subscribe_failure(
    version: ProtocolVersion,
    failure: SubscribeFailure,
) -> SubscribeReasonCode {
    if version != ProtocolVersion::V5 {
        return SubscribeReasonCode::Failure;
    }
    match failure {
        SubscribeFailure::InvalidFilter => SubscribeReasonCode::TopicFilterInvalid,
        SubscribeFailure::Quota => SubscribeReasonCode::QuotaExceeded,
        SubscribeFailure::Engine => SubscribeReasonCode::Unspecified,
        SubscribeFailure::NotAuthorized => SubscribeReasonCode::NotAuthorized,
    }
}

/// The SUBACK code granting `qos`.
pub fn subscribe_granted(qos: QoS) -> SubscribeReasonCode {
    SubscribeReasonCode::Success(qos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_refusals_use_v3_codes_and_close_where_none_exists() {
        let v3 = Some(ProtocolVersion::V3_1_1);
        let ack = |r: Refusal| match r.connack(v3, "x") {
            Some(Packet::ConnAck(ack, None)) => Some(ack.code),
            _ => None,
        };
        assert_eq!(
            ack(Refusal::UnsupportedVersion),
            Some(ConnectReturnCode::RefusedProtocolVersion)
        );
        assert_eq!(
            ack(Refusal::IdentifierRejected),
            Some(ConnectReturnCode::ClientIdentifierNotValid)
        );
        assert_eq!(
            ack(Refusal::BadCredentials),
            Some(ConnectReturnCode::BadUserNamePassword)
        );
        assert_eq!(
            ack(Refusal::NotAuthorized),
            Some(ConnectReturnCode::NotAuthorized)
        );
        assert_eq!(
            ack(Refusal::ServerBusy),
            Some(ConnectReturnCode::ServiceUnavailable)
        );
        assert_eq!(ack(Refusal::Malformed), None);
        assert_eq!(ack(Refusal::PacketTooLarge), None);
    }

    #[test]
    fn v5_refusals_carry_reason_codes_and_text() {
        let Some(Packet::ConnAck(ack, Some(props))) =
            Refusal::BadCredentials.connack(Some(ProtocolVersion::V5), "login refused")
        else {
            panic!("v5 CONNACK expected");
        };
        assert_eq!(ack.code, ConnectReturnCode::BadUserNamePassword);
        assert_eq!(props.reason_string.as_deref(), Some("login refused"));
    }

    #[test]
    fn v3_never_gets_a_server_disconnect() {
        assert!(disconnect(
            ProtocolVersion::V3_1_1,
            DisconnectReasonCode::SessionTakenOver,
            None
        )
        .is_none());
        assert!(disconnect(
            ProtocolVersion::V5,
            DisconnectReasonCode::SessionTakenOver,
            None
        )
        .is_some());
        assert_eq!(
            disconnect_code(0x8E),
            DisconnectReasonCode::SessionTakenOver
        );
        assert_eq!(
            disconnect_code(0xFF),
            DisconnectReasonCode::UnspecifiedError
        );
    }

    #[test]
    fn rejected_publish_closes_v3_and_nacks_v5() {
        let v3 = publish_rejected(
            ProtocolVersion::V3_1_1,
            QoS::AtLeastOnce,
            7,
            PublishRejection::QueueFull,
        );
        assert!(v3.reply.is_none() && v3.close.is_some());
        let v5 = publish_rejected(
            ProtocolVersion::V5,
            QoS::AtLeastOnce,
            7,
            PublishRejection::QueueFull,
        );
        assert!(matches!(
            v5.reply,
            Some(Packet::PubAck(
                PubAck {
                    pkid: 7,
                    reason: PubAckReason::QuotaExceeded
                },
                _
            ))
        ));
        assert!(v5.close.is_none());
    }
}
