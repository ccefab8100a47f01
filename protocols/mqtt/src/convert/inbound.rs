//! A client's PUBLISH into a core message.

use mqgate_core::message::{FieldValue, Headers, Message, Properties};
use mqgate_core::names::{ExchangeName, RoutingKeyText};
use rumqttd::protocol::{Publish, PublishProperties, QoS};

use super::packet::publish_header;
use super::{
    is_internal_header, AMQP_MESSAGE_ID, APP_ID, CONTENT_ENCODING, CORRELATION_DATA_HEADER,
    EXCHANGE_REPLY_PREFIX, MESSAGE_TYPE, PAYLOAD_FORMAT_HEADER, PRIORITY, QOS_HEADER,
    RETAIN_HEADER, TIMESTAMP, USER_ID,
};
use crate::topic::topic_to_routing_key;

/// The core message for a client's PUBLISH to `topic`, published to `exchange` (normally
/// [`DEFAULT_EXCHANGE`](super::DEFAULT_EXCHANGE)).
///
/// `topic` is the real topic name: the session resolves a v5 topic alias and validates the name
/// first (`publish.topic` is not read). The body is `publish.payload`, shared, not copied.
///
/// - QoS >= 1 makes the message persistent; [`QOS_HEADER`] carries the QoS.
/// - The retain flag sets [`RETAIN_HEADER`] to `true` (the core's retained store reads it).
/// - v5: message expiry interval (s) -> `expiration_ms`; content type -> `content_type`;
///   response topic -> `reply_to` as `/exchange/{exchange}/{routing key}`; correlation data ->
///   `correlation_id` when it is UTF-8, else [`CORRELATION_DATA_HEADER`] as bytes; user
///   properties -> `Str` headers, first occurrence of a key wins, internal names ignored,
///   except the AMQP properties MQTT has no field for (`amqp-message-id`, `timestamp`,
///   `app-id`, `type`, `content-encoding`, `priority`), which set those properties when they
///   parse, and `user-id`, which is dropped (nothing checks it against the login);
///   payload format indicator -> [`PAYLOAD_FORMAT_HEADER`].
pub fn message_from_publish(
    exchange: &ExchangeName,
    topic: &str,
    publish: &Publish,
    properties: Option<&PublishProperties>,
) -> Message {
    let qos = publish_header(publish).qos;
    let mut message_properties = Properties {
        persistent: qos != QoS::AtMostOnce,
        ..Properties::default()
    };
    let mut headers = Headers::new();
    if let Some(v5) = properties {
        for (key, value) in &v5.user_properties {
            if is_internal_header(key) || key == USER_ID {
                // `user-id` would let a publisher claim another user's identity to AMQP and
                // STOMP consumers; MQTT has no way to check it, so it is not carried.
                continue;
            }
            if !lift_standard_property(&mut message_properties, key, value) {
                headers.push_if_absent(key.as_str(), value.as_str());
            }
        }
        message_properties.expiration_ms = v5
            .message_expiry_interval
            .map(|seconds| u64::from(seconds) * 1000);
        message_properties.content_type.clone_from(&v5.content_type);
        message_properties.reply_to = v5.response_topic.as_deref().map(|response| {
            format!(
                "{EXCHANGE_REPLY_PREFIX}{exchange}/{}",
                topic_to_routing_key(response)
            )
        });
        if let Some(data) = &v5.correlation_data {
            match std::str::from_utf8(data) {
                Ok(text) => message_properties.correlation_id = Some(text.to_owned()),
                // Only binary data needs the header: text round-trips through correlation_id.
                Err(_) => headers.insert(CORRELATION_DATA_HEADER, FieldValue::Bytes(data.clone())),
            }
        }
        if let Some(format) = v5.payload_format_indicator {
            headers.insert(PAYLOAD_FORMAT_HEADER, i64::from(format));
        }
    }
    headers.insert(QOS_HEADER, qos as i64);
    if publish.retain {
        headers.insert(RETAIN_HEADER, true);
    }
    Message {
        exchange: exchange.clone(),
        routing_key: RoutingKeyText::from(topic_to_routing_key(topic).as_ref()),
        properties: message_properties,
        headers,
        body: publish.payload.clone(),
        origin: None,
    }
}

/// Sets the core property a user property names (the first occurrence wins); false when `key` is
/// not one of them or its value does not parse (it then travels as a header).
fn lift_standard_property(properties: &mut Properties, key: &str, value: &str) -> bool {
    fn set<T>(slot: &mut Option<T>, value: Option<T>) -> bool {
        match value {
            Some(value) => {
                slot.get_or_insert(value);
                true
            }
            None => false,
        }
    }
    match key {
        AMQP_MESSAGE_ID => set(&mut properties.message_id, Some(value.to_owned())),
        APP_ID => set(&mut properties.app_id, Some(value.to_owned())),
        MESSAGE_TYPE => set(&mut properties.message_type, Some(value.to_owned())),
        CONTENT_ENCODING => set(&mut properties.content_encoding, Some(value.to_owned())),
        TIMESTAMP => set(&mut properties.timestamp, value.parse().ok()),
        PRIORITY => set(&mut properties.priority, value.parse().ok()),
        _ => false,
    }
}
