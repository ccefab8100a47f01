//! The checks `rumqttd`'s parsers leave out, run over a client's raw bytes before they parse.
//!
//! After [`check_first_byte`] and [`check_body`] accept a packet, its fields fill its remaining
//! length exactly, every string is valid UTF-8 without U+0000, and every MQTT 5 property block is
//! well formed ([`properties`](super::properties)); `rumqttd` then only builds the values.

use super::{
    properties::{self, Place},
    wire::Reader,
    CodecError, ProtocolVersion,
};

/// How the frame must change before `rumqttd` can read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fixup {
    /// Parse as it is.
    None,
    /// A 3.1 CONNECT: replace "MQIsdp"/3 by "MQTT"/4 (3.1.1 has the same layout after them).
    RenameMqisdp,
    /// An MQTT 5 DISCONNECT with a reason code and no property length (allowed when the remaining
    /// length is 1): append an empty property length, which `rumqttd` insists on.
    AppendPropertyLength,
}

const CONNECT: u8 = 1;
const PUBLISH: u8 = 3;
const PUBREL: u8 = 6;
const SUBSCRIBE: u8 = 8;
const UNSUBSCRIBE: u8 = 10;
const AUTH: u8 = 15;

fn name(kind: u8) -> &'static str {
    match kind {
        1 => "CONNECT",
        2 => "CONNACK",
        3 => "PUBLISH",
        4 => "PUBACK",
        5 => "PUBREC",
        6 => "PUBREL",
        7 => "PUBCOMP",
        8 => "SUBSCRIBE",
        9 => "SUBACK",
        10 => "UNSUBSCRIBE",
        11 => "UNSUBACK",
        12 => "PINGREQ",
        13 => "PINGRESP",
        14 => "DISCONNECT",
        15 => "AUTH",
        _ => "reserved",
    }
}

/// Checks the packet type and its flags, which the first byte alone decides.
///
/// `version` is `None` until a CONNECT has been read; then only CONNECT is acceptable.
pub(crate) fn check_first_byte(
    byte1: u8,
    version: Option<ProtocolVersion>,
) -> Result<(), CodecError> {
    let kind = byte1 >> 4;
    let flags = byte1 & 0x0F;
    match kind {
        0 => return Err(CodecError::malformed("reserved packet type 0")),
        // MQTT 5 AUTH: we accept no authentication method in CONNECT, and AUTH without one is a
        // Protocol Error (MQTT 5.0 4.12). Before 5.0 the type is reserved.
        AUTH if version == Some(ProtocolVersion::V5) => {
            return Err(CodecError::protocol(
                "AUTH without an accepted authentication method",
            ));
        }
        AUTH => return Err(CodecError::malformed("reserved packet type 15")),
        2 | 9 | 11 | 13 => {
            return Err(CodecError::ProtocolError(format!(
                "{} is sent only by servers",
                name(kind)
            )));
        }
        _ => {}
    }
    if version.is_none() && kind != CONNECT {
        return Err(CodecError::ProtocolError(format!(
            "the first packet must be CONNECT, got {}",
            name(kind)
        )));
    }
    match kind {
        PUBLISH => {
            let qos = (flags >> 1) & 0b11;
            if qos == 3 {
                return Err(CodecError::malformed("PUBLISH with QoS 3"));
            }
            if qos == 0 && flags & 0b1000 != 0 {
                return Err(CodecError::malformed("PUBLISH with QoS 0 and DUP set"));
            }
        }
        PUBREL | SUBSCRIBE | UNSUBSCRIBE if flags != 0b0010 => {
            return Err(CodecError::Malformed(format!(
                "{} fixed-header flags must be 0b0010, got {flags:#06b}",
                name(kind)
            )));
        }
        PUBREL | SUBSCRIBE | UNSUBSCRIBE => {}
        _ if flags != 0 => {
            return Err(CodecError::Malformed(format!(
                "{} fixed-header flags must be 0, got {flags:#06b}",
                name(kind)
            )));
        }
        _ => {}
    }
    Ok(())
}

/// Reads the protocol name and level at the start of a CONNECT body.
pub(crate) fn connect_version(body: &[u8]) -> Result<ProtocolVersion, CodecError> {
    let mut reader = Reader::new(body);
    let name = reader.binary("protocol name")?;
    let level = reader.u8("protocol level")?;
    match (name, level) {
        (b"MQIsdp", 3) => Ok(ProtocolVersion::V3_1),
        (b"MQTT", 4) => Ok(ProtocolVersion::V3_1_1),
        (b"MQTT", 5) => Ok(ProtocolVersion::V5),
        _ => Err(CodecError::UnsupportedProtocolVersion {
            name: String::from_utf8_lossy(name).into_owned(),
            level,
        }),
    }
}

/// What the first bytes of a CONNECT body say about its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefix {
    /// Too few bytes to tell yet (at most 9 are ever needed).
    Incomplete,
    /// A supported version.
    Version(ProtocolVersion),
    /// Not a supported protocol name and level.
    Unsupported,
}

/// Reads the protocol name and level from the start of a CONNECT body that may be incomplete
/// (a CONNECT refused from its fixed header alone). Never asks for more than 9 bytes: a name
/// longer than "MQIsdp" is unsupported without reading it.
pub(crate) fn connect_version_prefix(body: &[u8]) -> Prefix {
    let [high, low, rest @ ..] = body else {
        return Prefix::Incomplete;
    };
    let name_len = usize::from(u16::from_be_bytes([*high, *low]));
    if name_len > 6 {
        return Prefix::Unsupported;
    }
    match (rest.get(..name_len), rest.get(name_len)) {
        (Some(name), Some(&level)) => match (name, level) {
            (b"MQIsdp", 3) => Prefix::Version(ProtocolVersion::V3_1),
            (b"MQTT", 4) => Prefix::Version(ProtocolVersion::V3_1_1),
            (b"MQTT", 5) => Prefix::Version(ProtocolVersion::V5),
            _ => Prefix::Unsupported,
        },
        _ => Prefix::Incomplete,
    }
}

/// Checks the body (everything after the fixed header) of a packet whose first byte passed
/// [`check_first_byte`]. For CONNECT, `version` is the one its own header names.
pub(crate) fn check_body(
    byte1: u8,
    body: &[u8],
    version: ProtocolVersion,
) -> Result<Fixup, CodecError> {
    let v5 = version == ProtocolVersion::V5;
    let kind = byte1 >> 4;
    let mut reader = Reader::new(body);
    let fixup = match kind {
        CONNECT => connect(&mut reader, version)?,
        PUBLISH => {
            publish(&mut reader, byte1, v5)?;
            // The rest is the payload.
            return Ok(Fixup::None);
        }
        4..=7 => {
            ack(&mut reader, v5)?;
            Fixup::None
        }
        SUBSCRIBE => {
            subscribe(&mut reader, v5)?;
            Fixup::None
        }
        UNSUBSCRIBE => {
            unsubscribe(&mut reader, v5)?;
            Fixup::None
        }
        // PINGREQ has no body; `finish` below refuses one.
        12 => Fixup::None,
        14 => disconnect(&mut reader, v5)?,
        _ => {
            return Err(CodecError::Malformed(format!(
                "unexpected packet type {kind}"
            )))
        }
    };
    reader.finish(name(kind))?;
    Ok(fixup)
}

fn connect(reader: &mut Reader<'_>, version: ProtocolVersion) -> Result<Fixup, CodecError> {
    let v5 = version == ProtocolVersion::V5;
    reader.binary("protocol name")?;
    reader.u8("protocol level")?;
    let flags = reader.u8("connect flags")?;
    if flags & 0b0000_0001 != 0 {
        return Err(CodecError::malformed("CONNECT reserved flag (bit 0) set"));
    }
    let will = flags & 0b0000_0100 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0b0010_0000 != 0;
    let password = flags & 0b0100_0000 != 0;
    let user_name = flags & 0b1000_0000 != 0;
    if !will && (will_qos != 0 || will_retain) {
        return Err(CodecError::malformed(
            "will QoS or will retain set without the will flag",
        ));
    }
    if will_qos == 3 {
        return Err(CodecError::malformed("will QoS 3"));
    }
    // 3.1 and 3.1.1 forbid a password without a user name; MQTT 5 allows it.
    if password && !user_name && !v5 {
        return Err(CodecError::malformed(
            "password flag set without the user name flag",
        ));
    }
    reader.u16("keep alive")?;
    if v5 {
        properties::check(reader, Place::Connect)?;
    }
    // 3.1 limits client identifiers to 23 characters; like Mosquitto we accept longer ones.
    reader.string("client identifier")?;
    if will {
        if v5 {
            properties::check(reader, Place::Will)?;
        }
        reader.string("will topic")?;
        reader.binary("will payload")?;
    }
    if user_name {
        reader.string("user name")?;
    }
    if password {
        let bytes = reader.binary("password")?;
        // The spec makes the password Binary Data; rumqttd's `Login` holds it as a `String`.
        if std::str::from_utf8(bytes).is_err() {
            return Err(CodecError::malformed(
                "password is not UTF-8 (binary passwords are not supported)",
            ));
        }
    }
    Ok(match version {
        ProtocolVersion::V3_1 => Fixup::RenameMqisdp,
        ProtocolVersion::V3_1_1 | ProtocolVersion::V5 => Fixup::None,
    })
}

fn packet_identifier(reader: &mut Reader<'_>, what: &str) -> Result<(), CodecError> {
    if reader.u16("packet identifier")? == 0 {
        return Err(CodecError::ProtocolError(format!(
            "{what} with packet identifier 0"
        )));
    }
    Ok(())
}

fn publish(reader: &mut Reader<'_>, byte1: u8, v5: bool) -> Result<(), CodecError> {
    // Wildcards and the empty topic (allowed with an MQTT 5 Topic Alias) are the session's call.
    reader.string("topic name")?;
    if (byte1 >> 1) & 0b11 != 0 {
        packet_identifier(reader, "PUBLISH with QoS > 0")?;
    }
    if v5 {
        properties::check(reader, Place::Publish)?;
    }
    Ok(())
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP. `rumqttd` checks the reason code.
fn ack(reader: &mut Reader<'_>, v5: bool) -> Result<(), CodecError> {
    packet_identifier(reader, "acknowledgement")?;
    // MQTT 5 may omit the properties, or the reason code and the properties.
    if v5 && !reader.is_empty() {
        reader.u8("reason code")?;
        if !reader.is_empty() {
            properties::check(reader, Place::Ack)?;
        }
    }
    Ok(())
}

fn subscribe(reader: &mut Reader<'_>, v5: bool) -> Result<(), CodecError> {
    packet_identifier(reader, "SUBSCRIBE")?;
    if v5 {
        properties::check(reader, Place::Subscribe)?;
    }
    let mut filters = 0usize;
    while !reader.is_empty() {
        // Filter syntax (wildcard placement, empty filters, $share) is the session's call.
        reader.string("topic filter")?;
        let options = reader.u8("subscription options")?;
        filters += 1;
        if v5 {
            if options & 0b1100_0000 != 0 {
                return Err(CodecError::malformed(
                    "reserved subscription option bits set",
                ));
            }
            if options & 0b11 == 3 {
                return Err(CodecError::protocol("subscription with maximum QoS 3"));
            }
            if (options >> 4) & 0b11 == 3 {
                return Err(CodecError::protocol("subscription with retain handling 3"));
            }
        } else {
            if options & 0b1111_1100 != 0 {
                return Err(CodecError::malformed(
                    "reserved subscription option bits set",
                ));
            }
            if options & 0b11 == 3 {
                return Err(CodecError::malformed("subscription with QoS 3"));
            }
        }
    }
    if filters == 0 {
        return Err(CodecError::protocol("SUBSCRIBE without topic filters"));
    }
    Ok(())
}

fn unsubscribe(reader: &mut Reader<'_>, v5: bool) -> Result<(), CodecError> {
    packet_identifier(reader, "UNSUBSCRIBE")?;
    if v5 {
        properties::check(reader, Place::Unsubscribe)?;
    }
    let mut filters = 0usize;
    while !reader.is_empty() {
        reader.string("topic filter")?;
        filters += 1;
    }
    if filters == 0 {
        return Err(CodecError::protocol("UNSUBSCRIBE without topic filters"));
    }
    Ok(())
}

fn disconnect(reader: &mut Reader<'_>, v5: bool) -> Result<Fixup, CodecError> {
    if !v5 || reader.is_empty() {
        // 3.1.x DISCONNECT has no body; `finish` refuses one.
        return Ok(Fixup::None);
    }
    reader.u8("reason code")?;
    if reader.is_empty() {
        return Ok(Fixup::AppendPropertyLength);
    }
    properties::check(reader, Place::Disconnect)?;
    Ok(Fixup::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix_of_a_partial_connect() {
        assert_eq!(connect_version_prefix(&[]), Prefix::Incomplete);
        assert_eq!(
            connect_version_prefix(&[0, 4, b'M', b'Q']),
            Prefix::Incomplete
        );
        assert_eq!(
            connect_version_prefix(&[0, 4, b'M', b'Q', b'T', b'T']),
            Prefix::Incomplete
        );
        assert_eq!(
            connect_version_prefix(&[0, 4, b'M', b'Q', b'T', b'T', 5, 0xFF]),
            Prefix::Version(ProtocolVersion::V5)
        );
        assert_eq!(
            connect_version_prefix(b"\x00\x06MQIsdp\x03"),
            Prefix::Version(ProtocolVersion::V3_1)
        );
        assert_eq!(
            connect_version_prefix(b"\x00\x04MQTT\x06"),
            Prefix::Unsupported
        );
        // A long name is refused without waiting for it.
        assert_eq!(connect_version_prefix(&[0xFF, 0xFF]), Prefix::Unsupported);
    }
}
