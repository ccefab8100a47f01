//! MQTT 5 property blocks in packets a client sends: every property known, of the right type,
//! allowed in its packet, not repeated where the spec forbids it, and inside its block.
//!
//! `rumqttd` reads properties with a cursor that may run past the block's declared length, keeps
//! the last of a repeated property and checks no value, so this pass runs before it.

use super::{wire::Reader, CodecError};

/// Where a property block sits; each maps to one bit of [`Spec::allowed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Connect,
    Will,
    Publish,
    /// PUBACK, PUBREC, PUBREL and PUBCOMP.
    Ack,
    Subscribe,
    Unsubscribe,
    Disconnect,
}

impl Place {
    fn bit(self) -> u8 {
        match self {
            Self::Connect => CONNECT,
            Self::Will => WILL,
            Self::Publish => PUBLISH,
            Self::Ack => ACK,
            Self::Subscribe => SUBSCRIBE,
            Self::Unsubscribe => UNSUBSCRIBE,
            Self::Disconnect => DISCONNECT,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Connect => "CONNECT",
            Self::Will => "will properties",
            Self::Publish => "PUBLISH",
            Self::Ack => "PUBACK/PUBREC/PUBREL/PUBCOMP",
            Self::Subscribe => "SUBSCRIBE",
            Self::Unsubscribe => "UNSUBSCRIBE",
            Self::Disconnect => "DISCONNECT",
        }
    }
}

const CONNECT: u8 = 1;
const WILL: u8 = 1 << 1;
const PUBLISH: u8 = 1 << 2;
const ACK: u8 = 1 << 3;
const SUBSCRIBE: u8 = 1 << 4;
const UNSUBSCRIBE: u8 = 1 << 5;
const DISCONNECT: u8 = 1 << 6;
/// Properties only a server sends (CONNACK, SUBACK, UNSUBACK, AUTH) carry no client bit.
const SERVER_ONLY: u8 = 0;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Byte,
    TwoByte,
    FourByte,
    VariableByteInteger,
    String,
    Binary,
    StringPair,
}

struct Spec {
    name: &'static str,
    kind: Kind,
    /// Places a client may send it in.
    allowed: u8,
    /// Whether it may appear more than once in one block.
    repeatable: bool,
}

const fn spec(name: &'static str, kind: Kind, allowed: u8) -> Spec {
    Spec {
        name,
        kind,
        allowed,
        repeatable: false,
    }
}

/// MQTT 5.0 section 2.2.2.2, seen from the server. The Subscription Identifier goes only from
/// server to client in PUBLISH ([MQTT-3.3.4-6]), so a client may send it in SUBSCRIBE alone.
fn lookup(id: u8) -> Option<Spec> {
    use Kind::*;
    let found = match id {
        0x01 => spec("Payload Format Indicator", Byte, PUBLISH | WILL),
        0x02 => spec("Message Expiry Interval", FourByte, PUBLISH | WILL),
        0x03 => spec("Content Type", String, PUBLISH | WILL),
        0x08 => spec("Response Topic", String, PUBLISH | WILL),
        0x09 => spec("Correlation Data", Binary, PUBLISH | WILL),
        0x0B => spec("Subscription Identifier", VariableByteInteger, SUBSCRIBE),
        0x11 => spec("Session Expiry Interval", FourByte, CONNECT | DISCONNECT),
        0x12 => spec("Assigned Client Identifier", String, SERVER_ONLY),
        0x13 => spec("Server Keep Alive", TwoByte, SERVER_ONLY),
        0x15 => spec("Authentication Method", String, CONNECT),
        0x16 => spec("Authentication Data", Binary, CONNECT),
        0x17 => spec("Request Problem Information", Byte, CONNECT),
        0x18 => spec("Will Delay Interval", FourByte, WILL),
        0x19 => spec("Request Response Information", Byte, CONNECT),
        0x1A => spec("Response Information", String, SERVER_ONLY),
        0x1C => spec("Server Reference", String, DISCONNECT),
        0x1F => spec("Reason String", String, ACK | DISCONNECT),
        0x21 => spec("Receive Maximum", TwoByte, CONNECT),
        0x22 => spec("Topic Alias Maximum", TwoByte, CONNECT),
        0x23 => spec("Topic Alias", TwoByte, PUBLISH),
        0x24 => spec("Maximum QoS", Byte, SERVER_ONLY),
        0x25 => spec("Retain Available", Byte, SERVER_ONLY),
        0x26 => Spec {
            repeatable: true,
            ..spec(
                "User Property",
                StringPair,
                CONNECT | WILL | PUBLISH | ACK | SUBSCRIBE | UNSUBSCRIBE | DISCONNECT,
            )
        },
        0x27 => spec("Maximum Packet Size", FourByte, CONNECT),
        0x28 => spec("Wildcard Subscription Available", Byte, SERVER_ONLY),
        0x29 => spec("Subscription Identifier Available", Byte, SERVER_ONLY),
        0x2A => spec("Shared Subscription Available", Byte, SERVER_ONLY),
        _ => return None,
    };
    Some(found)
}

/// One property's value, as far as the value checks below need it.
enum Value {
    Number(usize),
    Other,
}

/// Reads the property length and the block it announces from `reader`, and checks the block.
///
/// Unknown identifiers and values that overrun the block are [`CodecError::Malformed`]; a property
/// out of place, repeated, or with a value the spec calls a Protocol Error is
/// [`CodecError::ProtocolError`].
pub(crate) fn check(reader: &mut Reader<'_>, place: Place) -> Result<(), CodecError> {
    let len = reader.variable_byte_integer("property length")?;
    let block = reader.take(len, "property block")?;
    let mut block = Reader::new(block);
    // Identifiers are below 64, so one bit each.
    let mut seen = 0u64;
    while !block.is_empty() {
        let id = block.u8("property identifier")?;
        let spec = lookup(id).ok_or_else(|| {
            CodecError::Malformed(format!("unknown property identifier {id:#04x}"))
        })?;
        let value = read_value(&mut block, spec.kind, spec.name)?;
        if spec.allowed & place.bit() == 0 {
            return Err(CodecError::ProtocolError(format!(
                "{} ({id:#04x}) is not allowed in {} from a client",
                spec.name,
                place.name()
            )));
        }
        let bit = 1u64 << (id & 63);
        if seen & bit != 0 && !spec.repeatable {
            return Err(CodecError::ProtocolError(format!(
                "{} ({id:#04x}) appears twice in {}",
                spec.name,
                place.name()
            )));
        }
        seen |= bit;
        if let Value::Number(number) = value {
            check_number(id, spec.name, number)?;
        }
    }
    // MQTT 5.0 3.1.2.11.10: Authentication Data without a Method is a Protocol Error.
    if seen & (1 << 0x16) != 0 && seen & (1 << 0x15) == 0 {
        return Err(CodecError::protocol(
            "Authentication Data without Authentication Method",
        ));
    }
    Ok(())
}

fn read_value(block: &mut Reader<'_>, kind: Kind, name: &str) -> Result<Value, CodecError> {
    Ok(match kind {
        Kind::Byte => Value::Number(usize::from(block.u8(name)?)),
        Kind::TwoByte => Value::Number(usize::from(block.u16(name)?)),
        // u32 always fits a usize on the 32- and 64-bit targets we build for; saturate otherwise.
        Kind::FourByte => Value::Number(usize::try_from(block.u32(name)?).unwrap_or(usize::MAX)),
        Kind::VariableByteInteger => Value::Number(block.variable_byte_integer(name)?),
        Kind::String => {
            block.string(name)?;
            Value::Other
        }
        Kind::Binary => {
            block.binary(name)?;
            Value::Other
        }
        Kind::StringPair => {
            block.string(name)?;
            block.string(name)?;
            Value::Other
        }
    })
}

/// Values the spec names a Protocol Error.
fn check_number(id: u8, name: &str, value: usize) -> Result<(), CodecError> {
    let bad = match id {
        // Payload Format Indicator, Request Problem / Response Information: 0 or 1.
        0x01 | 0x17 | 0x19 => value > 1,
        // Subscription Identifier, Receive Maximum, Maximum Packet Size: not 0. Topic Alias 0
        // is left to the session, which answers it, like an alias over the maximum, with
        // DISCONNECT 0x94 Topic Alias invalid (as Mosquitto and EMQX do).
        0x0B | 0x21 | 0x27 => value == 0,
        _ => false,
    };
    if bad {
        return Err(CodecError::ProtocolError(format!("{name} of {value}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(block: &[u8], place: Place) -> Result<(), CodecError> {
        let mut reader = Reader::new(block);
        check(&mut reader, place)?;
        reader.finish("properties")
    }

    #[test]
    fn accepts_empty_and_repeated_user_properties() {
        assert_eq!(run(&[0], Place::Publish), Ok(()));
        let pair = [0x26, 0, 1, b'k', 0, 1, b'v'];
        let mut block = vec![14];
        block.extend_from_slice(&pair);
        block.extend_from_slice(&pair);
        assert_eq!(run(&block, Place::Subscribe), Ok(()));
    }

    #[test]
    fn duplicate_is_protocol_error() {
        let err = run(&[4, 0x01, 0, 0x01, 1], Place::Publish).unwrap_err();
        assert_eq!(err.reason_code(), 0x82, "{err}");
    }

    #[test]
    fn misplaced_is_protocol_error() {
        // Topic Alias in CONNECT; Maximum QoS (server only) in PUBLISH; Subscription Identifier
        // in a client's PUBLISH.
        for (block, place) in [
            (&[3, 0x23, 0, 1][..], Place::Connect),
            (&[2, 0x24, 1][..], Place::Publish),
            (&[2, 0x0B, 1][..], Place::Publish),
        ] {
            assert_eq!(run(block, place).unwrap_err().reason_code(), 0x82);
        }
    }

    #[test]
    fn unknown_or_overrunning_is_malformed() {
        assert_eq!(
            run(&[2, 0x7F, 0], Place::Publish)
                .unwrap_err()
                .reason_code(),
            0x81
        );
        // Message Expiry Interval needs 4 bytes, the block holds 2.
        assert_eq!(
            run(&[3, 0x02, 0, 0, 0, 0], Place::Publish)
                .unwrap_err()
                .reason_code(),
            0x81
        );
        // Block longer than the packet.
        assert_eq!(
            run(&[9, 0x01, 0], Place::Publish)
                .unwrap_err()
                .reason_code(),
            0x81
        );
    }

    #[test]
    fn value_rules() {
        assert_eq!(
            run(&[3, 0x21, 0, 0], Place::Connect)
                .unwrap_err()
                .reason_code(),
            0x82
        );
        assert_eq!(
            run(&[5, 0x27, 0, 0, 0, 0], Place::Connect)
                .unwrap_err()
                .reason_code(),
            0x82
        );
        assert_eq!(
            run(&[2, 0x17, 2], Place::Connect)
                .unwrap_err()
                .reason_code(),
            0x82
        );
        // Topic Alias 0 is the session's to refuse (0x94).
        assert_eq!(run(&[3, 0x23, 0, 0], Place::Publish), Ok(()));
        assert_eq!(
            run(&[2, 0x0B, 0], Place::Subscribe)
                .unwrap_err()
                .reason_code(),
            0x82
        );
        assert_eq!(
            run(&[3, 0x16, 0, 0], Place::Connect)
                .unwrap_err()
                .reason_code(),
            0x82
        );
    }
}
