//! Listeners: accept loops that hand each connection to a protocol's [`ConnectionHandler`].
//!
//! Invariants worth naming:
//! - The accept loop never waits on a client. It only accepts, takes a connection slot and
//!   spawns; the TLS handshake runs inside the connection's own task, under
//!   `limits.handshake_timeout`, so a client that never sends a ClientHello holds one slot for
//!   at most that long and delays nobody.
//! - The connection limit is global across listeners (a semaphore of `limits.max_connections`
//!   slots). Over the limit a connection is accepted and closed at once, counted in
//!   [`GatewayMetrics::refused_over_limit`] and logged (one warning per burst, then one line
//!   when slots free again), rather than left waiting in the kernel's backlog where the client
//!   cannot tell a full gateway from a slow one.
//! - Accept errors that concern one connection (reset or aborted before accept) are skipped;
//!   others (EMFILE, ENFILE, ENOBUFS) back off exponentially from 5 ms to 1 s, so a full file
//!   table does not spin the loop.
//! - Every connection's shutdown token is a child of its listener's, itself a child of the
//!   gateway's: cancelling the gateway stops the accept loops and tells every handler to say
//!   goodbye. A handler still running at the drain deadline is dropped (its socket closes).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mqgate_core::broker::Broker;
use mqgate_core::names::ConnectionId;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::protocols::Protocol;
use crate::shutdown::{Connections, Registered};
use crate::tls::TlsInfo;

/// A byte stream a handler reads and writes: a TCP stream or a TLS stream over one.
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T> AsyncStream for T where T: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a protocol adapter implements: serve one connection until it ends.
pub trait ConnectionHandler: Send + Sync + 'static {
    /// Serves one connection. `shutdown` is cancelled when the gateway shuts down: the handler
    /// then says goodbye in its protocol and returns. The future is dropped if it is still
    /// running at the drain deadline.
    fn handle(
        &self,
        stream: Box<dyn AsyncStream>,
        meta: ConnectionMeta,
        shutdown: CancellationToken,
    ) -> BoxFuture<()>;
}

/// What the gateway knows about a connection when it hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionMeta {
    /// Unique for the gateway's life.
    pub id: ConnectionId,
    /// The listener's protocol.
    pub protocol: Protocol,
    /// The client's address.
    pub peer: SocketAddr,
    /// The local address the client connected to.
    pub local: SocketAddr,
    /// For TLS listeners, what the handshake established.
    pub tls: Option<TlsInfo>,
}

/// Counters of the accept loops and handshakes, shared by every listener of a gateway.
#[derive(Debug, Default)]
pub struct GatewayMetrics {
    /// Connections accepted and handed on (TLS or not).
    pub accepted: AtomicU64,
    /// Connections closed at once because `max_connections` were open.
    pub refused_over_limit: AtomicU64,
    /// Accept calls that failed (excluding connections reset before accept).
    pub accept_errors: AtomicU64,
    /// TLS handshakes that failed (bad certificate, no certificate when required, not TLS...).
    pub tls_handshake_failed: AtomicU64,
    /// TLS handshakes not finished within the handshake timeout.
    pub tls_handshake_timed_out: AtomicU64,
    /// Connections still open at the drain deadline, cut off.
    pub cut_off_at_shutdown: AtomicU64,
}

impl GatewayMetrics {
    /// Reads a counter.
    pub fn read(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What every accept loop of one gateway shares.
pub(crate) struct Shared {
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) max_connections: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) metrics: Arc<GatewayMetrics>,
    pub(crate) connections: Arc<Connections>,
    /// Numbers connections: the core's allocator, so the id in logs and in the engine agree.
    pub(crate) broker: Arc<Broker>,
    /// True while connections are being refused for the limit (logs one warning per burst).
    pub(crate) full: AtomicBool,
}

impl Shared {
    fn next_id(&self) -> ConnectionId {
        self.broker.new_connection_id()
    }
}

/// One bound listener, ready to run its accept loop.
pub(crate) struct Listener {
    pub(crate) tcp: TcpListener,
    pub(crate) protocol: Protocol,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) handler: Arc<dyn ConnectionHandler>,
}

/// Errors of `accept` that concern one connection only: skip it, no backoff.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Exponential backoff for accept errors: 5 ms doubling to 1 s, reset by a success.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    fn new() -> Self {
        Self { next: Self::FIRST }
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    fn step(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }
}

impl Listener {
    /// Accepts until `shutdown` is cancelled, then drops the socket (the port closes).
    pub(crate) async fn run(self, shared: Arc<Shared>, shutdown: CancellationToken) {
        let local = self.tcp.local_addr().ok();
        let mut backoff = Backoff::new();
        loop {
            let accepted = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                accepted = self.tcp.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => {
                    backoff.reset();
                    accepted
                }
                Err(error) if is_connection_error(&error) => {
                    tracing::debug!(%error, "connection lost before accept");
                    continue;
                }
                Err(error) => {
                    GatewayMetrics::bump(&shared.metrics.accept_errors);
                    let delay = backoff.step();
                    tracing::warn!(protocol = %self.protocol, listener = ?local, %error, retry_in = ?delay, "accept failed");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(delay) => continue,
                    }
                }
            };
            let Ok(slot) = Arc::clone(&shared.slots).try_acquire_owned() else {
                GatewayMetrics::bump(&shared.metrics.refused_over_limit);
                if !shared.full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%peer, protocol = %self.protocol, max_connections = shared.max_connections,
                        "connection refused: max_connections open; refusing until a slot frees");
                } else {
                    tracing::debug!(%peer, "connection refused: max_connections open");
                }
                drop(stream);
                continue;
            };
            if shared.full.swap(false, Ordering::Relaxed) {
                tracing::info!(
                    refused_total = GatewayMetrics::read(&shared.metrics.refused_over_limit),
                    "accepting connections again"
                );
            }
            GatewayMetrics::bump(&shared.metrics.accepted);
            let id = shared.next_id();
            let meta = ConnectionMeta {
                id,
                protocol: self.protocol,
                peer,
                local: stream.local_addr().unwrap_or(peer),
                tls: None,
            };
            let registered = shared.connections.register(id, peer, self.protocol);
            shared.connections.spawn(serve(
                stream,
                meta,
                self.tls.clone(),
                Arc::clone(&self.handler),
                Arc::clone(&shared),
                shutdown.child_token(),
                Held { slot, registered },
            ));
        }
        tracing::debug!(protocol = %self.protocol, listener = ?local, "listener closed");
    }
}

/// What a connection's task holds for its whole life: its connection slot and its place in the
/// live-connection registry, both released when the task ends.
struct Held {
    slot: OwnedSemaphorePermit,
    registered: Registered,
}

/// One connection's life: the TLS handshake if any, then the handler, until either ends or the
/// drain deadline cuts it off.
///
/// This is the connection task's whole future (see `Connections::spawn`): what it keeps across
/// awaits is paid by every idle connection, so the TLS handshake runs boxed and the handler's
/// future is boxed by the handler.
async fn serve(
    stream: TcpStream,
    mut meta: ConnectionMeta,
    tls: Option<TlsAcceptor>,
    handler: Arc<dyn ConnectionHandler>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    held: Held,
) {
    let Held {
        slot: _slot,
        registered,
    } = held;
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(id = %meta.id, %error, "cannot set TCP_NODELAY");
    }
    let stream: Box<dyn AsyncStream> = match tls {
        None => Box::new(stream),
        // Boxed: the TLS handshake's state is freed once it ends rather than sized into the
        // connection's task.
        Some(acceptor) => {
            let accepted = Box::pin(accept_tls(
                stream,
                acceptor,
                &mut meta,
                &shared,
                &shutdown,
                &registered,
            ));
            match accepted.await {
                Some(stream) => stream,
                None => return,
            }
        }
    };
    tracing::debug!(id = %meta.id, peer = %meta.peer, protocol = %meta.protocol,
        client_cn = ?meta.tls.as_ref().and_then(|t| t.client_common_name.as_deref()), "connection open");
    let connection = handler.handle(stream, meta, shutdown);
    tokio::select! {
        () = connection => {}
        () = registered.cut_off() => {}
    }
}

/// The TLS handshake under the handshake timeout; `None` if it failed, timed out, or the
/// connection is shutting down or cut off.
async fn accept_tls(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    meta: &mut ConnectionMeta,
    shared: &Shared,
    shutdown: &CancellationToken,
    registered: &Registered,
) -> Option<Box<dyn AsyncStream>> {
    let handshake = tokio::time::timeout(shared.handshake_timeout, acceptor.accept(stream));
    let outcome = tokio::select! {
        () = shutdown.cancelled() => return None,
        () = registered.cut_off() => return None,
        outcome = handshake => outcome,
    };
    match outcome {
        Ok(Ok(tls_stream)) => {
            meta.tls = Some(TlsInfo::from_connection(tls_stream.get_ref().1));
            Some(Box::new(tls_stream))
        }
        Ok(Err(error)) => {
            GatewayMetrics::bump(&shared.metrics.tls_handshake_failed);
            tracing::info!(id = %meta.id, peer = %meta.peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            GatewayMetrics::bump(&shared.metrics.tls_handshake_timed_out);
            tracing::info!(id = %meta.id, peer = %meta.peer, timeout = ?shared.handshake_timeout,
                "TLS handshake timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_one_second_and_resets() {
        let mut backoff = Backoff::new();
        let steps: Vec<_> = (0..10).map(|_| backoff.step().as_millis()).collect();
        assert_eq!(steps, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.step(), Duration::from_millis(5));
    }
}
