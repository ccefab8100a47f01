//! mqgate's STOMP 1.0, 1.1 and 1.2 adapter.
//!
//! The flow it serves:
//!
//! ```text
//! socket -> codec (StompCodec: bytes to frames) -> handshake (CONNECT/CONNECTED)
//!        -> session (StompSession: frames to core calls) -> core
//!        -> session (core events to MESSAGE/RECEIPT/ERROR) -> codec -> socket
//! ```
//!
//! [`serve::serve`] runs one connection on the shared driver (`mqgate_session`):
//! [`handshake::StompHandshake`] negotiates and authenticates and opens the
//! [`session::StompSession`], a synchronous state machine. Destinations translate at the edge
//! ([`destination`]), messages in [`convert`]; every failure's ERROR frame is chosen in
//! [`errors`].
//!
//! Invariants worth naming:
//! - Sessions never write to sockets; they push frames into the driver's `Outbound`.
//! - A SEND's RECEIPT follows the core's confirmation, never precedes it.
//! - Every ERROR frame is followed by a close.
//! - Every per-connection collection is bounded by a [`settings`] limit.
//! - No panic on any input; no `unsafe`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod codec;
pub mod convert;
pub mod destination;
pub mod errors;
pub mod handshake;
pub mod serve;
pub mod session;
pub mod settings;

pub use serve::{serve, StompContext};
pub use settings::StompSettings;
