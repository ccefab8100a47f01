//! The gateway's side of each landed protocol adapter: a [`ConnectionHandler`] that maps the
//! gateway's limits onto the adapter's settings and serves connections with it.
//!
//! What every adapter shares lives here: the driver's settings from [`Limits`] and the
//! [`AdapterHandler`] that serves each connection with the TLS client certificate's common name
//! and the shutdown token. Each adapter's module says only what differs ([`LandedAdapter`]): how
//! its context is built and which `serve` runs.
//!
//! [`ConnectionHandler`]: crate::listener::ConnectionHandler

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use mqgate_core::names::ConnectionId;
use mqgate_session::{ConnectionReport, DriverConfig};
use tokio_util::sync::CancellationToken;

use crate::listener::{AsyncStream, BoxFuture, ConnectionHandler, ConnectionMeta};
use crate::protocols::AdapterContext;
use crate::settings::Limits;

pub mod amqp;
pub mod mqtt;
pub mod stomp;

/// The driver's settings from the gateway's limits (the rest are the driver's defaults; an
/// adapter may adjust them in [`LandedAdapter::from_gateway`], as AMQP raises the handshake's
/// frame limit).
pub fn driver_config(limits: &Limits) -> DriverConfig {
    DriverConfig {
        handshake_timeout: limits.handshake_timeout,
        max_outbound_bytes: limits.outbound_buffer_bytes,
        write_stall_timeout: limits.write_stall_timeout,
        ..DriverConfig::default()
    }
}

/// What differs between the landed adapters, implemented by each adapter's context (the state
/// every connection of the adapter shares).
pub trait LandedAdapter: Clone + fmt::Debug + Send + Sync + 'static {
    /// The adapter's context on the gateway's engine, users and settings, with `driver`.
    fn from_gateway(context: &AdapterContext, driver: DriverConfig) -> Self;

    /// Serves one connection until it closes (the adapter's `serve`).
    fn serve(
        &self,
        stream: Box<dyn AsyncStream>,
        peer: SocketAddr,
        tls_common_name: Option<String>,
        connection_id: ConnectionId,
        shutdown: CancellationToken,
    ) -> impl Future<Output = ConnectionReport> + Send + '_;
}

/// Serves one adapter's connections with its context `C`.
///
/// Invariant: the gateway builds a protocol's handler once and shares it between its plain and
/// TLS ports, so one context serves every listener of the protocol.
#[derive(Debug)]
pub struct AdapterHandler<C> {
    ctx: C,
}

impl<C: LandedAdapter> AdapterHandler<C> {
    /// A handler on the gateway's engine, users, limits and the adapter's settings.
    pub fn new(context: &AdapterContext) -> Self {
        Self {
            ctx: C::from_gateway(context, driver_config(&context.limits)),
        }
    }

    /// The registry factory entry for the adapter's protocol.
    pub fn factory(context: &AdapterContext) -> Arc<dyn ConnectionHandler> {
        Arc::new(Self::new(context))
    }
}

impl<C: LandedAdapter> ConnectionHandler for AdapterHandler<C> {
    fn handle(
        &self,
        stream: Box<dyn AsyncStream>,
        meta: ConnectionMeta,
        shutdown: CancellationToken,
    ) -> BoxFuture<()> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let common_name = meta
                .tls
                .as_ref()
                .and_then(|tls| tls.client_common_name.clone());
            let _report = ctx
                .serve(stream, meta.peer, common_name, meta.id, shutdown)
                .await;
        })
    }
}
