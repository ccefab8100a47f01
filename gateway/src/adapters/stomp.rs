//! The STOMP adapter's connection handler: `mqgate_stomp::serve` with the gateway's limits.
//!
//! Invariant: one handler serves every STOMP listener of a gateway (plain and TLS ports).

use std::sync::Arc;

use mqgate_session::DriverConfig;
use mqgate_stomp::StompContext;
use tokio_util::sync::CancellationToken;

use crate::listener::{AsyncStream, BoxFuture, ConnectionHandler, ConnectionMeta};
use crate::protocols::AdapterContext;

/// Serves STOMP connections.
#[derive(Debug)]
pub struct StompHandler {
    ctx: StompContext,
}

impl StompHandler {
    /// A handler on the gateway's engine, users, limits and STOMP settings (the `stomp:`
    /// section; 4 MiB frames by default, 64 KiB before CONNECT).
    pub fn new(context: &AdapterContext) -> Self {
        let limits = &context.limits;
        let driver = DriverConfig {
            handshake_timeout: limits.handshake_timeout,
            max_outbound_bytes: limits.outbound_buffer_bytes,
            write_stall_timeout: limits.write_stall_timeout,
            ..DriverConfig::default()
        };
        Self {
            ctx: StompContext::new(
                Arc::clone(&context.broker),
                Arc::clone(&context.users),
                context.anonymous.clone(),
                context.stomp.clone(),
                driver,
            ),
        }
    }

    /// The registry factory entry for `Protocol::Stomp`.
    pub fn factory(context: &AdapterContext) -> Arc<dyn ConnectionHandler> {
        Arc::new(Self::new(context))
    }
}

impl ConnectionHandler for StompHandler {
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
            let _report =
                mqgate_stomp::serve(stream, &ctx, meta.peer, common_name, meta.id, shutdown).await;
        })
    }
}
