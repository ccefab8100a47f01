//! STOMP SEND frames <-> core [`Message`](mqgate_core::message::Message): the header and
//! property mapping of DESIGN.md section 3 (RabbitMQ's STOMP plugin conventions, with its losses
//! fixed).
//!
//! - [`message_from_send`]: a client's SEND (decoded headers, body) into a core message.
//! - [`message_frame_headers`]: the headers of the MESSAGE frame delivering a core message from
//!   any protocol; [`message_headers`] is its message part.
//!
//! | STOMP header | core |
//! |---|---|
//! | `content-type`, `content-encoding`, `correlation-id` | same properties |
//! | `reply-to` | `reply_to` (raw form, see [`Destination::to_core_reply_to`](crate::destination::Destination::to_core_reply_to)) |
//! | `persistent:true` | `persistent` (delivery mode 2) |
//! | `priority` (0-255), `expiration` (ms), `timestamp` (s) | same properties |
//! | `amqp-message-id` | `message_id` |
//! | `type`, `app-id` | `message_type`, `app_id` |
//! | `user-id` | `user_id` (must equal the authenticated user) |
//! | any other header | a `Str` header (first occurrence wins), `x-retain` included |
//!
//! Invariants:
//! - The body is never copied: the frame body and the message body are the same `Bytes`.
//! - Frame-level headers ([`FRAME_HEADERS`]) never become message headers, and a message header
//!   with one of those names never reaches a MESSAGE frame (it would contradict the frame's own,
//!   e.g. `content-length`). Every other header crosses, typed values stringified with
//!   [`FieldValue::to_text`](mqgate_core::message::FieldValue::to_text).
//! - STOMP -> core -> STOMP keeps every custom header, in order, with its value.

mod inbound;
mod outbound;

pub use inbound::message_from_send;
pub use outbound::{message_frame_headers, message_headers};

use crate::destination::DestinationError;

/// STOMP frame headers that are not message headers: never copied from a SEND into a message,
/// never copied from a message's headers into a MESSAGE frame (the frame sets its own).
pub const FRAME_HEADERS: [&str; 9] = [
    "destination",
    "receipt",
    "transaction",
    "content-length",
    "message-id",
    "subscription",
    "ack",
    "id",
    "redelivered",
];

/// `content-type` / `content_type`.
pub const CONTENT_TYPE: &str = "content-type";
/// `content-encoding` / `content_encoding`.
pub const CONTENT_ENCODING: &str = "content-encoding";
/// `correlation-id` / `correlation_id`.
pub const CORRELATION_ID: &str = "correlation-id";
/// `reply-to` / `reply_to`.
pub const REPLY_TO: &str = "reply-to";
/// `persistent:true` / delivery mode 2.
pub const PERSISTENT: &str = "persistent";
/// `priority`.
pub const PRIORITY: &str = "priority";
/// `expiration` (milliseconds).
pub const EXPIRATION: &str = "expiration";
/// `amqp-message-id` / `message_id` (STOMP's `message-id` is the delivery handle).
pub const AMQP_MESSAGE_ID: &str = "amqp-message-id";
/// `timestamp` (seconds since the epoch).
pub const TIMESTAMP: &str = "timestamp";
/// `type` / `type`.
pub const MESSAGE_TYPE: &str = "type";
/// `app-id` / `app_id`.
pub const APP_ID: &str = "app-id";
/// `user-id` / `user_id`.
pub const USER_ID: &str = "user-id";

/// A SEND could not become a message. The text is the ERROR frame's `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// The destination cannot be sent to (`/temp-queue/`).
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// `user-id` differs from the authenticated user (RabbitMQ refuses it too).
    #[error("user-id header '{claimed}' does not match the authenticated user '{user}'")]
    UserIdMismatch {
        /// The header's value.
        claimed: String,
        /// The connection's user.
        user: String,
    },
    /// A property header with a value of the wrong type.
    #[error("Invalid header '{name}': '{value}' is not {expected}")]
    InvalidHeader {
        /// The header.
        name: String,
        /// Its value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// `reply-to` is still a `/temp-queue/`: the session must rewrite it first.
    #[error("reply-to '{0}' was not resolved to a reply queue")]
    UnresolvedTempQueue(String),
}

#[cfg(test)]
mod tests;
