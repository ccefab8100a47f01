//! The STOMP cells of the cross-protocol matrix (DESIGN.md section 3, docs/STOMP.md "Header
//! mapping"): STOMP and MQTT clients on real sockets to one in-process gateway, with the engine
//! itself standing in for AMQP until that adapter lands (an engine session on the gateway's
//! broker publishes with typed headers and standard properties, or consumes a queue, as an AMQP
//! client would).
//!
//! STOMP clients speak raw frames (STOMP 1.2, headers escaped and unescaped by the client);
//! MQTT clients are rumqttc v5. Every wait is bounded; nothing sleeps to synchronise.

#[allow(dead_code)]
#[path = "support/engine.rs"]
mod engine;
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
use std::time::Duration;

use engine::{amq_topic, Engine};
use gateway::{within, STEP};
use mqgate::protocols::Protocol;
use mqgate::{RunningGateway, Transport};
use mqgate_core::message::{FieldValue, Headers, Message, Properties};
use mqgate_core::names::ExchangeName;
use mqtt::unique;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::v5::mqttbytes::QoS;
use stomp::{Client, Style};

// ---------------------------------------------------------------------------------------------
// The gateway, the STOMP client, the engine client.

/// A gateway with a plain MQTT and a plain STOMP listener on 127.0.0.1:0.
struct Gateway {
    running: RunningGateway,
    mqtt: SocketAddr,
    stomp: SocketAddr,
}

async fn start() -> Gateway {
    let (running, stomp) = stomp::start().await;
    let mqtt = running
        .local_addr(Protocol::Mqtt, Transport::Plain)
        .unwrap();
    Gateway {
        running,
        mqtt,
        stomp,
    }
}

/// Header names and values escaped and unescaped (STOMP 1.2), `content-length` for a non-empty
/// body.
const STYLE: Style = Style::ESCAPED_SIZED;

/// A client connected as guest over plain TCP with STOMP 1.2.
async fn open(addr: SocketAddr) -> Client {
    let (client, connected) = Client::guest(addr, STYLE, &[]).await;
    assert_eq!(connected.header("version"), Some("1.2"));
    client
}

/// Awaits `future` while polling the MQTT event loop (so queued packets go out); incoming
/// packets are dropped.
async fn while_driving<T>(
    events: &mut rumqttc::v5::EventLoop,
    future: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(future);
    loop {
        tokio::select! {
            value = &mut future => return value,
            polled = events.poll() => {
                polled.expect("the MQTT connection failed");
            }
        }
    }
}

/// Every byte value twice, NULs included (in the middle and at both ends), so the body is not
/// UTF-8, a NUL-terminated read would cut it, and any transcoding would show.
fn binary_body() -> Vec<u8> {
    let mut body = vec![0u8];
    body.extend((0..=255u8).rev());
    body.extend(0..=255u8);
    body.push(0);
    body
}

// ---------------------------------------------------------------------------------------------
// MQTT -> STOMP.

#[tokio::test]
async fn mqtt5_publish_reaches_a_stomp_topic_subscriber_with_its_properties_as_headers() {
    let gateway = start().await;
    let mut subscriber = open(gateway.stomp).await;
    subscriber
        .subscribe("t", "/topic/a.b", &[("ack", "auto")])
        .await;

    let (client, mut events) = mqtt::v5::connect(gateway.mqtt, &unique("x5")).await;
    client
        .publish_with_properties(
            "a/b",
            QoS::AtLeastOnce,
            false,
            "hello",
            PublishProperties {
                user_properties: vec![
                    ("site".to_owned(), "north".to_owned()),
                    ("unit".to_owned(), "deg:C".to_owned()),
                ],
                content_type: Some("text/plain; charset=utf-8".to_owned()),
                ..PublishProperties::default()
            },
        )
        .await
        .unwrap();
    mqtt::v5::puback(&mut events).await;

    let message = subscriber.message().await;
    assert_eq!(message.header("destination"), Some("/topic/a.b"));
    assert_eq!(message.header("subscription"), Some("t"));
    assert_eq!(message.header("redelivered"), Some("false"));
    assert!(message.header("message-id").is_some());
    assert_eq!(
        message.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(message.header("persistent"), Some("true"), "QoS 1");
    assert_eq!(message.header("x-mqtt-publish-qos"), Some("1"));
    assert_eq!(message.header("site"), Some("north"));
    // A colon in a value crosses escaped (`\c`) and arrives intact.
    assert_eq!(message.header("unit"), Some("deg:C"));
    assert_eq!(message.header("content-length"), Some("5"));
    assert_eq!(message.body, b"hello");

    // QoS 0: not persistent.
    client
        .publish("a/b", QoS::AtMostOnce, false, "fire and forget")
        .await
        .unwrap();
    let message = while_driving(&mut events, subscriber.message()).await;
    assert_eq!(message.header("persistent"), None);
    assert_eq!(message.header("x-mqtt-publish-qos"), Some("0"));
    assert_eq!(message.body, b"fire and forget");
}

#[tokio::test]
async fn mqtt311_publish_reaches_a_stomp_wildcard_subscriber() {
    let gateway = start().await;
    let mut subscriber = open(gateway.stomp).await;
    subscriber
        .subscribe("w", "/topic/a.*", &[("ack", "auto")])
        .await;
    let client = mqtt::v4::publisher(gateway.mqtt, &unique("x311")).await;
    client
        .publish("a/c", rumqttc::QoS::AtLeastOnce, false, "v311")
        .await
        .unwrap();
    let message = subscriber.message().await;
    assert_eq!(message.header("destination"), Some("/topic/a.c"));
    assert_eq!(message.header("persistent"), Some("true"));
    assert_eq!(message.header("x-mqtt-publish-qos"), Some("1"));
    assert_eq!(message.body, b"v311");
}

// ---------------------------------------------------------------------------------------------
// Engine ("AMQP") -> STOMP.

/// A message as an AMQP publisher would send it: typed headers and standard properties.
fn amqp_style_message(routing_key: &str, body: Vec<u8>) -> Message {
    let mut nested = Headers::new();
    nested.insert("a", FieldValue::I32(1));
    nested.insert("b", "x");
    let mut headers = Headers::new();
    headers.insert("count", FieldValue::I32(42));
    headers.insert("big", FieldValue::I64(-9_000_000_000));
    headers.insert("small", FieldValue::U8(7));
    headers.insert("ratio", FieldValue::F64(0.5));
    headers.insert("flag", true);
    headers.insert("nested", FieldValue::Table(nested));
    headers.insert("label", "text");
    Message {
        properties: Properties {
            content_type: Some("application/json".to_owned()),
            correlation_id: Some("corr-7".to_owned()),
            reply_to: Some("/exchange/amq.topic/eng.replies".to_owned()),
            message_id: Some("msg-1".to_owned()),
            timestamp: Some(1_700_000_000),
            app_id: Some("billing".to_owned()),
            priority: Some(3),
            persistent: true,
            ..Properties::default()
        },
        headers,
        ..Message::new(amq_topic(), routing_key, body)
    }
}

#[tokio::test]
async fn engine_publish_on_amq_topic_reaches_a_stomp_subscriber_with_typed_headers_stringified() {
    let gateway = start().await;
    let mut subscriber = open(gateway.stomp).await;
    subscriber
        .subscribe("t", "/topic/a.b", &[("ack", "auto")])
        .await;

    let mut engine = Engine::open(&gateway.running);
    let body = binary_body();
    engine.publish(amqp_style_message("a.b", body.clone()));

    let message = subscriber.message().await;
    assert_eq!(message.header("destination"), Some("/topic/a.b"));
    assert_eq!(message.body, body, "body byte-exact");
    let length = body.len().to_string();
    assert_eq!(message.header("content-length"), Some(length.as_str()));
    for (name, value) in [
        ("content-type", "application/json"),
        ("correlation-id", "corr-7"),
        ("reply-to", "/exchange/amq.topic/eng.replies"),
        ("amqp-message-id", "msg-1"),
        ("timestamp", "1700000000"),
        ("app-id", "billing"),
        ("priority", "3"),
        ("persistent", "true"),
        ("count", "42"),
        ("big", "-9000000000"),
        ("small", "7"),
        ("ratio", "0.5"),
        ("flag", "true"),
        ("nested", r#"{"a":1,"b":"x"}"#),
        ("label", "text"),
    ] {
        assert_eq!(message.header(name), Some(value), "{name}: {message:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// STOMP -> MQTT.

#[tokio::test]
async fn stomp_send_reaches_an_mqtt5_subscriber_with_custom_headers_as_user_properties() {
    let gateway = start().await;
    let (client, mut events) = mqtt::v5::connect(gateway.mqtt, &unique("s5")).await;
    client.subscribe("a/+", QoS::AtLeastOnce).await.unwrap();
    mqtt::v5::suback(&mut events).await;

    let mut producer = open(gateway.stomp).await;
    producer
        .with_receipt(
            "SEND",
            &[
                ("destination", "/topic/a.b"),
                ("content-type", "application/json"),
                ("persistent", "true"),
                ("site", "south"),
                ("x-trace", "k:v\\w"),
                ("correlation-id", "c-1"),
            ],
            b"{\"t\":21}",
        )
        .await;

    let publish = mqtt::v5::next_publish(&mut events).await;
    assert_eq!(&publish.topic[..], b"a/b");
    assert_eq!(&publish.payload[..], b"{\"t\":21}");
    assert_eq!(publish.qos, QoS::AtLeastOnce);
    let properties = publish.properties.expect("v5 properties");
    assert_eq!(properties.content_type.as_deref(), Some("application/json"));
    assert_eq!(properties.correlation_data.as_deref(), Some(&b"c-1"[..]));
    let user = &properties.user_properties;
    assert!(
        user.contains(&("site".to_owned(), "south".to_owned())),
        "{user:?}"
    );
    assert!(
        user.contains(&("x-trace".to_owned(), "k:v\\w".to_owned())),
        "escaped value decoded once: {user:?}"
    );
    for frame_header in ["destination", "receipt", "content-length", "persistent"] {
        assert!(
            user.iter().all(|(key, _)| key != frame_header),
            "{frame_header} leaked: {user:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Competing consumers.

#[tokio::test]
async fn stomp_queue_subscriber_competes_with_an_engine_consumer() {
    const EACH: usize = 20;
    let gateway = start().await;
    // The STOMP subscription declares the shared durable queue `q`.
    let mut subscriber = open(gateway.stomp).await;
    subscriber
        .subscribe("q", "/queue/q", &[("ack", "auto")])
        .await;
    let mut engine = Engine::open(&gateway.running);
    engine.consume_queue("q");

    // Half from a STOMP producer, half from the engine on the default exchange.
    let mut producer = open(gateway.stomp).await;
    let mut publisher = Engine::open(&gateway.running);
    for n in 0..EACH {
        let body = format!("stomp-{n}");
        producer
            .with_receipt("SEND", &[("destination", "/queue/q")], body.as_bytes())
            .await;
        publisher.publish(Message::new(
            ExchangeName::default_exchange(),
            "q",
            format!("engine-{n}").into_bytes(),
        ));
    }

    let mut by_stomp = Vec::new();
    let mut by_engine = Vec::new();
    within(STEP, "every message delivered", async {
        while by_stomp.len() + by_engine.len() < 2 * EACH {
            tokio::select! {
                frame = subscriber.read_frame() => {
                    assert_eq!(frame.command, "MESSAGE", "{frame:?}");
                    assert_eq!(frame.header("destination"), Some("/queue/q"));
                    by_stomp.push(String::from_utf8(frame.body).unwrap());
                }
                delivery = engine.next_delivery() => {
                    assert_eq!(&*delivery.message.routing_key, "q");
                    by_engine.push(String::from_utf8(delivery.message.body.to_vec()).unwrap());
                }
            }
        }
    })
    .await;
    // Nothing more comes: each message went to one consumer, once.
    let extra = tokio::time::timeout(Duration::from_millis(300), async {
        tokio::select! {
            frame = subscriber.read_frame() => format!("STOMP {frame:?}"),
            delivery = engine.next_delivery() => format!("engine {delivery:?}"),
        }
    })
    .await;
    assert!(extra.is_err(), "a message came twice: {extra:?}");

    let all: BTreeSet<&String> = by_stomp.iter().chain(&by_engine).collect();
    assert_eq!(
        all.len(),
        2 * EACH,
        "no duplicates: {by_stomp:?} {by_engine:?}"
    );
    let expected: BTreeSet<String> = (0..EACH)
        .flat_map(|n| [format!("stomp-{n}"), format!("engine-{n}")])
        .collect();
    assert_eq!(all, expected.iter().collect());
    assert!(
        !by_stomp.is_empty() && !by_engine.is_empty(),
        "both consumers served (round-robin): STOMP {} engine {}",
        by_stomp.len(),
        by_engine.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Binary bodies.

#[tokio::test]
async fn binary_bodies_with_nul_bytes_cross_byte_exact_both_ways() {
    let gateway = start().await;
    let body = binary_body();

    // STOMP -> MQTT and the engine.
    let (client, mut events) = mqtt::v5::connect(gateway.mqtt, &unique("bin")).await;
    client.subscribe("bin/+", QoS::AtLeastOnce).await.unwrap();
    mqtt::v5::suback(&mut events).await;
    let mut engine = Engine::open(&gateway.running);
    engine.consume_topic("bin.*");
    let mut stomp = open(gateway.stomp).await;
    stomp
        .with_receipt("SEND", &[("destination", "/topic/bin.from-stomp")], &body)
        .await;
    let publish = mqtt::v5::next_publish(&mut events).await;
    assert_eq!(&publish.topic[..], b"bin/from-stomp");
    assert_eq!(&publish.payload[..], &body[..], "STOMP -> MQTT byte-exact");
    let delivery = engine.delivery().await;
    assert_eq!(
        &delivery.message.body[..],
        &body[..],
        "STOMP -> engine byte-exact"
    );
    assert!(
        delivery.message.headers.get("content-length").is_none(),
        "content-length is a frame header, not a message header"
    );

    // MQTT and the engine -> STOMP.
    stomp
        .subscribe("b", "/topic/bin.to-stomp", &[("ack", "auto")])
        .await;
    client
        .publish("bin/to-stomp", QoS::AtLeastOnce, false, body.clone())
        .await
        .unwrap();
    mqtt::v5::puback(&mut events).await;
    let message = stomp.message().await;
    let length = body.len().to_string();
    assert_eq!(message.header("content-length"), Some(length.as_str()));
    assert_eq!(message.body, body, "MQTT -> STOMP byte-exact");
    engine.publish(Message::new(amq_topic(), "bin.to-stomp", body.clone()));
    // The engine's own queue (bin.*) takes copies too; the STOMP frame is what matters here.
    let message = stomp.message().await;
    assert_eq!(message.header("content-length"), Some(length.as_str()));
    assert_eq!(message.body, body, "engine -> STOMP byte-exact");
}

// ---------------------------------------------------------------------------------------------
// Topic levels containing `.`.

#[tokio::test]
async fn mqtt_topic_level_with_a_dot_reaches_stomp_swapped_and_back() {
    let gateway = start().await;
    // MQTT `sensors/room.1` is the routing key `sensors.room/1`; in a STOMP destination the `/`
    // of the key is written `%2F`.
    let mut exact = open(gateway.stomp).await;
    exact
        .subscribe("e", "/topic/sensors.room%2F1", &[("ack", "auto")])
        .await;
    let mut wildcard = open(gateway.stomp).await;
    wildcard
        .subscribe("w", "/topic/sensors.*", &[("ack", "auto")])
        .await;

    let (subscriber, mut events) = mqtt::v5::connect(gateway.mqtt, &unique("dot-sub")).await;
    subscriber
        .subscribe("sensors/room.1", QoS::AtLeastOnce)
        .await
        .unwrap();
    mqtt::v5::suback(&mut events).await;
    let publisher = mqtt::v4::publisher(gateway.mqtt, &unique("dot-pub")).await;
    publisher
        .publish(
            "sensors/room.1",
            rumqttc::QoS::AtLeastOnce,
            false,
            "from mqtt",
        )
        .await
        .unwrap();
    for stomp in [&mut exact, &mut wildcard] {
        let message = stomp.message().await;
        assert_eq!(
            message.header("destination"),
            Some("/topic/sensors.room%2F1")
        );
        assert_eq!(message.body, b"from mqtt");
    }
    let publish = mqtt::v5::next_publish(&mut events).await;
    assert_eq!(&publish.topic[..], b"sensors/room.1");
    assert_eq!(&publish.payload[..], b"from mqtt");

    // Back: a SEND to the destination as received reaches the MQTT topic with its `.` kept.
    let mut producer = open(gateway.stomp).await;
    producer
        .with_receipt(
            "SEND",
            &[("destination", "/topic/sensors.room%2F1")],
            b"from stomp",
        )
        .await;
    let publish = mqtt::v5::next_publish(&mut events).await;
    assert_eq!(&publish.topic[..], b"sensors/room.1");
    assert_eq!(&publish.payload[..], b"from stomp");
    for stomp in [&mut exact, &mut wildcard] {
        let message = stomp.message().await;
        assert_eq!(
            message.header("destination"),
            Some("/topic/sensors.room%2F1")
        );
        assert_eq!(message.body, b"from stomp");
    }
}
