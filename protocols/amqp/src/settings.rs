//! The AMQP adapter's settings: what the server proposes in `connection.tune`, and the limits
//! enforced on clients.
//!
//! Invariant: every per-connection collection the session keeps is bounded by a field here
//! (channels by `channel_max`, consumers per channel, unconfirmed publishes, transaction
//! buffers) or by the engine (unacked deliveries through each consumer's prefetch and the
//! per-channel transit window), so no client grows the gateway's memory without bound.

use std::time::Duration;

/// Limits and defaults of the AMQP adapter. `Default` gives the values documented per field
/// (RabbitMQ's, where RabbitMQ has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpSettings {
    /// The largest frame the server accepts and proposes in `connection.tune`: 131072 (128 KiB).
    pub frame_max: u32,
    /// The highest channel number the server proposes: 2047.
    pub channel_max: u16,
    /// The heartbeat interval the server proposes, in seconds; 0 disables: 60.
    pub heartbeat: u16,
    /// The largest message body a client may publish: 16 MiB (the gateway's `max_message_size`).
    pub max_message_size: u64,
    /// Consumers one channel may hold: 1024.
    pub max_consumers_per_channel: usize,
    /// Publishes awaiting the engine's confirmation at once on one connection (confirm mode and
    /// transactions); at the limit the socket's reads pause until confirmations arrive: 4096.
    pub max_unconfirmed: usize,
    /// Publishes, acks and rejects one transaction may buffer before `tx.commit`: 10000.
    pub max_transaction_operations: usize,
    /// Body bytes one transaction may buffer before `tx.commit`: 16 MiB.
    pub max_transaction_bytes: usize,
    /// Bytes of deliveries that may wait for one channel to take them (the engine's transit
    /// window, per channel): 1 MiB.
    pub channel_window_bytes: usize,
    /// How long the server waits for `close-ok` after it sent `connection.close`: 3 s.
    pub close_timeout: Duration,
}

impl Default for AmqpSettings {
    fn default() -> Self {
        Self {
            frame_max: 131_072,
            channel_max: 2047,
            heartbeat: 60,
            max_message_size: 16 * 1024 * 1024,
            max_consumers_per_channel: 1024,
            max_unconfirmed: 4096,
            max_transaction_operations: 10_000,
            max_transaction_bytes: 16 * 1024 * 1024,
            channel_window_bytes: 1024 * 1024,
            close_timeout: Duration::from_secs(3),
        }
    }
}
