use std::time::Duration;

use bytes::Bytes;
use mqgate_core::message::{FieldValue, Headers, Message};
use mqgate_core::names::ExchangeName;
use rumqttd::protocol::{Publish, PublishProperties, QoS};

use super::packet::{build_publish, publish_header};
use super::*;

fn amq_topic() -> ExchangeName {
    ExchangeName::new(DEFAULT_EXCHANGE).unwrap()
}

fn publish(topic: &str, payload: &'static [u8], qos: QoS, retain: bool) -> Publish {
    build_publish(
        Bytes::copy_from_slice(topic.as_bytes()),
        Bytes::from_static(payload),
        retain,
        PublishHeader {
            qos,
            pkid: 1,
            dup: false,
        },
    )
}

fn user_properties(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn v3_publish_becomes_a_message_on_amq_topic() {
    let packet = publish("cities/lon.don", b"hello", QoS::AtMostOnce, false);
    let message = message_from_publish(&amq_topic(), "cities/lon.don", &packet, None);
    assert_eq!(message.exchange, amq_topic());
    assert_eq!(&*message.routing_key, "cities.lon/don");
    assert_eq!(
        message.body.as_ptr(),
        packet.payload.as_ptr(),
        "body copied"
    );
    assert!(!message.properties.persistent);
    assert_eq!(message.headers.get(QOS_HEADER), Some(&FieldValue::I64(0)));
    assert_eq!(message.headers.get(RETAIN_HEADER), None);
    assert_eq!(message.headers.len(), 1);
}

#[test]
fn qos_sets_persistent_and_retain_sets_the_header() {
    for (qos, level) in [(QoS::AtLeastOnce, 1), (QoS::ExactlyOnce, 2)] {
        let packet = publish("t", b"x", qos, true);
        let message = message_from_publish(&amq_topic(), "t", &packet, None);
        assert!(message.properties.persistent);
        assert_eq!(
            message.headers.get(QOS_HEADER),
            Some(&FieldValue::I64(level))
        );
        assert_eq!(
            message.headers.get(RETAIN_HEADER),
            Some(&FieldValue::Bool(true))
        );
        assert!(mqgate_core::retained::is_retain_requested(&message.headers));
    }
}

#[test]
fn v5_properties_become_properties_and_headers() {
    let packet = publish("t", b"x", QoS::AtLeastOnce, false);
    let properties = PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(30),
        topic_alias: Some(4),
        response_topic: Some("replies/for.me".into()),
        correlation_data: Some(Bytes::from_static(b"req-1")),
        user_properties: user_properties(&[
            ("k", "first"),
            ("other", "v"),
            ("k", "second"),
            (QOS_HEADER, "2"),
            (RETAIN_HEADER, "true"),
            (CORRELATION_DATA_HEADER, "forged"),
        ]),
        subscription_identifiers: vec![],
        content_type: Some("text/plain".into()),
    };
    let message = message_from_publish(&amq_topic(), "t", &packet, Some(&properties));
    let standard = &message.properties;
    assert_eq!(standard.expiration_ms, Some(30_000));
    assert_eq!(standard.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        standard.reply_to.as_deref(),
        Some("/exchange/amq.topic/replies.for/me")
    );
    assert_eq!(standard.correlation_id.as_deref(), Some("req-1"));
    let headers = &message.headers;
    // Text correlation data travels as correlation_id alone; a forged header is ignored.
    assert_eq!(headers.get(CORRELATION_DATA_HEADER), None);
    assert_eq!(headers.get("k"), Some(&FieldValue::Str("first".into())));
    assert_eq!(headers.get("other"), Some(&FieldValue::Str("v".into())));
    assert_eq!(
        headers.get(PAYLOAD_FORMAT_HEADER),
        Some(&FieldValue::I64(1))
    );
    // Reserved names from the client are ignored: the QoS is the packet's, and no retain.
    assert_eq!(headers.get(QOS_HEADER), Some(&FieldValue::I64(1)));
    assert_eq!(headers.get(RETAIN_HEADER), None);
    assert_eq!(headers.len(), 4);
}

#[test]
fn user_properties_naming_amqp_properties_set_them_and_user_id_is_dropped() {
    let packet = publish("t", b"x", QoS::AtMostOnce, false);
    let properties = PublishProperties {
        user_properties: user_properties(&[
            ("amqp-message-id", "m-1"),
            ("app-id", "billing"),
            ("type", "order.created"),
            ("content-encoding", "gzip"),
            ("timestamp", "1700000000"),
            ("priority", "3"),
            ("user-id", "someone-else"),
            ("priority", "9"),
        ]),
        ..PublishProperties::default()
    };
    let message = message_from_publish(&amq_topic(), "t", &packet, Some(&properties));
    let standard = &message.properties;
    assert_eq!(standard.message_id.as_deref(), Some("m-1"));
    assert_eq!(standard.app_id.as_deref(), Some("billing"));
    assert_eq!(standard.message_type.as_deref(), Some("order.created"));
    assert_eq!(standard.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(standard.timestamp, Some(1_700_000_000));
    assert_eq!(standard.priority, Some(3));
    assert_eq!(standard.user_id, None);
    assert_eq!(message.headers.get("user-id"), None);
    assert_eq!(message.headers.get("priority"), None);
}

#[test]
fn binary_correlation_data_is_kept_as_bytes_only() {
    let packet = publish("t", b"x", QoS::AtMostOnce, false);
    let data = Bytes::from_static(&[0, 255, 0]);
    let properties = PublishProperties {
        correlation_data: Some(data.clone()),
        ..PublishProperties::default()
    };
    let message = message_from_publish(&amq_topic(), "t", &packet, Some(&properties));
    assert_eq!(message.properties.correlation_id, None);
    assert_eq!(
        message.headers.get(CORRELATION_DATA_HEADER),
        Some(&FieldValue::Bytes(data))
    );
}

fn amqp_message() -> Message {
    let mut message = Message::new(amq_topic(), "a/b.c", "payload");
    message.headers.insert("plain", "text");
    message.headers.insert("count", FieldValue::I32(-5));
    message.headers.insert("flag", true);
    let mut table = Headers::new();
    table.insert("x", 1i64);
    message.headers.insert("table", FieldValue::Table(table));
    message.headers.insert(RETAIN_HEADER, true);
    message.headers.insert(QOS_HEADER, 1i64);
    let properties = &mut message.properties;
    properties.content_type = Some("application/json".into());
    properties.correlation_id = Some("corr".into());
    properties.reply_to = Some("amq.gen-abc".into());
    properties.message_id = Some("m-1".into());
    properties.timestamp = Some(1_700_000_000);
    properties.app_id = Some("app".into());
    properties.message_type = Some("kind".into());
    properties.user_id = Some("guest".into());
    properties.content_encoding = Some("gzip".into());
    properties.priority = Some(5);
    properties.expiration_ms = Some(1_500);
    message
}

#[test]
fn v3_delivery_has_no_properties_and_shares_the_body() {
    let message = amqp_message();
    let header = PublishHeader {
        qos: QoS::AtLeastOnce,
        pkid: 9,
        dup: true,
    };
    let (packet, properties) = publish_from_message(
        &message,
        topic_of(&message),
        header,
        true,
        MqttVersion::V3,
        None,
    );
    assert_eq!(properties, None);
    assert_eq!(packet.topic, "a.b/c");
    assert!(packet.retain);
    assert_eq!(publish_header(&packet), header);
    assert_eq!(
        packet.payload.as_ptr(),
        message.body.as_ptr(),
        "body copied"
    );
}

#[test]
fn v5_delivery_maps_every_property_and_header() {
    let message = amqp_message();
    let (_, properties) = publish_from_message(
        &message,
        topic_of(&message),
        PublishHeader::new(QoS::AtMostOnce),
        false,
        MqttVersion::V5,
        None,
    );
    let properties = properties.unwrap();
    assert_eq!(properties.content_type.as_deref(), Some("application/json"));
    // A bare queue name stays as it is.
    assert_eq!(properties.response_topic.as_deref(), Some("amq.gen-abc"));
    assert_eq!(
        properties.correlation_data,
        Some(Bytes::from_static(b"corr"))
    );
    assert_eq!(
        properties.message_expiry_interval,
        Some(2),
        "1.5 s rounds up"
    );
    assert_eq!(properties.payload_format_indicator, None);
    assert_eq!(properties.topic_alias, None);
    assert_eq!(
        properties.user_properties,
        user_properties(&[
            ("plain", "text"),
            ("count", "-5"),
            ("flag", "true"),
            ("table", r#"{"x":1}"#),
            (AMQP_MESSAGE_ID, "m-1"),
            (TIMESTAMP, "1700000000"),
            (APP_ID, "app"),
            (MESSAGE_TYPE, "kind"),
            (USER_ID, "guest"),
            (CONTENT_ENCODING, "gzip"),
            (PRIORITY, "5"),
        ])
    );
}

#[test]
fn remaining_time_replaces_the_expiration() {
    let message = amqp_message();
    let expiry = |remaining| {
        publish_from_message(
            &message,
            topic_of(&message),
            PublishHeader::new(QoS::AtMostOnce),
            false,
            MqttVersion::V5,
            remaining,
        )
        .1
        .and_then(|p| p.message_expiry_interval)
    };
    assert_eq!(expiry(Some(Duration::from_millis(200))), Some(1));
    assert_eq!(expiry(Some(Duration::from_secs(7))), Some(7));
    assert_eq!(expiry(Some(Duration::ZERO)), Some(0));
    assert_eq!(
        expiry(Some(Duration::from_secs(u64::from(u32::MAX) + 10))),
        Some(u32::MAX)
    );
}

#[test]
fn reply_to_destinations_become_response_topics() {
    let response = |reply_to: &str| {
        let mut message = Message::new(amq_topic(), "k", "b");
        message.properties.reply_to = Some(reply_to.to_owned());
        publish_from_message(
            &message,
            topic_of(&message),
            PublishHeader::new(QoS::AtMostOnce),
            false,
            MqttVersion::V5,
            None,
        )
        .1
        .and_then(|p| p.response_topic)
    };
    assert_eq!(
        response("/exchange/amq.topic/replies.a/b").as_deref(),
        Some("replies/a.b")
    );
    assert_eq!(response("/topic/x.y").as_deref(), Some("x/y"));
    assert_eq!(response("my-queue").as_deref(), Some("my-queue"));
    assert_eq!(response("/exchange//x").as_deref(), Some("/exchange//x"));
}

#[test]
fn v5_delivery_without_anything_to_say_has_no_properties() {
    let message = Message::new(amq_topic(), "k", "b");
    let (_, properties) = publish_from_message(
        &message,
        topic_of(&message),
        PublishHeader::new(QoS::AtMostOnce),
        false,
        MqttVersion::V5,
        None,
    );
    assert_eq!(properties, None);
}

#[test]
fn v5_round_trip_is_exact() {
    let payload = Bytes::from_static(&[0, 1, 2, 0xFF]);
    let sent = build_publish(
        Bytes::from_static(b"dev/42/temp.c"),
        payload.clone(),
        false,
        PublishHeader {
            qos: QoS::ExactlyOnce,
            pkid: 3,
            dup: false,
        },
    );
    let sent_properties = PublishProperties {
        payload_format_indicator: Some(0),
        message_expiry_interval: Some(120),
        topic_alias: None,
        response_topic: Some("replies/dev.42".into()),
        correlation_data: Some(Bytes::from_static(&[0xDE, 0xAD, 0xBE, 0xEF])),
        user_properties: user_properties(&[("z", "1"), ("a", "2"), ("m", "")]),
        subscription_identifiers: vec![],
        content_type: Some("application/octet-stream".into()),
    };
    let message =
        message_from_publish(&amq_topic(), "dev/42/temp.c", &sent, Some(&sent_properties));
    let header = PublishHeader {
        qos: QoS::ExactlyOnce,
        pkid: 11,
        dup: false,
    };
    let (received, received_properties) = publish_from_message(
        &message,
        topic_of(&message),
        header,
        false,
        MqttVersion::V5,
        None,
    );
    assert_eq!(received.topic, sent.topic);
    assert_eq!(received.payload, payload);
    assert_eq!(received.payload.as_ptr(), payload.as_ptr(), "body copied");
    assert_eq!(publish_header(&received), header);
    assert_eq!(received_properties, Some(sent_properties));
}

/// The topic the session would compute for `message`.
fn topic_of(message: &Message) -> bytes::Bytes {
    bytes::Bytes::from(crate::topic::routing_key_to_topic(&message.routing_key).into_owned())
}
