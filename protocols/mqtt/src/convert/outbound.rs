//! A core message into a PUBLISH for a subscriber.

use std::time::Duration;

use bytes::Bytes;
use mqgate_core::message::{FieldValue, Message};
use rumqttd::protocol::{Publish, PublishProperties};

use super::packet::{build_publish, PublishHeader};
use super::{
    is_internal_header, MqttVersion, AMQP_MESSAGE_ID, APP_ID, CONTENT_ENCODING,
    CORRELATION_DATA_HEADER, EXCHANGE_REPLY_PREFIX, MESSAGE_TYPE, PAYLOAD_FORMAT_HEADER, PRIORITY,
    TIMESTAMP, TOPIC_REPLY_PREFIX, USER_ID,
};
use crate::topic::routing_key_to_topic;

/// The PUBLISH (and, for v5, its properties) delivering `message` to a subscriber.
///
/// `topic` is [`routing_key_to_topic`] of the routing key, which the session computes (and
/// checks with [`validate_topic_name`](crate::topic::validate_topic_name)) once per routing key,
/// not per delivery; the payload is the body, shared, not copied. `header` gives the delivery QoS,
/// packet id and DUP flag; `retain` the retain flag (the session decides: set for retained
/// messages sent on subscribe, or kept with Retain As Published).
///
/// v5 properties (`None` for [`MqttVersion::V3`], and when none would be set):
/// - message expiry interval: `remaining` when given (the session passes the time left after
///   queueing), else `expiration_ms`; rounded up to whole seconds, capped at `u32::MAX`;
/// - content type; response topic from `reply_to` (`/exchange/{x}/{key}` and `/topic/{key}`
///   give the topic of `key`; anything else, such as a bare queue name, stays as is);
/// - correlation data from [`CORRELATION_DATA_HEADER`], else the bytes of `correlation_id`;
/// - payload format indicator from [`PAYLOAD_FORMAT_HEADER`];
/// - user properties: every header in order, typed values stringified with
///   [`FieldValue::to_text`], except the internal ones this module consumes; then the
///   standard properties MQTT has no field for (`amqp-message-id`, `timestamp`, `app-id`,
///   `type`, `user-id`, `content-encoding`, `priority`).
///
/// Subscription identifiers are the session's to add.
pub fn publish_from_message(
    message: &Message,
    topic: Bytes,
    header: PublishHeader,
    retain: bool,
    version: MqttVersion,
    remaining: Option<Duration>,
) -> (Publish, Option<PublishProperties>) {
    let publish = build_publish(topic, message.body.clone(), retain, header);
    let properties = match version {
        MqttVersion::V3 => None,
        MqttVersion::V5 => Some(properties_from_message(message, remaining))
            .filter(|properties| *properties != PublishProperties::default()),
    };
    (publish, properties)
}

fn properties_from_message(message: &Message, remaining: Option<Duration>) -> PublishProperties {
    let standard = &message.properties;
    let message_expiry_interval = match remaining {
        Some(remaining) => Some(ceil_seconds(remaining)),
        None => standard
            .expiration_ms
            .map(|ms| ceil_seconds(Duration::from_millis(ms))),
    };
    let correlation_data = match message.headers.get(CORRELATION_DATA_HEADER) {
        Some(FieldValue::Bytes(data)) => Some(data.clone()),
        Some(FieldValue::Str(text)) => Some(Bytes::from(text.clone())),
        _ => standard
            .correlation_id
            .as_ref()
            .map(|id| Bytes::from(id.clone())),
    };
    let payload_format_indicator = message
        .headers
        .get(PAYLOAD_FORMAT_HEADER)
        .and_then(FieldValue::as_integer)
        .and_then(|format| u8::try_from(format).ok());

    let mut user_properties: Vec<(String, String)> = message
        .headers
        .iter()
        .filter(|(key, _)| !is_internal_header(key))
        .map(|(key, value)| (key.to_owned(), value.to_text()))
        .collect();
    let unmapped = [
        (AMQP_MESSAGE_ID, standard.message_id.clone()),
        (TIMESTAMP, standard.timestamp.map(|t| t.to_string())),
        (APP_ID, standard.app_id.clone()),
        (MESSAGE_TYPE, standard.message_type.clone()),
        (USER_ID, standard.user_id.clone()),
        (CONTENT_ENCODING, standard.content_encoding.clone()),
        (PRIORITY, standard.priority.map(|p| p.to_string())),
    ];
    user_properties.extend(
        unmapped
            .into_iter()
            .filter_map(|(key, value)| Some((key.to_owned(), value?))),
    );

    PublishProperties {
        payload_format_indicator,
        message_expiry_interval,
        topic_alias: None,
        response_topic: standard.reply_to.as_deref().map(response_topic),
        correlation_data,
        user_properties,
        subscription_identifiers: Vec::new(),
        content_type: standard.content_type.clone(),
    }
}

/// The MQTT response topic for a core `reply_to`.
fn response_topic(reply_to: &str) -> String {
    let routing_key = reply_to
        .strip_prefix(EXCHANGE_REPLY_PREFIX)
        .and_then(|rest| rest.split_once('/'))
        .filter(|(exchange, _)| !exchange.is_empty())
        .map(|(_, key)| key)
        .or_else(|| reply_to.strip_prefix(TOPIC_REPLY_PREFIX));
    match routing_key {
        Some(key) => routing_key_to_topic(key).into_owned(),
        None => reply_to.to_owned(),
    }
}

fn ceil_seconds(duration: Duration) -> u32 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    u32::try_from(seconds).unwrap_or(u32::MAX)
}
