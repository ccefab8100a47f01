//! The handshake: the async phase before a session exists.
//!
//! Invariants:
//! - The driver runs [`Handshake::run`] under `DriverConfig::handshake_timeout` and with
//!   `DriverConfig::handshake_max_frame_size` as the initial frame limit, so an unauthenticated
//!   peer can hold neither time nor memory.
//! - A rejection is an `Err(CloseReason)`. Frames fed to the [`FramedIo`] before it (a CONNACK
//!   with an error code, a STOMP ERROR, an AMQP connection.close) are flushed, bounded by the
//!   drain timeout, before the connection closes.
//! - An accepted handshake hands over its session and the inbox its events arrive on; frames fed
//!   and not flushed go out before anything the session sends.

use std::future::Future;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::close::CloseReason;
use crate::framed::FramedIo;
use crate::inbox::Inbox;
use crate::session::Session;

/// The codec of the session a handshake produces.
pub type CodecOf<H> = <<H as Handshake>::Session as Session>::Codec;

/// What an accepted handshake hands to the driver.
#[derive(Debug)]
pub struct Accepted<S, I> {
    /// The session, ready for frames.
    pub session: S,
    /// Where its events arrive (the core's outbox receiver, or a channel).
    pub inbox: I,
}

/// One protocol's connection handshake (MQTT CONNECT/CONNACK, STOMP CONNECT/CONNECTED, AMQP
/// start/tune/open), consumed when the connection starts.
pub trait Handshake: Send + 'static {
    /// The session an accepted handshake produces.
    type Session: Session;
    /// The inbox the session's events arrive on.
    type Inbox: Inbox<Event = <Self::Session as Session>::Event>;

    /// Reads and writes frames through `io` until the peer is accepted or rejected. To reject,
    /// feed the protocol's refusal and return `Err(CloseReason::HandshakeRejected(..))` (or
    /// propagate the reason `io` returned).
    fn run<T>(
        self,
        io: &mut FramedIo<T, CodecOf<Self>>,
    ) -> impl Future<Output = Result<Accepted<Self::Session, Self::Inbox>, CloseReason>> + Send
    where
        T: AsyncRead + AsyncWrite + Unpin + Send;
}
