//! The broker: the vhosts, the services they share, and the periodic sweeps.
//!
//! Adapters reach the engine through [`Broker::connect`], which gives a [`Connection`] bound to
//! one vhost; sessions opened on it publish, consume and acknowledge. The gateway builds one
//! broker at start, pre-declares from its config through [`Vhost`], and spawns
//! [`Broker::run_maintenance`].

use dashmap::DashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::memory::MemoryMonitor;
use crate::metrics::Metrics;
use crate::names::{ConnectionId, UserName, VhostName};
use crate::services::Services;
use crate::session::Connection;
use crate::storage::{MemoryStorage, Storage};
use crate::vhost::Vhost;

/// How often TTL and `x-expires` sweeps run.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Bytes all queues may hold before publishers are blocked.
    pub memory_high_watermark: usize,
    /// Bytes of deliveries that may wait for one session to take them.
    pub session_window_bytes: usize,
    /// Where messages on durable queues are kept.
    pub storage: Arc<dyn Storage>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            memory_high_watermark: 1 << 30,
            session_window_bytes: 1 << 20,
            storage: Arc::new(MemoryStorage::new()),
        }
    }
}

/// `connect` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The vhost does not exist (AMQP 530 NOT_ALLOWED, as RabbitMQ).
    #[error("vhost '{0}' not found")]
    VhostNotFound(VhostName),
}

/// The engine. Shared by `Arc`.
#[derive(Debug)]
pub struct Broker {
    services: Arc<Services>,
    vhosts: DashMap<VhostName, Arc<Vhost>>,
}

impl Broker {
    /// A broker with no vhosts yet.
    pub fn new(config: BrokerConfig) -> Arc<Self> {
        let metrics = Arc::new(Metrics::default());
        let memory = Arc::new(MemoryMonitor::new(
            config.memory_high_watermark,
            Arc::clone(&metrics),
        ));
        Arc::new(Self {
            services: Arc::new(Services::new(
                metrics,
                memory,
                config.storage,
                config.session_window_bytes,
            )),
            vhosts: DashMap::new(),
        })
    }

    /// Adds a vhost with its built-in exchanges, or returns the existing one.
    pub fn add_vhost(&self, name: VhostName) -> Arc<Vhost> {
        let services = Arc::clone(&self.services);
        Arc::clone(
            self.vhosts
                .entry(name.clone())
                .or_insert_with(|| Vhost::new(name, services))
                .value(),
        )
    }

    /// The vhost named `name`.
    pub fn vhost(&self, name: &VhostName) -> Option<Arc<Vhost>> {
        self.vhosts.get(name).map(|v| Arc::clone(v.value()))
    }

    /// Every vhost.
    pub fn vhosts(&self) -> Vec<Arc<Vhost>> {
        self.vhosts.iter().map(|v| Arc::clone(v.value())).collect()
    }

    /// The broker's counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.services.metrics
    }

    /// The memory monitor (flow control).
    pub fn memory(&self) -> &Arc<MemoryMonitor> {
        &self.services.memory
    }

    /// A fresh connection id. The gateway numbers each accepted socket with one, so logs, the
    /// future management API and exclusive-queue ownership all speak of the same id.
    pub fn new_connection_id(&self) -> ConnectionId {
        self.services.next_connection()
    }

    /// Opens a client connection on `vhost` with a fresh id. Dropping the [`Connection`] deletes
    /// its exclusive queues.
    pub fn connect(
        &self,
        vhost: &VhostName,
        user: Option<UserName>,
    ) -> Result<Connection, ConnectError> {
        self.connect_with_id(self.new_connection_id(), vhost, user)
    }

    /// Opens a client connection on `vhost` under an id from [`Broker::new_connection_id`]
    /// (the one the gateway gave the socket).
    pub fn connect_with_id(
        &self,
        id: ConnectionId,
        vhost: &VhostName,
        user: Option<UserName>,
    ) -> Result<Connection, ConnectError> {
        let vhost = self
            .vhost(vhost)
            .ok_or_else(|| ConnectError::VhostNotFound(vhost.clone()))?;
        Ok(Connection::new(vhost, Arc::clone(&self.services), id, user))
    }

    /// Runs one sweep of every vhost: TTL expiry and `x-expires`.
    pub fn sweep(&self, now: Instant) {
        for vhost in self.vhosts() {
            vhost.sweep(now);
        }
    }

    /// Sweeps every [`SWEEP_INTERVAL`] until `shutdown` is cancelled.
    pub async fn run_maintenance(self: Arc<Self>, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(SWEEP_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                tick = interval.tick() => self.sweep(tick.into_std()),
            }
        }
    }
}
