//! The MQTT adapter's connection handler: `mqgate_mqtt::serve` with the gateway's limits and
//! the `mqtt:` section (whose `max_packet_size` the config derives from
//! `limits.max_message_size` unless set).
//!
//! Invariant: one handler (so one client-id registry) serves every MQTT listener of a gateway:
//! the gateway builds a protocol's handler once and shares it between its plain and TLS ports.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use mqgate_core::names::ConnectionId;
use mqgate_mqtt::MqttContext;
use mqgate_session::{ConnectionReport, DriverConfig};
use tokio_util::sync::CancellationToken;

use super::{AdapterHandler, LandedAdapter};
use crate::listener::AsyncStream;
use crate::protocols::AdapterContext;

/// Serves MQTT connections.
pub type MqttHandler = AdapterHandler<MqttContext>;

impl LandedAdapter for MqttContext {
    fn from_gateway(context: &AdapterContext, driver: DriverConfig) -> Self {
        MqttContext::new(
            Arc::clone(&context.broker),
            Arc::clone(&context.users),
            context.anonymous.clone(),
            context.mqtt.clone(),
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
        mqgate_mqtt::serve(stream, self, peer, tls_common_name, connection_id, shutdown)
    }
}
