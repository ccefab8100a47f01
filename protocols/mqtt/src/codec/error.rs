//! Why the decoder refused its input, and the MQTT 5 reason code each cause maps to.

/// Bad input from a client.
///
/// The decoder yields it as [`Inbound::Invalid`](super::Inbound::Invalid) rather than failing, so the
/// session can answer in protocol before it closes: CONNACK 0x01 (3.1, 3.1.1) / 0x84 (5.0) for an
/// unsupported version, CONNACK or DISCONNECT with [`reason_code`](Self::reason_code) otherwise
/// (3.1.x has no DISCONNECT from the server: the session just closes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes do not form a packet of the protocol (MQTT 5 reason 0x81).
    #[error("malformed packet: {0}")]
    Malformed(String),
    /// A well-formed packet that breaks a protocol rule (MQTT 5 reason 0x82).
    #[error("protocol error: {0}")]
    ProtocolError(String),
    /// The fixed header announces a packet of `size` bytes, fixed header included, over `limit`
    /// (MQTT 5 reason 0x95).
    #[error("packet of {size} bytes is over the limit of {limit} bytes")]
    PacketTooLarge {
        /// Size of the whole packet in bytes, as its fixed header announces it.
        size: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// A CONNECT naming a protocol or level other than "MQIsdp"/3, "MQTT"/4 or "MQTT"/5
    /// (CONNACK 0x01 in 3.1.x form, 0x84 in MQTT 5).
    #[error("unsupported protocol {name:?} level {level}")]
    UnsupportedProtocolVersion {
        /// The protocol name the client sent (lossily decoded as UTF-8).
        name: String,
        /// The protocol level the client sent.
        level: u8,
    },
}

impl CodecError {
    /// The MQTT 5 reason code for this error: 0x81, 0x82, 0x95 or 0x84.
    pub fn reason_code(&self) -> u8 {
        match self {
            Self::Malformed(_) => 0x81,
            Self::ProtocolError(_) => 0x82,
            Self::PacketTooLarge { .. } => 0x95,
            Self::UnsupportedProtocolVersion { .. } => 0x84,
        }
    }

    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self::Malformed(message.into())
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Self::ProtocolError(message.into())
    }
}
