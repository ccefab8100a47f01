//! The MQTT adapter's connection handler: `mqgate_mqtt::serve` with the gateway's limits.
//!
//! Invariant: one handler (so one client-id registry) serves every MQTT listener of a gateway:
//! the gateway builds a protocol's handler once and shares it between its plain and TLS ports.

use std::sync::Arc;

use mqgate_mqtt::MqttContext;
use mqgate_session::DriverConfig;
use tokio_util::sync::CancellationToken;

use crate::listener::{AsyncStream, BoxFuture, ConnectionHandler, ConnectionMeta};
use crate::protocols::AdapterContext;

/// Serves MQTT connections.
#[derive(Debug)]
pub struct MqttHandler {
    ctx: MqttContext,
}

impl MqttHandler {
    /// A handler on the gateway's engine, users, limits and MQTT settings (whose
    /// `max_packet_size` the config derives from `limits.max_message_size` unless set).
    pub fn new(context: &AdapterContext) -> Self {
        let limits = &context.limits;
        let driver = DriverConfig {
            handshake_timeout: limits.handshake_timeout,
            max_outbound_bytes: limits.outbound_buffer_bytes,
            write_stall_timeout: limits.write_stall_timeout,
            ..DriverConfig::default()
        };
        Self {
            ctx: MqttContext::new(
                Arc::clone(&context.broker),
                Arc::clone(&context.users),
                context.anonymous.clone(),
                context.mqtt.clone(),
                driver,
            ),
        }
    }

    /// The registry factory entry for `Protocol::Mqtt`.
    pub fn factory(context: &AdapterContext) -> Arc<dyn ConnectionHandler> {
        Arc::new(Self::new(context))
    }
}

impl ConnectionHandler for MqttHandler {
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
                mqgate_mqtt::serve(stream, &ctx, meta.peer, common_name, meta.id, shutdown).await;
        })
    }
}
