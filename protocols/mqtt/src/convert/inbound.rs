//! A client's PUBLISH into a core message.

use mqgate_core::message::{FieldValue, Headers, Message, Properties};
use mqgate_core::names::{ExchangeName, RoutingKeyText};
use rumqttd::protocol::{Publish, PublishProperties, QoS};

use super::packet::publish_header;
use super::{
    is_internal_header, CORRELATION_DATA_HEADER, EXCHANGE_REPLY_PREFIX, PAYLOAD_FORMAT_HEADER,
    QOS_HEADER, RETAIN_HEADER,
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
///   `correlation_id` when it is UTF-8, and always [`CORRELATION_DATA_HEADER`] as bytes; user
///   properties -> `Str` headers, first occurrence of a key wins, internal names ignored;
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
            if !is_internal_header(key) {
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
            message_properties.correlation_id = std::str::from_utf8(data).ok().map(str::to_owned);
            headers.insert(CORRELATION_DATA_HEADER, FieldValue::Bytes(data.clone()));
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
