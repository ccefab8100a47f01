//! Serving one AMQP connection: the context shared by every connection of the adapter, and the
//! entry point the gateway calls.

use std::net::SocketAddr;
use std::sync::Arc;

use mqgate_core::auth::Users;
use mqgate_core::broker::Broker;
use mqgate_core::names::ConnectionId;
use mqgate_session::{run_connection, ConnectionReport, DriverConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::codec::AmqpCodec;
use crate::handshake::AmqpHandshake;
use crate::settings::AmqpSettings;

/// What every AMQP connection of one adapter shares.
#[derive(Debug, Clone)]
pub struct AmqpContext {
    /// The engine.
    pub broker: Arc<Broker>,
    /// The configured users.
    pub users: Arc<Users>,
    /// The adapter's settings.
    pub settings: Arc<AmqpSettings>,
    /// The driver's limits and timeouts.
    pub driver: DriverConfig,
}

impl AmqpContext {
    /// A context on `broker` and `users` with `settings` and the driver's `driver` limits.
    pub fn new(
        broker: Arc<Broker>,
        users: Arc<Users>,
        settings: AmqpSettings,
        driver: DriverConfig,
    ) -> Self {
        Self {
            broker,
            users,
            settings: Arc::new(settings),
            driver,
        }
    }
}

/// Serves one AMQP connection until it closes, and reports why.
///
/// `tls_common_name` is the verified client certificate's CN (offered as EXTERNAL login);
/// `connection_id` the id the gateway numbered the socket with; `shutdown` ends the connection
/// with `connection.close` 320.
pub async fn serve<T>(
    stream: T,
    ctx: &AmqpContext,
    peer: SocketAddr,
    tls_common_name: Option<String>,
    connection_id: ConnectionId,
    shutdown: CancellationToken,
) -> ConnectionReport
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handshake = AmqpHandshake::new(ctx.clone(), peer, tls_common_name, connection_id);
    let span = tracing::info_span!("amqp", connection = connection_id.0, %peer);
    run_connection(stream, AmqpCodec::new(), handshake, ctx.driver, shutdown)
        .instrument(span)
        .await
}
