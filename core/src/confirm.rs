//! Publish confirmation as an event: a publish is confirmed once every target queue holds it.
//!
//! The broker makes one [`ConfirmTracker`] per publish that asked for confirmation and hands one
//! [`Completion`] to each target queue. A queue completes it when the message is stored (at once
//! in memory; after fsync on disk later) or fails it (overflow reject, storage error). When the last
//! completion is done, the session gets [`Event::PublishSettled`]: confirmed if all succeeded,
//! else rejected with the first failure.
//!
//! Invariant: a completion dropped without being completed counts as a failure
//! ([`PublishRejection::QueueDeleted`]), so no publish waits forever.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::outbox::{Event, Outbox, PublishId, PublishOutcome, PublishRejection};

#[derive(Debug)]
struct Pending {
    outbox: Arc<Outbox>,
    id: PublishId,
    remaining: AtomicUsize,
    failure: Mutex<Option<PublishRejection>>,
}

impl Pending {
    fn finish_one(&self, result: Result<(), PublishRejection>) {
        if let Err(reason) = result {
            self.failure.lock().get_or_insert(reason);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let outcome = match *self.failure.lock() {
                None => PublishOutcome::Confirmed,
                Some(reason) => PublishOutcome::Rejected(reason),
            };
            self.outbox.send(Event::PublishSettled {
                id: self.id,
                outcome,
            });
        }
    }
}

/// Collects the completions of one publish.
#[derive(Debug)]
pub struct ConfirmTracker {
    pending: Arc<Pending>,
}

impl ConfirmTracker {
    /// A tracker that will settle publish `id` to `outbox`.
    pub fn new(outbox: Arc<Outbox>, id: PublishId) -> Self {
        Self {
            pending: Arc::new(Pending {
                outbox,
                id,
                // One extra count held by the tracker itself until `finish`, so the publish cannot
                // settle while completions are still being handed out.
                remaining: AtomicUsize::new(1),
                failure: Mutex::new(None),
            }),
        }
    }

    /// A completion for one more target queue.
    pub fn completion(&self) -> Completion {
        self.pending.remaining.fetch_add(1, Ordering::AcqRel);
        Completion {
            pending: Some(Arc::clone(&self.pending)),
        }
    }

    /// No more completions will be handed out; settles now if all are done (or none was needed).
    pub fn finish(self) {
        self.pending.finish_one(Ok(()));
    }

    /// Settles the publish as rejected without waiting for any queue.
    pub fn reject(self, reason: PublishRejection) {
        self.pending.finish_one(Err(reason));
    }
}

/// One target queue's part in a publish confirmation. Complete it exactly once.
#[derive(Debug)]
pub struct Completion {
    pending: Option<Arc<Pending>>,
}

impl Completion {
    /// A completion that nobody waits for (the publish did not ask for confirmation).
    pub fn detached() -> Self {
        Self { pending: None }
    }

    /// True if nobody waits for this publish's confirmation.
    pub fn is_detached(&self) -> bool {
        self.pending.is_none()
    }

    /// A second completion of the same publish, which must also be completed before it settles
    /// (a queue that both stores a message and holds its confirmation until it is back within its
    /// limits completes one for each).
    pub fn split(&self) -> Completion {
        Completion {
            pending: self.pending.as_ref().map(|pending| {
                pending.remaining.fetch_add(1, Ordering::AcqRel);
                Arc::clone(pending)
            }),
        }
    }

    /// Reports this queue's result.
    pub fn complete(mut self, result: Result<(), PublishRejection>) {
        if let Some(pending) = self.pending.take() {
            pending.finish_one(result);
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.finish_one(Err(PublishRejection::QueueDeleted));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{ConnectionId, SessionId};

    fn settled(receiver: &mut crate::outbox::EventReceiver) -> Option<(PublishId, PublishOutcome)> {
        match receiver.try_recv()? {
            Event::PublishSettled { id, outcome } => Some((id, outcome)),
            _ => None,
        }
    }

    #[test]
    fn confirms_after_every_completion() {
        let (outbox, mut receiver) = Outbox::new(SessionId(1), ConnectionId(1), 1024);
        let tracker = ConfirmTracker::new(outbox, PublishId(7));
        let first = tracker.completion();
        let second = tracker.completion();
        tracker.finish();
        first.complete(Ok(()));
        assert!(settled(&mut receiver).is_none());
        second.complete(Ok(()));
        assert_eq!(
            settled(&mut receiver),
            Some((PublishId(7), PublishOutcome::Confirmed))
        );
    }

    #[test]
    fn a_split_completion_must_also_complete() {
        let (outbox, mut receiver) = Outbox::new(SessionId(1), ConnectionId(1), 1024);
        let tracker = ConfirmTracker::new(outbox, PublishId(3));
        let stored = tracker.completion();
        let held = stored.split();
        tracker.finish();
        stored.complete(Ok(()));
        assert_eq!(settled(&mut receiver), None, "the held half is still open");
        held.complete(Ok(()));
        assert_eq!(
            settled(&mut receiver),
            Some((PublishId(3), PublishOutcome::Confirmed))
        );
        assert!(Completion::detached().split().is_detached());
    }

    #[test]
    fn one_failure_rejects_and_dropped_completion_fails() {
        let (outbox, mut receiver) = Outbox::new(SessionId(1), ConnectionId(1), 1024);
        let tracker = ConfirmTracker::new(outbox, PublishId(1));
        let first = tracker.completion();
        let second = tracker.completion();
        tracker.finish();
        first.complete(Err(PublishRejection::QueueFull));
        drop(second);
        assert_eq!(
            settled(&mut receiver),
            Some((
                PublishId(1),
                PublishOutcome::Rejected(PublishRejection::QueueFull)
            ))
        );
    }

    #[test]
    fn no_target_confirms_at_finish() {
        let (outbox, mut receiver) = Outbox::new(SessionId(1), ConnectionId(1), 1024);
        ConfirmTracker::new(outbox, PublishId(2)).finish();
        assert_eq!(
            settled(&mut receiver),
            Some((PublishId(2), PublishOutcome::Confirmed))
        );
    }
}
