//! The will: published on an abnormal close (and a keepalive timeout or takeover), not after a
//! clean DISCONNECT unless a v5 client asked with reason 0x04.
//!
//! v5 Will Delay Interval: the will waits min(delay, session expiry) after the close, in a timer
//! the [`Registry`](crate::registry::Registry) holds, and is not published at all if the client
//! id connects again first. A session that ends with its connection (expiry 0) publishes it at
//! once, as the session has ended.
//!
//! Invariant: the will topic is validated at CONNECT, so `publish_will` cannot fail on it.

use std::sync::Arc;
use std::time::Duration;

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
    delay: Duration,
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
        let delay = properties
            .as_ref()
            .and_then(|p| p.delay_interval)
            .map_or(Duration::ZERO, |seconds| {
                Duration::from_secs(u64::from(seconds))
            });
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
            delay,
        })
    }

    /// The v5 Will Delay Interval (zero for v3 or when absent).
    pub fn delay(&self) -> Duration {
        self.delay
    }
}

impl MqttSession {
    /// Publishes the will, once: now, or after its delay (capped by the session expiry) unless
    /// the client id connects again meanwhile.
    pub(super) fn publish_will(&mut self) {
        let Some(will) = self.will.take() else {
            return;
        };
        let mut message = message_from_publish(
            &self.exchange,
            &will.topic,
            &will.publish,
            will.properties.as_ref(),
        );
        message.origin = Some(self.origin.clone());
        let message = Arc::new(message);
        let vhost = Arc::clone(self.core.vhost());
        let client_id = self.client_id.clone();
        let topic = will.topic;
        let publish = move || match vhost.publish(message, false, None) {
            Ok(routed) => {
                tracing::info!(%client_id, %topic, queues = routed.queues, "will published")
            }
            Err(error) => {
                tracing::warn!(%client_id, %error, "will could not be published")
            }
        };
        let delay = will.delay.min(self.expiry);
        if !delay.is_zero() && self.live.as_ref().is_some_and(|live| !live.is_current()) {
            // Taken over: the client id connected again before the delay passed.
            tracing::debug!(client_id = %self.client_id, "delayed will dropped: session taken over");
            return;
        }
        match &self.live {
            Some(live) if !delay.is_zero() => {
                let registry = Arc::clone(live.registry());
                if registry.schedule_will(live.key().clone(), delay, publish) {
                    tracing::debug!(client_id = %self.client_id, ?delay, "will delayed");
                }
            }
            _ => publish(),
        }
    }
}
