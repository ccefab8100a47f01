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
use crate::session::session_queue_name;
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
        let context = Self {
            broker,
            users,
            anonymous,
            settings: Arc::new(settings),
            registry,
            driver,
        };
        context.spawn_expiry_sweep();
        context
    }

    /// Ends the persistent sessions whose expiry passed while their client was away.
    pub fn sweep_expired_sessions(&self, now: std::time::Instant) -> usize {
        sweep_expired_sessions(&self.registry, &self.broker, now)
    }

    /// Sweeps every [`EXPIRY_SWEEP_INTERVAL`] while the registry and the broker live (the task
    /// holds only weak references, so dropping the adapter ends it). Without a Tokio runtime
    /// (session scripts) there is no sweep; callers sweep by hand.
    fn spawn_expiry_sweep(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let registry = Arc::downgrade(&self.registry);
        let broker = Arc::downgrade(&self.broker);
        runtime.spawn(async move {
            let mut interval = tokio::time::interval(EXPIRY_SWEEP_INTERVAL);
            loop {
                interval.tick().await;
                let (Some(registry), Some(broker)) = (registry.upgrade(), broker.upgrade()) else {
                    return;
                };
                sweep_expired_sessions(&registry, &broker, std::time::Instant::now());
            }
        });
    }
}

/// Ends the persistent sessions whose expiry passed while their client was away: forgets their
/// records and deletes their queues (with what they held). Returns how many ended.
pub fn sweep_expired_sessions(
    registry: &Registry,
    broker: &Broker,
    now: std::time::Instant,
) -> usize {
    let expired = registry.take_expired(now);
    for key in &expired {
        let (Some(vhost), Ok(queue)) = (broker.vhost(&key.vhost), session_queue_name(&key.client))
        else {
            continue;
        };
        match vhost.delete_queue(&queue, None, false, false) {
            Ok(dropped) => tracing::info!(
                client_id = %key.client,
                vhost = %key.vhost,
                messages = dropped,
                "persistent session expired"
            ),
            Err(error) => {
                tracing::debug!(client_id = %key.client, %error, "expired session had no queue");
            }
        }
    }
    expired.len()
}

/// How often persistent sessions past their expiry are ended.
pub const EXPIRY_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

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
