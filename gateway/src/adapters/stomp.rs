//! The STOMP adapter's connection handler: `mqgate_stomp::serve` with the gateway's limits and
//! the `stomp:` section (4 MiB frames by default, 64 KiB before CONNECT).
//!
//! Invariant: one handler serves every STOMP listener of a gateway (plain and TLS ports).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use mqgate_core::names::ConnectionId;
use mqgate_session::{ConnectionReport, DriverConfig};
use mqgate_stomp::StompContext;
use tokio_util::sync::CancellationToken;

use super::{AdapterHandler, LandedAdapter};
use crate::listener::AsyncStream;
use crate::protocols::AdapterContext;

/// Serves STOMP connections.
pub type StompHandler = AdapterHandler<StompContext>;

impl LandedAdapter for StompContext {
    fn from_gateway(context: &AdapterContext, driver: DriverConfig) -> Self {
        StompContext::new(
            Arc::clone(&context.broker),
            Arc::clone(&context.users),
            context.anonymous.clone(),
            context.stomp.clone(),
            driver,
        )
    }

    fn serve(
        &self,
        stream: Box<dyn AsyncStream>,
        peer: SocketAddr,
        tls_common_name: Option<String>,
        connection_id: ConnectionId,
        shutdown: CancellationToken,
    ) -> impl Future<Output = ConnectionReport> + Send + '_ {
        mqgate_stomp::serve(stream, self, peer, tls_common_name, connection_id, shutdown)
    }
}
