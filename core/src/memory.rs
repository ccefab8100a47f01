//! The global memory high-watermark: publishers are blocked, not the heap grown.
//!
//! Queues charge every message they hold ([`crate::message::Message::weight`]) here and
//! discharge it when the message leaves (acked, dropped, expired, purged, dead-lettered).
//! Crossing the high watermark flips the flow state to blocked; falling back under the low
//! watermark (90% of high, so the state does not flap) unblocks. Each transition is counted,
//! logged and announced to every session as [`crate::outbox::Event::Flow`].
//!
//! Publishes are still accepted while blocked (a message already read from a socket is never
//! dropped for memory); adapters stop reading from publishing sockets until unblocked, which is
//! what bounds the growth to what is already in flight.

use dashmap::DashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use crate::metrics::Metrics;
use crate::names::SessionId;
use crate::outbox::{Event, FlowState, Outbox};

/// Tracks bytes held by all queues against the high watermark, and tells every registered
/// session when the flow state changes.
#[derive(Debug)]
pub struct MemoryMonitor {
    used: AtomicUsize,
    high: usize,
    low: usize,
    blocked: AtomicBool,
    metrics: Arc<Metrics>,
    sessions: DashMap<SessionId, Weak<Outbox>>,
}

impl MemoryMonitor {
    /// A monitor that blocks publishers above `high_watermark` bytes.
    pub fn new(high_watermark: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            used: AtomicUsize::new(0),
            high: high_watermark,
            low: high_watermark / 10 * 9,
            blocked: AtomicBool::new(false),
            metrics,
            sessions: DashMap::new(),
        }
    }

    /// Registers a session for flow events; it is told at once if publishers are blocked now.
    pub fn register(&self, outbox: &Arc<Outbox>) {
        self.sessions
            .insert(outbox.session(), Arc::downgrade(outbox));
        if self.is_blocked() {
            outbox.send(Event::Flow(FlowState::Blocked));
        }
    }

    /// Forgets a closed session.
    pub fn unregister(&self, session: SessionId) {
        self.sessions.remove(&session);
    }

    fn announce(&self, state: FlowState) {
        for entry in self.sessions.iter() {
            if let Some(outbox) = entry.value().upgrade() {
                outbox.send(Event::Flow(state));
            }
        }
    }

    /// Bytes currently held.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The configured high watermark.
    pub fn high_watermark(&self) -> usize {
        self.high
    }

    /// True while publishers are blocked.
    pub fn is_blocked(&self) -> bool {
        self.blocked.load(Ordering::Acquire)
    }

    /// Charges `bytes`; returns `Some(Blocked)` if this crossed the high watermark (sessions
    /// have been told already).
    pub fn charge(&self, bytes: usize) -> Option<FlowState> {
        let now = self.used.fetch_add(bytes, Ordering::AcqRel) + bytes;
        if now > self.high && !self.blocked.swap(true, Ordering::AcqRel) {
            Metrics::bump(&self.metrics.flow_blocked);
            tracing::warn!(
                used = now,
                high_watermark = self.high,
                "memory high watermark reached: blocking publishers"
            );
            self.announce(FlowState::Blocked);
            return Some(FlowState::Blocked);
        }
        None
    }

    /// Discharges `bytes`; returns `Some(Unblocked)` if this fell under the low watermark
    /// (sessions have been told already).
    pub fn discharge(&self, bytes: usize) -> Option<FlowState> {
        let before = self.used.fetch_sub(bytes, Ordering::AcqRel);
        let now = before.saturating_sub(bytes);
        if now <= self.low && self.blocked.swap(false, Ordering::AcqRel) {
            tracing::info!(
                used = now,
                high_watermark = self.high,
                "memory under watermark: unblocking publishers"
            );
            self.announce(FlowState::Unblocked);
            return Some(FlowState::Unblocked);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::names::ConnectionId;

    #[test]
    fn blocks_above_high_and_unblocks_below_low() {
        let metrics = Arc::new(Metrics::default());
        let monitor = MemoryMonitor::new(1000, Arc::clone(&metrics));
        let (outbox, mut receiver) = Outbox::new(SessionId(1), ConnectionId(1), 1000);
        monitor.register(&outbox);
        assert_eq!(monitor.charge(900), None);
        assert_eq!(monitor.charge(200), Some(FlowState::Blocked));
        assert!(matches!(
            receiver.try_recv(),
            Some(Event::Flow(FlowState::Blocked))
        ));
        assert_eq!(monitor.charge(10), None, "announced once");
        assert!(monitor.is_blocked());
        assert_eq!(monitor.discharge(100), None, "1010 is still above low");
        assert_eq!(monitor.discharge(200), Some(FlowState::Unblocked));
        assert!(matches!(
            receiver.try_recv(),
            Some(Event::Flow(FlowState::Unblocked))
        ));
        assert_eq!(Metrics::read(&metrics.flow_blocked), 1);
    }
}
