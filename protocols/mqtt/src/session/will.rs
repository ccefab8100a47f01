//! The will: published on an abnormal close (and a keepalive timeout or takeover), not after a
//! clean DISCONNECT unless a v5 client asked with reason 0x04.
//!
//! Invariant: the will topic is validated at CONNECT, so `publish_will` cannot fail on it.

use bytes::Bytes;
use rumqttd::protocol::{LastWill, LastWillProperties, PublishProperties};

use crate::convert::packet::build_publish;
use crate::convert::{message_from_publish, PublishHeader};
use crate::topic::validate_topic_name;

use super::MqttSession;

/// A will message as CONNECT gave it.
#[derive(Debug, Clone)]
pub struct Will {
    topic: String,
    publish: rumqttd::protocol::Publish,
    properties: Option<PublishProperties>,
}

impl Will {
    /// Checks and keeps the will of a CONNECT.
    pub fn from_connect(
        will: LastWill,
        properties: Option<LastWillProperties>,
    ) -> Result<Will, String> {
        let topic = String::from_utf8(will.topic.to_vec())
            .map_err(|_| "will topic is not UTF-8".to_owned())?;
        validate_topic_name(&topic).map_err(|error| format!("will topic: {error}"))?;
        let publish = build_publish(
            Bytes::from(topic.clone()),
            will.message,
            will.retain,
            PublishHeader::new(will.qos),
        );
        let properties = properties.map(|p| PublishProperties {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            topic_alias: None,
            response_topic: p.response_topic,
            correlation_data: p.correlation_data,
            user_properties: p.user_properties,
            subscription_identifiers: Vec::new(),
            content_type: p.content_type,
        });
        Ok(Will {
            topic,
            publish,
            properties,
        })
    }
}

impl MqttSession {
    /// Publishes the will, once.
    pub(super) fn publish_will(&mut self) {
        let Some(will) = self.will.take() else {
            return;
        };
        let message = message_from_publish(
            &self.exchange,
            &will.topic,
            &will.publish,
            will.properties.as_ref(),
        );
        match self.core.publish(message, false, None) {
            Ok(routed) => {
                tracing::info!(client_id = %self.client_id, topic = %will.topic, queues = routed.queues, "will published")
            }
            Err(error) => {
                tracing::warn!(client_id = %self.client_id, %error, "will could not be published")
            }
        }
    }
}
