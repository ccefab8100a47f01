//! MQTT PUBLISH <-> core [`Message`](mqgate_core::message::Message): the cross-protocol mapping
//! of DESIGN.md section 3 (RabbitMQ's MQTT plugin conventions, with its losses fixed).
//!
//! - [`message_from_publish`]: a client's PUBLISH (and v5 properties) into a core message on
//!   the MQTT exchange (`amq.topic`), routing key from [`crate::topic::topic_to_routing_key`].
//! - [`publish_from_message`]: a core message from any protocol into a PUBLISH for a subscriber,
//!   with v5 properties when the client speaks v5.
//! - [`packet`]: reads and sets a [`Publish`](rumqttd::protocol::Publish)'s QoS, packet id and
//!   DUP flag, which rumqttd keeps crate-private.
//!
//! Invariants:
//! - The body is never copied: payload and body are the same [`bytes::Bytes`].
//! - Nothing is silently dropped: every header becomes a user property (typed values
//!   stringified), and the standard properties MQTT 5 has no field for travel as user
//!   properties named as on STOMP ([`AMQP_MESSAGE_ID`], [`TIMESTAMP`], ...).
//! - v5 -> core -> v5 is exact for payload, user properties (in order, first occurrence of a
//!   repeated key), content type, response topic, binary correlation data, payload format
//!   indicator and expiry (whole seconds).
//! - The internal headers below are set by the gateway only: a user property with one of these
//!   names is ignored on the way in, and the headers never reach an MQTT client as user
//!   properties.

mod inbound;
mod outbound;
pub mod packet;

pub use inbound::message_from_publish;
pub use outbound::publish_from_message;
pub use packet::PublishHeader;

pub use mqgate_core::retained::RETAIN_HEADER;

/// The exchange MQTT publishes to and subscribes on unless configured otherwise (RabbitMQ's
/// `mqtt.exchange`).
pub const DEFAULT_EXCHANGE: &str = "amq.topic";

/// Header carrying the QoS an MQTT client published with (`I64`), as RabbitMQ names it.
pub const QOS_HEADER: &str = "x-mqtt-publish-qos";

/// Header carrying the v5 payload format indicator (`I64`: 0 bytes, 1 UTF-8).
pub const PAYLOAD_FORMAT_HEADER: &str = "x-mqtt-payload-format";

/// Header carrying v5 correlation data as `FieldValue::Bytes`, so binary data round-trips even
/// though the core's `correlation_id` is text.
pub const CORRELATION_DATA_HEADER: &str = "x-correlation-data";

/// User property carrying the AMQP `message_id` (STOMP's `amqp-message-id`).
pub const AMQP_MESSAGE_ID: &str = "amqp-message-id";
/// User property carrying the AMQP `timestamp` (seconds since the epoch).
pub const TIMESTAMP: &str = "timestamp";
/// User property carrying the AMQP `app_id`.
pub const APP_ID: &str = "app-id";
/// User property carrying the AMQP `type`.
pub const MESSAGE_TYPE: &str = "type";
/// User property carrying the AMQP `user_id`.
pub const USER_ID: &str = "user-id";
/// User property carrying the AMQP `content_encoding`.
pub const CONTENT_ENCODING: &str = "content-encoding";
/// User property carrying the AMQP `priority`.
pub const PRIORITY: &str = "priority";

/// Reply-to prefix for an MQTT response topic: `/exchange/{exchange}/{routing key}`, the
/// destination syntax STOMP and RabbitMQ understand. Any other reply-to (a bare queue name) is
/// passed through untouched.
pub const EXCHANGE_REPLY_PREFIX: &str = "/exchange/";

/// Reply-to prefix for a topic destination (STOMP's `/topic/{routing key}`), read on the way out.
pub const TOPIC_REPLY_PREFIX: &str = "/topic/";

/// The MQTT protocol family a PUBLISH is built for: only v5 has properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttVersion {
    /// MQTT 3.1 and 3.1.1: no properties.
    V3,
    /// MQTT 5.0.
    V5,
}

/// Whether `name` is a header this module sets and consumes itself.
fn is_internal_header(name: &str) -> bool {
    name.starts_with("x-mqtt-") || name == RETAIN_HEADER || name == CORRELATION_DATA_HEADER
}

#[cfg(test)]
mod tests;
