//! Frame boundaries: the protocol header, the 7-byte frame header and what it alone decides
//! (size against `frame_max`, frame type, heartbeat channel and size), and the frame-end octet.
//!
//! Everything here reads at most the first 8 bytes of the buffer, so a frame is judged before
//! its payload is buffered; only the frame-end check needs the whole frame.

use super::{reply, FrameError, FRAME_OVERHEAD, PROTOCOL_HEADER};

/// Frame type of a method frame.
pub(super) const FRAME_METHOD: u8 = 1;
/// Frame type of a content header frame.
pub(super) const FRAME_HEADER: u8 = 2;
/// Frame type of a content body frame.
pub(super) const FRAME_BODY: u8 = 3;
/// Frame type of a heartbeat frame.
pub(super) const FRAME_HEARTBEAT: u8 = 8;
/// The octet every frame ends with.
pub(super) const FRAME_END: u8 = 0xCE;
/// Type, channel and size.
pub(super) const HEADER_LEN: usize = 7;

/// What the first bytes of a connection say about its protocol header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProtocolHeader {
    /// Fewer than 8 bytes, all matching `AMQP 0 0 9 1` so far.
    Incomplete,
    /// `AMQP 0 0 9 1`.
    Supported,
    /// Anything else, decided at the first byte that differs: another AMQP version, HTTP, TLS.
    Unsupported,
}

/// Reads the protocol header from the start of `buf`.
pub(super) fn protocol_header(buf: &[u8]) -> ProtocolHeader {
    // `zip` stops at the shorter of the two: the bytes received so far, or all 8.
    if buf
        .iter()
        .zip(PROTOCOL_HEADER)
        .any(|(got, want)| got != want)
    {
        ProtocolHeader::Unsupported
    } else if buf.len() < PROTOCOL_HEADER.len() {
        ProtocolHeader::Incomplete
    } else {
        ProtocolHeader::Supported
    }
}

/// A frame's 7-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FrameHeader {
    /// The frame type octet.
    pub(super) kind: u8,
    /// The channel.
    pub(super) channel: u16,
    /// The payload size.
    pub(super) size: u32,
}

impl FrameHeader {
    /// The header at the start of `buf`, or `None` until 7 bytes are there.
    pub(super) fn read(buf: &[u8]) -> Option<Self> {
        let (&[kind, c0, c1, s0, s1, s2, s3], _) = buf.split_first_chunk::<HEADER_LEN>()?;
        Some(Self {
            kind,
            channel: u16::from_be_bytes([c0, c1]),
            size: u32::from_be_bytes([s0, s1, s2, s3]),
        })
    }

    /// The payload size in bytes.
    pub(super) fn payload_len(&self) -> usize {
        // Lossless on every target with at least 32-bit pointers; saturating elsewhere makes
        // the size check refuse the frame.
        usize::try_from(self.size).unwrap_or(usize::MAX)
    }

    /// The whole frame's length: header, payload, frame end.
    pub(super) fn frame_len(&self) -> usize {
        self.payload_len().saturating_add(FRAME_OVERHEAD)
    }

    /// Everything the header alone can refuse, in RabbitMQ's order: the size first, then the
    /// type, then a heartbeat's channel and size.
    pub(super) fn check(&self, frame_max: usize) -> Result<(), FrameError> {
        if self.frame_len() > frame_max {
            return Err(reply::frame_too_large(self.kind, self.size, frame_max));
        }
        match self.kind {
            FRAME_METHOD | FRAME_HEADER | FRAME_BODY => Ok(()),
            FRAME_HEARTBEAT if self.channel != 0 => Err(reply::heartbeat_channel(self.channel)),
            FRAME_HEARTBEAT if self.size != 0 => Err(reply::heartbeat_payload(self.size)),
            FRAME_HEARTBEAT => Ok(()),
            other => Err(reply::unknown_frame_type(other)),
        }
    }
}

/// Checks the last octet of a whole frame of type `kind`.
pub(super) fn check_frame_end(kind: u8, frame: &[u8]) -> Result<(), FrameError> {
    match frame.last() {
        Some(&FRAME_END) => Ok(()),
        Some(&other) => Err(reply::bad_frame_end(kind, other)),
        // A frame is never empty (at least its 8 bytes of overhead); treat it as a bad end.
        None => Err(reply::bad_frame_end(kind, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_header_decides_at_the_first_wrong_byte() {
        assert_eq!(protocol_header(b""), ProtocolHeader::Incomplete);
        assert_eq!(protocol_header(b"AMQP\x00\x00"), ProtocolHeader::Incomplete);
        assert_eq!(protocol_header(b"G"), ProtocolHeader::Unsupported);
        assert_eq!(protocol_header(b"AMQP\x01"), ProtocolHeader::Unsupported);
        assert_eq!(
            protocol_header(b"AMQP\x00\x00\x09\x01"),
            ProtocolHeader::Supported
        );
        assert_eq!(
            protocol_header(b"AMQP\x00\x00\x09\x01\x01\x00"),
            ProtocolHeader::Supported
        );
        assert_eq!(
            protocol_header(b"AMQP\x00\x00\x09\x00"),
            ProtocolHeader::Unsupported
        );
    }

    #[test]
    fn header_fields_are_big_endian() {
        let header = FrameHeader::read(&[1, 0x01, 0x02, 0, 0, 0x01, 0x00, 0xFF]).unwrap();
        assert_eq!(
            header,
            FrameHeader {
                kind: 1,
                channel: 0x0102,
                size: 256
            }
        );
        assert_eq!(header.frame_len(), 264);
        assert_eq!(FrameHeader::read(&[1, 0, 0, 0, 0, 0]), None);
    }

    #[test]
    fn size_limit_includes_the_overhead() {
        let at_limit = FrameHeader {
            kind: FRAME_BODY,
            channel: 1,
            size: 8192 - 8,
        };
        assert_eq!(at_limit.check(8192), Ok(()));
        let over = FrameHeader {
            size: 8192 - 7,
            ..at_limit
        };
        assert_eq!(over.check(8192).unwrap_err().code, reply::FRAME_ERROR);
        let huge = FrameHeader {
            size: u32::MAX,
            ..at_limit
        };
        assert_eq!(huge.check(8192).unwrap_err().code, reply::FRAME_ERROR);
    }
}
