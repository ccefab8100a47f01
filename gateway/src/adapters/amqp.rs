//! The AMQP 0-9-1 adapter's connection handler: `mqgate_amqp::serve` with the gateway's limits
//! and the `amqp:` section (128 KiB frames proposed in `connection.tune` by default, 8 KiB
//! before tune-ok).
//!
//! Invariants:
//! - One handler serves every AMQP listener of a gateway (plain and TLS ports).
//! - The driver's frame limit before tune-ok admits every frame the codec accepts then (at most
//!   8192 bytes, AMQP's `frame-min-size`), with a frame's header and end octet to spare: the
//!   codec enforces the 8192 itself, and the driver's backstop must never cut a legal handshake
//!   frame short.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use mqgate_amqp::codec::{FRAME_MIN_SIZE, FRAME_OVERHEAD};
use mqgate_amqp::AmqpContext;
use mqgate_core::names::ConnectionId;
use mqgate_session::{ConnectionReport, DriverConfig};
use tokio_util::sync::CancellationToken;

use super::{AdapterHandler, LandedAdapter};
use crate::listener::AsyncStream;
use crate::protocols::AdapterContext;

/// The smallest driver frame limit before tune-ok: `frame-min-size` plus a frame's overhead.
pub const AMQP_HANDSHAKE_FRAME_SIZE: usize = FRAME_MIN_SIZE + FRAME_OVERHEAD;

/// Serves AMQP 0-9-1 connections.
pub type AmqpHandler = AdapterHandler<AmqpContext>;

/// The gateway's driver settings adjusted for AMQP: the handshake frame limit raised to
/// [`AMQP_HANDSHAKE_FRAME_SIZE`] when it is smaller (never lowered).
pub fn amqp_driver_config(driver: DriverConfig) -> DriverConfig {
    DriverConfig {
        handshake_max_frame_size: driver
            .handshake_max_frame_size
            .max(AMQP_HANDSHAKE_FRAME_SIZE),
        ..driver
    }
}

impl LandedAdapter for AmqpContext {
    fn from_gateway(context: &AdapterContext, driver: DriverConfig) -> Self {
        AmqpContext::new(
            Arc::clone(&context.broker),
            Arc::clone(&context.users),
            context.amqp.clone(),
            amqp_driver_config(driver),
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
        mqgate_amqp::serve(stream, self, peer, tls_common_name, connection_id, shutdown)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mqgate_amqp::AmqpSettings;
    use mqgate_core::broker::{Broker, BrokerConfig};
    use mqgate_core::storage::MemoryStorage;

    use super::*;
    use crate::adapters::driver_config;
    use crate::settings::{default_amqp_settings, Limits};

    #[test]
    fn handshake_frame_limit_admits_a_frame_min_size_frame() {
        assert_eq!(AMQP_HANDSHAKE_FRAME_SIZE, 8192 + 8);
        // The gateway's own limit is kept when it is larger...
        let gateway = driver_config(&Limits::default());
        assert!(gateway.handshake_max_frame_size >= AMQP_HANDSHAKE_FRAME_SIZE);
        assert_eq!(amqp_driver_config(gateway), gateway);
        // ...and raised when it is smaller; nothing else changes.
        let small = DriverConfig {
            handshake_max_frame_size: 4096,
            handshake_timeout: Duration::from_millis(1234),
            ..gateway
        };
        let raised = amqp_driver_config(small);
        assert_eq!(raised.handshake_max_frame_size, AMQP_HANDSHAKE_FRAME_SIZE);
        assert_eq!(
            raised,
            DriverConfig {
                handshake_max_frame_size: AMQP_HANDSHAKE_FRAME_SIZE,
                ..small
            }
        );
    }

    #[test]
    fn context_takes_the_amqp_section_and_the_gateway_limits() {
        let mut limits = Limits {
            handshake_timeout: Duration::from_millis(777),
            ..Limits::default()
        };
        limits.session_window_bytes = 12345;
        let amqp = AmqpSettings {
            frame_max: 65536,
            heartbeat: 0,
            ..default_amqp_settings(&limits)
        };
        let context = AdapterContext {
            broker: Broker::new(BrokerConfig {
                memory_high_watermark: limits.memory_high_watermark,
                session_window_bytes: limits.session_window_bytes,
                storage: Arc::new(MemoryStorage::new()),
            }),
            users: Arc::new(mqgate_core::auth::Users::empty()),
            anonymous: None,
            limits: limits.clone(),
            mqtt: crate::settings::default_mqtt_settings(&limits),
            stomp: crate::settings::default_stomp_settings(&limits),
            amqp: amqp.clone(),
        };
        let ctx = AmqpContext::from_gateway(&context, driver_config(&limits));
        assert_eq!(*ctx.settings, amqp);
        assert_eq!(ctx.settings.channel_window_bytes, 12345);
        assert_eq!(ctx.driver.handshake_timeout, Duration::from_millis(777));
        assert!(ctx.driver.handshake_max_frame_size >= AMQP_HANDSHAKE_FRAME_SIZE);
        assert!(Arc::ptr_eq(&ctx.broker, &context.broker));
    }
}
