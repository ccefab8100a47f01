//! MQTT 3.1.1 through rumqttc's v4 client.
//!
//! Each connection is an `AsyncClient` and a driver task polling its `EventLoop`: the driver
//! counts PUBACKs (QoS 1) or written PUBLISHes (QoS 0) into [`Confirms`], and hands received
//! PUBLISH bodies to the [`Inbox`]. rumqttc's inflight limit is the QoS 1 window; received
//! QoS 1 messages are acknowledged by rumqttc itself. The connection is not re-established
//! after an error: the error is recorded and what it lost is counted as lost.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, NetworkOptions, Outgoing,
    Packet, QoS, SubscribeReasonCode,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Confirms, Options, Subscription};
use crate::inbox::Inbox;
use crate::target::Target;

/// Largest packet either way: a 16 MiB body and its headers.
pub const MAX_PACKET: usize = 16 * 1024 * 1024 + 1024;
/// Requests queued between the client handle and its event loop.
pub const REQUEST_CAPACITY: usize = 1024;
/// Keepalive asked for.
pub const KEEPALIVE: Duration = Duration::from_secs(30);

/// The QoS a run's `--qos` stands for.
pub fn qos(level: u8) -> QoS {
    if level == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

fn mqtt_options(target: &Target, name: &str, options: &Options) -> MqttOptions {
    let mut mqtt = MqttOptions::new(name, target.host.clone(), target.port);
    mqtt.set_keep_alive(KEEPALIVE)
        .set_clean_session(true)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET)
        .set_inflight(options.window.max(1));
    if !options.user.is_empty() {
        mqtt.set_credentials(options.user.clone(), options.password.clone());
    }
    mqtt
}

/// TCP_NODELAY (rumqttc's default leaves Nagle on, which delays small publishes) and the
/// connect timeout; shared with the MQTT 5 client.
pub fn network_options(options: &Options) -> NetworkOptions {
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(options.connect_timeout.as_secs().max(1));
    network
}

/// A client and its event loop for `name`.
fn client(target: &Target, name: &str, options: &Options) -> (AsyncClient, EventLoop) {
    let (client, mut eventloop) =
        AsyncClient::new(mqtt_options(target, name, options), REQUEST_CAPACITY);
    eventloop.set_network_options(network_options(options));
    (client, eventloop)
}

/// Polls until CONNACK; an error or a refusal fails.
async fn connected(eventloop: &mut EventLoop) -> anyhow::Result<()> {
    loop {
        if let Event::Incoming(Packet::ConnAck(ack)) = eventloop.poll().await? {
            anyhow::ensure!(
                ack.code == ConnectReturnCode::Success,
                "CONNACK refused: {:?}",
                ack.code
            );
            return Ok(());
        }
    }
}

/// Runs the event loop until `stop`, a DISCONNECT written, or an error.
async fn drive(
    eventloop: &mut EventLoop,
    confirms: Option<Arc<Confirms>>,
    qos: QoS,
    mut inbox: Option<Inbox>,
    stop: CancellationToken,
) -> (Option<Inbox>, Option<String>) {
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return (inbox, None),
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if let Some(inbox) = inbox.as_mut() {
                    inbox.accept(&publish.payload);
                }
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                if let (Some(confirms), QoS::AtLeastOnce) = (&confirms, qos) {
                    confirms.confirm(1);
                }
            }
            Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                if let (Some(confirms), QoS::AtMostOnce) = (&confirms, qos) {
                    confirms.confirm(1);
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return (inbox, None),
            Ok(_) => {}
            Err(error) => {
                let reason = format!("MQTT connection: {error}");
                if let Some(confirms) = &confirms {
                    confirms.fail(reason.clone());
                }
                return (inbox, Some(reason));
            }
        }
    }
}

/// An MQTT 3.1.1 publisher.
pub struct Publisher {
    client: AsyncClient,
    topic: String,
    qos: QoS,
    /// What the broker (QoS 1) or the socket (QoS 0) took.
    pub confirms: Arc<Confirms>,
    stop: CancellationToken,
    driver: JoinHandle<()>,
}

impl Publisher {
    /// Connects and logs in as `name`, to publish to `topic`.
    pub async fn connect(
        target: &Target,
        name: &str,
        topic: String,
        options: &Options,
    ) -> anyhow::Result<Self> {
        let (client, mut eventloop) = client(target, name, options);
        connected(&mut eventloop).await?;
        let confirms = Arc::new(Confirms::default());
        let stop = CancellationToken::new();
        let qos = qos(options.qos);
        let (driver_confirms, driver_stop) = (confirms.clone(), stop.clone());
        let driver = tokio::spawn(async move {
            drive(
                &mut eventloop,
                Some(driver_confirms),
                qos,
                None,
                driver_stop,
            )
            .await;
        });
        Ok(Self {
            client,
            topic,
            qos,
            confirms,
            stop,
            driver,
        })
    }

    /// Queues one PUBLISH (waits while rumqttc's request queue is full).
    pub async fn publish(&mut self, body: Bytes) -> anyhow::Result<()> {
        self.client
            .publish_bytes(self.topic.clone(), self.qos, false, body)
            .await?;
        Ok(())
    }

    /// Sends DISCONNECT and waits (about a second) for the driver to write it.
    pub async fn close(self) {
        if self.client.try_disconnect().is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.driver).await;
        }
        self.stop.cancel();
    }
}

/// Connects as `name`, subscribes to `topic` and waits for SUBACK; then drives the
/// connection into `inbox` until `stop`, and says DISCONNECT.
pub async fn subscribe(
    target: &Target,
    name: &str,
    topic: String,
    options: &Options,
    inbox: Inbox,
    stop: CancellationToken,
) -> anyhow::Result<Subscription> {
    let (client, mut eventloop) = client(target, name, options);
    connected(&mut eventloop).await?;
    let qos = qos(options.qos);
    client.subscribe(topic.clone(), qos).await?;
    loop {
        if let Event::Incoming(Packet::SubAck(ack)) = eventloop.poll().await? {
            anyhow::ensure!(
                !ack.return_codes.contains(&SubscribeReasonCode::Failure),
                "SUBACK refused {topic}"
            );
            break;
        }
    }
    Ok(tokio::spawn(async move {
        let (inbox, error) = drive(&mut eventloop, None, qos, Some(inbox), stop).await;
        if error.is_none() && client.try_disconnect().is_ok() {
            let _ = tokio::time::timeout(Duration::from_millis(500), async {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            })
            .await;
        }
        (inbox.unwrap_or_else(|| Inbox::new(Arc::default())), error)
    }))
}
