//! The MQTT adapter's settings: limits announced to clients and enforced on them.
//!
//! Invariant: every per-session collection the adapter keeps is bounded by a field here (or by
//! the client's own Receive Maximum, itself capped here), so no client can grow the gateway's
//! memory without bound.

use std::time::Duration;

use mqgate_core::queue::Overflow;

/// What a session's queue does when it is full: its client reads slower than messages arrive, or
/// is offline (persistent sessions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionOverflow {
    /// While the client is connected, hold the PUBACK (AMQP confirm, STOMP receipt) of a
    /// publish into the full queue until it drains, so confirmed publishers slow down to the
    /// subscriber's pace and nothing acknowledged is lost; refuse (count) unconfirmed publishes
    /// (QoS 0). While it is offline, drop the oldest message. The core's `block-publisher`.
    BlockPublisher,
    /// Drop the oldest message (RabbitMQ's `drop-head`, Mosquitto's behaviour).
    DropHead,
    /// Refuse new messages: the publisher's PUBACK carries 0x97 (v5) or its connection closes
    /// (v3), as RabbitMQ's `reject-publish`.
    RejectPublish,
}

impl SessionOverflow {
    /// The core queue's overflow policy for this choice.
    pub fn core_policy(self) -> Overflow {
        match self {
            SessionOverflow::BlockPublisher => Overflow::BlockPublisher,
            SessionOverflow::DropHead => Overflow::DropHead,
            SessionOverflow::RejectPublish => Overflow::RejectPublish,
        }
    }
}

/// Limits and defaults of the MQTT adapter. `Default` gives the values documented per field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSettings {
    /// The vhost MQTT clients use: `/`.
    pub vhost: String,
    /// The largest packet a client may send once authenticated, announced as Maximum Packet
    /// Size to v5 clients: 1 MiB (before authentication the driver's 64 KiB applies).
    pub max_packet_size: usize,
    /// Receive Maximum announced to v5 clients: how many QoS 1/2 publishes a client may have
    /// unacknowledged towards us: 128. Also the bound on a v3 client's unconfirmed publishes
    /// (reads pause there).
    pub receive_maximum: u16,
    /// In-flight window towards v3 clients (they announce none), and the cap on a v5 client's
    /// Receive Maximum: 32.
    pub default_inflight: u16,
    /// Cap on a client's keepalive in seconds; a client asking for more (or 0) is told this as
    /// v5 Server Keep Alive. 0 means no cap: 0.
    pub max_keepalive: u16,
    /// Topic Alias Maximum announced to v5 clients (inbound aliases): 64.
    pub topic_alias_maximum: u16,
    /// Longest client identifier accepted, in bytes: 256.
    pub max_client_id_len: usize,
    /// Subscriptions one session may hold: 1024 (more get SUBACK 0x97 / 0x80).
    pub max_subscriptions: usize,
    /// Messages one session's queue keeps beyond those in flight (`x-max-length`), live or
    /// offline: 10 000.
    pub session_queue_length: u32,
    /// What happens when that queue is full: block-publisher.
    pub session_overflow: SessionOverflow,
    /// Persistent sessions kept by the registry: 100 000 (more are refused with server busy /
    /// server unavailable).
    pub max_persistent_sessions: usize,
    /// Longest session expiry honoured for v5 clients, and the expiry of v3 clean-session-false
    /// sessions: 7 days.
    pub max_session_expiry: Duration,
    /// Retained messages sent on one SUBSCRIBE at most (per filter): 1000.
    pub max_retained_per_subscribe: usize,
    /// How long a new connection waits for the one it takes over to close: 5 s.
    pub takeover_timeout: Duration,
    /// Use the verified TLS client certificate's common name as the user name when the client
    /// sends none (RabbitMQ's `ssl_cert_login`): true.
    pub certificate_login: bool,
}

impl Default for MqttSettings {
    fn default() -> Self {
        Self {
            vhost: "/".to_owned(),
            max_packet_size: 1024 * 1024,
            receive_maximum: 128,
            default_inflight: 32,
            max_keepalive: 0,
            topic_alias_maximum: 64,
            max_client_id_len: 256,
            max_subscriptions: 1024,
            session_queue_length: 10_000,
            session_overflow: SessionOverflow::BlockPublisher,
            max_persistent_sessions: 100_000,
            max_session_expiry: Duration::from_secs(7 * 24 * 3600),
            max_retained_per_subscribe: 1000,
            takeover_timeout: Duration::from_secs(5),
            certificate_login: true,
        }
    }
}
