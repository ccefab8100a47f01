//! Heartbeats: the interval agreed in tune/tune-ok, enforced both ways.
//!
//! Invariants:
//! - With heartbeat 0 there is no timer at all.
//! - The server sends a heartbeat frame every half interval, whatever else it sent, so a peer
//!   that counts only heartbeats is satisfied too (RabbitMQ sends at half the interval).
//! - A peer that sent nothing (no frame of any kind) for two intervals is dead: the
//!   connection closes without a `connection.close`, as RabbitMQ's does ("missed heartbeats").

use std::time::Duration;

use tokio::time::Instant;

/// What a tick asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Beat {
    /// Nothing to do.
    Idle,
    /// Send a heartbeat frame.
    Send,
    /// The peer has been silent for two intervals.
    Dead,
}

/// The heartbeat clocks of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heartbeat {
    interval: Option<Duration>,
    last_in: Instant,
    last_out: Instant,
}

impl Heartbeat {
    /// Clocks for the negotiated `seconds` (0: none).
    pub(crate) fn new(seconds: u16, now: Instant) -> Self {
        Self {
            interval: (seconds > 0).then(|| Duration::from_secs(seconds.into())),
            last_in: now,
            last_out: now,
        }
    }

    /// A frame arrived from the peer.
    pub(crate) fn received(&mut self, now: Instant) {
        self.last_in = now;
    }

    /// How often the session must be ticked.
    pub(crate) fn tick_interval(&self) -> Option<Duration> {
        self.interval.map(|interval| interval / 2)
    }

    /// What is due at `now`.
    pub(crate) fn tick(&mut self, now: Instant) -> Beat {
        let Some(interval) = self.interval else {
            return Beat::Idle;
        };
        if now.saturating_duration_since(self.last_in) >= interval * 2 {
            return Beat::Dead;
        }
        if now.saturating_duration_since(self.last_out) >= interval / 2 {
            self.last_out = now;
            return Beat::Send;
        }
        Beat::Idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beats_every_half_interval_and_dies_after_two_silent_intervals() {
        let start = Instant::now();
        let mut heartbeat = Heartbeat::new(10, start);
        assert_eq!(heartbeat.tick_interval(), Some(Duration::from_secs(5)));
        assert_eq!(heartbeat.tick(start + Duration::from_secs(4)), Beat::Idle);
        assert_eq!(heartbeat.tick(start + Duration::from_secs(5)), Beat::Send);
        heartbeat.received(start + Duration::from_secs(15));
        assert_eq!(heartbeat.tick(start + Duration::from_secs(34)), Beat::Send);
        assert_eq!(heartbeat.tick(start + Duration::from_secs(35)), Beat::Dead);
    }

    #[test]
    fn zero_means_no_timer() {
        let start = Instant::now();
        let mut heartbeat = Heartbeat::new(0, start);
        assert_eq!(heartbeat.tick_interval(), None);
        assert_eq!(
            heartbeat.tick(start + Duration::from_secs(3600)),
            Beat::Idle
        );
    }
}
