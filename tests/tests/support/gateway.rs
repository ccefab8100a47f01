//! The in-process gateway the end-to-end tests run against, its users, and bounded waits.
//!
//! A test binary mounts it as `#[path = "support/gateway.rs"] mod gateway;` (the other support
//! modules reach it as `super::gateway`). Every wait here is bounded; nothing sleeps to
//! synchronise except while polling a condition.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mqgate::protocols::Protocol;
use mqgate::{
    AsyncStream, BoxFuture, ConnectionHandler, ConnectionMeta, Gateway, ListenerSpec,
    RunningGateway, Settings, Transport,
};
use mqgate_core::auth::{hash_password, PermissionSpec, User, UserSpec, Users};
use mqgate_core::broker::Broker;
use mqgate_core::names::{QueueName, UserName, VhostName};
use mqgate_core::queue::QueueStats;
use mqgate_mqtt::{MqttContext, MqttSettings};
use mqgate_session::DriverConfig;
use rumqttc::tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;

/// The default bound on a single wait.
pub const STEP: Duration = Duration::from_secs(5);

/// The `guest` / `guest` account.
pub const GUEST: (&str, &str) = ("guest", "guest");
/// The `alice` / `s3cret` account.
pub const ALICE: (&str, &str) = ("alice", "s3cret");
/// The tag the guest-only gateways give their users.
pub const ADMINISTRATOR: &[&str] = &["administrator"];

/// `(name, password)` accounts with `tags`, each allowed everything on vhost `/` from loopback.
pub fn users(accounts: &[(&str, &str)], tags: &[&str]) -> Users {
    Users::new(accounts.iter().map(|&(name, password)| {
        User::new(UserSpec {
            name: name.to_owned(),
            password_hash: hash_password(password).unwrap(),
            loopback_only: true,
            tags: tags.iter().map(|&tag| tag.to_owned()).collect(),
            permissions: vec![PermissionSpec {
                vhost: "/".to_owned(),
                configure: ".*".to_owned(),
                write: ".*".to_owned(),
                read: ".*".to_owned(),
            }],
        })
        .unwrap()
    }))
    .unwrap()
}

/// Only `guest`, an administrator.
pub fn guest_users() -> Users {
    users(&[GUEST], ADMINISTRATOR)
}

/// Settings with one plain MQTT listener on 127.0.0.1:0, [`guest_users`] and anonymous logins
/// as `guest`; everything else the defaults.
pub fn settings() -> Settings {
    Settings {
        listeners: vec![ListenerSpec {
            protocol: Protocol::Mqtt,
            transport: Transport::Plain,
            addr: "127.0.0.1:0".parse().unwrap(),
        }],
        users: Arc::new(guest_users()),
        anonymous: Some(UserName::new("guest").unwrap()),
        ..Settings::default()
    }
}

/// For a tuning closure: the MQTT listener speaks TLS with `config`.
pub fn use_tls(settings: &mut Settings, config: Arc<rustls::ServerConfig>) {
    settings.tls = Some(config);
    for listener in &mut settings.listeners {
        listener.transport = Transport::Tls;
    }
}

/// Starts a gateway on [`settings`] with `tune` applied; returns it and the address of its
/// MQTT listener (plain or TLS, as tuned).
pub async fn start(tune: impl FnOnce(&mut Settings)) -> (RunningGateway, SocketAddr) {
    let mut settings = settings();
    tune(&mut settings);
    launch(settings, None).await
}

/// A plain gateway on [`settings`] whose MQTT connections are served by a handler of this
/// module with `mqtt` and the driver's defaults (the gateway's own handler derives both from
/// its limits).
pub async fn start_serving(mqtt: MqttSettings) -> (RunningGateway, SocketAddr) {
    launch(settings(), Some(mqtt)).await
}

async fn launch(settings: Settings, mqtt: Option<MqttSettings>) -> (RunningGateway, SocketAddr) {
    let transport = settings
        .listeners
        .iter()
        .find(|listener| listener.protocol == Protocol::Mqtt)
        .expect("an MQTT listener")
        .transport;
    let users = Arc::clone(&settings.users);
    let anonymous = settings.anonymous.clone();
    let handler = Arc::new(Handler {
        ctx: OnceLock::new(),
    });
    let mut builder = Gateway::builder(settings);
    if mqtt.is_some() {
        builder = builder.handler(Protocol::Mqtt, handler.clone());
    }
    let running = builder.start().await.unwrap();
    if let Some(mqtt) = mqtt {
        let ctx = MqttContext::new(
            Arc::clone(running.broker()),
            users,
            anonymous,
            mqtt,
            DriverConfig::default(),
        );
        assert!(handler.ctx.set(ctx).is_ok());
    }
    let addr = running.local_addr(Protocol::Mqtt, transport).unwrap();
    (running, addr)
}

/// Serves MQTT with chosen settings; its context is set once the engine exists.
struct Handler {
    ctx: OnceLock<MqttContext>,
}

impl ConnectionHandler for Handler {
    fn handle(
        &self,
        stream: Box<dyn AsyncStream>,
        meta: ConnectionMeta,
        shutdown: CancellationToken,
    ) -> BoxFuture<()> {
        let ctx = self.ctx.get().cloned();
        Box::pin(async move {
            if let Some(ctx) = ctx {
                let _ = mqgate_mqtt::serve(stream, &ctx, meta.peer, None, meta.id, shutdown).await;
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Bounded waits.

/// Awaits `future` for at most `limit`, failing the test with `what` otherwise.
pub async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// Polls `condition` every 10 ms until it holds, failing with `what` after `limit`.
pub async fn eventually(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    within(limit, what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// The stats of queue `name` in vhost `/`, if it exists.
pub fn queue_stats(broker: &Broker, name: &str) -> Option<QueueStats> {
    broker
        .vhost(&VhostName::default_vhost())?
        .queue(&QueueName::new(name).ok()?)
        .map(|queue| queue.stats())
}

/// The stats of MQTT client `id`'s session queue, if it exists.
pub fn session_stats(gateway: &RunningGateway, id: &str) -> Option<QueueStats> {
    queue_stats(gateway.broker(), &format!("mqtt-session.{id}"))
}

/// Waits until the session queue of `id` has no consumer (its connection is gone).
pub async fn wait_offline(gateway: &RunningGateway, id: &str) {
    eventually(STEP, "the gateway did not notice the disconnect", || {
        session_stats(gateway, id).is_none_or(|stats| stats.consumers == 0)
    })
    .await;
}

/// Waits until the session queue of `id` holds `ready` messages.
pub async fn wait_ready(gateway: &RunningGateway, id: &str, ready: u32) {
    eventually(
        STEP,
        "the session queue did not reach the expected count",
        || session_stats(gateway, id).is_some_and(|stats| stats.ready == ready),
    )
    .await;
}
