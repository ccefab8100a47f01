//! The session: a synchronous state machine between frames and the core.
//!
//! Invariants:
//! - A session never touches the socket and never awaits. It reacts to one input at a time (a
//!   frame, an event, a tick, a shutdown) by pushing frames into an [`Outbound`] and answering a
//!   [`Step`]; the driver encodes and writes what it pushed, in order.
//! - When a callback answers [`Step::Close`], the frames it pushed are still sent (bounded by the
//!   drain timeout) before the connection closes, so an error frame reaches the peer.
//! - `on_close` is called exactly once, after the last other callback, whatever ended the
//!   connection (even when the driver's future is dropped).

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::codec::{Decoder, Encoder};

use crate::close::CloseReason;

/// What the driver does after a session callback.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Step {
    /// Keep the connection open.
    Continue,
    /// Send what was pushed to the [`Outbound`], then close for this reason.
    Close(CloseReason),
}

/// Frames a session callback produced, in the order they go on the wire.
///
/// The driver empties it after every callback, so it holds one callback's output at most; a
/// session should keep that output proportional to the input that caused it.
#[derive(Debug)]
pub struct Outbound<F> {
    frames: Vec<F>,
}

impl<F> Outbound<F> {
    /// An empty outbound buffer.
    pub fn new() -> Self {
        Self { frames: Vec::new() }
    }

    /// Queues a frame after the ones already pushed.
    pub fn push(&mut self, frame: F) {
        self.frames.push(frame);
    }

    /// Number of frames pushed and not yet taken by the driver.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Takes the queued frames, oldest first (for the driver, and for session tests).
    pub fn drain(&mut self) -> impl Iterator<Item = F> + '_ {
        self.frames.drain(..)
    }
}

impl<F> Default for Outbound<F> {
    fn default() -> Self {
        Self::new()
    }
}

/// One connection's protocol state machine after its handshake.
///
/// The driver calls it from one task, one callback at a time; none may block.
pub trait Session: Send + 'static {
    /// The codec that frames the protocol; the same value serves the handshake and the session.
    type Codec: Decoder<Item = Self::InFrame, Error: std::fmt::Display>
        + Encoder<Self::OutFrame, Error: std::fmt::Display>
        + Send
        + 'static;
    /// A frame from the peer.
    type InFrame: Send;
    /// A frame for the peer.
    type OutFrame: Send;
    /// What the core tells the session (see [`Inbox`](crate::Inbox)).
    type Event: Send;

    /// Handles one frame from the peer.
    fn on_frame(&mut self, frame: Self::InFrame, out: &mut Outbound<Self::OutFrame>) -> Step;

    /// Handles one event from the core.
    fn on_event(&mut self, event: Self::Event, out: &mut Outbound<Self::OutFrame>) -> Step;

    /// Called every [`tick_interval`](Session::tick_interval): check keepalives, send
    /// heartbeats, expire timers. Answer `Step::Close(CloseReason::KeepaliveTimeout)` when the
    /// peer has been silent too long.
    fn on_tick(&mut self, now: Instant, out: &mut Outbound<Self::OutFrame>) -> Step;

    /// How often to call [`on_tick`](Session::on_tick); `None` for never. Read again after every
    /// tick, so it may change.
    fn tick_interval(&self) -> Option<Duration>;

    /// Called once the driver has handled what was ready (a run of buffered frames, a batch of
    /// events) and before it waits again: a session that defers work to do it once per batch
    /// (settling many acknowledgements under one lock) does it here. It must not be needed for
    /// correctness beyond that: `on_close` still runs last.
    fn on_batch_end(&mut self) {}

    /// True while the driver must not read frames from the peer (a publisher blocked by the
    /// engine's flow control). Events and ticks still arrive; the driver asks again after each
    /// callback, so an event can lift the pause.
    fn reads_paused(&self) -> bool {
        false
    }

    /// The largest frame the peer may send now, in bytes. The driver closes with
    /// [`CloseReason::FrameTooLarge`] when an incomplete frame grows past it (plus
    /// [`FRAME_OVERHEAD_ALLOWANCE`](crate::FRAME_OVERHEAD_ALLOWANCE)), without buffering more.
    /// The codec should also check the size its header declares.
    fn max_frame_size(&self) -> usize;

    /// The server is shutting down: push the protocol's goodbye (MQTT 5 DISCONNECT 0x8B, STOMP
    /// ERROR, AMQP connection.close 320). The driver then flushes and closes with
    /// [`CloseReason::Shutdown`].
    fn on_shutdown(&mut self, out: &mut Outbound<Self::OutFrame>);

    /// The connection closed: release core resources (consumers, unacked deliveries, will
    /// messages). Called exactly once, after every other callback.
    fn on_close(&mut self, reason: &CloseReason);
}
