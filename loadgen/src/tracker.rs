//! What one receiver got from each publisher, checked against what was sent.
//!
//! One bitmap per publisher, indexed by sequence number: a set bit is a message seen. A
//! message whose bit is already set is a duplicate; a new one below the highest sequence seen
//! so far arrived out of order. Once the publishers are done, the messages lost are the clear
//! bits below each publisher's sent count. The bitmaps are exact (no window to fall out of);
//! a sequence number at or past [`MAX_SEQUENCE`] is not tracked but counted as rejected, so a
//! corrupt body cannot make the tracker allocate without bound.

use std::collections::HashMap;

/// Highest sequence number tracked, exclusive: 2^28 messages per publisher (a 32 MiB bitmap).
pub const MAX_SEQUENCE: u64 = 1 << 28;

/// What [`SequenceTracker::record`] made of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// First time seen, in order (above every sequence seen before from that publisher).
    InOrder,
    /// First time seen, but below a sequence already seen.
    OutOfOrder,
    /// Seen before.
    Duplicate,
    /// Sequence number at or past [`MAX_SEQUENCE`]: not tracked.
    Rejected,
}

#[derive(Debug, Default, Clone)]
struct Stream {
    seen: Vec<u64>,
    unique: u64,
    /// One past the highest sequence seen.
    next: u64,
}

impl Stream {
    fn record(&mut self, sequence: u64) -> Arrival {
        if sequence >= MAX_SEQUENCE {
            return Arrival::Rejected;
        }
        // In range of usize on every target: below 2^28.
        let word = (sequence / 64) as usize;
        let bit = 1u64 << (sequence % 64);
        if word >= self.seen.len() {
            let wanted = (word + 1).max(self.seen.len() * 2);
            self.seen
                .resize(wanted.min((MAX_SEQUENCE / 64) as usize), 0);
        }
        if self.seen[word] & bit != 0 {
            return Arrival::Duplicate;
        }
        self.seen[word] |= bit;
        self.unique += 1;
        if sequence >= self.next {
            self.next = sequence + 1;
            Arrival::InOrder
        } else {
            Arrival::OutOfOrder
        }
    }

    /// Messages seen with a sequence below `sent`.
    fn seen_below(&self, sent: u64) -> u64 {
        let sent = sent.min(MAX_SEQUENCE);
        let full = (sent / 64) as usize;
        let mut count: u64 = self
            .seen
            .iter()
            .take(full)
            .map(|word| u64::from(word.count_ones()))
            .sum();
        let rest = sent % 64;
        if rest > 0 {
            if let Some(word) = self.seen.get(full) {
                count += u64::from((word & ((1u64 << rest) - 1)).count_ones());
            }
        }
        count
    }
}

/// The counts of a [`SequenceTracker`] against the publishers' sent counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Every message recorded, duplicates included.
    pub received: u64,
    /// Messages recorded more than once (each extra copy counts one).
    pub duplicates: u64,
    /// New messages that came after a higher sequence from the same publisher.
    pub out_of_order: u64,
    /// Messages sent to this receiver that it never got.
    pub lost: u64,
    /// Distinct messages no expected publisher sent (an unknown publisher, a sequence at or
    /// past its sent count, or past [`MAX_SEQUENCE`]).
    pub unexpected: u64,
}

impl Tally {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Tally) {
        self.received += other.received;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.lost += other.lost;
        self.unexpected += other.unexpected;
    }
}

/// Per-publisher sequence tracking for one receiver.
#[derive(Debug, Default, Clone)]
pub struct SequenceTracker {
    streams: HashMap<u64, Stream>,
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    rejected: u64,
}

impl SequenceTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records message `sequence` of `publisher`.
    pub fn record(&mut self, publisher: u64, sequence: u64) -> Arrival {
        self.received += 1;
        let arrival = self.streams.entry(publisher).or_default().record(sequence);
        match arrival {
            Arrival::InOrder => {}
            Arrival::OutOfOrder => self.out_of_order += 1,
            Arrival::Duplicate => self.duplicates += 1,
            Arrival::Rejected => self.rejected += 1,
        }
        arrival
    }

    /// The counts once publishers are done: `sent` lists, for each publisher this receiver
    /// should have heard, how many messages it sent (sequences 0 to sent - 1).
    pub fn tally(&self, sent: &[(u64, u64)]) -> Tally {
        let mut lost = 0;
        let mut expected_seen = 0;
        for &(publisher, count) in sent {
            let seen = self
                .streams
                .get(&publisher)
                .map_or(0, |stream| stream.seen_below(count));
            expected_seen += seen;
            lost += count.saturating_sub(seen);
        }
        let unique: u64 = self.streams.values().map(|stream| stream.unique).sum();
        Tally {
            received: self.received,
            duplicates: self.duplicates,
            out_of_order: self.out_of_order,
            lost,
            unexpected: unique.saturating_sub(expected_seen) + self.rejected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_is_complete() {
        let mut tracker = SequenceTracker::new();
        for sequence in 0..1000 {
            assert_eq!(tracker.record(3, sequence), Arrival::InOrder);
        }
        let tally = tracker.tally(&[(3, 1000)]);
        assert_eq!(
            tally,
            Tally {
                received: 1000,
                ..Tally::default()
            }
        );
    }

    #[test]
    fn duplicates_and_reordering_are_counted() {
        let mut tracker = SequenceTracker::new();
        assert_eq!(tracker.record(1, 0), Arrival::InOrder);
        assert_eq!(tracker.record(1, 2), Arrival::InOrder);
        assert_eq!(tracker.record(1, 1), Arrival::OutOfOrder);
        assert_eq!(tracker.record(1, 2), Arrival::Duplicate);
        assert_eq!(tracker.record(1, 0), Arrival::Duplicate);
        assert_eq!(tracker.record(1, 3), Arrival::InOrder);
        let tally = tracker.tally(&[(1, 4)]);
        assert_eq!(tally.received, 6);
        assert_eq!(tally.duplicates, 2);
        assert_eq!(tally.out_of_order, 1);
        assert_eq!(tally.lost, 0);
        assert_eq!(tally.unexpected, 0);
    }

    #[test]
    fn gaps_and_a_missing_tail_are_lost() {
        let mut tracker = SequenceTracker::new();
        for sequence in (0..200).filter(|s| s % 10 != 0) {
            tracker.record(9, sequence);
        }
        // 20 holes (0, 10, ..., 190) and a tail of 50 never received.
        assert_eq!(tracker.tally(&[(9, 250)]).lost, 20 + 50);
    }

    #[test]
    fn publishers_are_tracked_apart() {
        let mut tracker = SequenceTracker::new();
        for sequence in 0..100 {
            tracker.record(1, sequence);
            tracker.record(2, sequence);
        }
        // Publisher 2 said it sent 150; publisher 3 sent 10 and none arrived.
        let tally = tracker.tally(&[(1, 100), (2, 150), (3, 10)]);
        assert_eq!(tally.lost, 50 + 10);
        assert_eq!(tally.duplicates, 0);
        assert_eq!(
            tally.out_of_order, 0,
            "interleaved publishers are each in order"
        );
    }

    #[test]
    fn unexpected_messages_are_not_lost_ones() {
        let mut tracker = SequenceTracker::new();
        tracker.record(1, 0);
        tracker.record(1, 5); // past the sent count below
        tracker.record(42, 0); // a publisher nobody expected
        assert_eq!(tracker.record(1, MAX_SEQUENCE), Arrival::Rejected);
        let tally = tracker.tally(&[(1, 1)]);
        assert_eq!(tally.lost, 0);
        assert_eq!(tally.unexpected, 3);
        assert_eq!(tally.received, 4);
    }

    #[test]
    fn word_boundaries() {
        let mut tracker = SequenceTracker::new();
        for sequence in [63, 64, 127, 128] {
            tracker.record(0, sequence);
        }
        assert_eq!(tracker.tally(&[(0, 64)]).lost, 63);
        assert_eq!(tracker.tally(&[(0, 65)]).lost, 63);
        assert_eq!(tracker.tally(&[(0, 129)]).lost, 125);
        assert_eq!(tracker.tally(&[(0, 129)]).unexpected, 0);
        assert_eq!(tracker.tally(&[(0, 128)]).unexpected, 1);
    }

    #[test]
    fn tallies_add_up() {
        let mut total = Tally::default();
        let one = Tally {
            received: 5,
            duplicates: 1,
            out_of_order: 2,
            lost: 3,
            unexpected: 4,
        };
        total.add(&one);
        total.add(&one);
        assert_eq!(total.received, 10);
        assert_eq!(total.lost, 6);
        assert_eq!(total.unexpected, 8);
    }
}
