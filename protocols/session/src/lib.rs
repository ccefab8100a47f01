//! The connection driver shared by mqgate's protocol adapters (MQTT, STOMP, AMQP).
//!
//! It serves one direction of flow and its return:
//!
//! ```text
//! socket -> codec -> session -> core -> session -> codec -> socket
//! ```
//!
//! [`run_connection`] takes a byte stream and a protocol's codec and [`Handshake`]. The handshake
//! reads and writes frames through a [`FramedIo`] under a timeout and a pre-authentication frame
//! limit, and either produces a [`Session`] with its [`Inbox`] of core events, or a
//! [`CloseReason`] after its refusal is flushed. The session is a synchronous state machine:
//! frames, events, ticks and shutdown go in, frames come out through an [`Outbound`], and a
//! [`Step`] says whether to go on. The driver decodes in the caller's task, encodes there too,
//! and hands the bytes to a writer task that batches them into vectored writes.
//!
//! Invariants worth naming:
//! - Bad or slow peers never grow memory without bound: the read buffer stops at the session's
//!   `max_frame_size`, and encoded-but-unwritten bytes at `DriverConfig::max_outbound_bytes`
//!   (past it the driver stops taking events and frames; a writer stalled that long is closed
//!   as a [`CloseReason::SlowConsumer`]).
//! - Frame reads are cancel-safe: partial frames live in the read buffer, never in a future.
//! - Every connection ends with exactly one [`CloseReason`], returned in a [`ConnectionReport`]
//!   and given to `Session::on_close`, which runs exactly once.
//! - No code here panics on input, and none is `unsafe`.

mod close;
mod config;
mod driver;
mod framed;
mod handshake;
mod inbox;
pub mod login;
pub mod password_pool;
mod read;
mod session;
mod writer;

pub use close::{CloseReason, ConnectionReport, DriverStats};
pub use config::DriverConfig;
pub use driver::{run_connection, EVENT_BATCH};
pub use framed::FramedIo;
pub use handshake::{Accepted, CodecOf, Handshake};
pub use inbox::{Inbox, NoEvents};
pub use read::FRAME_OVERHEAD_ALLOWANCE;
pub use session::{Outbound, Session, Step};
