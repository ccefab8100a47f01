//! Counters for every drop, block and dead-letter the engine makes, so none is silent.
//!
//! One [`Metrics`] per broker, shared by `Arc`; each counter is a relaxed atomic (a count, not a
//! synchronisation point). The future metrics endpoint reads them; tests assert them.

use std::sync::atomic::{AtomicU64, Ordering};

/// The broker's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Messages published into the engine.
    pub published: AtomicU64,
    /// Messages that matched no queue and were dropped (not mandatory, no alternate exchange).
    pub unroutable_dropped: AtomicU64,
    /// Messages returned to a mandatory publisher because no queue matched.
    pub unroutable_returned: AtomicU64,
    /// Messages handed to consumers (or `get`).
    pub delivered: AtomicU64,
    /// Messages acknowledged (or auto-acked on delivery).
    pub acked: AtomicU64,
    /// Deliveries put back on their queue (nack/reject with requeue, consumer gone).
    pub requeued: AtomicU64,
    /// Messages removed by TTL.
    pub expired: AtomicU64,
    /// Messages removed by `drop-head` overflow.
    pub overflow_dropped: AtomicU64,
    /// Publishes refused by `reject-publish` / `reject-publish-dlx` overflow, and unconfirmed
    /// publishes refused by a full `block-publisher` queue.
    pub overflow_rejected: AtomicU64,
    /// Publish confirmations a `block-publisher` queue held because it was full (each released
    /// once the queue drained; a hold, not a drop).
    pub confirms_held: AtomicU64,
    /// Messages republished to a dead-letter exchange.
    pub dead_lettered: AtomicU64,
    /// Messages that should have been dead-lettered but were dropped: no DLX set, the DLX is
    /// missing, nothing bound to it, or a dead-letter cycle.
    pub dead_letter_dropped: AtomicU64,
    /// Messages purged or lost with a deleted queue.
    pub purged: AtomicU64,
    /// Deliveries an adapter could not hand to its client and acknowledged instead: a message
    /// over the client's maximum packet size, or whose routing key is no topic in the client's
    /// protocol.
    pub undeliverable_dropped: AtomicU64,
    /// Times the memory watermark blocked publishers.
    pub flow_blocked: AtomicU64,
    /// Times a consumer was parked because its session's transit window was full.
    pub consumer_parked: AtomicU64,
    /// Messages asking to be retained (header `x-retain`) that the vhost's retained store
    /// refused because it was full; they were still routed.
    pub retained_refused: AtomicU64,
}

impl Metrics {
    /// Adds one.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn read(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
