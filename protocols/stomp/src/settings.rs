//! The STOMP adapter's settings: limits enforced on clients and the defaults they negotiate.
//!
//! Invariant: every per-connection collection the session keeps is bounded by a field here
//! (subscriptions, unconfirmed SENDs, unacknowledged deliveries through the prefetch cap,
//! transactions and the frames each buffers), so no client grows the gateway's memory without
//! bound.

use std::time::Duration;

/// Limits and defaults of the STOMP adapter. `Default` gives the values documented per field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StompSettings {
    /// The vhost of a CONNECT without a `host` header (RabbitMQ's default): `/`.
    pub default_vhost: String,
    /// The largest frame a client may send once connected: 4 MiB (before CONNECT the codec's
    /// 64 KiB applies).
    pub max_frame_size: usize,
    /// The most header lines in a frame: 100.
    pub max_headers: usize,
    /// The longest header line, in bytes: 8 KiB.
    pub max_header_len: usize,
    /// The shortest heart-beat interval the server agrees to, either way; a client asking for
    /// less gets this: 1 s.
    pub min_heartbeat: Duration,
    /// A client silent for this many times its negotiated heart-beat interval is closed: 2.
    pub heartbeat_grace_factor: u32,
    /// Subscriptions one connection may hold: 1024.
    pub max_subscriptions: usize,
    /// SENDs awaiting the engine's confirmation at once; at the limit the socket's reads pause
    /// until confirmations arrive: 128.
    pub max_unconfirmed_sends: usize,
    /// The prefetch of a `client` / `client-individual` subscription without `prefetch-count`,
    /// and the cap on one that asks for more (or for 0, unlimited): 1000.
    pub max_prefetch: u32,
    /// Transactions open at once on one connection: 16.
    pub max_transactions: usize,
    /// SEND, ACK and NACK frames one transaction may buffer before COMMIT: 1000.
    pub max_transaction_frames: usize,
    /// Body bytes one transaction may buffer before COMMIT: 16 MiB.
    pub max_transaction_bytes: usize,
    /// Use the verified TLS client certificate's common name as the user when the client sends
    /// no `login` (RabbitMQ's `ssl_cert_login`): true.
    pub certificate_login: bool,
}

impl Default for StompSettings {
    fn default() -> Self {
        Self {
            default_vhost: "/".to_owned(),
            max_frame_size: 4 * 1024 * 1024,
            max_headers: 100,
            max_header_len: 8 * 1024,
            min_heartbeat: Duration::from_secs(1),
            heartbeat_grace_factor: 2,
            max_subscriptions: 1024,
            max_unconfirmed_sends: 128,
            max_prefetch: 1000,
            max_transactions: 16,
            max_transaction_frames: 1000,
            max_transaction_bytes: 16 * 1024 * 1024,
            certificate_login: true,
        }
    }
}

impl StompSettings {
    /// The codec limits these settings imply (`before_connect` is the driver's handshake limit).
    pub fn codec_limits(&self, before_connect: usize) -> crate::codec::Limits {
        crate::codec::Limits {
            max_frame_before_connect: before_connect,
            max_frame: self.max_frame_size,
            max_headers: self.max_headers,
            max_header_len: self.max_header_len,
        }
    }
}
