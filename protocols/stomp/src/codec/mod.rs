//! The STOMP 1.0, 1.1 and 1.2 codec: bytes from a client into [`Frame`]s, [`ServerFrame`]s back
//! into bytes.
//!
//! Two stages, kept apart: `framing` finds where a heart-beat or a frame ends in the read
//! buffer (line ends, the blank line, `content-length` or the NUL) and checks every cap on the
//! way; `headers` then splits the header lines and unescapes them for the negotiated version.
//!
//! Invariants:
//! - **Bounded buffer.** A `content-length` is checked against the frame size limit as soon as its
//!   header line is read, before any body byte is buffered; without one, the decoder refuses the
//!   frame as soon as the buffer holds `limit` bytes and no NUL. The read buffer thus holds at
//!   most one incomplete frame of at most the limit, plus what one read adds.
//! - **Cancel-safe.** Every byte of an incomplete frame stays in the `BytesMut`; the codec keeps
//!   only a scan position over it (so a frame arriving byte by byte is examined once, not once per
//!   byte), the version, the limits and the poison flag.
//! - **Bad input is an item.** [`Inbound::Invalid`] lets the session send an ERROR frame (the
//!   error's `Display` is its `message`) and close; the decoder is then poisoned: it discards its
//!   input and yields nothing more, since a byte stream cannot be resynchronised after a bad
//!   frame. [`Decoder::decode`] never returns `Err`, and neither does `decode_eof`: a frame cut
//!   off by the end of the stream is dropped.
//! - **No panic on any input**, and no [`ServerFrame`] makes the encoder panic.
//!
//! Framing rules:
//! - An end-of-line (LF or CRLF) where a frame could start is a heart-beat: one
//!   [`Inbound::HeartBeat`] per EOL, so a run of `n` EOLs is `n` items.
//! - Lines end with LF or CRLF in every version (1.2 allows CRLF; RabbitMQ accepts it in 1.0 and
//!   1.1 too, and so do we); the CR is not part of the line.
//! - The body ends after exactly `content-length` bytes, which must be followed by a NUL
//!   ([`CodecError::BodyAfterContentLength`] otherwise), or else at the first NUL. When
//!   `content-length` is repeated, the first one frames the body, as "first one wins" says.
//! - `content-length` is decimal digits (spaces and tabs around them tolerated), and the frame it
//!   announces must fit the limit ([`CodecError::BadContentLength`]).
//! - The frame size limit counts every byte from the command to the NUL included: 64 KiB by
//!   default until [`StompCodec::set_connected`], 4 MiB after. Header lines count towards
//!   [`Limits::max_headers`] and each is at most [`Limits::max_header_len`] bytes, EOL excluded.
//! - The codec accepts a body on any command; which commands may carry one is the session's rule.
//!
//! # What `stomp-parser` 0.8 could not do, and how it was solved
//!
//! `stomp_parser::client::ClientFrame::try_from(Vec<u8>)` parses one whole STOMP 1.2 frame into
//! typed structs. It could not serve as this decoder's parser, for these reasons (each pinned by a
//! test in `tests/codec_stomp_parser.rs`, so an upgrade that lifts one shows up):
//! - **No streaming.** It takes a whole frame and needs its exact bytes; finding the frame's end
//!   (NUL or `content-length`, which it parses but does not use to frame the body) and the size
//!   limits are ours anyway. It also needs the frame copied into a `Vec<u8>` of its own.
//! - **1.2 escaping only.** It accepts `\r` in any frame (1.1 has no `\r`) and always treats `\`
//!   as an escape, so it cannot read 1.0 frames, or CONNECT/STOMP frames (never escaped), whose
//!   values contain a `\` (a passcode, say).
//! - **No raw colon in a value** (`a:b:c` is refused), which 1.0 and CONNECT frames need (a
//!   passcode or a `host` with a colon) and which RabbitMQ tolerates in every version.
//! - **No empty header value** (`x-empty:` is refused), which the specification allows.
//! - **Repeated headers lost.** A repeated known header keeps the *last* value (the specification
//!   says the first wins) and the wire order of known and custom headers is not kept.
//! - **1.0 and 1.1 frames refused by its required headers**: CONNECT must have `host` and
//!   `accept-version` (1.0 has neither); SUBSCRIBE must have `id` (optional in 1.0); ACK and NACK
//!   must have `id` *and* `transaction` (1.1 acks by `message-id` and `subscription`, and
//!   `transaction` is optional everywhere); DISCONNECT must have `receipt`.
//! - **Custom headers refused** on ACK, NACK, BEGIN, COMMIT, ABORT, UNSUBSCRIBE and DISCONNECT
//!   (ABORT not even `receipt`), though the specification lets any frame carry any header.
//! - **A body only on SEND**, and `content-length` is parsed but not obeyed: the body is
//!   whatever precedes the final byte.
//! - **No header caps**, and one error ("Error parsing frame") for every cause, so the ERROR frame
//!   could not say what was wrong.
//!
//! So framing, header splitting and unescaping are written here, over the borrowed read buffer,
//! without a copy of the body: a [`Frame`]'s body is a slice of the bytes read. `stomp-parser`
//! remains the reference for 1.2: a differential test checks that, for every 1.2 frame it accepts,
//! this decoder yields the same command, headers and body.

mod encode;
mod error;
mod frame;
mod framing;
mod headers;

use std::io;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

pub use error::CodecError;
pub use frame::{Command, Frame, ServerCommand, ServerFrame, StompVersion};

use framing::{Caps, Scanned, Scanner};
use headers::Escaping;

/// What the decoder yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A frame that passed every check.
    Frame(Frame),
    /// One end-of-line (LF or CRLF) between frames: a heart-beat. One item per EOL.
    HeartBeat,
    /// Input that is not a valid frame; nothing more will be decoded on this connection.
    Invalid(CodecError),
}

/// What the encoder writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// A server frame.
    Frame(ServerFrame),
    /// A heart-beat: a single LF.
    HeartBeat,
}

/// The decoder's caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest frame before [`StompCodec::set_connected`], in bytes, command to NUL (default
    /// 64 KiB).
    pub max_frame_before_connect: usize,
    /// The largest frame after [`StompCodec::set_connected`], in bytes, command to NUL (default
    /// 4 MiB).
    pub max_frame: usize,
    /// The most header lines in a frame (default 100).
    pub max_headers: usize,
    /// The longest header line, in bytes, end of line excluded (default 8 KiB).
    pub max_header_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_before_connect: 64 * 1024,
            max_frame: 4 * 1024 * 1024,
            max_headers: 100,
            max_header_len: 8 * 1024,
        }
    }
}

/// A [`Decoder`] of client frames and an [`Encoder`] of server frames for one connection.
#[derive(Debug, Clone)]
pub struct StompCodec {
    limits: Limits,
    version: Option<StompVersion>,
    connected: bool,
    poisoned: bool,
    scanner: Scanner,
}

impl StompCodec {
    /// A codec for a new connection: no version yet (1.0 rules: no escaping), the pre-CONNECT size
    /// limit.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            version: None,
            connected: false,
            poisoned: false,
            scanner: Scanner::default(),
        }
    }

    /// Sets the negotiated version, which selects header escaping both ways from the next frame
    /// on. CONNECT, STOMP and CONNECTED frames are never escaped.
    pub fn set_version(&mut self, version: StompVersion) {
        self.version = Some(version);
    }

    /// The negotiated version, if [`set_version`](Self::set_version) was called.
    pub fn version(&self) -> Option<StompVersion> {
        self.version
    }

    /// Switches from the pre-CONNECT frame size limit to the post-CONNECT one.
    pub fn set_connected(&mut self) {
        self.connected = true;
    }

    /// The limits this codec was made with.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The frame size limit in force now, in bytes.
    pub fn max_frame(&self) -> usize {
        if self.connected {
            self.limits.max_frame
        } else {
            self.limits.max_frame_before_connect
        }
    }

    /// Whether the decoder has yielded [`Inbound::Invalid`] and stopped.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    fn decode_item(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, CodecError> {
        let caps = Caps {
            max_frame: self.max_frame(),
            max_headers: self.limits.max_headers,
            max_header_len: self.limits.max_header_len,
        };
        match self.scanner.scan(src, caps)? {
            Scanned::Incomplete => {
                if let Some(wanted) = self.scanner.wanted() {
                    src.reserve(wanted.saturating_sub(src.len()));
                }
                Ok(None)
            }
            Scanned::HeartBeat { len } => {
                let _ = src.split_to(len);
                self.scanner.reset();
                Ok(Some(Inbound::HeartBeat))
            }
            Scanned::Frame {
                command,
                head_len,
                body_len,
                frame_len,
            } => {
                self.scanner.reset();
                if frame_len > src.len() || head_len + body_len >= frame_len {
                    return Err(CodecError::Malformed("inconsistent framing".into()));
                }
                let bytes = src.split_to(frame_len).freeze();
                let head = bytes.get(..head_len).unwrap_or(&[]);
                let escaping = Escaping::of(self.version, command.is_connect());
                let headers = headers::parse(head, escaping)?;
                let body = bytes.slice(head_len..head_len + body_len);
                Ok(Some(Inbound::Frame(Frame {
                    command,
                    headers,
                    body,
                })))
            }
        }
    }
}

impl Decoder for StompCodec {
    type Item = Inbound;
    type Error = io::Error;

    /// `Ok(None)` until a whole frame or heart-beat is buffered; never `Err`.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, io::Error> {
        if self.poisoned {
            src.clear();
            return Ok(None);
        }
        match self.decode_item(src) {
            Ok(item) => Ok(item),
            Err(error) => {
                self.poisoned = true;
                self.scanner.reset();
                src.clear();
                Ok(Some(Inbound::Invalid(error)))
            }
        }
    }

    /// As [`decode`](Self::decode); at the end of the stream an incomplete frame is dropped
    /// (never `Err`).
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, io::Error> {
        let item = self.decode(src)?;
        if item.is_none() {
            self.scanner.reset();
            src.clear();
        }
        Ok(item)
    }
}

impl Encoder<Outbound> for StompCodec {
    type Error = io::Error;

    /// Writes a frame in the negotiated version's escaping (see [`ServerFrame`]) or a heart-beat
    /// (one LF). Never fails.
    fn encode(&mut self, item: Outbound, dst: &mut BytesMut) -> Result<(), io::Error> {
        match item {
            Outbound::Frame(frame) => encode::write(&frame, self.version, dst),
            Outbound::HeartBeat => dst.extend_from_slice(b"\n"),
        }
        Ok(())
    }
}
