//! Frame-at-a-time IO for the handshake phase.
//!
//! Invariants:
//! - [`FramedIo::read_frame`] is cancel-safe: partial frames stay in the read buffer, and a frame
//!   past the handshake's size limit closes the connection before more bytes are buffered.
//! - Bytes the peer pipelined after its handshake frames stay in the read buffer and are the
//!   session's first input; frames fed and not flushed are the first bytes the writer sends.
//!   Nothing is lost or reordered between the handshake and the session.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

use crate::close::{CloseReason, DriverStats};
use crate::read::FrameReader;

/// The stream, its codec and its buffers while the handshake runs.
#[derive(Debug)]
pub struct FramedIo<T, C> {
    io: T,
    codec: C,
    reader: FrameReader,
    write_buf: BytesMut,
    max_frame_size: usize,
    stats: DriverStats,
}

impl<T, C> FramedIo<T, C> {
    /// Wraps a stream. `max_frame_size` bounds frames read; `read_buffer_size` is the read
    /// buffer's initial capacity and the most bytes taken per read.
    pub fn new(io: T, codec: C, max_frame_size: usize, read_buffer_size: usize) -> Self {
        Self {
            io,
            codec,
            reader: FrameReader::new(read_buffer_size),
            write_buf: BytesMut::new(),
            max_frame_size,
            stats: DriverStats::default(),
        }
    }

    /// The codec, e.g. to read the protocol version it negotiated.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// The codec, e.g. to switch it to the protocol version the peer asked for.
    pub fn codec_mut(&mut self) -> &mut C {
        &mut self.codec
    }

    /// The largest frame [`read_frame`](FramedIo::read_frame) accepts now.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Changes the frame size limit, e.g. after AMQP's tune-ok.
    pub fn set_max_frame_size(&mut self, max_frame_size: usize) {
        self.max_frame_size = max_frame_size;
    }

    /// Bytes encoded by [`feed`](FramedIo::feed) and not yet written.
    pub fn buffered_out(&self) -> usize {
        self.write_buf.len()
    }

    pub(crate) fn stats(&self) -> DriverStats {
        self.stats
    }

    pub(crate) fn into_parts(self) -> (T, C, FrameReader, BytesMut, DriverStats) {
        (self.io, self.codec, self.reader, self.write_buf, self.stats)
    }
}

impl<T, C> FramedIo<T, C>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    /// Reads the next frame. Errors are the reason to close: [`CloseReason::PeerClosed`] at end
    /// of stream, [`CloseReason::FrameTooLarge`], [`CloseReason::Protocol`] for a decoder error,
    /// [`CloseReason::Io`]. Cancel-safe.
    pub async fn read_frame(&mut self) -> Result<C::Item, CloseReason>
    where
        C: Decoder<Error: std::fmt::Display>,
    {
        loop {
            if let Some(frame) = self.reader.decode(&mut self.codec, self.max_frame_size)? {
                self.stats.frames_in += 1;
                return Ok(frame);
            }
            if self.reader.is_eof() || !self.reader.fill(&mut self.io, self.max_frame_size).await? {
                return Err(CloseReason::PeerClosed);
            }
        }
    }

    /// Encodes a frame into the write buffer without writing it. Frames still buffered when the
    /// handshake ends are sent first, by the session's writer or before the rejection closes.
    pub fn feed<F>(&mut self, frame: F) -> Result<(), CloseReason>
    where
        C: Encoder<F, Error: std::fmt::Display>,
    {
        self.codec
            .encode(frame, &mut self.write_buf)
            .map_err(|error| CloseReason::Encode(error.to_string()))?;
        self.stats.frames_out += 1;
        Ok(())
    }

    /// Writes everything fed so far.
    pub async fn flush(&mut self) -> Result<(), CloseReason> {
        while !self.write_buf.is_empty() {
            let written = self
                .io
                .write_buf(&mut self.write_buf)
                .await
                .map_err(|error| CloseReason::from_io(&error))?;
            if written == 0 {
                return Err(CloseReason::Io(std::io::ErrorKind::WriteZero));
            }
            self.stats.writes += 1;
            self.stats.bytes_out += written as u64;
        }
        self.io
            .flush()
            .await
            .map_err(|error| CloseReason::from_io(&error))
    }

    /// Feeds a frame and flushes.
    pub async fn send<F>(&mut self, frame: F) -> Result<(), CloseReason>
    where
        C: Encoder<F, Error: std::fmt::Display>,
    {
        self.feed(frame)?;
        self.flush().await
    }

    /// Flushes and shuts down the write side, ignoring errors: the connection is closing.
    pub(crate) async fn close(&mut self) {
        if self.flush().await.is_ok() {
            let _ = self.io.shutdown().await;
        }
    }
}
