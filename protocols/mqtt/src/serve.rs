//! Serving one MQTT connection: the context shared by every connection of the adapter, and the
//! entry point the gateway calls.
//!
//! Invariant: one [`MqttContext`] (so one client-id [`Registry`]) serves every MQTT listener of
//! a gateway, so takeover works across the plain and TLS ports.

use std::net::SocketAddr;
use std::sync::Arc;

use mqgate_core::auth::Users;
use mqgate_core::broker::Broker;
use mqgate_core::names::{ConnectionId, UserName};
use mqgate_session::{run_connection, ConnectionReport, DriverConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::codec::MqttCodec;
use crate::handshake::MqttHandshake;
use crate::registry::Registry;
use crate::settings::MqttSettings;

/// What every MQTT connection of one adapter shares.
#[derive(Debug, Clone)]
pub struct MqttContext {
    /// The engine.
    pub broker: Arc<Broker>,
    /// The configured users.
    pub users: Arc<Users>,
    /// The user clients sending no credentials act as, if anonymous logins are allowed.
    pub anonymous: Option<UserName>,
    /// The adapter's settings.
    pub settings: Arc<MqttSettings>,
    /// The client-id registry.
    pub registry: Arc<Registry>,
    /// The driver's limits and timeouts.
    pub driver: DriverConfig,
}

impl MqttContext {
    /// A context with a fresh registry sized by `settings`.
    pub fn new(
        broker: Arc<Broker>,
        users: Arc<Users>,
        anonymous: Option<UserName>,
        settings: MqttSettings,
        driver: DriverConfig,
    ) -> Self {
        let registry = Registry::new(settings.max_persistent_sessions);
        Self {
            broker,
            users,
            anonymous,
            settings: Arc::new(settings),
            registry,
            driver,
        }
    }
}

/// Serves one MQTT connection until it closes, and reports why.
///
/// `tls_common_name` is the verified client certificate's CN (TLS listeners with client
/// certificate verification); `connection_id` the id the gateway numbered the socket with;
/// `shutdown` ends the connection with a v5 DISCONNECT 0x8B.
pub async fn serve<T>(
    stream: T,
    ctx: &MqttContext,
    peer: SocketAddr,
    tls_common_name: Option<String>,
    connection_id: ConnectionId,
    shutdown: CancellationToken,
) -> ConnectionReport
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let codec = MqttCodec::new(ctx.driver.handshake_max_frame_size);
    let handshake = MqttHandshake::new(ctx.clone(), peer, tls_common_name, connection_id);
    let span = tracing::info_span!("mqtt", connection = connection_id.0, %peer);
    run_connection(stream, codec, handshake, ctx.driver, shutdown)
        .instrument(span)
        .await
}
