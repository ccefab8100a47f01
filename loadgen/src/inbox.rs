//! What one receiving client records: sequence tracking per publisher, a latency histogram,
//! bytes, and bodies that were not benchmark payloads.
//!
//! Every receive path (MQTT, STOMP, AMQP, the self-check) hands each body to
//! [`Inbox::accept`] the moment it is read. New messages (not duplicates) also bump a
//! counter shared by all receivers of a run, which the coordinator watches to know when
//! everything arrived.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::payload::{nanos_since_origin, Stamp};
use crate::tracker::{Arrival, SequenceTracker};

/// Lowest latency the histogram tells apart, in microseconds.
const LOWEST_US: u64 = 1;
/// Highest latency recorded, in microseconds (60 s); longer ones are recorded as this.
const HIGHEST_US: u64 = 60_000_000;

/// A latency histogram in microseconds, 1 us to 60 s, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    // Valid bounds (1 <= low, high >= 2 * low, sigfig <= 5): cannot fail.
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, 3).expect("valid histogram bounds")
}

/// One receiver's records.
#[derive(Debug)]
pub struct Inbox {
    /// Sequence tracking per publisher.
    pub tracker: SequenceTracker,
    /// Latency of every message received (duplicates included), in microseconds.
    pub latency: Histogram<u64>,
    /// Body bytes received.
    pub bytes: u64,
    /// Bodies too short to hold a payload header.
    pub corrupt: u64,
    /// When the last message arrived.
    pub last_at: Option<Instant>,
    progress: Arc<AtomicU64>,
}

impl Inbox {
    /// An empty inbox that counts new messages into `progress` too.
    pub fn new(progress: Arc<AtomicU64>) -> Self {
        Self {
            tracker: SequenceTracker::new(),
            latency: latency_histogram(),
            bytes: 0,
            corrupt: 0,
            last_at: None,
            progress,
        }
    }

    /// Records one body, received now.
    pub fn accept(&mut self, body: &[u8]) {
        let now = Instant::now();
        self.last_at = Some(now);
        self.bytes += body.len() as u64;
        let Ok(stamp) = Stamp::decode(body) else {
            self.corrupt += 1;
            return;
        };
        let micros = stamp.latency(nanos_since_origin(now)).as_micros();
        let micros = u64::try_from(micros)
            .unwrap_or(HIGHEST_US)
            .clamp(LOWEST_US, HIGHEST_US);
        // In bounds by the clamp above.
        let _ = self.latency.record(micros);
        match self.tracker.record(stamp.publisher, stamp.sequence) {
            Arrival::InOrder | Arrival::OutOfOrder => {
                self.progress.fetch_add(1, Ordering::Relaxed);
            }
            Arrival::Duplicate | Arrival::Rejected => {}
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Messages measured.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Highest value (to the histogram's precision).
    pub max: u64,
    /// Arithmetic mean.
    pub mean: f64,
}

impl Percentiles {
    /// The percentiles of `histogram` (all zero when it is empty).
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            count: histogram.len(),
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
            mean: histogram.mean(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::origin;
    use std::time::Duration;

    #[test]
    fn accepts_payloads_and_counts_new_ones() {
        let progress = Arc::new(AtomicU64::new(0));
        let mut inbox = Inbox::new(progress.clone());
        let sent_ns = nanos_since_origin(Instant::now());
        for sequence in [0, 1, 1, 2] {
            let stamp = Stamp {
                publisher: 5,
                sequence,
                sent_ns,
            };
            inbox.accept(&stamp.encode(64));
        }
        inbox.accept(b"short");
        assert_eq!(
            progress.load(Ordering::Relaxed),
            3,
            "the duplicate is not progress"
        );
        assert_eq!(inbox.corrupt, 1);
        assert_eq!(inbox.bytes, 4 * 64 + 5);
        assert_eq!(inbox.latency.len(), 4);
        let tally = inbox.tracker.tally(&[(5, 3)]);
        assert_eq!((tally.received, tally.duplicates, tally.lost), (4, 1, 0));
    }

    #[test]
    fn latency_is_clamped_into_the_histogram() {
        let mut inbox = Inbox::new(Arc::new(AtomicU64::new(0)));
        // Stamped in the future (latency 0): recorded as the lowest value.
        let future = nanos_since_origin(Instant::now() + Duration::from_secs(5));
        let stamp = Stamp {
            publisher: 0,
            sequence: 0,
            sent_ns: future,
        };
        inbox.accept(&stamp.encode(24));
        assert_eq!(inbox.latency.min(), LOWEST_US);
        let _ = origin();
    }

    #[test]
    fn percentiles_of_a_known_spread() {
        let mut histogram = latency_histogram();
        for value in 1..=1000u64 {
            histogram.record(value).unwrap();
        }
        let p = Percentiles::of(&histogram);
        assert_eq!(p.count, 1000);
        assert_eq!(p.p50, 500);
        assert_eq!(p.p99, 990);
        assert_eq!(p.p999, 999);
        assert_eq!(p.max, 1000);
        assert_eq!(Percentiles::of(&latency_histogram()).count, 0);
    }
}
