//! The MQTT 3.1, 3.1.1 and 5.0 codec: bytes from a client into `rumqttd` packets, packets to it
//! back into bytes.
//!
//! Framing and every check `rumqttd`'s parsers lack happen here over the raw bytes
//! (`validate`, `properties`); `rumqttd`'s V4 (3.1, 3.1.1) or V5 parser then builds the packet.
//!
//! Invariants:
//! - **Bounded buffer.** The size limit is checked from the fixed header, before the body is
//!   buffered: the read buffer holds at most one incomplete packet no larger than the limit (a
//!   too-large CONNECT waits for at most 9 body bytes, its protocol name and level, first).
//! - **Cancel-safe.** All partial state is the `BytesMut`; [`MqttCodec`] keeps none between calls
//!   but the negotiated version, the limits and the poison flag.
//! - **Bad input is an item.** [`Inbound::Invalid`] lets the session answer in protocol; the decoder
//!   is then poisoned: it discards its input and yields nothing more, since a byte stream cannot be
//!   resynchronised after a bad packet.
//! - **No panic on any input**, and no `Packet` value makes the encoder panic.
//!
//! 3.1 ("MQIsdp", level 3) has 3.1.1's layout under another protocol name; the decoder rewrites the
//! name and level to "MQTT"/4 before `rumqttd` reads the CONNECT, and then decodes and encodes 3.1
//! exactly like 3.1.1.

mod encode;
mod error;
mod properties;
mod validate;
mod wire;

use std::io;

use bytes::{BufMut, BytesMut};
use rumqttd::protocol::{v4::V4, v5::V5, Packet, Protocol};
use tokio_util::codec::{Decoder, Encoder};

pub use error::CodecError;

use validate::Fixup;

/// Which MQTT the client speaks, from its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolVersion {
    /// MQTT 3.1: protocol name "MQIsdp", level 3.
    V3_1,
    /// MQTT 3.1.1: protocol name "MQTT", level 4.
    V3_1_1,
    /// MQTT 5.0: protocol name "MQTT", level 5.
    V5,
}

/// What the decoder yields.
///
/// Bad input is an item, not an error, so the session can answer in protocol (CONNACK 0x01 /
/// 0x84, DISCONNECT 0x81 / 0x82 / 0x95) before it closes.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every item is a packet; boxing it would allocate once per packet"
)]
pub enum Inbound {
    /// A packet that passed every check.
    Packet(Packet),
    /// Input that is not a valid packet; nothing more will be decoded on this connection.
    Invalid(CodecError),
}

/// The size limit before authentication, in bytes, whole packet included.
pub const DEFAULT_MAX_INCOMING: usize = 64 * 1024;

/// A [`Decoder`] of client packets and an [`Encoder`] of server packets for one connection.
#[derive(Debug, Clone)]
pub struct MqttCodec {
    version: Option<ProtocolVersion>,
    max_incoming: usize,
    max_outgoing: Option<usize>,
    poisoned: bool,
}

impl MqttCodec {
    /// A codec for a new connection, refusing packets over `max_incoming_packet_size` bytes
    /// (fixed header included; [`DEFAULT_MAX_INCOMING`] before authentication).
    pub fn new(max_incoming_packet_size: usize) -> Self {
        Self {
            version: None,
            max_incoming: max_incoming_packet_size,
            max_outgoing: None,
            poisoned: false,
        }
    }

    /// The client's protocol version.
    ///
    /// Set by the first CONNECT whose protocol name and level are supported, as soon as they are
    /// read, even if the rest of that CONNECT is then refused: the session can answer a bad MQTT 5
    /// CONNECT with a CONNACK in MQTT 5 form. A later CONNECT never changes it.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// Sets the largest packet accepted from the client, in bytes, fixed header included: from the
    /// configuration, or the MQTT 5 Maximum Packet Size the server announces.
    pub fn set_max_incoming(&mut self, bytes: usize) {
        self.max_incoming = bytes;
    }

    /// Sets the largest packet the client accepts (its MQTT 5 Maximum Packet Size), or `None` for
    /// no limit. The encoder refuses larger packets; the session checks
    /// [`fits_outgoing`](Self::fits_outgoing) first and drops such a PUBLISH as if delivered.
    pub fn set_max_outgoing(&mut self, bytes: Option<usize>) {
        self.max_outgoing = bytes;
    }

    /// The number of bytes `packet` takes on the wire for this connection's version, fixed header
    /// included, or `None` if it cannot be encoded (a QoS > 0 PUBLISH with packet id 0, a packet
    /// over 268,435,455 bytes, a CONNACK code 3.1.x cannot say). A PUBLISH payload is not copied.
    pub fn encoded_len(&self, packet: &Packet) -> Option<usize> {
        encode::encoded_len(packet, self.version)
    }

    /// Whether the encoder will write `packet`: it can be encoded and is within the client's
    /// Maximum Packet Size. MQTT 5 asks the server to discard a PUBLISH that is not, as if it had
    /// been delivered.
    pub fn fits_outgoing(&self, packet: &Packet) -> bool {
        match (self.encoded_len(packet), self.max_outgoing) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(len), Some(limit)) => len <= limit,
        }
    }

    /// Whether the decoder has yielded [`Inbound::Invalid`] and stopped.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    fn decode_packet(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        let Some(&byte1) = src.first() else {
            return Ok(None);
        };
        validate::check_first_byte(byte1, self.version)?;
        let Some((remaining, length_len)) = wire::remaining_length(src.get(1..).unwrap_or(&[]))?
        else {
            return Ok(None);
        };
        let header_len = 1 + length_len;
        let size = header_len + remaining;
        if size > self.max_incoming {
            // A CONNECT too large to read still names its version in its first few bytes: wait
            // for them (at most 9), so an MQTT 5 client is refused with CONNACK 0x95 in its own
            // form rather than a bare close.
            if byte1 >> 4 == 1 && self.version.is_none() {
                match validate::connect_version_prefix(src.get(header_len..).unwrap_or(&[])) {
                    validate::Prefix::Incomplete => return Ok(None),
                    validate::Prefix::Version(version) => self.version = Some(version),
                    validate::Prefix::Unsupported => {}
                }
            }
            return Err(CodecError::PacketTooLarge {
                size,
                limit: self.max_incoming,
            });
        }
        if src.len() < size {
            src.reserve(size - src.len());
            return Ok(None);
        }
        let frame = src.split_to(size);
        let body = frame.get(header_len..).unwrap_or(&[]);
        let version = if byte1 >> 4 == 1 {
            let version = match validate::connect_version(body) {
                Ok(version) => version,
                Err(error @ CodecError::UnsupportedProtocolVersion { level: 5, .. }) => {
                    // Level 5 under another name: the client reads MQTT 5 CONNACKs, so it is
                    // refused with 0x84 in MQTT 5 form (a 3.1.1 CONNACK is malformed to it).
                    self.version.get_or_insert(ProtocolVersion::V5);
                    return Err(error);
                }
                Err(error) => return Err(error),
            };
            self.version.get_or_insert(version);
            version
        } else {
            // `check_first_byte` let only CONNECT through before a version is known.
            self.version
                .ok_or_else(|| CodecError::protocol("the first packet must be CONNECT"))?
        };
        let fixup = validate::check_body(byte1, body, version)?;
        let mut frame = match fixup {
            Fixup::None => frame,
            // "MQIsdp" (2 + 6 bytes) and level 3 become "MQTT" (2 + 4 bytes) and level 4.
            Fixup::RenameMqisdp => rebuild(
                byte1,
                b"\x00\x04MQTT\x04",
                body.get(9..).unwrap_or(&[]),
                &[],
            ),
            Fixup::AppendPropertyLength => rebuild(byte1, &[], body, &[0]),
        };
        let parsed = match version {
            ProtocolVersion::V5 => V5.read_mut(&mut frame, usize::MAX),
            ProtocolVersion::V3_1 | ProtocolVersion::V3_1_1 => V4.read_mut(&mut frame, usize::MAX),
        };
        parsed.map(Some).map_err(from_rumqttd)
    }
}

/// A frame of `byte1` and the body `head ++ body ++ tail`.
fn rebuild(byte1: u8, head: &[u8], body: &[u8], tail: &[u8]) -> BytesMut {
    let remaining = head.len() + body.len() + tail.len();
    let mut frame = BytesMut::with_capacity(5 + remaining);
    frame.put_u8(byte1);
    wire::put_variable_byte_integer(&mut frame, remaining);
    frame.put_slice(head);
    frame.put_slice(body);
    frame.put_slice(tail);
    frame
}

/// `rumqttd` refusing a packet the checks above accepted: its own rules (reason codes it does not
/// know, for instance).
fn from_rumqttd(error: rumqttd::protocol::Error) -> CodecError {
    use rumqttd::protocol::Error;
    match error {
        Error::InvalidPropertyType(_)
        | Error::EmptySubscription
        | Error::PacketIdZero
        | Error::SubscriptionIdZero => CodecError::ProtocolError(format!("rumqttd: {error}")),
        _ => CodecError::Malformed(format!("rumqttd: {error}")),
    }
}

impl Decoder for MqttCodec {
    type Item = Inbound;
    type Error = io::Error;

    /// `Ok(None)` until a whole packet is buffered; never `Err`.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, io::Error> {
        if self.poisoned {
            src.clear();
            return Ok(None);
        }
        match self.decode_packet(src) {
            Ok(packet) => Ok(packet.map(Inbound::Packet)),
            Err(error) => {
                self.poisoned = true;
                src.clear();
                Ok(Some(Inbound::Invalid(error)))
            }
        }
    }
}

impl Encoder<Packet> for MqttCodec {
    type Error = io::Error;

    /// Writes `packet` in the client's version (3.1.1's form before a CONNECT was read; properties
    /// dropped and MQTT 5 codes mapped for 3.1.x).
    ///
    /// Fails with [`io::ErrorKind::InvalidInput`], leaving `dst` as it was, if the packet cannot be
    /// encoded or is over [`set_max_outgoing`](MqttCodec::set_max_outgoing); a too-large packet's
    /// error wraps [`CodecError::PacketTooLarge`].
    fn encode(&mut self, packet: Packet, dst: &mut BytesMut) -> Result<(), io::Error> {
        let start = dst.len();
        let written = encode::write(packet, self.version, dst)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        if let Some(limit) = self.max_outgoing {
            if written > limit {
                dst.truncate(start);
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    CodecError::PacketTooLarge {
                        size: written,
                        limit,
                    },
                ));
            }
        }
        Ok(())
    }
}
