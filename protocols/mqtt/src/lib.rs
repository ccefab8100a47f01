//! mqgate's MQTT 3.1, 3.1.1 and 5.0 adapter.
//!
//! The flow it serves:
//!
//! ```text
//! socket -> codec (MqttCodec: bytes to rumqttd packets) -> handshake (CONNECT/CONNACK)
//!        -> session (MqttSession: packets to core calls) -> core
//!        -> session (core events to packets) -> codec -> socket
//! ```
//!
//! [`serve::serve`] runs one connection on the shared driver (`mqgate_session`):
//! [`handshake::MqttHandshake`] authenticates, claims the client id in the [`registry`] and
//! opens the [`session::MqttSession`], a synchronous state machine. Topics translate at the edge
//! ([`topic`]), messages in [`convert`]; every failure's wire answer is chosen in [`errors`].
//!
//! Invariants worth naming:
//! - Sessions never write to sockets; they push packets into the driver's `Outbound`.
//! - A positive acknowledgement of a client publish (PUBACK, PUBREC) follows the core's
//!   confirmation, never precedes it.
//! - Every per-session collection is bounded by a Receive Maximum or a [`settings`] limit.
//! - No panic on any input; no `unsafe`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod codec;
pub mod convert;
pub mod errors;
pub mod handshake;
pub mod registry;
pub mod serve;
pub mod session;
pub mod settings;
pub mod topic;

pub use serve::{serve, MqttContext};
pub use settings::MqttSettings;
