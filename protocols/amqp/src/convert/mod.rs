//! AMQP 0-9-1 content <-> core [`Message`](mqgate_core::message::Message): basic properties,
//! field tables and field values, as RabbitMQ maps them (DESIGN.md section 3).
//!
//! - [`message_from_publish`]: a `basic.publish`'s exchange, routing key, content header
//!   properties and body into a core message, refusing what RabbitMQ refuses.
//! - [`delivery_properties`]: the basic properties a `basic.deliver` / `basic.get-ok` of a core
//!   message from any protocol carries.
//! - [`headers_from_table`], [`table_from_headers`], [`value_from_amqp`], [`value_to_amqp`]:
//!   field tables and values, every type, nested tables and arrays included; [`arguments`] reads
//!   the argument tables of `queue.declare`, `exchange.declare`, `queue.bind`, `basic.consume`.
//!
//! | AMQP basic property | core [`Properties`](mqgate_core::message::Properties) |
//! |---|---|
//! | `content_type`, `content_encoding`, `correlation_id`, `message_id`, `app_id` | same names |
//! | `reply_to` | `reply_to`, verbatim both ways (a bare queue name stays bare) |
//! | `delivery_mode` 2 / 1 or absent | `persistent` true / false; delivered as 2 / absent |
//! | `priority` (octet), `timestamp` (seconds) | same names |
//! | `expiration` (short string of ms) | `expiration_ms` (see [`parse_expiration`]); delivered in decimal |
//! | `type` | `message_type` |
//! | `user_id` | `user_id` (must equal the authenticated user) |
//! | `cluster_id` | ignored (deprecated), never delivered |
//! | `headers` | [`Headers`](mqgate_core::message::Headers), every entry, `x-death` and `x-retain` included |
//!
//! | AMQP field value | core [`FieldValue`](mqgate_core::message::FieldValue) |
//! |---|---|
//! | `t` Boolean | `Bool` |
//! | `b` / `B` ShortShortInt / ShortShortUInt | `I8` / `U8` |
//! | `s` / `u` ShortInt / ShortUInt | `I16` / `U16` |
//! | `I` / `i` LongInt / LongUInt | `I32` / `U32` |
//! | `l` LongLongInt | `I64` |
//! | `f` / `d` Float / Double | `F32` / `F64` (bit patterns kept, NaN included) |
//! | `D` DecimalValue | `Decimal` |
//! | `S` LongString, valid UTF-8 | `Str` |
//! | `S` LongString, not UTF-8 | `BinaryStr` (delivered back as `S`; text protocols see it lossily decoded) |
//! | ShortString (not on the wire in tables) | `Str` (delivered as `S`) |
//! | `x` ByteArray | `Bytes` |
//! | `T` Timestamp | `Timestamp` |
//! | `F` FieldTable / `A` FieldArray | `Table` / `Array`, recursively |
//! | `V` Void | `Void` |
//!
//! Invariants:
//! - The body is never copied: the content's body and the message body are the same `Bytes`.
//! - core -> AMQP -> core is the identity on every [`FieldValue`](mqgate_core::message::FieldValue)
//!   tree (bit-exact floats), given table keys of at most 255 bytes in sorted order; AMQP ->
//!   core -> AMQP is the identity on every value except the two string cases in the table above.
//!   Text headers from STOMP and MQTT (`Str`) go out as LongStrings (`S`).
//! - Order: amq-protocol's [`FieldTable`](amq_protocol::types::FieldTable) is a `BTreeMap`, so a
//!   table arrives and leaves sorted by key (byte order), not in the publisher's wire order.
//! - Nothing a message carries is dropped on delivery, except what AMQP cannot encode: a header
//!   key longer than 255 bytes (at any depth) is left out. A standard property longer than a
//!   short string (255 bytes, e.g. an MQTT 5 response topic) is delivered as a LongString header
//!   named as on STOMP (`reply-to`, `correlation-id`, ...: see [`delivery_properties`]) unless
//!   the message already has that header.
//! - [`Message::origin`](mqgate_core::message::Message::origin) is never rendered.
//! - No panic on any input.

mod expiration;
mod inbound;
mod outbound;
mod values;

pub use expiration::{parse_expiration, MAX_EXPIRATION_MS};
pub use inbound::message_from_publish;
pub use outbound::delivery_properties;
pub use values::{
    arguments, headers_from_table, table_from_headers, value_from_amqp, value_to_amqp,
};

use mqgate_core::names::NameError;

/// `delivery_mode` of a persistent message.
pub const DELIVERY_MODE_PERSISTENT: u8 = 2;
/// `delivery_mode` of a transient message.
pub const DELIVERY_MODE_TRANSIENT: u8 = 1;

/// A `basic.publish` RabbitMQ would refuse. Every variant closes the channel with 406
/// PRECONDITION_FAILED; the `Display` text is RabbitMQ's explanation, the part of its reply text
/// after `PRECONDITION_FAILED - ` (the session's error mapping adds that prefix).
///
/// RabbitMQ checks `user_id`, then `expiration`, then `delivery_mode`, and so does
/// [`message_from_publish`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// `user_id` differs from the connection's user.
    #[error("user_id property set to '{claimed}' but authenticated user was '{authenticated}'")]
    UserIdMismatch {
        /// The property's value.
        claimed: String,
        /// The authenticated user.
        authenticated: String,
    },
    /// `expiration` is not a whole number of milliseconds from 0 to [`MAX_EXPIRATION_MS`]. The
    /// text names RabbitMQ's reason term, e.g.
    /// `invalid expiration 'abc': no_integer`, `invalid expiration '-1': {value_negative,-1}`,
    /// `invalid expiration '1.5': {leftover_string,".5"}`.
    #[error("{}", expiration::refusal_text(value))]
    InvalidExpiration {
        /// The property's value.
        value: String,
    },
    /// `delivery_mode` is neither 1 nor 2.
    #[error("invalid message: {{delivery_mode_unknown,{0}}}")]
    InvalidDeliveryMode(u8),
    /// The exchange name cannot be a core name (longer than 255 bytes, which a well-formed
    /// `basic.publish` cannot carry).
    #[error("invalid exchange name: {0}")]
    InvalidExchangeName(NameError),
}

#[cfg(test)]
mod tests;
