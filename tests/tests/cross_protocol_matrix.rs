//! The cross-protocol matrix (DESIGN.md section 3, docs/MQTT.md and docs/STOMP.md): MQTT
//! (rumqttc: 5.0 where properties matter, 3.1.1 elsewhere), STOMP 1.2 (the raw client of
//! support/stomp.rs) and AMQP 0-9-1 (lapin) clients on real sockets to one in-process gateway per
//! test, with plain listeners of all three on 127.0.0.1:0.
//!
//! - The nine cells (publisher -> subscriber), each a module named `<from>_to_<to>` with two
//!   tests: a text and a binary body (every byte value, NULs included) arrive byte-exact; and the
//!   headers and properties map (custom headers / user properties, content type, correlation,
//!   reply-to / response topic, expiration / message expiry, persistence / QoS, the AMQP
//!   properties MQTT and STOMP carry by name, typed AMQP header values stringified).
//! - The QoS rules: an MQTT publish QoS becomes persistence and `x-mqtt-publish-qos`; AMQP and
//!   STOMP messages reach an MQTT QoS 1/2 subscription at QoS 1 or better.
//! - Wildcards: an MQTT `+`/`#` filter, an AMQP `*`/`#` binding on `amq.topic` and a STOMP
//!   `/topic/a.*` / `/topic/a.#` subscription each receive the other protocols' publishes.
//! - Consumer groups: competing consumers of the three protocols on one queue get every message
//!   exactly once in total.
//! - A `.` inside an MQTT topic level round-trips exactly through AMQP and STOMP.
//! - Also: an AMQP reply_to naming a bare queue (STOMP `/reply-queue/<q>`), and AMQP and STOMP
//!   publishers retaining with the header `x-retain` for an MQTT wildcard subscriber.
//!
//! Every wait is bounded ([`STEP`]); subscriptions are confirmed (SUBACK, consume-ok, RECEIPT)
//! before anything is published, and publishes are confirmed (PUBACK/PUBCOMP, RECEIPT, publisher
//! confirm) before the next one, so that "not routed" is checked by order (a message that should
//! not match is published first; the first one received must be the matching one), never by
//! waiting for nothing. "Exactly once" in a group is checked by the queue's own counts (nothing
//! ready, nothing unacknowledged) and a round trip with every member. Topic, group and queue
//! names are unique per test.

#[allow(dead_code)]
#[path = "support/amqp.rs"]
mod amqp;
#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway;
#[allow(dead_code)]
#[path = "support/mqtt.rs"]
mod mqtt;
#[allow(dead_code)]
#[path = "support/stomp.rs"]
mod stomp;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use amq_protocol::types::{AMQPValue, FieldTable, ShortString};
use amqp::{next_delivery, next_item, open_channel, publish_confirmed, unique};
use futures_core::Stream;
use gateway::{queue_stats, within, STEP};
use lapin::options::{
    BasicConsumeOptions, ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::{BasicProperties, Confirmation};
use mqgate::protocols::Protocol;
use mqgate::{ListenerSpec, RunningGateway, Transport};
use mqgate_core::names::VhostName;
use rumqttc::v5::mqttbytes::v5::{
    Packet as Packet5, PubAckReason, PubCompReason, Publish as Publish5, PublishProperties,
    SubscribeReasonCode as SubscribeReasonCode5,
};
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::{Outgoing as MqttOutgoing, QoS as QoS3};

// ---------------------------------------------------------------------------------------------
// The gateway.

/// A gateway with a plain MQTT, STOMP and AMQP listener, each on 127.0.0.1:0.
struct Gateway {
    running: RunningGateway,
    mqtt: SocketAddr,
    stomp: SocketAddr,
    amqp: SocketAddr,
}

async fn start() -> Gateway {
    let (running, mqtt) = gateway::start(|settings| {
        settings.listeners = Protocol::ALL
            .iter()
            .map(|&protocol| ListenerSpec {
                protocol,
                transport: Transport::Plain,
                addr: "127.0.0.1:0".parse().unwrap(),
            })
            .collect();
    })
    .await;
    let addr = |protocol| running.local_addr(protocol, Transport::Plain).unwrap();
    let (stomp, amqp) = (addr(Protocol::Stomp), addr(Protocol::Amqp));
    assert_eq!(addr(Protocol::Mqtt), mqtt);
    Gateway {
        running,
        mqtt,
        stomp,
        amqp,
    }
}

/// A side of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Proto {
    Mqtt,
    Stomp,
    Amqp,
}

/// Which rumqttc client an MQTT side uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// MQTT 3.1.1 (no properties).
    V311,
    /// MQTT 5.0.
    V5,
}

// ---------------------------------------------------------------------------------------------
// Names: routing keys on amq.topic, MQTT topics and filters, STOMP destinations.

/// The MQTT topic (or filter) of a routing key (or binding pattern): `/` and `.` swapped, a `*`
/// level becomes `+`.
fn key_to_topic(key: &str) -> String {
    let swapped: String = key
        .chars()
        .map(|c| match c {
            '.' => '/',
            '/' => '.',
            c => c,
        })
        .collect();
    swapped
        .split('/')
        .map(|level| if level == "*" { "+" } else { level })
        .collect::<Vec<_>>()
        .join("/")
}

/// The routing key of an MQTT topic.
fn topic_to_key(topic: &str) -> String {
    topic
        .chars()
        .map(|c| match c {
            '.' => '/',
            '/' => '.',
            c => c,
        })
        .collect()
}

/// The STOMP destination of a routing key (or pattern) on amq.topic: `%` and `/` escaped.
fn topic_destination(key: &str) -> String {
    format!("/topic/{}", key.replace('%', "%25").replace('/', "%2F"))
}

/// The routing key of a `/topic/` destination.
fn destination_to_key(destination: &str) -> String {
    let key = destination
        .strip_prefix("/topic/")
        .unwrap_or_else(|| panic!("not a /topic/ destination: {destination:?}"));
    key.replace("%2F", "/").replace("%25", "%")
}

/// The reply-to an AMQP or STOMP consumer sees for a reply key published by `from` in its own
/// syntax: MQTT's response topic and AMQP's (as the test sends it) are
/// `/exchange/amq.topic/<key>`, STOMP's `/topic/<key>` is kept as sent.
fn reply_to_as_seen(from: Proto, reply_key: &str) -> String {
    match from {
        Proto::Mqtt | Proto::Amqp => format!("/exchange/amq.topic/{reply_key}"),
        Proto::Stomp => topic_destination(reply_key),
    }
}

// ---------------------------------------------------------------------------------------------
// Bodies.

/// Every byte value, NULs at both ends and in the middle: not UTF-8, cut by a NUL-terminated
/// read, changed by any transcoding.
fn binary_body() -> Vec<u8> {
    let mut body = vec![0u8];
    body.extend(0..=255u8);
    body.extend((0..=255u8).rev());
    body.push(0);
    body
}

/// A UTF-8 text body with multi-byte characters.
fn text_body(from: Proto) -> Vec<u8> {
    format!("héllo wörld ✓ from {from:?}: a/b.c #+* \\ \"q\"").into_bytes()
}

// ---------------------------------------------------------------------------------------------
// What a publisher sends.

/// A message in protocol-neutral terms; each publisher renders it in its own syntax.
#[derive(Debug, Clone, Default)]
struct Outgoing {
    /// The routing key on amq.topic (MQTT: its topic; STOMP: `/topic/<key>`).
    key: String,
    body: Vec<u8>,
    /// MQTT: the publish QoS. STOMP: `persistent:true` when >= 1. AMQP: delivery_mode 2 when
    /// >= 1 (none otherwise).
    qos: u8,
    /// MQTT 5 user properties, STOMP headers, AMQP headers-table LongStrings.
    headers: Vec<(String, String)>,
    /// AMQP only: typed header values.
    typed: Vec<(String, AMQPValue)>,
    content_type: Option<String>,
    /// MQTT 5 correlation data (UTF-8), STOMP `correlation-id`, AMQP correlation_id.
    correlation: Option<String>,
    /// Where replies go, as a routing key on amq.topic: MQTT 5 response topic, STOMP
    /// `reply-to:/topic/<key>`, AMQP reply_to `/exchange/amq.topic/<key>`.
    reply_key: Option<String>,
    /// AMQP: a bare queue name as reply_to (instead of `reply_key`).
    reply_queue: Option<String>,
    /// MQTT 5 message expiry (in whole seconds), STOMP `expiration`, AMQP expiration.
    expiration_ms: Option<u64>,
    /// The AMQP properties MQTT and STOMP carry by name (`amqp-message-id`, `timestamp`,
    /// `app-id`, `type`, `user-id`, `content-encoding`, `priority`): MQTT 5 user properties,
    /// STOMP headers, AMQP properties.
    named: Named,
}

/// The AMQP properties without an MQTT field.
#[derive(Debug, Clone, Default)]
struct Named {
    message_id: Option<String>,
    timestamp: Option<u64>,
    app_id: Option<String>,
    message_type: Option<String>,
    user_id: Option<String>,
    content_encoding: Option<String>,
    priority: Option<u8>,
}

impl Named {
    /// `(STOMP header / MQTT user property name, value)` of each one set.
    fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("amqp-message-id", self.message_id.clone()),
            ("timestamp", self.timestamp.map(|t| t.to_string())),
            ("app-id", self.app_id.clone()),
            ("type", self.message_type.clone()),
            ("user-id", self.user_id.clone()),
            ("content-encoding", self.content_encoding.clone()),
            ("priority", self.priority.map(|p| p.to_string())),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect()
    }
}

/// Typed AMQP header values and their text on STOMP and MQTT (docs/STOMP.md, "Header mapping").
fn typed_headers() -> Vec<(String, AMQPValue, &'static str)> {
    let mut nested = FieldTable::default();
    nested.insert("a".into(), AMQPValue::LongInt(1));
    nested.insert("b".into(), AMQPValue::LongString("x".into()));
    vec![
        ("t-count".into(), AMQPValue::LongInt(42), "42"),
        (
            "t-big".into(),
            AMQPValue::LongLongInt(-9_000_000_000),
            "-9000000000",
        ),
        ("t-small".into(), AMQPValue::ShortShortUInt(7), "7"),
        ("t-ratio".into(), AMQPValue::Double(0.5), "0.5"),
        ("t-flag".into(), AMQPValue::Boolean(true), "true"),
        (
            "t-nested".into(),
            AMQPValue::FieldTable(nested),
            r#"{"a":1,"b":"x"}"#,
        ),
    ]
}

/// The message of the property tests: every mapped header and property set, persistent (QoS 1).
fn full_message(from: Proto, key: &str) -> Outgoing {
    Outgoing {
        key: key.to_owned(),
        body: b"{\"reading\":21.5}".to_vec(),
        qos: 1,
        headers: vec![
            ("site".into(), "north".into()),
            // A colon and a backslash cross STOMP escaped and arrive intact.
            ("x-trace".into(), "k:v\\w".into()),
            ("x-lines".into(), "one\ntwo".into()),
            ("x-empty".into(), String::new()),
            ("unicode-ключ".into(), "значение".into()),
        ],
        typed: if from == Proto::Amqp {
            typed_headers()
                .into_iter()
                .map(|(name, value, _)| (name, value))
                .collect()
        } else {
            Vec::new()
        },
        content_type: Some("application/json; charset=utf-8".into()),
        correlation: Some("corr-42".into()),
        reply_key: Some(format!("{key}.replies")),
        reply_queue: None,
        expiration_ms: Some(60_000),
        named: Named {
            message_id: Some("msg-7".into()),
            timestamp: Some(1_700_000_000),
            app_id: Some("billing".into()),
            message_type: Some("order.created".into()),
            // MQTT drops a `user-id` user property: nothing checks it against the login
            // (docs/MQTT.md); STOMP and AMQP check it.
            user_id: (from != Proto::Mqtt).then(|| "guest".into()),
            content_encoding: Some("identity".into()),
            priority: Some(3),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// MQTT clients (rumqttc).

enum Mqtt {
    // Event loops boxed: they are large.
    V311(rumqttc::AsyncClient, Box<rumqttc::EventLoop>),
    V5(rumqttc::v5::AsyncClient, Box<rumqttc::v5::EventLoop>),
}

fn qos3(qos: u8) -> QoS3 {
    match qos {
        0 => QoS3::AtMostOnce,
        1 => QoS3::AtLeastOnce,
        _ => QoS3::ExactlyOnce,
    }
}

fn qos5(qos: u8) -> QoS5 {
    match qos {
        0 => QoS5::AtMostOnce,
        1 => QoS5::AtLeastOnce,
        _ => QoS5::ExactlyOnce,
    }
}

impl Mqtt {
    /// A connected client (anonymous, as guest).
    async fn connect(addr: SocketAddr, version: Version) -> Self {
        match version {
            Version::V311 => {
                let (client, events) = mqtt::v4::connect(addr, &mqtt::unique("m311")).await;
                Mqtt::V311(client, Box::new(events))
            }
            Version::V5 => {
                let (client, events) = mqtt::v5::connect(addr, &mqtt::unique("m5")).await;
                Mqtt::V5(client, Box::new(events))
            }
        }
    }

    /// Subscribes to `filter` at `qos` and checks that the SUBACK grants it.
    async fn subscribe(&mut self, filter: &str, qos: u8) {
        match self {
            Mqtt::V311(client, events) => {
                mqtt::v4::subscribe_granted(STEP, client, events, filter, qos3(qos)).await;
            }
            Mqtt::V5(client, events) => {
                client.subscribe(filter, qos5(qos)).await.unwrap();
                let granted = mqtt::v5::wait_for(events, |packet| match packet {
                    Packet5::SubAck(ack) => Some(ack.return_codes.clone()),
                    _ => None,
                })
                .await;
                assert_eq!(
                    granted,
                    vec![SubscribeReasonCode5::Success(qos5(qos))],
                    "SUBACK for {filter}"
                );
            }
        }
    }

    /// Publishes `message` and waits until it is confirmed (PUBACK for QoS 1, PUBCOMP for
    /// QoS 2) or, at QoS 0, written.
    async fn publish(&mut self, message: &Outgoing) {
        let topic = key_to_topic(&message.key);
        match self {
            Mqtt::V311(client, events) => {
                assert!(
                    message.headers.is_empty() && message.content_type.is_none(),
                    "MQTT 3.1.1 has no properties: use Version::V5"
                );
                client
                    .publish(topic, qos3(message.qos), false, message.body.clone())
                    .await
                    .unwrap();
                let qos = message.qos;
                within(STEP, "the MQTT 3.1.1 publish to complete", async {
                    loop {
                        match events.poll().await.expect("the MQTT connection failed") {
                            rumqttc::Event::Outgoing(MqttOutgoing::Publish(_)) if qos == 0 => {
                                return
                            }
                            rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) if qos == 1 => {
                                return
                            }
                            rumqttc::Event::Incoming(rumqttc::Packet::PubComp(_)) if qos == 2 => {
                                return
                            }
                            _ => {}
                        }
                    }
                })
                .await;
            }
            Mqtt::V5(client, events) => {
                let mut user_properties = message.headers.clone();
                user_properties.extend(
                    message
                        .named
                        .pairs()
                        .into_iter()
                        .map(|(name, value)| (name.to_owned(), value)),
                );
                let properties = PublishProperties {
                    user_properties,
                    content_type: message.content_type.clone(),
                    correlation_data: message
                        .correlation
                        .as_ref()
                        .map(|c| c.clone().into_bytes().into()),
                    response_topic: message.reply_key.as_deref().map(key_to_topic),
                    message_expiry_interval: message
                        .expiration_ms
                        .map(|ms| u32::try_from(ms / 1000).unwrap()),
                    ..PublishProperties::default()
                };
                client
                    .publish_with_properties(
                        topic,
                        qos5(message.qos),
                        false,
                        message.body.clone(),
                        properties,
                    )
                    .await
                    .unwrap();
                let qos = message.qos;
                within(STEP, "the MQTT 5 publish to complete", async {
                    loop {
                        match events.poll().await.expect("the MQTT connection failed") {
                            rumqttc::v5::Event::Outgoing(MqttOutgoing::Publish(_)) if qos == 0 => {
                                return
                            }
                            rumqttc::v5::Event::Incoming(Packet5::PubAck(ack)) if qos == 1 => {
                                // 0x10 "no matching subscribers" is a success too.
                                assert!(
                                    matches!(
                                        ack.reason,
                                        PubAckReason::Success | PubAckReason::NoMatchingSubscribers
                                    ),
                                    "PUBACK {ack:?}"
                                );
                                return;
                            }
                            rumqttc::v5::Event::Incoming(Packet5::PubComp(comp)) if qos == 2 => {
                                assert_eq!(comp.reason, PubCompReason::Success, "{comp:?}");
                                return;
                            }
                            _ => {}
                        }
                    }
                })
                .await;
            }
        }
    }

    /// One step of the event loop (unbounded: for a caller that bounds it): the payload of an
    /// incoming PUBLISH, or `None` for any other event.
    async fn poll_publish(&mut self) -> Option<Vec<u8>> {
        match self {
            Mqtt::V311(_, events) => match events.poll().await.expect("the MQTT connection failed")
            {
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish)) => {
                    Some(publish.payload.to_vec())
                }
                _ => None,
            },
            Mqtt::V5(_, events) => match events.poll().await.expect("the MQTT connection failed") {
                rumqttc::v5::Event::Incoming(Packet5::Publish(publish)) => {
                    Some(publish.payload.to_vec())
                }
                _ => None,
            },
        }
    }

    /// A round trip (a SUBSCRIBE of a fresh topic and its SUBACK); a PUBLISH before the SUBACK
    /// fails the test.
    async fn round_trip(&mut self) {
        let filter = format!("{}/sync", unique("sync"));
        match self {
            Mqtt::V311(client, events) => {
                client.subscribe(&filter, QoS3::AtMostOnce).await.unwrap();
                mqtt::v4::wait_for(events, |packet| match packet {
                    rumqttc::Packet::Publish(publish) => panic!("one more delivery: {publish:?}"),
                    rumqttc::Packet::SubAck(_) => Some(()),
                    _ => None,
                })
                .await;
            }
            Mqtt::V5(client, events) => {
                client.subscribe(&filter, QoS5::AtMostOnce).await.unwrap();
                mqtt::v5::wait_for(events, |packet| match packet {
                    Packet5::Publish(publish) => panic!("one more delivery: {publish:?}"),
                    Packet5::SubAck(_) => Some(()),
                    _ => None,
                })
                .await;
            }
        }
    }

    /// The next PUBLISH, within [`STEP`].
    async fn next_publish(&mut self) -> Received {
        match self {
            Mqtt::V311(_, events) => Received::Mqtt311(mqtt::v4::next_publish(events).await),
            Mqtt::V5(_, events) => Received::Mqtt5(mqtt::v5::next_publish(events).await),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// STOMP and AMQP clients.

/// STOMP 1.2 with header escaping and `content-length` on every non-empty body.
const STOMP_STYLE: stomp::Style = stomp::Style::ESCAPED_SIZED;

/// A STOMP 1.2 client connected as guest.
async fn stomp_client(addr: SocketAddr) -> stomp::Client {
    let (client, connected) = stomp::Client::guest(addr, STOMP_STYLE, &[]).await;
    assert_eq!(connected.header("version"), Some("1.2"), "{connected:?}");
    client
}

/// A lapin connection as guest and a channel in confirm mode.
async fn amqp_channel(addr: SocketAddr) -> (lapin::Connection, lapin::Channel) {
    let connection = amqp::connect(addr).await;
    let channel = open_channel(&connection).await;
    within(
        STEP,
        "confirm.select",
        channel.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    .expect("confirm.select");
    (connection, channel)
}

/// A server-named exclusive queue bound to amq.topic with each of `patterns`; its name.
async fn amqp_topic_queue(channel: &lapin::Channel, patterns: &[&str]) -> String {
    let queue = within(
        STEP,
        "queue.declare",
        channel.queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("queue.declare");
    let name = queue.name().as_str().to_owned();
    for pattern in patterns {
        amqp_bind(channel, &name, "amq.topic", pattern).await;
    }
    name
}

/// Binds `queue` to `exchange` with `key`.
async fn amqp_bind(channel: &lapin::Channel, queue: &str, exchange: &str, key: &str) {
    within(
        STEP,
        "queue.bind",
        channel.queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap_or_else(|error| panic!("queue.bind {queue} {exchange} {key}: {error}"));
}

/// An auto-ack consumer of `queue` (consume-ok received).
async fn amqp_consume(channel: &lapin::Channel, queue: &str) -> lapin::Consumer {
    within(
        STEP,
        "basic.consume",
        channel.basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("basic.consume")
}

/// A delivery the consumer already holds, without waiting.
fn amqp_try_next(consumer: &mut lapin::Consumer) -> Option<lapin::message::Delivery> {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(consumer).poll_next(&mut cx) {
        Poll::Ready(Some(item)) => Some(item.expect("a delivery, not an error")),
        _ => None,
    }
}

/// The properties of an AMQP publish of `message` (delivery_mode 2 for QoS >= 1).
fn amqp_properties(message: &Outgoing) -> BasicProperties {
    let mut properties = BasicProperties::default();
    let mut table = FieldTable::default();
    for (name, value) in &message.headers {
        table.insert(
            name.as_str().into(),
            AMQPValue::LongString(value.as_str().into()),
        );
    }
    for (name, value) in &message.typed {
        table.insert(name.as_str().into(), value.clone());
    }
    if !table.inner().is_empty() {
        properties = properties.with_headers(table);
    }
    if message.qos >= 1 {
        properties = properties.with_delivery_mode(2);
    }
    let short = |text: &str| ShortString::from(text);
    if let Some(value) = &message.content_type {
        properties = properties.with_content_type(short(value));
    }
    if let Some(value) = &message.correlation {
        properties = properties.with_correlation_id(short(value));
    }
    if let Some(key) = &message.reply_key {
        properties = properties.with_reply_to(short(&reply_to_as_seen(Proto::Amqp, key)));
    }
    if let Some(queue) = &message.reply_queue {
        properties = properties.with_reply_to(short(queue));
    }
    if let Some(ms) = message.expiration_ms {
        properties = properties.with_expiration(short(&ms.to_string()));
    }
    let named = &message.named;
    if let Some(value) = &named.message_id {
        properties = properties.with_message_id(short(value));
    }
    if let Some(value) = named.timestamp {
        properties = properties.with_timestamp(value);
    }
    if let Some(value) = &named.app_id {
        properties = properties.with_app_id(short(value));
    }
    if let Some(value) = &named.message_type {
        properties = properties.with_type(short(value));
    }
    if let Some(value) = &named.user_id {
        properties = properties.with_user_id(short(value));
    }
    if let Some(value) = &named.content_encoding {
        properties = properties.with_content_encoding(short(value));
    }
    if let Some(value) = named.priority {
        properties = properties.with_priority(value);
    }
    properties
}

/// The headers of a STOMP SEND of `message` to its `/topic/` destination (without
/// `destination`).
fn stomp_headers(message: &Outgoing) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    if message.qos >= 1 {
        headers.push(("persistent".to_owned(), "true".to_owned()));
    }
    if let Some(value) = &message.content_type {
        headers.push(("content-type".to_owned(), value.clone()));
    }
    if let Some(value) = &message.correlation {
        headers.push(("correlation-id".to_owned(), value.clone()));
    }
    if let Some(key) = &message.reply_key {
        headers.push(("reply-to".to_owned(), topic_destination(key)));
    }
    if let Some(ms) = message.expiration_ms {
        headers.push(("expiration".to_owned(), ms.to_string()));
    }
    headers.extend(
        message
            .named
            .pairs()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value)),
    );
    headers.extend(message.headers.iter().cloned());
    headers
}

// ---------------------------------------------------------------------------------------------
// Publishers and subscribers of any protocol.

/// A lapin connection and, on it, a channel in confirm mode (and a consumer, for a
/// subscriber). Boxed in the enums below: it is large.
struct Lapin {
    _connection: lapin::Connection,
    channel: lapin::Channel,
    consumer: Option<lapin::Consumer>,
}

enum Publisher {
    Mqtt(Mqtt),
    Stomp(stomp::Client),
    Amqp(Box<Lapin>),
}

impl Publisher {
    /// A connected publisher (`version` for MQTT).
    async fn open(gateway: &Gateway, proto: Proto, version: Version) -> Self {
        match proto {
            Proto::Mqtt => Publisher::Mqtt(Mqtt::connect(gateway.mqtt, version).await),
            Proto::Stomp => Publisher::Stomp(stomp_client(gateway.stomp).await),
            Proto::Amqp => {
                let (connection, channel) = amqp_channel(gateway.amqp).await;
                Publisher::Amqp(Box::new(Lapin {
                    _connection: connection,
                    channel,
                    consumer: None,
                }))
            }
        }
    }

    /// Publishes `message` to amq.topic and waits for its confirmation (PUBACK/PUBCOMP, RECEIPT,
    /// basic.ack; at MQTT QoS 0, until it was written).
    async fn publish(&mut self, message: &Outgoing) {
        match self {
            Publisher::Mqtt(client) => client.publish(message).await,
            Publisher::Stomp(client) => {
                assert!(message.typed.is_empty(), "typed headers are AMQP's");
                let destination = topic_destination(&message.key);
                let mut headers = vec![("destination", destination.as_str())];
                let rest = stomp_headers(message);
                headers.extend(rest.iter().map(|(n, v)| (n.as_str(), v.as_str())));
                client.with_receipt("SEND", &headers, &message.body).await;
            }
            Publisher::Amqp(client) => {
                let confirmation = publish_confirmed(
                    &client.channel,
                    "amq.topic",
                    &message.key,
                    &message.body,
                    amqp_properties(message),
                )
                .await;
                assert_eq!(confirmation, Confirmation::Ack(None), "{}", message.key);
            }
        }
    }

    /// Publishes a message with `body` and nothing else to `key` (persistent: MQTT QoS 1).
    async fn send(&mut self, key: &str, body: &[u8]) {
        self.publish(&Outgoing {
            key: key.to_owned(),
            body: body.to_vec(),
            qos: 1,
            ..Outgoing::default()
        })
        .await;
    }
}

enum Subscriber {
    Mqtt(Mqtt),
    Stomp(stomp::Client),
    Amqp(Box<Lapin>),
}

impl Subscriber {
    /// Subscribes to `pattern`, a binding key on amq.topic (`*` and `#` as in AMQP; MQTT: the
    /// filter with `/` and `.` swapped, `*` as `+`, at QoS 1; STOMP: `/topic/<pattern>`), and
    /// waits for the confirmation (SUBACK, RECEIPT, consume-ok).
    async fn open(gateway: &Gateway, proto: Proto, version: Version, pattern: &str) -> Self {
        match proto {
            Proto::Mqtt => {
                let mut client = Mqtt::connect(gateway.mqtt, version).await;
                client.subscribe(&key_to_topic(pattern), 1).await;
                Subscriber::Mqtt(client)
            }
            Proto::Stomp => {
                let mut client = stomp_client(gateway.stomp).await;
                client
                    .subscribe("s", &topic_destination(pattern), &[("ack", "auto")])
                    .await;
                Subscriber::Stomp(client)
            }
            Proto::Amqp => {
                let (connection, channel) = amqp_channel(gateway.amqp).await;
                let queue = amqp_topic_queue(&channel, &[pattern]).await;
                let consumer = amqp_consume(&channel, &queue).await;
                Subscriber::Amqp(Box::new(Lapin {
                    _connection: connection,
                    channel,
                    consumer: Some(consumer),
                }))
            }
        }
    }

    /// The next message, within [`STEP`].
    async fn receive(&mut self) -> Received {
        match self {
            Subscriber::Mqtt(client) => client.next_publish().await,
            Subscriber::Stomp(client) => Received::Stomp(client.message().await),
            Subscriber::Amqp(client) => {
                let consumer = client.consumer.as_mut().expect("a consumer");
                Received::Amqp(Box::new(next_delivery(consumer).await))
            }
        }
    }

    /// The next messages, which must have been delivered for `keys`, in this order.
    async fn expect_keys(&mut self, keys: &[&str]) {
        for key in keys {
            let received = self.receive().await;
            assert_eq!(received.key(), *key, "{received:?}");
        }
    }
}

/// A message as a subscriber received it.
#[derive(Debug)]
enum Received {
    Mqtt311(rumqttc::Publish),
    Mqtt5(Publish5),
    Stomp(stomp::Frame),
    Amqp(Box<lapin::message::Delivery>),
}

impl Received {
    fn body(&self) -> &[u8] {
        match self {
            Received::Mqtt311(publish) => &publish.payload,
            Received::Mqtt5(publish) => &publish.payload,
            Received::Stomp(frame) => &frame.body,
            Received::Amqp(delivery) => &delivery.data,
        }
    }

    /// The routing key on amq.topic it was delivered for.
    fn key(&self) -> String {
        match self {
            Received::Mqtt311(publish) => topic_to_key(&publish.topic),
            Received::Mqtt5(publish) => {
                topic_to_key(std::str::from_utf8(&publish.topic).expect("a UTF-8 topic"))
            }
            Received::Stomp(frame) => {
                destination_to_key(frame.header("destination").expect("destination"))
            }
            Received::Amqp(delivery) => {
                assert_eq!(delivery.exchange.as_str(), "amq.topic", "{delivery:?}");
                delivery.routing_key.as_str().to_owned()
            }
        }
    }

    /// The MQTT delivery QoS (0, 1, 2).
    fn mqtt_qos(&self) -> u8 {
        match self {
            Received::Mqtt311(publish) => publish.qos as u8,
            Received::Mqtt5(publish) => publish.qos as u8,
            other => panic!("not an MQTT publish: {other:?}"),
        }
    }
}

/// An AMQP header value that must be an integer.
fn amqp_integer(value: &AMQPValue) -> i64 {
    match *value {
        AMQPValue::ShortShortInt(v) => v.into(),
        AMQPValue::ShortShortUInt(v) => v.into(),
        AMQPValue::ShortInt(v) => v.into(),
        AMQPValue::ShortUInt(v) => v.into(),
        AMQPValue::LongInt(v) => v.into(),
        AMQPValue::LongUInt(v) => v.into(),
        AMQPValue::LongLongInt(v) => v,
        ref other => panic!("an integer header, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The cells.

/// A text and a binary body from `from` reach `to` byte-exact, on the routing key they were
/// published to (MQTT 3.1.1 on the MQTT side).
async fn bodies(from: Proto, to: Proto) {
    let gateway = start().await;
    let key = format!("{}.bodies", unique("cell"));
    let mut subscriber = Subscriber::open(&gateway, to, Version::V311, &key).await;
    let mut publisher = Publisher::open(&gateway, from, Version::V311).await;
    let bodies = [text_body(from), binary_body()];
    for body in &bodies {
        publisher.send(&key, body).await;
    }
    for body in &bodies {
        let received = subscriber.receive().await;
        assert_eq!(received.key(), key, "{received:?}");
        assert!(
            received.body() == &body[..],
            "{from:?} -> {to:?}: a body of {} bytes arrived as {} bytes: {:?}",
            body.len(),
            received.body().len(),
            received.body()
        );
        if let Received::Stomp(frame) = &received {
            let length = body.len().to_string();
            assert_eq!(frame.header("content-length"), Some(length.as_str()));
        }
    }
}

/// Every header and property of [`full_message`] from `from` reaches `to` as DESIGN.md
/// section 3 maps it (MQTT 5 on the MQTT side). Every difference is listed before the test
/// fails.
async fn properties(from: Proto, to: Proto) {
    let gateway = start().await;
    let key = format!("{}.props", unique("cell"));
    let mut subscriber = Subscriber::open(&gateway, to, Version::V5, &key).await;
    let mut publisher = Publisher::open(&gateway, from, Version::V5).await;
    let sent = full_message(from, &key);
    publisher.publish(&sent).await;
    let received = subscriber.receive().await;
    assert_eq!(received.key(), key, "{received:?}");
    assert_eq!(received.body(), &sent.body[..], "{received:?}");
    let problems = match &received {
        Received::Mqtt5(publish) => mqtt5_problems(from, &sent, publish),
        Received::Stomp(frame) => stomp_problems(from, &sent, frame),
        Received::Amqp(delivery) => amqp_problems(from, &sent, delivery),
        Received::Mqtt311(_) => unreachable!("the property tests subscribe with MQTT 5"),
    };
    assert!(
        problems.is_empty(),
        "{from:?} -> {to:?}:\n  {}\nreceived: {received:?}",
        problems.join("\n  ")
    );
}

/// The text headers (STOMP) or user properties (MQTT 5) a text-only consumer must see for
/// `sent` from `from`: the custom headers, the AMQP properties carried by name, and typed AMQP
/// values stringified.
fn text_headers(from: Proto, sent: &Outgoing) -> Vec<(String, String)> {
    let mut expected = sent.headers.clone();
    expected.extend(
        sent.named
            .pairs()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value)),
    );
    if from == Proto::Amqp {
        expected.extend(
            typed_headers()
                .into_iter()
                .map(|(name, _, text)| (name, text.to_owned())),
        );
    }
    expected
}

/// Checks that each `(name, value)` of `expected` occurs exactly once in `found`.
fn check_once(
    what: &str,
    expected: &[(String, String)],
    found: &[(String, String)],
    problems: &mut Vec<String>,
) {
    for (name, value) in expected {
        let values: Vec<&String> = found
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect();
        if values != [value] {
            problems.push(format!("{what} {name}: got {values:?}, wanted [{value:?}]"));
        }
    }
}

/// What an MQTT 5 subscription at QoS 1 got wrong.
fn mqtt5_problems(from: Proto, sent: &Outgoing, publish: &Publish5) -> Vec<String> {
    let mut problems = Vec::new();
    if publish.qos != QoS5::AtLeastOnce {
        problems.push(format!("QoS {:?}, wanted 1", publish.qos));
    }
    let Some(properties) = &publish.properties else {
        return vec!["no v5 properties".to_owned()];
    };
    if properties.content_type != sent.content_type {
        problems.push(format!(
            "content type {:?}, wanted {:?}",
            properties.content_type, sent.content_type
        ));
    }
    let correlation = sent.correlation.as_deref().map(str::as_bytes);
    if properties.correlation_data.as_deref() != correlation {
        problems.push(format!(
            "correlation data {:?}, wanted {correlation:?}",
            properties.correlation_data
        ));
    }
    let response_topic = sent.reply_key.as_deref().map(key_to_topic);
    if properties.response_topic != response_topic {
        problems.push(format!(
            "response topic {:?}, wanted {response_topic:?}",
            properties.response_topic
        ));
    }
    // Decremented on delivery and rounded up: 60 s, or 59 after more than a second queued.
    if !matches!(properties.message_expiry_interval, Some(59..=60)) {
        problems.push(format!(
            "message expiry {:?}, wanted 60 s",
            properties.message_expiry_interval
        ));
    }
    let user = &properties.user_properties;
    check_once(
        "user property",
        &text_headers(from, sent),
        user,
        &mut problems,
    );
    for leaked in [
        "destination",
        "receipt",
        "content-length",
        "message-id",
        "subscription",
        "persistent",
        "content-type",
        "correlation-id",
        "reply-to",
        "expiration",
        "x-mqtt-publish-qos",
        "x-correlation-data",
    ] {
        if user.iter().any(|(k, _)| k == leaked) {
            problems.push(format!("{leaked} leaked into the user properties"));
        }
    }
    problems
}

/// What a STOMP `/topic/` subscriber got wrong.
fn stomp_problems(from: Proto, sent: &Outgoing, frame: &stomp::Frame) -> Vec<String> {
    let mut problems = Vec::new();
    let reply_key = sent.reply_key.as_deref().unwrap();
    let mut expected: Vec<(String, String)> = vec![
        ("destination".into(), topic_destination(&sent.key)),
        ("persistent".into(), "true".into()),
        ("content-type".into(), sent.content_type.clone().unwrap()),
        ("correlation-id".into(), sent.correlation.clone().unwrap()),
        ("reply-to".into(), reply_to_as_seen(from, reply_key)),
        ("expiration".into(), sent.expiration_ms.unwrap().to_string()),
        ("content-length".into(), sent.body.len().to_string()),
    ];
    if from == Proto::Mqtt {
        expected.push(("x-mqtt-publish-qos".into(), "1".into()));
    }
    expected.extend(text_headers(from, sent));
    check_once("header", &expected, &frame.headers, &mut problems);
    problems
}

/// What an AMQP consumer of a queue bound to amq.topic got wrong.
fn amqp_problems(from: Proto, sent: &Outgoing, delivery: &lapin::message::Delivery) -> Vec<String> {
    let mut problems = Vec::new();
    let p = &delivery.properties;
    let text = |value: &Option<ShortString>| value.as_ref().map(|v| v.to_string());
    let named = &sent.named;
    let reply_to = sent
        .reply_key
        .as_deref()
        .map(|key| reply_to_as_seen(from, key));
    for (name, got, wanted) in [
        (
            "delivery_mode",
            p.delivery_mode().map(|v| v.to_string()),
            Some("2".to_owned()),
        ),
        (
            "content_type",
            text(p.content_type()),
            sent.content_type.clone(),
        ),
        (
            "correlation_id",
            text(p.correlation_id()),
            sent.correlation.clone(),
        ),
        ("reply_to", text(p.reply_to()), reply_to),
        (
            "expiration",
            text(p.expiration()),
            sent.expiration_ms.map(|ms| ms.to_string()),
        ),
        ("message_id", text(p.message_id()), named.message_id.clone()),
        (
            "timestamp",
            p.timestamp().map(|t| t.to_string()),
            named.timestamp.map(|t| t.to_string()),
        ),
        ("app_id", text(p.app_id()), named.app_id.clone()),
        ("type", text(p.kind()), named.message_type.clone()),
        ("user_id", text(p.user_id()), named.user_id.clone()),
        (
            "content_encoding",
            text(p.content_encoding()),
            named.content_encoding.clone(),
        ),
        (
            "priority",
            p.priority().map(|v| v.to_string()),
            named.priority.map(|v| v.to_string()),
        ),
    ] {
        if got != wanted {
            problems.push(format!("{name}: got {got:?}, wanted {wanted:?}"));
        }
    }
    let empty = FieldTable::default();
    let table = p.headers().as_ref().unwrap_or(&empty).inner();
    for (name, value) in &sent.headers {
        let wanted = AMQPValue::LongString(value.as_str().into());
        if table.get(name.as_str()) != Some(&wanted) {
            problems.push(format!(
                "header {name}: got {:?}, wanted {wanted:?}",
                table.get(name.as_str())
            ));
        }
    }
    if from == Proto::Amqp {
        // AMQP to AMQP: every typed value exactly as sent.
        for (name, value, _) in typed_headers() {
            if table.get(name.as_str()) != Some(&value) {
                problems.push(format!(
                    "header {name}: got {:?}, wanted {value:?}",
                    table.get(name.as_str())
                ));
            }
        }
    }
    if from == Proto::Mqtt {
        match table.get("x-mqtt-publish-qos") {
            Some(value) if amqp_integer(value) == 1 => {}
            other => problems.push(format!(
                "header x-mqtt-publish-qos: got {other:?}, wanted 1"
            )),
        }
    }
    for leaked in [
        "destination",
        "receipt",
        "content-length",
        "persistent",
        "content-type",
        "correlation-id",
        "reply-to",
        "expiration",
        "amqp-message-id",
        "timestamp",
        "app-id",
        "type",
        "user-id",
        "content-encoding",
        "priority",
    ] {
        if let Some(value) = table.get(leaked) {
            problems.push(format!(
                "{leaked} arrived as a header ({value:?}) instead of a property"
            ));
        }
    }
    problems
}

/// The nine cells, each a module with its two tests.
macro_rules! cells {
    ($($cell:ident: $from:ident => $to:ident;)*) => {$(
        mod $cell {
            use super::{bodies, properties, Proto};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn text_and_binary_bodies_arrive_byte_exact() {
                bodies(Proto::$from, Proto::$to).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn headers_and_properties_map() {
                properties(Proto::$from, Proto::$to).await;
            }
        }
    )*};
}

cells! {
    mqtt_to_mqtt: Mqtt => Mqtt;
    mqtt_to_stomp: Mqtt => Stomp;
    mqtt_to_amqp: Mqtt => Amqp;
    stomp_to_mqtt: Stomp => Mqtt;
    stomp_to_stomp: Stomp => Stomp;
    stomp_to_amqp: Stomp => Amqp;
    amqp_to_mqtt: Amqp => Mqtt;
    amqp_to_stomp: Amqp => Stomp;
    amqp_to_amqp: Amqp => Amqp;
}

// ---------------------------------------------------------------------------------------------
// QoS.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_publish_qos_becomes_persistence_and_the_publish_qos_header() {
    let gateway = start().await;
    let key = format!("{}.qos", unique("qos"));
    let mut stomp = Subscriber::open(&gateway, Proto::Stomp, Version::V5, &key).await;
    let mut amqp = Subscriber::open(&gateway, Proto::Amqp, Version::V5, &key).await;
    let mut publisher = Publisher::open(&gateway, Proto::Mqtt, Version::V311).await;
    for qos in [0u8, 1, 2] {
        let body = format!("qos {qos}");
        publisher
            .publish(&Outgoing {
                key: key.clone(),
                body: body.clone().into_bytes(),
                qos,
                ..Outgoing::default()
            })
            .await;

        let Received::Stomp(frame) = stomp.receive().await else {
            unreachable!()
        };
        assert_eq!(frame.body, body.as_bytes());
        let persistent = (qos >= 1).then_some("true");
        assert_eq!(
            frame.header("persistent"),
            persistent,
            "QoS {qos}: {frame:?}"
        );
        let qos_text = qos.to_string();
        assert_eq!(
            frame.header("x-mqtt-publish-qos"),
            Some(qos_text.as_str()),
            "{frame:?}"
        );

        let Received::Amqp(delivery) = amqp.receive().await else {
            unreachable!()
        };
        assert_eq!(delivery.data, body.as_bytes());
        let mode = *delivery.properties.delivery_mode();
        if qos >= 1 {
            assert_eq!(mode, Some(2), "QoS {qos}: delivery_mode");
        } else {
            assert!(
                matches!(mode, None | Some(1)),
                "QoS 0: delivery_mode {mode:?}"
            );
        }
        let header = delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|table| table.inner().get("x-mqtt-publish-qos").cloned())
            .expect("x-mqtt-publish-qos");
        assert_eq!(amqp_integer(&header), i64::from(qos), "{header:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_and_stomp_publishes_reach_mqtt_qos1_and_qos2_subscriptions_at_qos1_or_better() {
    let gateway = start().await;
    let key = format!("{}.qos", unique("qos-in"));
    let topic = key_to_topic(&key);
    let mut v311 = Mqtt::connect(gateway.mqtt, Version::V311).await;
    v311.subscribe(&topic, 1).await;
    let mut v5 = Mqtt::connect(gateway.mqtt, Version::V5).await;
    v5.subscribe(&topic, 1).await;
    let mut exactly_once = Mqtt::connect(gateway.mqtt, Version::V5).await;
    exactly_once.subscribe(&topic, 2).await;

    for from in [Proto::Amqp, Proto::Stomp] {
        let mut publisher = Publisher::open(&gateway, from, Version::V5).await;
        // Transient (no delivery_mode / no `persistent`), then persistent.
        for qos in [0u8, 1] {
            let body = format!("{from:?} persistent={}", qos >= 1);
            publisher
                .publish(&Outgoing {
                    key: key.clone(),
                    body: body.clone().into_bytes(),
                    qos,
                    ..Outgoing::default()
                })
                .await;
            for (name, subscriber, granted) in [
                ("3.1.1 QoS 1", &mut v311, 1u8),
                ("5.0 QoS 1", &mut v5, 1),
                ("5.0 QoS 2", &mut exactly_once, 2),
            ] {
                let received = subscriber.next_publish().await;
                assert_eq!(received.body(), body.as_bytes(), "{name}");
                assert!(
                    received.mqtt_qos() >= 1,
                    "{body} reached the {name} subscription at QoS {}",
                    received.mqtt_qos()
                );
                assert!(received.mqtt_qos() <= granted, "{name}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// reply-to with a bare queue name.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_reply_to_a_bare_queue_shows_on_stomp_as_a_reply_queue() {
    let gateway = start().await;
    let key = format!("{}.rpc", unique("rpc"));
    let reply_queue = unique("replies");
    let mut stomp = Subscriber::open(&gateway, Proto::Stomp, Version::V5, &key).await;
    let mut mqtt = Subscriber::open(&gateway, Proto::Mqtt, Version::V5, &key).await;
    let mut publisher = Publisher::open(&gateway, Proto::Amqp, Version::V5).await;
    publisher
        .publish(&Outgoing {
            key: key.clone(),
            body: b"request".to_vec(),
            reply_queue: Some(reply_queue.clone()),
            correlation: Some("rpc-1".into()),
            ..Outgoing::default()
        })
        .await;
    let Received::Stomp(frame) = stomp.receive().await else {
        unreachable!()
    };
    let wanted = format!("/reply-queue/{reply_queue}");
    assert_eq!(frame.header("reply-to"), Some(wanted.as_str()), "{frame:?}");
    assert_eq!(frame.header("correlation-id"), Some("rpc-1"));
    let Received::Mqtt5(publish) = mqtt.receive().await else {
        unreachable!()
    };
    let properties = publish.properties.expect("v5 properties");
    // A bare queue name has no topic: it stays as it is.
    assert_eq!(
        properties.response_topic.as_deref(),
        Some(reply_queue.as_str())
    );
    assert_eq!(properties.correlation_data.as_deref(), Some(&b"rpc-1"[..]));
}

// ---------------------------------------------------------------------------------------------
// Retained messages from AMQP and STOMP.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_and_stomp_publishes_with_x_retain_are_retained_for_an_mqtt_wildcard_subscriber() {
    let gateway = start().await;
    let p = unique("retained");
    let mut amqp = Publisher::open(&gateway, Proto::Amqp, Version::V311).await;
    amqp.publish(&Outgoing {
        key: format!("{p}.from.amqp"),
        body: b"kept by AMQP".to_vec(),
        qos: 1,
        typed: vec![("x-retain".into(), AMQPValue::Boolean(true))],
        ..Outgoing::default()
    })
    .await;
    let mut stomp = Publisher::open(&gateway, Proto::Stomp, Version::V311).await;
    stomp
        .publish(&Outgoing {
            key: format!("{p}.from.stomp"),
            body: b"kept by STOMP".to_vec(),
            qos: 1,
            headers: vec![("x-retain".into(), "true".into())],
            ..Outgoing::default()
        })
        .await;
    // Subscribed afterwards, with a wildcard: both arrive, flagged retained.
    let mut subscriber = Mqtt::connect(gateway.mqtt, Version::V311).await;
    subscriber.subscribe(&format!("{p}/#"), 1).await;
    let mut got = BTreeSet::new();
    for _ in 0..2 {
        let Received::Mqtt311(publish) = subscriber.next_publish().await else {
            unreachable!()
        };
        assert!(publish.retain, "{publish:?}");
        got.insert((publish.topic.clone(), publish.payload.to_vec()));
    }
    let expected = BTreeSet::from([
        (format!("{p}/from/amqp"), b"kept by AMQP".to_vec()),
        (format!("{p}/from/stomp"), b"kept by STOMP".to_vec()),
    ]);
    assert_eq!(got, expected);
}

// ---------------------------------------------------------------------------------------------
// Wildcards.

/// Two subscribers of `to`, one with a single-level wildcard (`<a>.*.x`) and one with a
/// multi-level one (`<b>.#`), and publishers of the two other protocols. Each publisher first
/// sends a message the subscriber must not get, then ones it must; the subscriber must get
/// exactly those, in order.
async fn wildcards(to: Proto) {
    let gateway = start().await;
    let (a, b) = (unique("star"), unique("hash"));
    let mut single = Subscriber::open(&gateway, to, Version::V311, &format!("{a}.*.x")).await;
    let mut multi = Subscriber::open(&gateway, to, Version::V311, &format!("{b}.#")).await;
    let mut expected_single = Vec::new();
    let mut expected_multi = Vec::new();
    for from in [Proto::Mqtt, Proto::Stomp, Proto::Amqp] {
        if from == to {
            continue;
        }
        let name = format!("{from:?}").to_lowercase();
        let mut publisher = Publisher::open(&gateway, from, Version::V311).await;
        // Not matched by `*`: no word, two words, another last word.
        for key in [
            format!("{a}.x"),
            format!("{a}.{name}.y.x"),
            format!("{a}.{name}.y"),
        ] {
            publisher.send(&key, b"no").await;
        }
        let key = format!("{a}.{name}.x");
        publisher.send(&key, b"yes").await;
        expected_single.push(key);
        // Not matched by `#`: another first word that starts the same.
        publisher.send(&format!("{b}x.{name}"), b"no").await;
        // `#` matches zero or more words.
        for key in [b.clone(), format!("{b}.{name}"), format!("{b}.{name}.d.e")] {
            publisher.send(&key, b"yes").await;
            expected_multi.push(key);
        }
    }
    for (subscriber, expected) in [
        (&mut single, &expected_single),
        (&mut multi, &expected_multi),
    ] {
        for key in expected {
            let received = subscriber.receive().await;
            assert_eq!(received.key(), *key, "{to:?} wildcard: {received:?}");
            assert_eq!(received.body(), b"yes", "{received:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_plus_and_hash_filters_receive_stomp_and_amqp_publishes() {
    wildcards(Proto::Mqtt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_star_and_hash_bindings_on_amq_topic_receive_mqtt_and_stomp_publishes() {
    wildcards(Proto::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stomp_topic_wildcard_subscriptions_receive_mqtt_and_amqp_publishes() {
    wildcards(Proto::Stomp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stomp_topic_a_star_receives_one_level_from_mqtt_and_amqp() {
    // The destination of the brief, `/topic/a.*`, under a unique first word.
    let gateway = start().await;
    let a = unique("a");
    let mut stomp =
        Subscriber::open(&gateway, Proto::Stomp, Version::V311, &format!("{a}.*")).await;
    let mut mqtt = Publisher::open(&gateway, Proto::Mqtt, Version::V311).await;
    let mut amqp = Publisher::open(&gateway, Proto::Amqp, Version::V311).await;
    mqtt.send(&format!("{a}.m.deeper"), b"no").await;
    mqtt.send(&format!("{a}.m"), b"yes").await;
    amqp.send(&a, b"no").await;
    amqp.send(&format!("{a}.q"), b"yes").await;
    stomp
        .expect_keys(&[&format!("{a}.m"), &format!("{a}.q")])
        .await;
}

// ---------------------------------------------------------------------------------------------
// A `.` inside an MQTT topic level.

/// MQTT `<p>/room.1/temp` is the routing key `<p>.room/1.temp`: `via` (AMQP or STOMP) receives
/// it under that key (exact and `<p>.*.temp`), publishes back to the key it received, and the
/// MQTT subscribers (exact and `<p>/+/temp`) get the topic with its `.` kept.
async fn dot_round_trip(via: Proto) {
    let gateway = start().await;
    let p = unique("dot");
    let topic = format!("{p}/room.1/temp");
    let key = format!("{p}.room/1.temp");
    assert_eq!(topic_to_key(&topic), key);

    let mut exact = Subscriber::open(&gateway, via, Version::V311, &key).await;
    let mut wildcard = Subscriber::open(&gateway, via, Version::V311, &format!("{p}.*.temp")).await;
    let mut mqtt_exact = Mqtt::connect(gateway.mqtt, Version::V5).await;
    mqtt_exact.subscribe(&topic, 1).await;
    let mut mqtt_wildcard = Mqtt::connect(gateway.mqtt, Version::V311).await;
    mqtt_wildcard.subscribe(&format!("{p}/+/temp"), 1).await;

    let mut mqtt_publisher = Publisher::open(&gateway, Proto::Mqtt, Version::V311).await;
    mqtt_publisher.send(&key, b"from mqtt").await;
    let mut received_key = None;
    for subscriber in [&mut exact, &mut wildcard] {
        let received = subscriber.receive().await;
        assert_eq!(received.body(), b"from mqtt");
        if let Received::Stomp(frame) = &received {
            let destination = format!("/topic/{p}.room%2F1.temp");
            assert_eq!(frame.header("destination"), Some(destination.as_str()));
        }
        assert_eq!(received.key(), key, "{received:?}");
        received_key = Some(received.key());
    }
    for mqtt in [&mut mqtt_exact, &mut mqtt_wildcard] {
        let received = mqtt.next_publish().await;
        assert_eq!(received.body(), b"from mqtt");
        assert_eq!(received.key(), key);
    }

    // Back, to the key (STOMP: the destination) as received.
    let back = format!("from {via:?}");
    let mut publisher = Publisher::open(&gateway, via, Version::V311).await;
    publisher
        .send(&received_key.unwrap(), back.as_bytes())
        .await;
    for mqtt in [&mut mqtt_exact, &mut mqtt_wildcard] {
        let received = mqtt.next_publish().await;
        assert_eq!(received.body(), back.as_bytes());
        let got_topic = match &received {
            Received::Mqtt311(publish) => publish.topic.clone(),
            Received::Mqtt5(publish) => String::from_utf8(publish.topic.to_vec()).unwrap(),
            _ => unreachable!(),
        };
        assert_eq!(
            got_topic, topic,
            "the `.` in a level round-trips via {via:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_topic_level_with_a_dot_round_trips_through_amqp() {
    dot_round_trip(Proto::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_topic_level_with_a_dot_round_trips_through_stomp() {
    dot_round_trip(Proto::Stomp).await;
}

// ---------------------------------------------------------------------------------------------
// Consumer groups: competing consumers of the three protocols on one queue.

/// How many messages each publisher sends in the group tests.
const EACH: usize = 15;

/// The queue of the MQTT clustering group `group` (`mqgate.group.<group>.<hash>`).
fn group_queue(running: &RunningGateway, group: &str) -> String {
    let prefix = format!("mqgate.group.{group}.");
    let mut names: Vec<String> = running
        .broker()
        .vhost(&VhostName::default_vhost())
        .expect("vhost /")
        .queues()
        .iter()
        .map(|queue| queue.name().as_str().to_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect();
    assert_eq!(names.len(), 1, "one queue for group {group}: {names:?}");
    names.pop().unwrap()
}

/// Competing consumers of one queue: an MQTT shared-subscription member (QoS 1), a STOMP
/// subscriber (`ack:auto`) and an AMQP consumer (no-ack) on `amqp_channel`.
struct Members<'a> {
    mqtt: Option<&'a mut Mqtt>,
    stomp: &'a mut stomp::Client,
    amqp: &'a mut lapin::Consumer,
    amqp_channel: &'a lapin::Channel,
}

/// The next incoming PUBLISH's payload of `mqtt` if it has one, else never (a helper for
/// `select!`).
async fn member_publish(mqtt: &mut Option<&mut Mqtt>) -> Option<Vec<u8>> {
    match mqtt {
        Some(client) => client.poll_publish().await,
        None => std::future::pending().await,
    }
}

/// Receives `total` messages from the `members` of `queue`, then checks that each body came
/// once and that the queue is settled (nothing ready, nothing unacknowledged); a round trip with
/// each member afterwards proves that nothing more was on its way. The bodies each member got:
/// MQTT, STOMP, AMQP.
async fn compete(
    running: &RunningGateway,
    queue: &str,
    total: usize,
    members: Members<'_>,
) -> [Vec<String>; 3] {
    let Members {
        mut mqtt,
        stomp,
        amqp,
        amqp_channel,
    } = members;
    let mut got: [Vec<String>; 3] = Default::default();
    within(STEP, "every message delivered", async {
        while got.iter().map(Vec::len).sum::<usize>() < total {
            tokio::select! {
                payload = member_publish(&mut mqtt) => {
                    if let Some(payload) = payload {
                        got[0].push(String::from_utf8(payload).unwrap());
                    }
                }
                frame = stomp.read_frame() => {
                    assert_eq!(frame.command, "MESSAGE", "{frame:?}");
                    got[1].push(String::from_utf8(frame.body).unwrap());
                }
                item = next_item(amqp) => {
                    let delivery = item.expect("the AMQP consumer was cancelled").expect("a delivery");
                    got[2].push(String::from_utf8(delivery.data).unwrap());
                }
            }
        }
    })
    .await;
    let all: BTreeSet<&String> = got.iter().flatten().collect();
    assert_eq!(all.len(), total, "a message came twice: {got:?}");

    // Settled: nothing ready, nothing unacknowledged (the MQTT member's PUBACKs go out while its
    // event loop is polled), so nothing can be delivered again.
    within(STEP, "the queue to settle", async {
        loop {
            let stats = queue_stats(running.broker(), queue).expect("the queue");
            if stats.ready == 0 && stats.unacked == 0 {
                break;
            }
            tokio::select! {
                payload = member_publish(&mut mqtt) => {
                    assert!(payload.is_none(), "the MQTT member got one more: {payload:?}");
                }
                () = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
        }
    })
    .await;
    // Round trips: anything sent to a member before them would arrive first.
    if let Some(client) = mqtt {
        client.round_trip().await;
    }
    stomp
        .send(
            "BEGIN",
            &[("transaction", "sync"), ("receipt", "sync")],
            b"",
        )
        .await;
    let frame = stomp.recv().await;
    assert_eq!(
        frame.command, "RECEIPT",
        "one more STOMP delivery: {frame:?}"
    );
    within(
        STEP,
        "basic.qos",
        amqp_channel.basic_qos(0, Default::default()),
    )
    .await
    .expect("basic.qos");
    if let Some(delivery) = amqp_try_next(amqp) {
        panic!("one more AMQP delivery: {delivery:?}");
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_shared_subscription_stomp_and_amqp_consumers_compete_for_one_queue() {
    let gateway = start().await;
    let p = unique("jobs");
    let key = format!("{p}.work");
    let group = unique("g");
    // The MQTT member creates the group's queue, bound to amq.topic with the filter's key.
    let mut member = Mqtt::connect(gateway.mqtt, Version::V311).await;
    member
        .subscribe(&format!("$share/{group}/{}", key_to_topic(&key)), 1)
        .await;
    let queue = group_queue(&gateway.running, &group);
    // STOMP and AMQP consume the same queue.
    let mut stomp = stomp_client(gateway.stomp).await;
    stomp
        .subscribe("g", &format!("/amq/queue/{queue}"), &[("ack", "auto")])
        .await;
    let (_connection, channel) = amqp_channel(gateway.amqp).await;
    let mut consumer = amqp_consume(&channel, &queue).await;
    let stats = queue_stats(gateway.running.broker(), &queue).unwrap();
    assert_eq!(stats.consumers, 3, "{stats:?}");

    let mut publishers = Vec::new();
    for from in [Proto::Mqtt, Proto::Stomp, Proto::Amqp] {
        publishers.push((from, Publisher::open(&gateway, from, Version::V311).await));
    }
    for n in 0..EACH {
        for (from, publisher) in &mut publishers {
            publisher
                .send(&key, format!("{from:?}-{n}").as_bytes())
                .await;
        }
    }
    let members = Members {
        mqtt: Some(&mut member),
        stomp: &mut stomp,
        amqp: &mut consumer,
        amqp_channel: &channel,
    };
    let got = compete(&gateway.running, &queue, 3 * EACH, members).await;
    let expected: BTreeSet<String> = (0..EACH)
        .flat_map(|n| ["Mqtt", "Stomp", "Amqp"].map(|from| format!("{from}-{n}")))
        .collect();
    let all: BTreeSet<String> = got.iter().flatten().cloned().collect();
    assert_eq!(all, expected);
    let [by_mqtt, by_stomp, by_amqp] = got.map(|bodies| bodies.len());
    assert!(
        by_mqtt > 0 && by_stomp > 0 && by_amqp > 0,
        "every member served: MQTT {by_mqtt}, STOMP {by_stomp}, AMQP {by_amqp}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stomp_queue_subscriber_and_amqp_consumer_compete_for_one_queue() {
    let gateway = start().await;
    let queue = unique("work-q");
    let key = format!("{}.work", unique("jobs"));
    // STOMP declares the shared durable queue; AMQP binds it to amq.topic (so MQTT publishes
    // reach it) and consumes it.
    let mut stomp = stomp_client(gateway.stomp).await;
    stomp
        .subscribe("q", &format!("/queue/{queue}"), &[("ack", "auto")])
        .await;
    let (_connection, channel) = amqp_channel(gateway.amqp).await;
    amqp_bind(&channel, &queue, "amq.topic", &key).await;
    let mut consumer = amqp_consume(&channel, &queue).await;

    // MQTT publishes to the bound topic, STOMP sends to /queue/<q>, AMQP to the default
    // exchange with the queue's name.
    let mut mqtt = Publisher::open(&gateway, Proto::Mqtt, Version::V311).await;
    let mut stomp_producer = stomp_client(gateway.stomp).await;
    let (_amqp_connection, amqp_producer) = amqp_channel(gateway.amqp).await;
    for n in 0..EACH {
        mqtt.send(&key, format!("Mqtt-{n}").as_bytes()).await;
        stomp_producer
            .with_receipt(
                "SEND",
                &[("destination", &format!("/queue/{queue}"))],
                format!("Stomp-{n}").as_bytes(),
            )
            .await;
        let confirmation = publish_confirmed(
            &amqp_producer,
            "",
            &queue,
            format!("Amqp-{n}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
        assert_eq!(confirmation, Confirmation::Ack(None));
    }
    let members = Members {
        mqtt: None,
        stomp: &mut stomp,
        amqp: &mut consumer,
        amqp_channel: &channel,
    };
    let got = compete(&gateway.running, &queue, 3 * EACH, members).await;
    let expected: BTreeSet<String> = (0..EACH)
        .flat_map(|n| ["Mqtt", "Stomp", "Amqp"].map(|from| format!("{from}-{n}")))
        .collect();
    let all: BTreeSet<String> = got.iter().flatten().cloned().collect();
    assert_eq!(all, expected);
    assert!(
        !got[1].is_empty() && !got[2].is_empty(),
        "both consumers served: STOMP {}, AMQP {}",
        got[1].len(),
        got[2].len()
    );
}
