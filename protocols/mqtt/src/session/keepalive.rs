//! Keepalive: a client silent for 1.5 times its keepalive is disconnected (and its will fires).
//!
//! Invariant: with keepalive 0 there is no timer at all.

use std::time::Duration;

use tokio::time::Instant;

/// The keepalive clock of one session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keepalive {
    limit: Option<Duration>,
    last_seen: Instant,
}

impl Keepalive {
    /// A clock for `seconds` of keepalive (0: none), starting now.
    pub(crate) fn new(seconds: u16, now: Instant) -> Self {
        let limit = (seconds > 0).then(|| Duration::from_millis(u64::from(seconds) * 1500));
        Self {
            limit,
            last_seen: now,
        }
    }

    /// A packet arrived.
    pub(crate) fn seen(&mut self, now: Instant) {
        self.last_seen = now;
    }

    /// True once the client has been silent past the limit.
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.limit
            .is_some_and(|limit| now.saturating_duration_since(self.last_seen) > limit)
    }

    /// How often to check: a quarter of the limit, between 50 ms and 5 s.
    pub(crate) fn tick_interval(&self) -> Option<Duration> {
        self.limit
            .map(|limit| (limit / 4).clamp(Duration::from_millis(50), Duration::from_secs(5)))
    }
}
