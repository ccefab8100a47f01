//! Structured shutdown: the live-connection registry and the drain.
//!
//! The sequence (driven by `RunningGateway::wait`): the gateway's root token is cancelled
//! (a signal, or `RunningGateway::shutdown`); accept loops stop and close their ports; every
//! connection's token, a child of the root, tells its handler to say goodbye in its protocol;
//! the drain waits for the connection tasks up to `shutdown.drain_timeout`; whatever is still
//! open then is logged one line per connection, counted, and dropped (its socket closes).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mqgate_core::names::ConnectionId;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::listener::GatewayMetrics;
use crate::protocols::Protocol;

/// After the drain deadline, how long dropped handlers get to unwind before `wait` returns.
const CUT_OFF_GRACE: Duration = Duration::from_secs(1);

/// A connection that was still open at the drain deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutOffConnection {
    /// The connection.
    pub id: ConnectionId,
    /// Its protocol.
    pub protocol: Protocol,
    /// The client's address.
    pub peer: SocketAddr,
    /// How long it had been open.
    pub open_for: Duration,
}

/// How the shutdown went.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Connections still open when the drain began (after the listeners closed; handlers
    /// quick to say goodbye may be gone already).
    pub open_at_shutdown: usize,
    /// Those still open at the drain deadline, which were cut off.
    pub cut_off: Vec<CutOffConnection>,
    /// Time from the start of the drain to its end.
    pub drain_time: Duration,
}

struct LiveConnection {
    protocol: Protocol,
    peer: SocketAddr,
    since: Instant,
}

/// The gateway's connection tasks: spawned here, drained here.
pub(crate) struct Connections {
    tracker: TaskTracker,
    live: Mutex<HashMap<ConnectionId, LiveConnection>>,
    /// Cancelled at the drain deadline: every connection task then ends at its next poll.
    cut_off: CancellationToken,
}

/// A connection's place in the registry: removes it when dropped, however its task ends, and
/// says when the drain deadline cuts it off.
pub(crate) struct Registered {
    connections: Arc<Connections>,
    id: ConnectionId,
}

impl Registered {
    /// Completes at the drain deadline: the connection's task must then end.
    pub(crate) async fn cut_off(&self) {
        self.connections.cut_off.cancelled().await;
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.connections.live().remove(&self.id);
    }
}

impl Connections {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            tracker: TaskTracker::new(),
            live: Mutex::new(HashMap::new()),
            cut_off: CancellationToken::new(),
        })
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, LiveConnection>> {
        // The map stays consistent whatever panicked while holding it (single inserts/removes).
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.live().len()
    }

    /// Registers a connection until the returned guard drops; the guard goes into the task
    /// [`spawn`](Connections::spawn) runs, which must end once [`Registered::cut_off`] completes.
    pub(crate) fn register(
        self: &Arc<Self>,
        id: ConnectionId,
        peer: SocketAddr,
        protocol: Protocol,
    ) -> Registered {
        self.live().insert(
            id,
            LiveConnection {
                protocol,
                peer,
                since: Instant::now(),
            },
        );
        Registered {
            connections: Arc::clone(self),
            id,
        }
    }

    /// Runs one connection's task (holding its [`Registered`] guard), tracked for the drain.
    ///
    /// The future is spawned as it is, not wrapped in another `async` block: each wrapper would
    /// store the future twice (captured, then awaited), and the task lives as long as the
    /// connection.
    pub(crate) fn spawn(&self, connection: impl Future<Output = ()> + Send + 'static) {
        self.tracker.spawn(connection);
    }

    /// Waits for every connection task up to `timeout`, then cuts off the rest. Call it after
    /// the accept loops have stopped.
    pub(crate) async fn drain(
        &self,
        timeout: Duration,
        metrics: &GatewayMetrics,
    ) -> ShutdownReport {
        let started = Instant::now();
        self.tracker.close();
        let open_at_shutdown = self.open();
        if open_at_shutdown > 0 {
            tracing::info!(connections = open_at_shutdown, drain_timeout = ?timeout, "draining connections");
        }
        if tokio::time::timeout(timeout, self.tracker.wait())
            .await
            .is_ok()
        {
            return ShutdownReport {
                open_at_shutdown,
                cut_off: Vec::new(),
                drain_time: started.elapsed(),
            };
        }
        let now = Instant::now();
        let mut cut_off: Vec<CutOffConnection> = self
            .live()
            .iter()
            .map(|(id, live)| CutOffConnection {
                id: *id,
                protocol: live.protocol,
                peer: live.peer,
                open_for: now.saturating_duration_since(live.since),
            })
            .collect();
        cut_off.sort_by_key(|connection| connection.id);
        tracing::warn!(connections = cut_off.len(), drain_timeout = ?timeout,
            "drain deadline passed; cutting off the connections still open");
        for connection in &cut_off {
            tracing::warn!(id = %connection.id, protocol = %connection.protocol, peer = %connection.peer,
                open_for = ?connection.open_for, "connection cut off");
        }
        metrics
            .cut_off_at_shutdown
            .fetch_add(cut_off.len() as u64, std::sync::atomic::Ordering::Relaxed);
        self.cut_off.cancel();
        // Dropped handlers end at their next poll; one stuck in a blocking call cannot be helped.
        let _ = tokio::time::timeout(CUT_OFF_GRACE, self.tracker.wait()).await;
        ShutdownReport {
            open_at_shutdown,
            cut_off,
            drain_time: started.elapsed(),
        }
    }
}
