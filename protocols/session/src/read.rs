//! The read side's buffer: where every partial frame lives between reads.
//!
//! Invariants:
//! - All partial-frame state is in `buf` (and the codec), never in a future, so a read cancelled
//!   by `select!` loses nothing (`read_buf` appends only when it completes).
//! - The buffer never holds more than `limit + FRAME_OVERHEAD_ALLOWANCE + 1` undecoded bytes: a
//!   read asks for at most what would reach that bound, and a decoder that still wants more past
//!   the limit closes the connection with `FrameTooLarge`.
//! - An idle connection holds no read buffer. A read made with nothing buffered lands in a
//!   scratch array on the stack (alive only during the poll, never across an await) and is
//!   copied into the buffer; if it has to wait, the buffer is given back. A read that continues
//!   a partial frame goes straight into the buffer. So a connection whose socket has data
//!   whenever it is read keeps its buffer (the copy is at most `SCRATCH_SIZE` bytes, no
//!   allocation); one that drains its socket allocates the size of what arrives, once per
//!   wake-up, not per frame.

use std::future::poll_fn;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::codec::Decoder;
use tokio_util::io::poll_read_buf;

use crate::close::CloseReason;

/// Bytes a frame may take beyond `max_frame_size` before the driver's backstop closes the
/// connection: room for the header or delimiter a protocol's size limit does not count.
pub const FRAME_OVERHEAD_ALLOWANCE: usize = 16;

/// The most bytes a read from idle takes (the stack scratch array's size); later reads of the
/// same wake-up go straight into the buffer, up to `read_size` each.
const SCRATCH_SIZE: usize = 8 * 1024;

/// A read buffer bounded by a frame size limit, allocated only while bytes are in flight.
#[derive(Debug)]
pub(crate) struct FrameReader {
    buf: BytesMut,
    read_size: usize,
    eof: bool,
}

impl FrameReader {
    /// A reader taking at most `read_size` bytes per read; it allocates nothing until bytes
    /// arrive.
    pub(crate) fn new(read_size: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            read_size: read_size.max(64),
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
        poll_fn(|cx| self.poll_fill(io, limit, cx)).await
    }

    fn poll_fill<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        limit: usize,
        cx: &mut Context<'_>,
    ) -> Poll<Result<bool, CloseReason>> {
        let room = cap(limit).saturating_add(1).saturating_sub(self.buf.len());
        if room == 0 {
            return Poll::Ready(Err(CloseReason::FrameTooLarge { limit }));
        }
        let want = room.min(self.read_size);
        let read = if self.buf.is_empty() {
            ready!(self.poll_from_idle(io, want, cx))
        } else {
            // A partial frame: read straight after it.
            self.buf.reserve(want);
            ready!(poll_read_buf(
                Pin::new(io),
                cx,
                &mut (&mut self.buf).limit(want)
            ))
        };
        let read = read.map_err(|error| CloseReason::from_io(&error))?;
        if read == 0 {
            self.eof = true;
        }
        Poll::Ready(Ok(read > 0))
    }

    /// Reads with nothing buffered: into a stack array, so only the bytes received take heap
    /// memory (the buffer's spare capacity if it has some, else an allocation of their size).
    /// Waiting releases the buffer: an idle connection holds none.
    fn poll_from_idle<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        want: usize,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<usize>> {
        let mut scratch = [MaybeUninit::<u8>::uninit(); SCRATCH_SIZE];
        let mut read_buf = ReadBuf::uninit(&mut scratch[..want.min(SCRATCH_SIZE)]);
        match Pin::new(io).poll_read(cx, &mut read_buf) {
            Poll::Ready(Ok(())) => {
                let received = read_buf.filled();
                self.buf.extend_from_slice(received);
                Poll::Ready(Ok(received.len()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                self.buf = BytesMut::new();
                Poll::Pending
            }
        }
    }

    /// Gives back the memory of a large frame once it has been decoded.
    fn shrink(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 4 * self.read_size {
            self.buf = BytesMut::new();
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

    #[tokio::test]
    async fn an_idle_reader_holds_no_buffer() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let mut codec = LinesCodec::new();
        let mut reader = FrameReader::new(8192);
        assert_eq!(reader.buf.capacity(), 0);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"one\n")
            .await
            .unwrap();
        assert!(reader.fill(&mut server, 100).await.unwrap());
        assert!(reader.buf.capacity() < 64, "{}", reader.buf.capacity());
        assert_eq!(
            reader.decode(&mut codec, 100).unwrap().as_deref(),
            Some("one")
        );
        // A read that has to wait with nothing buffered gives the buffer back.
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(10),
            reader.fill(&mut server, 100),
        );
        assert!(waiting.await.is_err());
        assert_eq!(reader.buf.capacity(), 0);
        // A partial frame is kept across the wait and completed by the next read.
        tokio::io::AsyncWriteExt::write_all(&mut client, b"tw")
            .await
            .unwrap();
        assert!(reader.fill(&mut server, 100).await.unwrap());
        assert_eq!(reader.decode(&mut codec, 100).unwrap(), None);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"o\n")
            .await
            .unwrap();
        assert!(reader.fill(&mut server, 100).await.unwrap());
        assert_eq!(
            reader.decode(&mut codec, 100).unwrap().as_deref(),
            Some("two")
        );
    }
}
