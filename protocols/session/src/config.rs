//! Limits and timeouts for one connection driver.
//!
//! Invariants: every buffer the driver owns is bounded by a field here or by the session's
//! `max_frame_size`; every wait the driver makes on the peer is bounded by a timeout here.

use std::time::Duration;

/// Limits and timeouts for [`run_connection`](crate::run_connection). Cheap to copy; one value
/// usually serves every connection of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverConfig {
    /// How long the handshake may take, from the first byte read to the session being ready.
    pub handshake_timeout: Duration,
    /// The largest frame accepted during the handshake (before authentication).
    pub handshake_max_frame_size: usize,
    /// Encoded bytes the driver may hold for the peer before it stops taking events and stops
    /// reading frames.
    pub max_outbound_bytes: usize,
    /// How long the writer may make no progress while the outbound buffer is over its limit
    /// before the peer is closed as a slow consumer.
    pub write_stall_timeout: Duration,
    /// How long the driver keeps flushing queued bytes when the connection closes.
    pub drain_timeout: Duration,
    /// The read buffer's initial capacity, and the most bytes taken from the socket per read.
    pub read_buffer_size: usize,
}

impl Default for DriverConfig {
    /// RabbitMQ's handshake timeout (10 s), MQTT's pre-authentication limit (64 KiB), 1 MiB of
    /// outbound bytes, 30 s of write stall, 5 s of drain and 8 KiB reads.
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            handshake_max_frame_size: 64 * 1024,
            max_outbound_bytes: 1024 * 1024,
            write_stall_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(5),
            read_buffer_size: 8 * 1024,
        }
    }
}
