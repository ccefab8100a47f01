//! Serving one STOMP connection: the context shared by every connection of the adapter, and the
//! entry point the gateway calls.

use std::net::SocketAddr;
use std::sync::Arc;

use mqgate_core::auth::Users;
use mqgate_core::broker::Broker;
use mqgate_core::names::{ConnectionId, UserName};
use mqgate_session::{run_connection, ConnectionReport, DriverConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::codec::StompCodec;
use crate::handshake::StompHandshake;
use crate::settings::StompSettings;

/// What every STOMP connection of one adapter shares.
#[derive(Debug, Clone)]
pub struct StompContext {
    /// The engine.
    pub broker: Arc<Broker>,
    /// The configured users.
    pub users: Arc<Users>,
    /// The user clients sending no `login` act as, if anonymous logins are allowed.
    pub anonymous: Option<UserName>,
    /// The adapter's settings.
    pub settings: Arc<StompSettings>,
    /// The driver's limits and timeouts.
    pub driver: DriverConfig,
}

impl StompContext {
    /// A context on `broker` and `users` with `settings` and the driver's `driver` limits.
    pub fn new(
        broker: Arc<Broker>,
        users: Arc<Users>,
        anonymous: Option<UserName>,
        settings: StompSettings,
        driver: DriverConfig,
    ) -> Self {
        Self {
            broker,
            users,
            anonymous,
            settings: Arc::new(settings),
            driver,
        }
    }
}

/// Serves one STOMP connection until it closes, and reports why.
///
/// `tls_common_name` is the verified client certificate's CN (TLS listeners with client
/// certificate verification); `connection_id` the id the gateway numbered the socket with;
/// `shutdown` ends the connection with an ERROR frame.
pub async fn serve<T>(
    stream: T,
    ctx: &StompContext,
    peer: SocketAddr,
    tls_common_name: Option<String>,
    connection_id: ConnectionId,
    shutdown: CancellationToken,
) -> ConnectionReport
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let codec = StompCodec::new(
        ctx.settings
            .codec_limits(ctx.driver.handshake_max_frame_size),
    );
    let handshake = StompHandshake::new(ctx.clone(), peer, tls_common_name, connection_id);
    let span = tracing::info_span!("stomp", connection = connection_id.0, %peer);
    run_connection(stream, codec, handshake, ctx.driver, shutdown)
        .instrument(span)
        .await
}
