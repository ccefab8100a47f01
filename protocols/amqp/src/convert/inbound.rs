//! A `basic.publish`'s content into a core message.

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::types::ShortString;
use bytes::Bytes;
use mqgate_core::message::{Headers, Message, Properties};
use mqgate_core::names::{ExchangeName, RoutingKeyText};

use super::{
    headers_from_table, parse_expiration, ConvertError, DELIVERY_MODE_PERSISTENT,
    DELIVERY_MODE_TRANSIENT,
};

/// The core message for a `basic.publish` to `exchange` with `routing_key`, whose content
/// header carried `properties` and whose body frames made `body` (shared, not copied), from a
/// connection authenticated as `authenticated_user`.
///
/// Checked in RabbitMQ's order, each failure a [`ConvertError`] for a 406 channel close:
/// 1. `user_id`, when set, must equal `authenticated_user` ([`ConvertError::UserIdMismatch`]);
/// 2. `expiration`, when set, must parse ([`parse_expiration`]);
/// 3. `delivery_mode`, when set, must be 1 or 2 ([`ConvertError::InvalidDeliveryMode`]).
///
/// Then every property maps as in the module table: `delivery_mode` 2 makes the message
/// persistent, 1 or absent transient; `type` is `message_type`; `reply_to` is kept verbatim;
/// `cluster_id` is ignored; the `headers` table becomes the message's headers
/// ([`headers_from_table`], sorted by key). [`Message::origin`] is left `None` for the session.
pub fn message_from_publish(
    exchange: &str,
    routing_key: &str,
    properties: &AMQPProperties,
    body: Bytes,
    authenticated_user: &str,
) -> Result<Message, ConvertError> {
    if let Some(claimed) = properties.user_id() {
        if claimed.as_str() != authenticated_user {
            return Err(ConvertError::UserIdMismatch {
                claimed: claimed.as_str().to_owned(),
                authenticated: authenticated_user.to_owned(),
            });
        }
    }
    let expiration_ms = properties
        .expiration()
        .as_ref()
        .map(|text| parse_expiration(text.as_str()))
        .transpose()?;
    let persistent = match *properties.delivery_mode() {
        None | Some(DELIVERY_MODE_TRANSIENT) => false,
        Some(DELIVERY_MODE_PERSISTENT) => true,
        Some(other) => return Err(ConvertError::InvalidDeliveryMode(other)),
    };
    let exchange = ExchangeName::new(exchange).map_err(ConvertError::InvalidExchangeName)?;
    Ok(Message {
        exchange,
        routing_key: RoutingKeyText::from(routing_key),
        properties: Properties {
            content_type: text(properties.content_type()),
            content_encoding: text(properties.content_encoding()),
            correlation_id: text(properties.correlation_id()),
            reply_to: text(properties.reply_to()),
            message_id: text(properties.message_id()),
            timestamp: *properties.timestamp(),
            expiration_ms,
            priority: *properties.priority(),
            persistent,
            user_id: text(properties.user_id()),
            app_id: text(properties.app_id()),
            message_type: text(properties.kind()),
        },
        headers: properties
            .headers()
            .as_ref()
            .map_or_else(Headers::new, headers_from_table),
        body,
        origin: None,
    })
}

fn text(value: &Option<ShortString>) -> Option<String> {
    value.as_ref().map(|text| text.as_str().to_owned())
}
