//! The gateway's runtime settings: what the config file says, converted into runtime types.
//!
//! [`crate::config::load`] builds them from the YAML file and the environment; tests may build
//! them directly (start from [`Settings::default`]). The defaults here are the defaults of the
//! config file's keys; `docs/CONFIGURATION.md` lists them.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mqgate_amqp::AmqpSettings;
use mqgate_core::auth::Users;
use mqgate_core::names::UserName;
use mqgate_mqtt::MqttSettings;
use mqgate_stomp::StompSettings;

use crate::definitions::Definitions;
use crate::protocols::Protocol;

/// One mebibyte.
const MIB: usize = 1 << 20;

/// Connection, buffer and message limits (DESIGN.md section 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Open connections across all listeners; over it, new connections are accepted and closed
    /// at once (counted and logged).
    pub max_connections: usize,
    /// Time a client has for the TLS handshake, and adapters for their protocol handshake.
    pub handshake_timeout: Duration,
    /// Largest message body a client may publish.
    pub max_message_size: usize,
    /// Bytes all queues may hold before publishers are blocked.
    pub memory_high_watermark: usize,
    /// Bytes of deliveries that may wait for one session.
    pub session_window_bytes: usize,
    /// Bytes of encoded frames a connection may have waiting to be written.
    pub outbound_buffer_bytes: usize,
    /// A connection whose socket accepts no bytes for this long is closed as a slow consumer.
    pub write_stall_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            max_message_size: 16 * MIB,
            memory_high_watermark: 1 << 30,
            session_window_bytes: MIB,
            outbound_buffer_bytes: 32 * MIB,
            write_stall_timeout: Duration::from_secs(30),
        }
    }
}

/// Room for the topic and properties of an MQTT PUBLISH on top of its largest body: the
/// default `mqtt.max_packet_size` is `limits.max_message_size` plus this.
pub const MQTT_PACKET_OVERHEAD: usize = 64 * 1024;

/// The largest packet MQTT can frame: a 4-byte remaining length (268 435 455) plus the fixed
/// header.
pub const MQTT_MAX_PACKET_SIZE: usize = 268_435_455 + 5;

/// The MQTT adapter's settings when the config file says nothing: the adapter's defaults, with
/// the largest packet sized from `limits.max_message_size`.
pub fn default_mqtt_settings(limits: &Limits) -> MqttSettings {
    MqttSettings {
        max_packet_size: limits
            .max_message_size
            .saturating_add(MQTT_PACKET_OVERHEAD)
            .min(MQTT_MAX_PACKET_SIZE),
        ..MqttSettings::default()
    }
}

/// Room for a STOMP frame's command and headers on top of its largest body: the default
/// `stomp.max_frame_size` is at most `limits.max_message_size` plus this, and a configured one
/// may not exceed that sum.
pub const STOMP_FRAME_OVERHEAD: usize = 64 * 1024;

/// The STOMP adapter's settings when the config file says nothing: the adapter's defaults
/// (4 MiB frames), with the largest frame lowered to `limits.max_message_size` plus
/// [`STOMP_FRAME_OVERHEAD`] when that is smaller.
pub fn default_stomp_settings(limits: &Limits) -> StompSettings {
    let defaults = StompSettings::default();
    StompSettings {
        max_frame_size: defaults
            .max_frame_size
            .min(limits.max_message_size.saturating_add(STOMP_FRAME_OVERHEAD)),
        ..defaults
    }
}

/// The AMQP adapter's settings when the config file says nothing: the adapter's defaults, with
/// the largest message body from `limits.max_message_size` and each channel's delivery window
/// from `limits.session_window_bytes`.
pub fn default_amqp_settings(limits: &Limits) -> AmqpSettings {
    AmqpSettings {
        max_message_size: u64::try_from(limits.max_message_size).unwrap_or(u64::MAX),
        channel_window_bytes: limits.session_window_bytes,
        ..AmqpSettings::default()
    }
}

/// Default time given to connections to finish after a shutdown signal.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Default log filter.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// Plain TCP or TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Plain TCP.
    Plain,
    /// TLS over TCP, with the gateway's [`Settings::tls`] configuration.
    Tls,
}

/// One socket to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// The protocol spoken on it.
    pub protocol: Protocol,
    /// Plain or TLS.
    pub transport: Transport,
    /// The address to bind; port 0 picks a free port (see `RunningGateway::listeners`).
    pub addr: SocketAddr,
}

impl fmt::Display for ListenerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.transport {
            Transport::Plain => write!(f, "{} {}", self.protocol, self.addr),
            Transport::Tls => write!(f, "{}+tls {}", self.protocol, self.addr),
        }
    }
}

/// Everything the gateway needs to start.
#[derive(Clone)]
pub struct Settings {
    /// The log filter (a `tracing_subscriber::EnvFilter` directive string).
    pub log_filter: String,
    /// Limits.
    pub limits: Limits,
    /// Time given to connections to finish after shutdown begins; then they are cut off.
    pub drain_timeout: Duration,
    /// The TLS configuration every TLS listener uses; required if any listener is TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The sockets to listen on.
    pub listeners: Vec<ListenerSpec>,
    /// The users.
    pub users: Arc<Users>,
    /// The user that clients sending no credentials act as, if anonymous logins are enabled.
    pub anonymous: Option<UserName>,
    /// Vhosts, exchanges, queues and bindings declared at start.
    pub definitions: Definitions,
    /// The MQTT adapter's limits and options (the `mqtt:` section).
    pub mqtt: MqttSettings,
    /// The STOMP adapter's limits and options (the `stomp:` section).
    pub stomp: StompSettings,
    /// The AMQP adapter's limits and options (the `amqp:` section, with `max_message_size`
    /// from [`Limits::max_message_size`]).
    pub amqp: AmqpSettings,
}

impl Default for Settings {
    /// No listeners, no TLS, no users, the vhost `/`, default limits.
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            log_filter: DEFAULT_LOG_FILTER.to_owned(),
            mqtt: default_mqtt_settings(&limits),
            stomp: default_stomp_settings(&limits),
            amqp: default_amqp_settings(&limits),
            limits,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            tls: None,
            listeners: Vec::new(),
            users: Arc::new(Users::empty()),
            anonymous: None,
            definitions: Definitions::default(),
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("log_filter", &self.log_filter)
            .field("limits", &self.limits)
            .field("drain_timeout", &self.drain_timeout)
            .field("tls", &self.tls.is_some())
            .field("listeners", &self.listeners)
            .field("users", &self.users.len())
            .field("anonymous", &self.anonymous)
            .field("definitions", &self.definitions)
            .field("mqtt", &self.mqtt)
            .field("stomp", &self.stomp)
            .field("amqp", &self.amqp)
            .finish()
    }
}
