//! The protocol clients behind one interface per direction.
//!
//! A [`Publisher`] is connected and logged in when [`Publisher::connect`] returns; each
//! [`Publisher::publish`] returns once the client took the message (at QoS 1 that may wait
//! for room in the confirmation window), and its [`Confirms`] count what the broker answered.
//! A subscriber is connected *and subscribed* (the broker confirmed the subscription) when
//! [`subscribe`] returns; from then on a task of its own hands every body to its [`Inbox`]
//! until the stop token fires, and returns the inbox.
//!
//! MQTT goes through rumqttc (its 3.1.1 and 5 clients), AMQP through lapin, STOMP through the
//! small client in [`stomp`]. [`idle`] holds the bare logins of the idle-connections scenario.

pub mod amqp;
pub mod confirms;
pub mod idle;
pub mod mqtt;
pub mod mqtt5;
pub mod stomp;
pub mod stomp_frame;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use confirms::Confirms;

use crate::inbox::Inbox;
use crate::target::{Protocol, Target};

/// Settings every client of a run shares.
#[derive(Debug, Clone)]
pub struct Options {
    /// 0: fire and forget; 1: every publish confirmed by the broker, deliveries acknowledged.
    pub qos: u8,
    /// Unconfirmed publishes one client may have in flight (MQTT inflight, STOMP receipts,
    /// AMQP confirms), and the prefetch of acknowledging consumers.
    pub window: u16,
    /// Login name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Time a client has to connect, log in and (for a subscriber) subscribe.
    pub connect_timeout: Duration,
}

/// A connected publisher.
pub enum Publisher {
    /// MQTT 3.1.1.
    Mqtt(mqtt::Publisher),
    /// MQTT 5.
    Mqtt5(mqtt5::Publisher),
    /// STOMP 1.2.
    Stomp(stomp::Publisher),
    /// AMQP 0-9-1 (boxed: lapin's handles are large).
    Amqp(Box<amqp::Publisher>),
}

impl Publisher {
    /// Connects and logs in as client `name`, to publish on logical `key`.
    pub async fn connect(
        target: &Target,
        name: &str,
        key: &str,
        options: &Options,
    ) -> anyhow::Result<Self> {
        let topic = target.name(key);
        let connecting = async {
            Ok(match target.protocol {
                Protocol::Mqtt3 => {
                    Self::Mqtt(mqtt::Publisher::connect(target, name, topic, options).await?)
                }
                Protocol::Mqtt5 => {
                    Self::Mqtt5(mqtt5::Publisher::connect(target, name, topic, options).await?)
                }
                Protocol::Stomp => {
                    Self::Stomp(stomp::Publisher::connect(target, topic, options).await?)
                }
                Protocol::Amqp => Self::Amqp(Box::new(
                    amqp::Publisher::connect(target, topic, options).await?,
                )),
            })
        };
        match tokio::time::timeout(options.connect_timeout, connecting).await {
            Ok(result) => result,
            Err(_) => anyhow::bail!("{target}: no login within {:?}", options.connect_timeout),
        }
    }

    /// Publishes `body`; returns once the client took it.
    pub async fn publish(&mut self, body: Bytes) -> anyhow::Result<()> {
        match self {
            Self::Mqtt(client) => client.publish(body).await,
            Self::Mqtt5(client) => client.publish(body).await,
            Self::Stomp(client) => client.publish(body).await,
            Self::Amqp(client) => client.publish(body).await,
        }
    }

    /// What the broker answered so far.
    pub fn confirms(&self) -> Arc<Confirms> {
        match self {
            Self::Mqtt(client) => client.confirms.clone(),
            Self::Mqtt5(client) => client.confirms.clone(),
            Self::Stomp(client) => client.confirms.clone(),
            Self::Amqp(client) => client.confirms.clone(),
        }
    }

    /// Says goodbye in the protocol and closes, within about a second.
    pub async fn close(self) {
        let closing = async {
            match self {
                Self::Mqtt(client) => client.close().await,
                Self::Mqtt5(client) => client.close().await,
                Self::Stomp(client) => client.close().await,
                Self::Amqp(client) => client.close().await,
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;
    }
}

/// A running subscriber: its task returns the inbox and, if the connection failed, why.
pub type Subscription = JoinHandle<(Inbox, Option<String>)>;

/// Connects as client `name`, subscribes to logical `key` and waits for the broker to confirm
/// it; then a task feeds `inbox` until `stop` fires.
pub async fn subscribe(
    target: &Target,
    name: &str,
    key: &str,
    options: &Options,
    inbox: Inbox,
    stop: CancellationToken,
) -> anyhow::Result<Subscription> {
    let topic = target.name(key);
    let subscribing = async {
        match target.protocol {
            Protocol::Mqtt3 => mqtt::subscribe(target, name, topic, options, inbox, stop).await,
            Protocol::Mqtt5 => mqtt5::subscribe(target, name, topic, options, inbox, stop).await,
            Protocol::Stomp => stomp::subscribe(target, topic, options, inbox, stop).await,
            Protocol::Amqp => amqp::subscribe(target, topic, options, inbox, stop).await,
        }
    };
    match tokio::time::timeout(options.connect_timeout, subscribing).await {
        Ok(result) => result,
        Err(_) => anyhow::bail!(
            "{target}: not subscribed within {:?}",
            options.connect_timeout
        ),
    }
}
