//! The publisher side's count of messages the broker (or, at QoS 0, the socket) took.
//!
//! At QoS 1 a message counts once the broker confirmed it: MQTT PUBACK, STOMP RECEIPT, AMQP
//! basic.ack (a negative answer counts as refused). At QoS 0 it counts once the client wrote it
//! out, which is all a fire-and-forget publisher can know. A connection that fails records why;
//! waiters then stop waiting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Counts of confirmed and refused messages, and the connection's failure if any.
#[derive(Debug, Default)]
pub struct Confirms {
    confirmed: AtomicU64,
    refused: AtomicU64,
    failure: Mutex<Option<String>>,
    changed: Notify,
}

impl Confirms {
    /// A count of `n` more messages taken.
    pub fn confirm(&self, n: u64) {
        self.confirmed.fetch_add(n, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// A count of `n` more messages refused (MQTT 5 PUBACK with an error reason, AMQP nack).
    pub fn refuse(&self, n: u64) {
        self.refused.fetch_add(n, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// The connection failed: no more confirmations will come. The first reason is kept.
    pub fn fail(&self, reason: impl Into<String>) {
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert_with(|| reason.into());
        }
        self.changed.notify_waiters();
    }

    /// Messages confirmed so far.
    pub fn confirmed(&self) -> u64 {
        self.confirmed.load(Ordering::Relaxed)
    }

    /// Messages refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Why the connection failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|failure| failure.clone())
    }

    /// Waits until `sent` messages were answered (confirmed or refused), the connection
    /// failed, or `deadline`; true in the first case.
    pub async fn wait_for(&self, sent: u64, deadline: Instant) -> bool {
        loop {
            let changed = self.changed.notified();
            if self.confirmed() + self.refused() >= sent {
                return true;
            }
            if self.failure().is_some() {
                return false;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.confirmed() + self.refused() >= sent;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn wait_returns_once_everything_is_answered() {
        let confirms = Arc::new(Confirms::default());
        let background = confirms.clone();
        tokio::spawn(async move {
            for _ in 0..10 {
                background.confirm(1);
                tokio::task::yield_now().await;
            }
            background.refuse(2);
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        assert!(confirms.wait_for(12, deadline).await);
        assert_eq!((confirms.confirmed(), confirms.refused()), (10, 2));
    }

    #[tokio::test]
    async fn a_failure_or_the_deadline_ends_the_wait() {
        let confirms = Confirms::default();
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(!confirms.wait_for(1, soon).await);
        confirms.fail("reset");
        confirms.fail("later reason");
        let later = Instant::now() + Duration::from_secs(5);
        assert!(!confirms.wait_for(1, later).await);
        assert_eq!(confirms.failure().as_deref(), Some("reset"));
    }
}
