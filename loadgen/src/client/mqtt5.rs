//! MQTT 5 through rumqttc's v5 client: the same shape as [`super::mqtt`].
//!
//! The QoS 1 window is the smaller of `--window` and the broker's Receive Maximum (rumqttc
//! applies both). A PUBACK with an error reason (0x80 and above: quota exceeded, not
//! authorized...) counts as refused; "no matching subscribers" (0x10) is a success.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, PubAckReason, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::Outgoing;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::mqtt::{network_options, KEEPALIVE, MAX_PACKET, REQUEST_CAPACITY};
use super::{Confirms, Options, Subscription};
use crate::inbox::Inbox;
use crate::target::Target;

fn qos(level: u8) -> QoS {
    if level == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

fn mqtt_options(target: &Target, name: &str, options: &Options) -> MqttOptions {
    let mut mqtt = MqttOptions::new(name, target.host.clone(), target.port);
    mqtt.set_keep_alive(KEEPALIVE)
        .set_clean_start(true)
        .set_network_options(network_options(options))
        .set_max_packet_size(u32::try_from(MAX_PACKET).ok())
        .set_outgoing_inflight_upper_limit(options.window.max(1));
    if !options.user.is_empty() {
        mqtt.set_credentials(options.user.clone(), options.password.clone());
    }
    mqtt
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
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                if let (Some(confirms), QoS::AtLeastOnce) = (&confirms, qos) {
                    match ack.reason {
                        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => {
                            confirms.confirm(1)
                        }
                        _ => confirms.refuse(1),
                    }
                }
            }
            Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                if let (Some(confirms), QoS::AtMostOnce) = (&confirms, qos) {
                    confirms.confirm(1);
                }
            }
            Ok(Event::Incoming(Packet::Disconnect(disconnect))) => {
                let reason = format!("MQTT 5 DISCONNECT from the broker: {disconnect:?}");
                if let Some(confirms) = &confirms {
                    confirms.fail(reason.clone());
                }
                return (inbox, Some(reason));
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return (inbox, None),
            Ok(_) => {}
            Err(error) => {
                let reason = format!("MQTT 5 connection: {error}");
                if let Some(confirms) = &confirms {
                    confirms.fail(reason.clone());
                }
                return (inbox, Some(reason));
            }
        }
    }
}

/// An MQTT 5 publisher.
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
        let (client, mut eventloop) =
            AsyncClient::new(mqtt_options(target, name, options), REQUEST_CAPACITY);
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
    let (client, mut eventloop) =
        AsyncClient::new(mqtt_options(target, name, options), REQUEST_CAPACITY);
    connected(&mut eventloop).await?;
    let qos = qos(options.qos);
    client.subscribe(topic.clone(), qos).await?;
    loop {
        if let Event::Incoming(Packet::SubAck(ack)) = eventloop.poll().await? {
            anyhow::ensure!(
                ack.return_codes
                    .iter()
                    .all(|code| matches!(code, SubscribeReasonCode::Success(_))),
                "SUBACK refused {topic}: {:?}",
                ack.return_codes
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
