//! The body of every benchmark message: who sent it, its place in that sender's stream, and
//! when it was (meant to be) sent.
//!
//! Layout, big-endian: publisher id (8 bytes), sequence number (8 bytes), send timestamp in
//! nanoseconds since [`origin`] (8 bytes), then zero padding up to the requested size. All
//! clients of a run live in this one process, so one monotonic origin serves both ends and
//! a latency is a plain subtraction.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes of the header every payload starts with; a requested size below it is raised to it.
pub const HEADER_LEN: usize = 24;

/// The instant all timestamps count from (fixed at its first use in the process).
pub fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Nanoseconds from [`origin`] to `at` (0 for an instant before it).
pub fn nanos_since_origin(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(origin()).as_nanos()).unwrap_or(u64::MAX)
}

/// The decoded header of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The publisher's id, unique within a run.
    pub publisher: u64,
    /// The message's place in that publisher's stream, from 0.
    pub sequence: u64,
    /// When it was handed to the client to send, ns since [`origin`].
    pub sent_ns: u64,
}

/// Why a body is not a benchmark payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the header.
    #[error("payload of {0} bytes is shorter than the {HEADER_LEN}-byte header")]
    Short(usize),
}

impl Stamp {
    /// The payload: this header, then zeros up to `size` bytes (at least [`HEADER_LEN`]).
    pub fn encode(&self, size: usize) -> Bytes {
        let size = size.max(HEADER_LEN);
        let mut body = BytesMut::with_capacity(size);
        body.put_u64(self.publisher);
        body.put_u64(self.sequence);
        body.put_u64(self.sent_ns);
        body.resize(size, 0);
        body.freeze()
    }

    /// The header at the front of `body`; the padding is not checked.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let Some(header) = body.get(..HEADER_LEN) else {
            return Err(DecodeError::Short(body.len()));
        };
        let word = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&header[at..at + 8]);
            u64::from_be_bytes(bytes)
        };
        Ok(Self {
            publisher: word(0),
            sequence: word(8),
            sent_ns: word(16),
        })
    }

    /// Time from the send stamp to `received_ns` (zero if the clock reads earlier).
    pub fn latency(&self, received_ns: u64) -> Duration {
        Duration::from_nanos(received_ns.saturating_sub(self.sent_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_padding() {
        let stamp = Stamp {
            publisher: 7,
            sequence: 1 << 40,
            sent_ns: 123_456_789,
        };
        let body = stamp.encode(100);
        assert_eq!(body.len(), 100);
        assert!(body[HEADER_LEN..].iter().all(|&b| b == 0));
        assert_eq!(Stamp::decode(&body), Ok(stamp));
    }

    #[test]
    fn golden_bytes() {
        let body = Stamp {
            publisher: 1,
            sequence: 2,
            sent_ns: 0x0102_0304_0506_0708,
        }
        .encode(0);
        let mut expected = vec![0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2];
        expected.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            &body[..],
            &expected[..],
            "a size below the header is raised to it"
        );
    }

    #[test]
    fn short_body_is_refused() {
        assert_eq!(Stamp::decode(&[0; 23]), Err(DecodeError::Short(23)));
        assert_eq!(Stamp::decode(b""), Err(DecodeError::Short(0)));
    }

    #[test]
    fn latency_never_negative() {
        let stamp = Stamp {
            publisher: 0,
            sequence: 0,
            sent_ns: 1_000,
        };
        assert_eq!(stamp.latency(3_500), Duration::from_nanos(2_500));
        assert_eq!(stamp.latency(10), Duration::ZERO);
    }

    #[test]
    fn origin_is_fixed() {
        let first = origin();
        assert_eq!(origin(), first);
        assert!(nanos_since_origin(Instant::now()) < u64::MAX);
        assert_eq!(nanos_since_origin(first), 0);
    }
}
