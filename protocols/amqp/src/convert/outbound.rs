//! The basic properties a delivery of a core message carries.

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::types::{AMQPValue, LongString, ShortString};
use mqgate_core::message::Message;

use super::{table_from_headers, DELIVERY_MODE_PERSISTENT};

/// The text properties, each with the header it is delivered under when it is too long for a
/// short string (more than 255 bytes): the name STOMP gives the property, so a STOMP consumer of
/// a re-published copy still sees it under that name.
const TEXT_PROPERTIES: [(&str, Property); 8] = [
    ("content-type", Property::ContentType),
    ("content-encoding", Property::ContentEncoding),
    ("correlation-id", Property::CorrelationId),
    ("reply-to", Property::ReplyTo),
    ("amqp-message-id", Property::MessageId),
    ("type", Property::MessageType),
    ("user-id", Property::UserId),
    ("app-id", Property::AppId),
];

/// A text property of [`Properties`](mqgate_core::message::Properties) that AMQP carries as a
/// short string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Property {
    /// `content_type`.
    ContentType,
    /// `content_encoding`.
    ContentEncoding,
    /// `correlation_id`.
    CorrelationId,
    /// `reply_to`.
    ReplyTo,
    /// `message_id`.
    MessageId,
    /// `type` (`message_type`).
    MessageType,
    /// `user_id`.
    UserId,
    /// `app_id`.
    AppId,
}

/// The basic properties of a `basic.deliver` or `basic.get-ok` carrying `message`, from any
/// protocol.
///
/// - Text properties as short strings; one longer than 255 bytes is left out of the properties
///   and delivered as a LongString header named as on STOMP (`content-type`,
///   `content-encoding`, `correlation-id`, `reply-to`, `amqp-message-id`, `type`, `user-id`,
///   `app-id`) unless the message already has a header of that name.
/// - `delivery_mode` 2 for a persistent message; absent otherwise (the core does not record
///   whether a transient message was published with `delivery_mode` 1 or without one).
/// - `priority`, `timestamp` as they are; `expiration_ms` as a decimal short string (RabbitMQ
///   would echo the publisher's text, e.g. `+5` or `0005`; the core keeps only the number).
/// - `headers`: every message header ([`table_from_headers`], sorted by key), present only
///   when there is at least one; `Str` values are LongStrings.
/// - Never `cluster_id`; [`Message::origin`] is never rendered.
pub fn delivery_properties(message: &Message) -> AMQPProperties {
    let standard = &message.properties;
    let mut table = table_from_headers(&message.headers);
    let mut properties = AMQPProperties::default();
    for (header, property) in TEXT_PROPERTIES {
        let value = match property {
            Property::ContentType => &standard.content_type,
            Property::ContentEncoding => &standard.content_encoding,
            Property::CorrelationId => &standard.correlation_id,
            Property::ReplyTo => &standard.reply_to,
            Property::MessageId => &standard.message_id,
            Property::MessageType => &standard.message_type,
            Property::UserId => &standard.user_id,
            Property::AppId => &standard.app_id,
        };
        let Some(value) = value else {
            continue;
        };
        match ShortString::try_new(value.as_str()) {
            Ok(short) => properties = with_property(properties, property, short),
            Err(_) => {
                if !table.contains_key(header) {
                    // The header names are constants far below 255 bytes.
                    table.insert(
                        ShortString::from(header),
                        AMQPValue::LongString(LongString::from(value.as_str())),
                    );
                }
            }
        }
    }
    if standard.persistent {
        properties = properties.with_delivery_mode(DELIVERY_MODE_PERSISTENT);
    }
    if let Some(priority) = standard.priority {
        properties = properties.with_priority(priority);
    }
    if let Some(seconds) = standard.timestamp {
        properties = properties.with_timestamp(seconds);
    }
    if let Some(ms) = standard.expiration_ms {
        // At most 20 digits.
        properties = properties.with_expiration(ShortString::from(ms.to_string()));
    }
    if !table.inner().is_empty() {
        properties = properties.with_headers(table);
    }
    properties
}

fn with_property(
    properties: AMQPProperties,
    property: Property,
    value: ShortString,
) -> AMQPProperties {
    match property {
        Property::ContentType => properties.with_content_type(value),
        Property::ContentEncoding => properties.with_content_encoding(value),
        Property::CorrelationId => properties.with_correlation_id(value),
        Property::ReplyTo => properties.with_reply_to(value),
        Property::MessageId => properties.with_message_id(value),
        Property::MessageType => properties.with_type(value),
        Property::UserId => properties.with_user_id(value),
        Property::AppId => properties.with_app_id(value),
    }
}
