//! The MQTT cells of the cross-protocol matrix (DESIGN.md section 3, docs/MQTT.md "Topics" and
//! "Message properties"), with the engine itself standing in for the other protocol until the
//! STOMP and AMQP adapters exist: an engine session on the gateway's broker declares a queue,
//! binds it on `amq.topic` and consumes (as an AMQP consumer would), or publishes a message
//! with typed headers and standard properties (as an AMQP publisher would).
//!
//! MQTT clients are rumqttc v5 and v4 (3.1.1) over real sockets to an in-process gateway on
//! port 0. Every wait is bounded; nothing sleeps to synchronise.

#[allow(dead_code)]
#[path = "support/engine.rs"]
mod engine;
#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway;
#[allow(dead_code)]
#[path = "support/mqtt.rs"]
mod mqtt;

use std::net::SocketAddr;

use engine::{amq_topic, Engine};
use gateway::STEP;
use mqgate::RunningGateway;
use mqgate_core::message::{FieldValue, Headers, Message, Properties};
use mqtt::unique;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};

/// The header `key` of `message`.
fn header<'m>(message: &'m Message, key: &str) -> &'m FieldValue {
    message
        .headers
        .get(key)
        .unwrap_or_else(|| panic!("header {key} missing: {:?}", message.headers))
}

/// Every byte value, so the body is not UTF-8 and any transcoding would show.
fn binary_body() -> Vec<u8> {
    (0..=255u8).rev().chain(0..=255u8).collect()
}

async fn start() -> (RunningGateway, SocketAddr) {
    gateway::start(|_| {}).await
}

// ---------------------------------------------------------------------------------------------
// MQTT -> engine.

#[tokio::test]
async fn mqtt5_publish_reaches_an_engine_consumer_with_every_property() {
    use rumqttc::v5::mqttbytes::QoS;

    let (gateway, addr) = start().await;
    let mut engine = Engine::open(&gateway);
    // MQTT `map5/room.1/temp` is the routing key `map5.room/1.temp`: `/` and `.` swap.
    engine.consume_topic("map5.room/1.temp");

    let (client, mut events) = mqtt::v5::connect(addr, &unique("map5")).await;
    let body = binary_body();
    let correlation: Vec<u8> = vec![0x00, 0xFF, 0xFE, b'c', 0x80];
    client
        .publish_with_properties(
            "map5/room.1/temp",
            QoS::AtLeastOnce,
            true,
            body.clone(),
            PublishProperties {
                payload_format_indicator: Some(0),
                message_expiry_interval: Some(120),
                response_topic: Some("replies/room.1".to_owned()),
                correlation_data: Some(correlation.clone().into()),
                user_properties: vec![
                    ("site".to_owned(), "north".to_owned()),
                    ("unit".to_owned(), "celsius".to_owned()),
                ],
                content_type: Some("application/octet-stream".to_owned()),
                ..PublishProperties::default()
            },
        )
        .await
        .unwrap();
    mqtt::v5::puback(&mut events).await;

    let delivery = engine.delivery().await;
    let message = &delivery.message;
    assert_eq!(message.exchange, amq_topic());
    assert_eq!(&*message.routing_key, "map5.room/1.temp");
    assert_eq!(&message.body[..], &body[..], "body byte-exact");
    let properties = &message.properties;
    assert!(properties.persistent, "QoS 1 is delivery mode 2");
    assert_eq!(
        properties.content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(
        properties.reply_to.as_deref(),
        Some("/exchange/amq.topic/replies.room/1")
    );
    assert_eq!(properties.expiration_ms, Some(120_000));
    // Not UTF-8: no text correlation_id, the bytes travel in `x-correlation-data`.
    assert_eq!(properties.correlation_id, None);
    match header(message, "x-correlation-data") {
        FieldValue::Bytes(data) => assert_eq!(&data[..], &correlation[..]),
        other => panic!("x-correlation-data: {other:?}"),
    }
    assert_eq!(header(message, "x-mqtt-publish-qos").as_integer(), Some(1));
    assert_eq!(
        header(message, "x-mqtt-payload-format").as_integer(),
        Some(0)
    );
    assert_eq!(header(message, "x-retain"), &FieldValue::Bool(true));
    assert_eq!(header(message, "site").as_str(), Some("north"));
    assert_eq!(header(message, "unit").as_str(), Some("celsius"));
}

#[tokio::test]
async fn mqtt5_text_correlation_data_is_the_engine_correlation_id() {
    use rumqttc::v5::mqttbytes::QoS;

    let (gateway, addr) = start().await;
    let mut engine = Engine::open(&gateway);
    engine.consume_topic("corr.text");
    let (client, mut events) = mqtt::v5::connect(addr, &unique("corr")).await;
    client
        .publish_with_properties(
            "corr/text",
            QoS::AtLeastOnce,
            false,
            "request",
            PublishProperties {
                correlation_data: Some(b"req-42".to_vec().into()),
                ..PublishProperties::default()
            },
        )
        .await
        .unwrap();
    mqtt::v5::puback(&mut events).await;
    let delivery = engine.delivery().await;
    let message = &delivery.message;
    assert_eq!(message.properties.correlation_id.as_deref(), Some("req-42"));
    // Text travels as correlation_id alone; only binary data needs the header.
    assert!(message.headers.get("x-correlation-data").is_none());
    assert!(message.headers.get("x-retain").is_none(), "not retained");
}

#[tokio::test]
async fn mqtt311_qos0_publish_reaches_an_engine_consumer_not_persistent() {
    let (gateway, addr) = start().await;
    let mut engine = Engine::open(&gateway);
    engine.consume_topic("map311.#");

    let client = mqtt::v4::publisher(addr, &unique("map311")).await;
    let body = binary_body();
    client
        .publish(
            "map311/a.b/c",
            rumqttc::QoS::AtMostOnce,
            false,
            body.clone(),
        )
        .await
        .unwrap();

    let delivery = engine.delivery().await;
    let message = &delivery.message;
    assert_eq!(&*message.routing_key, "map311.a/b.c");
    assert_eq!(&message.body[..], &body[..]);
    assert!(!message.properties.persistent, "QoS 0 is not persistent");
    assert_eq!(header(message, "x-mqtt-publish-qos").as_integer(), Some(0));
    assert_eq!(message.properties.content_type, None);
    assert_eq!(message.properties.expiration_ms, None);
}

// ---------------------------------------------------------------------------------------------
// Engine -> MQTT.

/// A message as an AMQP publisher would send it: typed headers and every standard property.
fn amqp_style_message(routing_key: &str, body: Vec<u8>) -> Message {
    let mut nested = Headers::new();
    nested.insert("a", FieldValue::I32(1));
    nested.insert("b", "x");
    let mut headers = Headers::new();
    headers.insert("count", FieldValue::I32(42));
    headers.insert("big", FieldValue::I64(-9_000_000_000));
    headers.insert("small", FieldValue::U8(7));
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
            expiration_ms: Some(60_000),
            ..Properties::default()
        },
        headers,
        ..Message::new(amq_topic(), routing_key, body)
    }
}

#[tokio::test]
async fn engine_publish_reaches_an_mqtt5_subscriber_with_headers_as_user_properties() {
    use rumqttc::v5::mqttbytes::QoS;

    let (gateway, addr) = start().await;
    let (client, mut events) = mqtt::v5::connect(addr, &unique("eng5")).await;
    client.subscribe("eng5/#", QoS::AtLeastOnce).await.unwrap();
    mqtt::v5::suback(&mut events).await;

    let mut engine = Engine::open(&gateway);
    let body = binary_body();
    engine.publish(amqp_style_message("eng5.room/1", body.clone()));

    let publish = mqtt::v5::next_publish(&mut events).await;
    assert_eq!(&publish.topic[..], b"eng5/room.1", "routing key to topic");
    assert_eq!(&publish.payload[..], &body[..], "payload byte-exact");
    assert_eq!(
        publish.qos,
        QoS::AtLeastOnce,
        "a non-MQTT message counts as QoS 2: delivered at the granted QoS 1"
    );
    assert!(!publish.retain);
    let properties = publish.properties.expect("v5 properties");
    let expected: Vec<(String, String)> = [
        ("count", "42"),
        ("big", "-9000000000"),
        ("small", "7"),
        ("flag", "true"),
        ("nested", r#"{"a":1,"b":"x"}"#),
        ("label", "text"),
        ("amqp-message-id", "msg-1"),
        ("timestamp", "1700000000"),
        ("app-id", "billing"),
    ]
    .iter()
    .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
    .collect();
    assert_eq!(properties.user_properties, expected);
    assert_eq!(properties.content_type.as_deref(), Some("application/json"));
    assert_eq!(properties.correlation_data.as_deref(), Some(&b"corr-7"[..]));
    assert_eq!(properties.response_topic.as_deref(), Some("eng/replies"));
    let expiry = properties
        .message_expiry_interval
        .expect("message expiry interval");
    assert!(
        (50..=60).contains(&expiry),
        "expiry {expiry} s from 60 000 ms, minus the time queued"
    );
}

#[tokio::test]
async fn engine_publish_reaches_an_mqtt311_subscriber_at_qos2() {
    let (gateway, addr) = start().await;
    let (client, mut events) = mqtt::v4::connect(addr, &unique("eng311")).await;
    mqtt::v4::subscribe_granted(
        STEP,
        &client,
        &mut events,
        "eng311/+",
        rumqttc::QoS::ExactlyOnce,
    )
    .await;

    let mut engine = Engine::open(&gateway);
    let body = binary_body();
    engine.publish(amqp_style_message("eng311.x", body.clone()));

    let publish = mqtt::v4::next_publish(&mut events).await;
    assert_eq!(publish.topic, "eng311/x");
    assert_eq!(&publish.payload[..], &body[..]);
    assert_eq!(publish.qos, rumqttc::QoS::ExactlyOnce);
    assert!(!publish.retain);
}

#[tokio::test]
async fn engine_publish_with_x_retain_is_retained_for_later_mqtt_subscribers() {
    let (gateway, addr) = start().await;
    let mut engine = Engine::open(&gateway);
    // A queue of its own so the publish is routed somewhere; retention does not depend on it.
    engine.consume_topic("retained.#");
    let mut message = Message::new(amq_topic(), "retained.room/1", b"kept".to_vec());
    message.headers.insert("x-retain", true);
    engine.publish(message);
    engine.delivery().await;

    // 3.1.1 subscriber, wildcard filter.
    let (client, mut events) = mqtt::v4::connect(addr, &unique("ret311")).await;
    client
        .subscribe("retained/#", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    let publish = mqtt::v4::next_publish(&mut events).await;
    assert_eq!(publish.topic, "retained/room.1");
    assert_eq!(&publish.payload[..], b"kept");
    assert!(publish.retain, "retain flag set on the retained message");
    assert_eq!(publish.qos, rumqttc::QoS::AtLeastOnce);

    // MQTT 5 subscriber, exact filter.
    let (client, mut events) = mqtt::v5::connect(addr, &unique("ret5")).await;
    client
        .subscribe("retained/room.1", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await
        .unwrap();
    let publish = mqtt::v5::wait_for(&mut events, |packet| match packet {
        Packet::Publish(publish) => Some(publish.clone()),
        _ => None,
    })
    .await;
    assert_eq!(&publish.topic[..], b"retained/room.1");
    assert_eq!(&publish.payload[..], b"kept");
    assert!(publish.retain, "retain flag set on the retained message");
    let user_properties = publish
        .properties
        .map(|properties| properties.user_properties)
        .unwrap_or_default();
    assert!(
        user_properties.iter().all(|(key, _)| key != "x-retain"),
        "internal header leaked: {user_properties:?}"
    );
}
