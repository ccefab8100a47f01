//! The read side's buffer: where every partial frame lives between reads.
//!
//! Invariants:
//! - All partial-frame state is in `buf` (and the codec), never in a future, so a read cancelled
//!   by `select!` loses nothing (`read_buf` appends only when it completes).
//! - The buffer never holds more than `limit + FRAME_OVERHEAD_ALLOWANCE + 1` undecoded bytes: a
//!   read asks for at most what would reach that bound, and a decoder that still wants more past
//!   the limit closes the connection with `FrameTooLarge`.

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::codec::Decoder;

use crate::close::CloseReason;

/// Bytes a frame may take beyond `max_frame_size` before the driver's backstop closes the
/// connection: room for the header or delimiter a protocol's size limit does not count.
pub const FRAME_OVERHEAD_ALLOWANCE: usize = 16;

/// A read buffer bounded by a frame size limit.
#[derive(Debug)]
pub(crate) struct FrameReader {
    buf: BytesMut,
    read_size: usize,
    eof: bool,
}

impl FrameReader {
    pub(crate) fn new(read_size: usize) -> Self {
        let read_size = read_size.max(64);
        Self {
            buf: BytesMut::with_capacity(read_size),
            read_size,
            eof: false,
        }
    }

    /// True once the peer ended the stream.
    pub(crate) fn is_eof(&self) -> bool {
        self.eof
    }

    /// Decodes the next complete frame, if the buffer holds one. After end of stream, uses
    /// `decode_eof`; `Ok(None)` then means the stream is finished.
    pub(crate) fn decode<C: Decoder<Error: std::fmt::Display>>(
        &mut self,
        codec: &mut C,
        limit: usize,
    ) -> Result<Option<C::Item>, CloseReason> {
        if self.eof {
            // A frame cut off by the end of stream is the peer closing, not a protocol error.
            return Ok(codec.decode_eof(&mut self.buf).unwrap_or(None));
        }
        match codec.decode(&mut self.buf) {
            Ok(Some(frame)) => Ok(Some(frame)),
            Ok(None) if self.buf.len() > cap(limit) => Err(CloseReason::FrameTooLarge { limit }),
            Ok(None) => {
                self.shrink();
                Ok(None)
            }
            Err(error) => Err(CloseReason::Protocol(error.to_string())),
        }
    }

    /// Reads once from `io` into the buffer, never past the frame limit. Returns `Ok(false)` at
    /// end of stream. Cancel-safe.
    pub(crate) async fn fill<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        limit: usize,
    ) -> Result<bool, CloseReason> {
        let room = cap(limit).saturating_add(1).saturating_sub(self.buf.len());
        if room == 0 {
            return Err(CloseReason::FrameTooLarge { limit });
        }
        let want = room.min(self.read_size);
        self.buf.reserve(want);
        let read = io
            .read_buf(&mut (&mut self.buf).limit(want))
            .await
            .map_err(|error| CloseReason::from_io(&error))?;
        if read == 0 {
            self.eof = true;
        }
        Ok(read > 0)
    }

    /// Gives back the memory of a large frame once it has been decoded.
    fn shrink(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 4 * self.read_size {
            self.buf = BytesMut::with_capacity(self.read_size);
        }
    }
}

fn cap(limit: usize) -> usize {
    limit.saturating_add(FRAME_OVERHEAD_ALLOWANCE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::codec::LinesCodec;

    #[tokio::test]
    async fn an_endless_frame_never_grows_the_buffer_past_the_limit() {
        let endless = vec![b'x'; 1024 * 1024];
        let mut io: &[u8] = &endless;
        let mut codec = LinesCodec::new();
        let mut reader = FrameReader::new(512);
        let reason = loop {
            if let Err(reason) = reader.decode(&mut codec, 1000) {
                break reason;
            }
            if let Err(reason) = reader.fill(&mut io, 1000).await {
                break reason;
            }
            assert!(reader.buf.len() <= 1000 + FRAME_OVERHEAD_ALLOWANCE + 1);
        };
        assert_eq!(reason, CloseReason::FrameTooLarge { limit: 1000 });
        assert!(
            reader.buf.capacity() <= 4 * 1024,
            "{}",
            reader.buf.capacity()
        );
        assert!(
            io.len() > endless.len() - 2048,
            "stopped reading at the limit"
        );
    }

    #[tokio::test]
    async fn a_frame_cut_by_end_of_stream_ends_quietly() {
        let mut io: &[u8] = b"one\ntw";
        let mut codec = LinesCodec::new();
        let mut reader = FrameReader::new(64);
        assert!(reader.fill(&mut io, 100).await.unwrap());
        assert_eq!(
            reader.decode(&mut codec, 100).unwrap().as_deref(),
            Some("one")
        );
        assert_eq!(reader.decode(&mut codec, 100).unwrap(), None);
        assert!(!reader.fill(&mut io, 100).await.unwrap());
        assert!(reader.is_eof());
        // LinesCodec yields the unterminated rest at end of stream.
        assert_eq!(
            reader.decode(&mut codec, 100).unwrap().as_deref(),
            Some("tw")
        );
        assert_eq!(reader.decode(&mut codec, 100).unwrap(), None);
    }
}
