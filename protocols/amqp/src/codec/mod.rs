//! The AMQP 0-9-1 codec: bytes from a client into frames, frames for it back into bytes.
//!
//! Framing is ours (`framing`): the 7-byte frame header, the size check against `frame_max`
//! before the payload is buffered, the frame-end octet, the frame type and heartbeat channel.
//! Field tables inside a method or content header are then walked by `tables`, which bounds
//! their nesting depth and checks every length against the payload, before `amq-protocol`
//! parses the payload (its recursive parser has no depth limit of its own). Bodies are never
//! parsed: a body frame's payload is a slice of the read buffer, not a copy.
//!
//! Invariants:
//! - **Bounded buffer.** A frame's size is checked from its header, before its payload is
//!   buffered: the read buffer holds at most one incomplete frame no larger than `frame_max`.
//! - **Cancel-safe.** All partial state is the `BytesMut`; the codec keeps none between calls but
//!   its phase (protocol header or frames), the negotiated `frame_max` and the poison flag.
//! - **Bad input is an item.** [`Inbound::Invalid`] carries the reply code and text of the
//!   `connection.close` the session sends; the decoder is then poisoned and yields nothing more,
//!   since a byte stream cannot be resynchronised after a bad frame.
//! - **No panic on any input**, and no [`OutFrame`] makes the encoder panic; content bodies are
//!   split into body frames no larger than the negotiated `frame_max`.
//!
//! Reply codes and texts for bad input follow RabbitMQ 3.10 where it answers, and the spec where
//! it drops the socket instead (`reply` records each case): the session always gets an
//! [`Inbound::Invalid`] to close the connection cleanly with.

mod encode;
mod framing;
mod methods;
mod reply;
mod tables;
#[cfg(test)]
mod tests;

use std::io;

use amq_protocol::frame::parsing::parse_content_header;
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{parse_class, AMQPClass};
use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use framing::{
    FrameHeader, ProtocolHeader, FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD,
};

/// The largest frame either peer may send before tune-ok (AMQP's `frame-min-size`), and the
/// frame limit of the handshake.
pub const FRAME_MIN_SIZE: usize = 8192;

/// The smallest `frame_max` the codec works with: 4096, the 0-9-1 spec's own `frame-min-size`
/// (which [`FRAME_MIN_SIZE`] raises to 8192 for the handshake), and the least a tune-ok may say.
pub const FRAME_MAX_FLOOR: usize = 4096;

/// Bytes a frame adds around its payload: 7 of header and the frame-end octet.
pub const FRAME_OVERHEAD: usize = 8;

/// How deep field tables and arrays may nest inside one another; deeper input is a syntax error.
pub const MAX_TABLE_DEPTH: usize = 32;

/// The protocol header a 0-9-1 client sends, and that a server answers a wrong one with.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// What the decoder yields.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every item is a method; boxing it would allocate once per frame"
)]
pub enum Inbound {
    /// The 8-byte protocol header that opens a connection; `supported` is false for anything
    /// but `AMQP 0 0 9 1` (the handshake answers with [`PROTOCOL_HEADER`] and closes).
    ProtocolHeader {
        /// True for AMQP 0-9-1.
        supported: bool,
    },
    /// A method frame.
    Method {
        /// The channel it arrived on (0 for connection methods).
        channel: u16,
        /// The method and its arguments.
        method: AMQPClass,
    },
    /// A content header frame.
    Header {
        /// The channel it arrived on.
        channel: u16,
        /// The class it belongs to (60, basic, for every content RabbitMQ accepts).
        class_id: u16,
        /// The body size it announces; the session enforces it and the message size limit.
        body_size: u64,
        /// The basic properties.
        properties: Box<AMQPProperties>,
    },
    /// A content body frame: a slice of the read buffer.
    Body {
        /// The channel it arrived on.
        channel: u16,
        /// Its bytes.
        payload: Bytes,
    },
    /// A heartbeat frame (always on channel 0; another channel is [`Inbound::Invalid`]).
    Heartbeat,
    /// Input that is not a valid frame; nothing more will be decoded on this connection.
    Invalid(FrameError),
}

/// Why input was refused: what the session's `connection.close` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// The AMQP reply code: 501 FRAME_ERROR, 502 SYNTAX_ERROR, 505 UNEXPECTED_FRAME.
    pub code: u16,
    /// The reply text, naming what was wrong (and the limit it broke).
    pub text: String,
    /// The class of the method that failed to parse, or 0.
    pub class_id: u16,
    /// The method that failed to parse, or 0.
    pub method_id: u16,
}

/// What the encoder takes.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every frame sent is a method or content; boxing them would allocate once per frame"
)]
pub enum OutFrame {
    /// `AMQP 0 0 9 1`: the answer to an unsupported protocol header.
    ProtocolHeader,
    /// A method frame.
    Method {
        /// The channel.
        channel: u16,
        /// The method.
        method: AMQPClass,
    },
    /// A method that carries content (basic.deliver, basic.get-ok, basic.return): the method
    /// frame, a content header frame and as many body frames as `frame_max` requires.
    Content {
        /// The channel.
        channel: u16,
        /// The method.
        method: AMQPClass,
        /// The basic properties for the content header.
        properties: AMQPProperties,
        /// The body, shared with every other copy of the message.
        body: Bytes,
    },
    /// A heartbeat on channel 0.
    Heartbeat,
}

/// Where the decoder is in the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the 8-byte protocol header.
    ProtocolHeader,
    /// Reading frames.
    Frames,
}

/// A [`Decoder`] of client frames and an [`Encoder`] of server frames for one connection.
#[derive(Debug, Clone)]
pub struct AmqpCodec {
    phase: Phase,
    frame_max: usize,
    poisoned: bool,
}

impl Default for AmqpCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl AmqpCodec {
    /// A codec for a new connection: it expects the protocol header, then frames of at most
    /// [`FRAME_MIN_SIZE`] bytes in both directions until [`set_frame_max`](Self::set_frame_max).
    ///
    /// (RabbitMQ 3.10.8 holds the handshake to 4096 bytes and drops the socket on a larger
    /// start-ok; DESIGN.md's 8192 lets clients with many client properties through.)
    pub fn new() -> Self {
        Self {
            phase: Phase::ProtocolHeader,
            frame_max: FRAME_MIN_SIZE,
            poisoned: false,
        }
    }

    /// Sets the negotiated `frame_max` (after tune-ok): the largest frame accepted, frame header
    /// and end included, and the size the encoder splits content bodies to.
    ///
    /// AMQP's 0 ("no limit") is the handshake's to turn into a number; values below
    /// [`FRAME_MAX_FLOOR`] (0 included) are raised to it so every frame has room for a payload.
    pub fn set_frame_max(&mut self, frame_max: usize) {
        self.frame_max = frame_max.max(FRAME_MAX_FLOOR);
    }

    /// The `frame_max` in force, frame overhead included.
    pub fn frame_max(&self) -> usize {
        self.frame_max
    }

    /// Whether the decoder has yielded [`Inbound::Invalid`] or an unsupported protocol header,
    /// and stopped.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    fn decode_frame(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, FrameError> {
        let Some(header) = FrameHeader::read(src) else {
            return Ok(None);
        };
        // Judged from the header alone, before any of the payload is buffered.
        header.check(self.frame_max)?;
        let frame_len = header.frame_len();
        if src.len() < frame_len {
            // Bounded by the check above: at most `frame_max` bytes.
            src.reserve(frame_len - src.len());
            return Ok(None);
        }
        let frame = src.get(..frame_len).unwrap_or_default();
        framing::check_frame_end(header.kind, frame)?;
        let payload = frame
            .get(framing::HEADER_LEN..frame_len - 1)
            .unwrap_or_default();
        let item = match header.kind {
            FRAME_METHOD => decode_method(header.channel, payload)?,
            FRAME_HEADER => decode_content_header(header.channel, payload)?,
            FRAME_BODY => {
                let mut frame = src.split_to(frame_len);
                frame.advance(framing::HEADER_LEN);
                frame.truncate(header.payload_len());
                return Ok(Some(Inbound::Body {
                    channel: header.channel,
                    payload: frame.freeze(),
                }));
            }
            FRAME_HEARTBEAT => Inbound::Heartbeat,
            // `check` let only the four types above through.
            other => return Err(reply::unknown_frame_type(other)),
        };
        src.advance(frame_len);
        Ok(Some(item))
    }
}

/// A method frame's payload: class and method ids, then arguments.
fn decode_method(channel: u16, payload: &[u8]) -> Result<Inbound, FrameError> {
    let Some((&[c0, c1, m0, m1], arguments)) = payload.split_first_chunk::<4>() else {
        return Err(reply::method_too_short(payload.len()));
    };
    let class_id = u16::from_be_bytes([c0, c1]);
    let method_id = u16::from_be_bytes([m0, m1]);
    let Some(name) = methods::name(class_id, method_id) else {
        return Err(reply::unknown_method(class_id, method_id));
    };
    // basic.qos's prefetch-size is parsed and dropped by `amq-protocol`; refuse it here.
    if (class_id, method_id) == (60, 10) {
        let size = arguments
            .first_chunk::<4>()
            .map_or(0, |bytes| u32::from_be_bytes(*bytes));
        if size != 0 {
            return Err(reply::prefetch_size(size));
        }
    }
    // The walker first: `amq-protocol` recurses into tables without a depth limit.
    tables::check_method(class_id, method_id, arguments)
        .map_err(|cause| reply::method_arguments(name, class_id, method_id, &cause))?;
    match parse_class(payload) {
        Ok(([], method)) => Ok(Inbound::Method { channel, method }),
        Ok((rest, _)) => Err(reply::trailing_method_bytes(
            name,
            class_id,
            method_id,
            rest.len(),
        )),
        Err(_) => Err(reply::cannot_decode_method(name, class_id, method_id)),
    }
}

/// A content header frame's payload: class id, weight, body size, properties.
fn decode_content_header(channel: u16, payload: &[u8]) -> Result<Inbound, FrameError> {
    tables::check_content_header(payload).map_err(|cause| reply::content_header_table(&cause))?;
    let weight = payload
        .get(2..4)
        .and_then(|bytes| bytes.try_into().ok())
        .map_or(0, u16::from_be_bytes);
    if weight != 0 {
        return Err(reply::header_weight(weight));
    }
    match parse_content_header(payload) {
        Ok(([], header)) => Ok(Inbound::Header {
            channel,
            class_id: header.class_id,
            body_size: header.body_size,
            properties: Box::new(header.properties),
        }),
        Ok((rest, _)) => Err(reply::trailing_header_bytes(rest.len())),
        Err(_) => Err(reply::cannot_decode_content_header()),
    }
}

impl Decoder for AmqpCodec {
    type Item = Inbound;
    type Error = io::Error;

    /// `Ok(None)` until a protocol header or a whole frame is buffered; never `Err`. Bad input
    /// is [`Inbound::Invalid`] (or an unsupported [`Inbound::ProtocolHeader`]), after which the
    /// decoder discards its input and yields `Ok(None)` forever.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, io::Error> {
        if self.poisoned {
            src.clear();
            return Ok(None);
        }
        match self.phase {
            Phase::ProtocolHeader => match framing::protocol_header(src) {
                ProtocolHeader::Incomplete => Ok(None),
                ProtocolHeader::Supported => {
                    src.advance(PROTOCOL_HEADER.len());
                    self.phase = Phase::Frames;
                    Ok(Some(Inbound::ProtocolHeader { supported: true }))
                }
                ProtocolHeader::Unsupported => {
                    self.poisoned = true;
                    src.clear();
                    Ok(Some(Inbound::ProtocolHeader { supported: false }))
                }
            },
            Phase::Frames => match self.decode_frame(src) {
                Ok(item) => Ok(item),
                Err(error) => {
                    tracing::debug!(code = error.code, text = %error.text, "AMQP frame refused");
                    self.poisoned = true;
                    src.clear();
                    Ok(Some(Inbound::Invalid(error)))
                }
            },
        }
    }
}

impl Encoder<OutFrame> for AmqpCodec {
    type Error = io::Error;

    /// Writes `frame`; a content body is split into body frames of at most `frame_max` bytes
    /// (an empty body has none). Fails with [`io::ErrorKind::InvalidInput`], leaving `dst` as it
    /// was, if `amq-protocol` cannot serialise the method or properties; never panics. A method
    /// frame larger than `frame_max` (a long `connection.close` text, say) is written as is.
    fn encode(&mut self, frame: OutFrame, dst: &mut BytesMut) -> Result<(), io::Error> {
        encode::write(frame, self.frame_max, dst)
    }
}
