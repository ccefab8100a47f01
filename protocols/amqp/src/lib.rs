//! mqgate's AMQP 0-9-1 adapter (RabbitMQ's dialect and extensions).
//!
//! The flow it serves:
//!
//! ```text
//! socket -> codec (AmqpCodec: bytes to frames) -> handshake (start/tune/open)
//!        -> session (AmqpSession: frames to core calls, one core session per channel) -> core
//!        -> session (core events to deliver/ack/return/cancel) -> codec -> socket
//! ```
//!
//! [`serve::serve`] runs one connection on the shared driver (`mqgate_session`):
//! [`handshake::AmqpHandshake`] negotiates and authenticates ([`mechanisms`]) and opens the
//! [`session::AmqpSession`], a synchronous state machine whose channels' events arrive merged
//! through one [`inbox::ChannelInbox`]. Messages convert in [`convert`]; every failure's reply
//! code and whether it closes the channel or the connection is chosen in [`errors`].
//!
//! Invariants worth naming:
//! - Sessions never write to sockets; they push frames into the driver's `Outbound`.
//! - A confirm's `basic.ack` (and a transaction's `commit-ok`) follows the engine's
//!   confirmation, never precedes it.
//! - Channel exceptions close the channel, connection exceptions the connection, each with a
//!   RabbitMQ-style text naming the resource.
//! - Every per-connection collection is bounded by a [`settings`] limit or by the engine.
//! - No panic on any input; no `unsafe`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod codec;
pub mod convert;
pub mod errors;
pub mod handshake;
pub mod inbox;
pub mod mechanisms;
pub mod serve;
pub mod session;
pub mod settings;

pub use serve::{serve, AmqpContext};
pub use settings::AmqpSettings;
