//! The config file as written: serde structs, every one `deny_unknown_fields`.
//!
//! Optional keys are `Option`s here; their defaults are applied in `convert`, from
//! [`crate::settings`], so that each default is written once.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub log: Option<RawLog>,
    pub limits: Option<RawLimits>,
    pub shutdown: Option<RawShutdown>,
    pub tls: Option<RawTls>,
    pub listeners: Option<RawListeners>,
    pub auth: Option<RawAuth>,
    pub mqtt: Option<RawMqtt>,
    pub stomp: Option<RawStomp>,
    pub amqp: Option<RawAmqp>,
    pub users: Option<Vec<RawUser>>,
    pub vhosts: Option<Vec<RawVhost>>,
    pub exchanges: Option<Vec<RawExchange>>,
    pub queues: Option<Vec<RawQueue>>,
    pub bindings: Option<Vec<RawBinding>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_connections: Option<u64>,
    pub handshake_timeout_ms: Option<u64>,
    pub max_message_size: Option<u64>,
    pub memory_high_watermark_bytes: Option<u64>,
    pub session_window_bytes: Option<u64>,
    pub outbound_buffer_bytes: Option<u64>,
    pub write_stall_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShutdown {
    pub drain_timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub certificate: String,
    pub private_key: String,
    pub client_ca: Option<String>,
    pub require_client_certificate: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListeners {
    pub mqtt: Option<RawListener>,
    pub stomp: Option<RawListener>,
    pub amqp: Option<RawListener>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub plain: Option<String>,
    pub tls: Option<String>,
}

/// The MQTT adapter's limits (`mqtt:`), onto `mqgate_mqtt::MqttSettings`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqtt {
    pub vhost: Option<String>,
    pub max_packet_size: Option<u64>,
    pub receive_maximum: Option<u64>,
    pub default_inflight: Option<u64>,
    pub max_keepalive_secs: Option<u64>,
    pub topic_alias_maximum: Option<u64>,
    pub max_client_id_length: Option<u64>,
    pub max_subscriptions: Option<u64>,
    pub session_queue_length: Option<u64>,
    pub session_overflow: Option<String>,
    pub max_persistent_sessions: Option<u64>,
    pub max_session_expiry_secs: Option<u64>,
    pub max_retained_per_subscribe: Option<u64>,
    pub takeover_timeout_ms: Option<u64>,
    pub certificate_login: Option<bool>,
}

/// The STOMP adapter's limits (`stomp:`), onto `mqgate_stomp::StompSettings`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStomp {
    pub default_vhost: Option<String>,
    pub max_frame_size: Option<u64>,
    pub max_headers: Option<u64>,
    pub max_header_length: Option<u64>,
    pub min_heartbeat_ms: Option<u64>,
    pub heartbeat_grace_factor: Option<u64>,
    pub max_subscriptions: Option<u64>,
    pub max_unconfirmed_sends: Option<u64>,
    pub max_prefetch: Option<u64>,
    pub max_transactions: Option<u64>,
    pub max_transaction_frames: Option<u64>,
    pub max_transaction_bytes: Option<u64>,
    pub certificate_login: Option<bool>,
}

/// The AMQP adapter's limits (`amqp:`), onto `mqgate_amqp::AmqpSettings`
/// (`max_message_size` comes from `limits.max_message_size`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAmqp {
    pub frame_max: Option<u64>,
    pub channel_max: Option<u64>,
    pub heartbeat_s: Option<u64>,
    pub max_consumers_per_channel: Option<u64>,
    pub max_unconfirmed: Option<u64>,
    pub max_transaction_operations: Option<u64>,
    pub max_transaction_bytes: Option<u64>,
    pub channel_window_bytes: Option<u64>,
    pub close_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub anonymous: Option<RawAnonymous>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnonymous {
    pub enabled: Option<bool>,
    pub user: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub name: String,
    pub password_hash: String,
    #[serde(default)]
    pub loopback_only: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub permissions: Vec<RawPermission>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPermission {
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVhost {
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExchange {
    pub vhost: Option<String>,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub durable: Option<bool>,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub arguments: BTreeMap<String, RawArgument>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    pub vhost: Option<String>,
    pub name: String,
    pub durable: Option<bool>,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub arguments: BTreeMap<String, RawArgument>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBinding {
    pub vhost: Option<String>,
    pub source: String,
    pub destination: String,
    pub destination_type: Option<String>,
    #[serde(default)]
    pub routing_key: String,
    #[serde(default)]
    pub arguments: BTreeMap<String, RawArgument>,
}

/// A declaration argument: a YAML scalar.
#[derive(Debug, Clone, PartialEq)]
pub enum RawArgument {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl<'de> Deserialize<'de> for RawArgument {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ArgumentVisitor;

        impl Visitor<'_> for ArgumentVisitor {
            type Value = RawArgument;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean, an integer, a float or a string")
            }

            fn visit_bool<E: de::Error>(self, value: bool) -> Result<RawArgument, E> {
                Ok(RawArgument::Bool(value))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<RawArgument, E> {
                Ok(RawArgument::Int(value))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<RawArgument, E> {
                i64::try_from(value).map(RawArgument::Int).map_err(|_| {
                    E::invalid_value(de::Unexpected::Unsigned(value), &"an integer up to 2^63-1")
                })
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<RawArgument, E> {
                Ok(RawArgument::Float(value))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<RawArgument, E> {
                Ok(RawArgument::Str(value.to_owned()))
            }

            fn visit_string<E: de::Error>(self, value: String) -> Result<RawArgument, E> {
                Ok(RawArgument::Str(value))
            }
        }

        deserializer.deserialize_any(ArgumentVisitor)
    }
}
