//! What every vhost and queue of one broker shares: counters, the memory monitor, storage, and
//! the id counters for connections and sessions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::memory::MemoryMonitor;
use crate::metrics::Metrics;
use crate::names::{ConnectionId, SessionId};
use crate::storage::Storage;

/// Shared broker services.
#[derive(Debug)]
pub(crate) struct Services {
    pub metrics: Arc<Metrics>,
    pub memory: Arc<MemoryMonitor>,
    pub storage: Arc<dyn Storage>,
    pub session_window_bytes: usize,
    next_connection: AtomicU64,
    next_session: AtomicU64,
}

impl Services {
    pub fn new(
        metrics: Arc<Metrics>,
        memory: Arc<MemoryMonitor>,
        storage: Arc<dyn Storage>,
        session_window_bytes: usize,
    ) -> Self {
        Self {
            metrics,
            memory,
            storage,
            session_window_bytes,
            next_connection: AtomicU64::new(1),
            next_session: AtomicU64::new(1),
        }
    }

    pub fn next_connection(&self) -> ConnectionId {
        ConnectionId(self.next_connection.fetch_add(1, Ordering::Relaxed))
    }

    pub fn next_session(&self) -> SessionId {
        SessionId(self.next_session.fetch_add(1, Ordering::Relaxed))
    }
}
