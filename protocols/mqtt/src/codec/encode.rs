//! Writing packets with `rumqttd`'s writers, adapted so that no `Packet` value makes them panic.
//!
//! `rumqttd`'s V4 writer panics on any packet carrying properties and on MQTT 5 CONNACK codes; its
//! V5 writer panics on the 3.1.1-only CONNACK codes. [`adapt`] removes both cases first.
//! `rumqttd`'s V5 DISCONNECT writer drops the reason code when there are no properties, or
//! announces one byte fewer than it writes; [`write_v5_disconnect`] writes that case itself.

use bytes::{Bytes, BytesMut};
use rumqttd::protocol::{
    v4::V4, v5::V5, ConnAck, ConnectReturnCode, DisconnectProperties, DisconnectReasonCode, Packet,
    Protocol, SubAck, SubscribeReasonCode,
};

use super::{wire, ProtocolVersion};

/// Why a packet could not be written. Carried inside the encoder's `io::Error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode packet: {0}")]
pub(crate) struct EncodeError(pub(crate) String);

/// Writes `packet` for a peer speaking `version` (`None`: no CONNECT read yet, so 3.1.1's form,
/// which any client can read) and returns the number of bytes appended to `dst`.
///
/// On error `dst` is left as it was.
pub(crate) fn write(
    packet: Packet,
    version: Option<ProtocolVersion>,
    dst: &mut BytesMut,
) -> Result<usize, EncodeError> {
    let start = dst.len();
    let packet = adapt(packet, version)?;
    if let (Some(ProtocolVersion::V5), Packet::Disconnect(disconnect, properties)) =
        (version, &packet)
    {
        if properties.as_ref().is_none_or(is_empty) {
            return Ok(write_v5_disconnect(disconnect.reason_code, dst));
        }
    }
    let written = match version {
        Some(ProtocolVersion::V5) => V5.write(packet, dst),
        Some(ProtocolVersion::V3_1 | ProtocolVersion::V3_1_1) | None => V4.write(packet, dst),
    };
    match written {
        Ok(_) => Ok(dst.len() - start),
        Err(error) => {
            dst.truncate(start);
            Err(EncodeError(error.to_string()))
        }
    }
}

/// The size `packet` takes on the wire for `version`, fixed header included, without copying a
/// PUBLISH payload; `None` if it cannot be written.
pub(crate) fn encoded_len(packet: &Packet, version: Option<ProtocolVersion>) -> Option<usize> {
    let mut scratch = BytesMut::new();
    match packet {
        Packet::Publish(publish, properties) => {
            let mut bare = publish.clone();
            let payload_len = bare.payload.len();
            bare.payload = Bytes::new();
            write(
                Packet::Publish(bare, properties.clone()),
                version,
                &mut scratch,
            )
            .ok()?;
            let (bare_len, _) = wire::remaining_length(scratch.get(1..)?).ok()??;
            let remaining = bare_len.checked_add(payload_len)?;
            if remaining > wire::MAX_VARIABLE_BYTE_INTEGER {
                return None;
            }
            Some(1 + wire::variable_byte_integer_len(remaining) + remaining)
        }
        other => write(other.clone(), version, &mut scratch).ok(),
    }
}

fn adapt(packet: Packet, version: Option<ProtocolVersion>) -> Result<Packet, EncodeError> {
    if version == Some(ProtocolVersion::V5) {
        return Ok(match packet {
            Packet::ConnAck(connack, properties) => {
                let code = match connack.code {
                    ConnectReturnCode::RefusedProtocolVersion => {
                        ConnectReturnCode::UnsupportedProtocolVersion
                    }
                    ConnectReturnCode::ServiceUnavailable => ConnectReturnCode::ServerUnavailable,
                    code => code,
                };
                Packet::ConnAck(ConnAck { code, ..connack }, properties)
            }
            other => other,
        });
    }
    // 3.1 and 3.1.1 have no properties: they are dropped.
    Ok(match packet {
        Packet::Connect(connect, _, will, _, login) => {
            Packet::Connect(connect, None, will, None, login)
        }
        Packet::ConnAck(connack, _) => Packet::ConnAck(
            ConnAck {
                code: v3_connack_code(connack.code)?,
                ..connack
            },
            None,
        ),
        Packet::Publish(publish, _) => Packet::Publish(publish, None),
        Packet::PubAck(ack, _) => Packet::PubAck(ack, None),
        Packet::PubRec(ack, _) => Packet::PubRec(ack, None),
        Packet::PubRel(ack, _) => Packet::PubRel(ack, None),
        Packet::PubComp(ack, _) => Packet::PubComp(ack, None),
        Packet::Subscribe(subscribe, _) => Packet::Subscribe(subscribe, None),
        Packet::SubAck(suback, _) => Packet::SubAck(
            SubAck {
                pkid: suback.pkid,
                return_codes: suback
                    .return_codes
                    .into_iter()
                    .map(v3_suback_code)
                    .collect(),
            },
            None,
        ),
        Packet::Unsubscribe(unsubscribe, _) => Packet::Unsubscribe(unsubscribe, None),
        Packet::UnsubAck(unsuback, _) => Packet::UnsubAck(unsuback, None),
        Packet::Disconnect(disconnect, _) => Packet::Disconnect(disconnect, None),
        ping @ (Packet::PingReq(_) | Packet::PingResp(_)) => ping,
    })
}

/// The 3.1.1 CONNACK return code (0 to 5) nearest an MQTT 5 reason code. A malformed or
/// protocol-breaking CONNECT has none: 3.1.1 closes the connection without a CONNACK.
fn v3_connack_code(code: ConnectReturnCode) -> Result<ConnectReturnCode, EncodeError> {
    use ConnectReturnCode::*;
    Ok(match code {
        Success => Success,
        RefusedProtocolVersion | UnsupportedProtocolVersion => RefusedProtocolVersion,
        ClientIdentifierNotValid => ClientIdentifierNotValid,
        ServiceUnavailable
        | ServerUnavailable
        | ServerBusy
        | UseAnotherServer
        | ServerMoved
        | ConnectionRateExceeded
        | QuotaExceeded
        | ImplementationSpecificError
        | UnspecifiedError => ServiceUnavailable,
        BadUserNamePassword | BadAuthenticationMethod => BadUserNamePassword,
        NotAuthorized | Banned => NotAuthorized,
        MalformedPacket | ProtocolError | TopicNameInvalid | PacketTooLarge
        | PayloadFormatInvalid | RetainNotSupported | QoSNotSupported => {
            return Err(EncodeError(format!(
                "MQTT 3.1.x has no CONNACK code for {code:?}; close without a CONNACK"
            )))
        }
    })
}

/// 3.1.1 SUBACK knows only the granted QoS and 0x80 (failure).
fn v3_suback_code(code: SubscribeReasonCode) -> SubscribeReasonCode {
    use SubscribeReasonCode::*;
    match code {
        Success(qos) => Success(qos),
        QoS0 | QoS1 | QoS2 => code,
        _ => Failure,
    }
}

fn is_empty(properties: &DisconnectProperties) -> bool {
    properties.session_expiry_interval.is_none()
        && properties.reason_string.is_none()
        && properties.user_properties.is_empty()
        && properties.server_reference.is_none()
}

/// An MQTT 5 DISCONNECT without properties: `E0 00` for a normal disconnection, otherwise the
/// reason code alone (remaining length 1, which MQTT 5.0 3.14.2.2.1 allows).
fn write_v5_disconnect(reason: DisconnectReasonCode, dst: &mut BytesMut) -> usize {
    let code = disconnect_code(reason);
    if code == 0 {
        dst.extend_from_slice(&[0xE0, 0x00]);
        2
    } else {
        dst.extend_from_slice(&[0xE0, 0x01, code]);
        3
    }
}

/// MQTT 5.0 section 3.14.2.1 (`rumqttd` keeps its own table private).
fn disconnect_code(reason: DisconnectReasonCode) -> u8 {
    use DisconnectReasonCode::*;
    match reason {
        NormalDisconnection => 0x00,
        DisconnectWithWillMessage => 0x04,
        UnspecifiedError => 0x80,
        MalformedPacket => 0x81,
        ProtocolError => 0x82,
        ImplementationSpecificError => 0x83,
        NotAuthorized => 0x87,
        ServerBusy => 0x89,
        ServerShuttingDown => 0x8B,
        KeepAliveTimeout => 0x8D,
        SessionTakenOver => 0x8E,
        TopicFilterInvalid => 0x8F,
        TopicNameInvalid => 0x90,
        ReceiveMaximumExceeded => 0x93,
        TopicAliasInvalid => 0x94,
        PacketTooLarge => 0x95,
        MessageRateTooHigh => 0x96,
        QuotaExceeded => 0x97,
        AdministrativeAction => 0x98,
        PayloadFormatInvalid => 0x99,
        RetainNotSupported => 0x9A,
        QoSNotSupported => 0x9B,
        UseAnotherServer => 0x9C,
        ServerMoved => 0x9D,
        SharedSubscriptionNotSupported => 0x9E,
        ConnectionRateExceeded => 0x9F,
        MaximumConnectTime => 0xA0,
        SubscriptionIdentifiersNotSupported => 0xA1,
        WildcardSubscriptionsNotSupported => 0xA2,
    }
}
