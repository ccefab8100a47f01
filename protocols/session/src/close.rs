//! Why a connection closed, and what the driver measured while it was open.
//!
//! Invariants:
//! - Every connection the driver runs ends with exactly one [`CloseReason`], recorded in the
//!   [`ConnectionReport`] it returns and handed to `Session::on_close` when a session existed.
//! - Reasons carry text only where the text comes from the protocol or the session (a decoder's
//!   error, a rejection); the driver's own causes are fieldless so they can be counted.

use std::io;

/// Why a connection closed. Cheap to clone and compare, so metrics can count it and tests can
/// assert it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed its side of the connection (end of stream).
    #[error("peer closed the connection")]
    PeerClosed,
    /// The peer said goodbye in its protocol (MQTT DISCONNECT, STOMP DISCONNECT, AMQP close).
    #[error("peer disconnected")]
    Disconnected,
    /// The handshake did not finish within the configured timeout.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The handshake refused the peer (bad credentials, unsupported version, ...).
    #[error("handshake rejected: {0}")]
    HandshakeRejected(String),
    /// A frame exceeded the size limit in force when it arrived.
    #[error("frame larger than {limit} bytes")]
    FrameTooLarge {
        /// The limit in force, in bytes.
        limit: usize,
    },
    /// The peer sent bytes the codec or the session could not accept.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The codec could not encode a frame the session produced.
    #[error("could not encode a frame: {0}")]
    Encode(String),
    /// The peer was silent for longer than its keepalive or heartbeat allows.
    #[error("keepalive timed out")]
    KeepaliveTimeout,
    /// The peer did not read what it was sent: the outbound buffer stayed over its limit with
    /// no write progress for the configured stall timeout.
    #[error("slow consumer: outbound buffer full and no write progress")]
    SlowConsumer,
    /// The server is shutting down.
    #[error("server shutting down")]
    Shutdown,
    /// Reading or writing the socket failed.
    #[error("I/O error: {0}")]
    Io(io::ErrorKind),
    /// The session ended the connection for a reason of its own (taken over by a newer
    /// connection, closed by an administrator, ...).
    #[error("session ended: {0}")]
    SessionEnded(String),
    /// The driver's future was dropped before the connection closed (the task was aborted).
    #[error("connection task dropped")]
    Dropped,
}

impl CloseReason {
    /// The reason for an I/O error: an unexpected end of stream is the peer closing; anything
    /// else is recorded by kind.
    pub fn from_io(error: &io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::UnexpectedEof => Self::PeerClosed,
            kind => Self::Io(kind),
        }
    }
}

/// Counters the driver keeps for one connection, returned when it closes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Frames decoded from the peer, handshake included.
    pub frames_in: u64,
    /// Frames encoded for the peer, handshake included.
    pub frames_out: u64,
    /// Events taken from the inbox.
    pub events: u64,
    /// Write calls the writer made (one vectored write carries many frames).
    pub writes: u64,
    /// Bytes written to the peer.
    pub bytes_out: u64,
    /// The most encoded-but-unwritten bytes held at any moment.
    pub peak_outbound_bytes: usize,
}

/// What `run_connection` returns: why the connection closed and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionReport {
    /// Why it closed.
    pub reason: CloseReason,
    /// What the driver counted.
    pub stats: DriverStats,
}
