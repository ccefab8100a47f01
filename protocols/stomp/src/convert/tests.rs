use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use mqgate_core::message::{FieldValue, Headers, Message};
use mqgate_core::names::{ExchangeName, QueueName};
use mqgate_core::outbox::{Delivery, DeliveryTag};

use super::*;
use crate::destination::Destination;

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn send(destination: &str, pairs: &[(&str, &str)]) -> Result<Message, ConvertError> {
    message_from_send(
        &Destination::parse(destination).unwrap(),
        &headers(pairs),
        Bytes::from_static(b"body"),
        "alice",
    )
}

fn delivery(message: Message, redelivered: bool) -> Delivery {
    Delivery {
        consumer: None,
        tag: DeliveryTag(1),
        queue: QueueName::new("q").unwrap(),
        message: Arc::new(message),
        redelivered,
        delivery_count: u32::from(redelivered),
        weight: 0,
        enqueued_at: Instant::now(),
    }
}

fn get<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn count(headers: &[(String, String)], name: &str) -> usize {
    headers.iter().filter(|(k, _)| k == name).count()
}

const ALL_PROPERTIES: [(&str, &str); 12] = [
    ("content-type", "text/plain"),
    ("content-encoding", "gzip"),
    ("persistent", "true"),
    ("priority", "7"),
    ("expiration", "60000"),
    ("amqp-message-id", "m-1"),
    ("timestamp", "1700000000"),
    ("type", "order.created"),
    ("app-id", "shop"),
    ("user-id", "alice"),
    ("correlation-id", "c-9"),
    ("reply-to", "/queue/replies"),
];

#[test]
fn send_properties_map_to_the_core() {
    let message = send("/topic/orders.new", &ALL_PROPERTIES).unwrap();
    assert_eq!(message.exchange.as_str(), "amq.topic");
    assert_eq!(&*message.routing_key, "orders.new");
    assert_eq!(message.body, Bytes::from_static(b"body"));
    let p = &message.properties;
    assert_eq!(p.content_type.as_deref(), Some("text/plain"));
    assert_eq!(p.content_encoding.as_deref(), Some("gzip"));
    assert!(p.persistent);
    assert_eq!(p.priority, Some(7));
    assert_eq!(p.expiration_ms, Some(60_000));
    assert_eq!(p.message_id.as_deref(), Some("m-1"));
    assert_eq!(p.timestamp, Some(1_700_000_000));
    assert_eq!(p.message_type.as_deref(), Some("order.created"));
    assert_eq!(p.app_id.as_deref(), Some("shop"));
    assert_eq!(p.user_id.as_deref(), Some("alice"));
    assert_eq!(p.correlation_id.as_deref(), Some("c-9"));
    assert_eq!(p.reply_to.as_deref(), Some("/queue/replies"));
    assert!(message.headers.is_empty(), "{:?}", message.headers);
    assert!(message.origin.is_none());
}

#[test]
fn core_properties_map_to_message_headers() {
    let message = send("/topic/orders.new", &ALL_PROPERTIES).unwrap();
    let frame = message_frame_headers(&delivery(message, false), "sub-0", "MSG-1", None);
    let mut expected = vec![
        ("destination", "/topic/orders.new"),
        ("message-id", "MSG-1"),
        ("subscription", "sub-0"),
        ("redelivered", "false"),
    ];
    // The properties in the order message_headers writes them.
    for name in [
        "content-type",
        "content-encoding",
        "persistent",
        "priority",
        "expiration",
        "amqp-message-id",
        "timestamp",
        "type",
        "app-id",
        "user-id",
        "correlation-id",
        "reply-to",
    ] {
        let value = ALL_PROPERTIES.iter().find(|(k, _)| *k == name).unwrap().1;
        expected.push((name, value));
    }
    assert_eq!(frame, headers(&expected));
}

#[test]
fn ack_and_redelivered_headers() {
    let message = send("/queue/q", &[]).unwrap();
    let frame = message_frame_headers(&delivery(message, true), "s", "M", Some("A-1"));
    assert_eq!(
        frame,
        headers(&[
            ("destination", "/queue/q"),
            ("message-id", "M"),
            ("subscription", "s"),
            ("ack", "A-1"),
            ("redelivered", "true"),
        ])
    );
}

#[test]
fn absent_properties_are_absent() {
    let message = send("/queue/q", &[("persistent", "false")]).unwrap();
    assert!(!message.properties.persistent);
    assert_eq!(message.properties, Default::default());
    let out = message_headers(&message);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn custom_headers_round_trip_in_order() {
    let custom = [
        ("x-order", "42"),
        ("Zeta", "last\nline:with colon\\"),
        ("x-retain", "true"),
        ("x-tags", "TagA || TagB"),
        ("durable", "true"),
        ("empty", ""),
        ("unicode-ключ", "значение"),
    ];
    let mut input: Vec<(&str, &str)> = vec![("destination", "/topic/a"), ("receipt", "r-1")];
    input.extend(custom);
    input.push(("x-order", "second value loses"));
    let message = send("/topic/a", &input).unwrap();
    let stored: Vec<(&str, &FieldValue)> = message.headers.iter().collect();
    assert_eq!(stored.len(), custom.len());
    for ((name, value), (k, v)) in custom.iter().zip(stored) {
        assert_eq!((*name, &FieldValue::Str((*value).to_owned())), (k, v));
    }
    assert_eq!(message.tags().collect::<Vec<_>>(), vec!["TagA", "TagB"]);
    let out = message_headers(&message);
    assert_eq!(out, headers(&custom));
}

#[test]
fn frame_headers_are_not_copied_either_way() {
    let message = send(
        "/queue/q",
        &[
            ("destination", "/queue/q"),
            ("receipt", "r"),
            ("transaction", "tx1"),
            ("content-length", "4"),
            ("message-id", "forged"),
            ("subscription", "s"),
            ("ack", "a"),
            ("id", "i"),
            ("redelivered", "true"),
            ("kept", "yes"),
        ],
    )
    .unwrap();
    assert_eq!(message.headers.len(), 1);
    assert_eq!(message.properties.message_id, None);

    // A message from another protocol carrying those names does not contradict the frame.
    let mut foreign = Message::new(ExchangeName::default_exchange(), "q", "body");
    for name in FRAME_HEADERS {
        foreign.headers.insert(name, "bogus");
    }
    foreign.headers.insert("", "no name");
    foreign.headers.insert("kept", "yes");
    let frame = message_frame_headers(&delivery(foreign, false), "s", "M", None);
    for name in FRAME_HEADERS {
        assert!(count(&frame, name) <= 1, "{name}: {frame:?}");
        assert_ne!(get(&frame, name), Some("bogus"), "{name}");
    }
    assert_eq!(count(&frame, "content-length"), 0);
    assert_eq!(get(&frame, "kept"), Some("yes"));
    assert_eq!(count(&frame, ""), 0);
}

#[test]
fn user_id_must_be_the_authenticated_user() {
    let error = send("/queue/q", &[("user-id", "mallory")]).unwrap_err();
    assert_eq!(
        error,
        ConvertError::UserIdMismatch {
            claimed: "mallory".into(),
            user: "alice".into()
        }
    );
    assert!(error.to_string().contains("mallory"));
    // The first user-id decides, as for every repeated header.
    assert!(send("/queue/q", &[("user-id", "alice"), ("user-id", "mallory")]).is_ok());
    assert!(send("/queue/q", &[("user-id", "mallory"), ("user-id", "alice")]).is_err());
}

#[test]
fn bad_property_values_are_named() {
    for (name, value) in [
        ("priority", "256"),
        ("priority", "high"),
        ("expiration", "-1"),
        ("expiration", "soon"),
        ("timestamp", "yesterday"),
    ] {
        let error = send("/queue/q", &[(name, value)]).unwrap_err();
        assert!(
            matches!(&error, ConvertError::InvalidHeader { name: n, value: v, .. } if n == name && v == value),
            "{error:?}"
        );
        assert!(error.to_string().contains(name));
    }
}

#[test]
fn typed_headers_are_stringified() {
    let mut message = Message::new(ExchangeName::new("amq.topic").unwrap(), "a.b", "x");
    message.headers.insert("x-mqtt-publish-qos", 1i64);
    message.headers.insert("x-retain", true);
    message.headers.insert("i32", FieldValue::I32(-5));
    message
        .headers
        .insert("dec", FieldValue::Decimal { scale: 2, value: 5 });
    message
        .headers
        .insert("bytes", FieldValue::Bytes(Bytes::from_static(b"raw")));
    message.headers.insert("ts", FieldValue::Timestamp(17));
    message.headers.insert("void", FieldValue::Void);
    let mut table = Headers::new();
    table.insert("k", "v");
    message.headers.insert(
        "array",
        FieldValue::Array(vec![FieldValue::Table(table), FieldValue::I8(3)]),
    );
    let out = message_headers(&message);
    assert_eq!(
        out,
        headers(&[
            ("x-mqtt-publish-qos", "1"),
            ("x-retain", "true"),
            ("i32", "-5"),
            ("dec", "0.05"),
            ("bytes", "raw"),
            ("ts", "17"),
            ("void", ""),
            ("array", r#"[{"k":"v"},3]"#),
        ])
    );
}

#[test]
fn a_header_named_like_an_absent_property_still_shows() {
    // An MQTT user property `timestamp` on a message without the property.
    let mut message = Message::new(ExchangeName::new("amq.topic").unwrap(), "a", "x");
    message.headers.insert("timestamp", "12");
    message.headers.insert("priority", "3");
    message.properties.priority = Some(9);
    let out = message_headers(&message);
    assert_eq!(out, headers(&[("priority", "9"), ("timestamp", "12")]));
}

#[test]
fn reply_to_forms() {
    for (sent, core, shown) in [
        (
            "/reply-queue/amq.gen-1",
            "amq.gen-1",
            "/reply-queue/amq.gen-1",
        ),
        ("/topic/a%2Fb.c", "/topic/a/b.c", "/topic/a%2Fb.c"),
        (
            "/exchange/amq.topic/x.y",
            "/exchange/amq.topic/x.y",
            "/exchange/amq.topic/x.y",
        ),
        ("/queue/replies", "/queue/replies", "/queue/replies"),
        ("plain-queue", "plain-queue", "/reply-queue/plain-queue"),
        (
            "http://elsewhere/x",
            "http://elsewhere/x",
            "http://elsewhere/x",
        ),
    ] {
        let message = send("/queue/q", &[("reply-to", sent)]).unwrap();
        assert_eq!(message.properties.reply_to.as_deref(), Some(core), "{sent}");
        assert_eq!(
            get(&message_headers(&message), "reply-to"),
            Some(shown),
            "{sent}"
        );
    }
    // An MQTT response topic `a.b/c` (routing key `a/b.c`) shows as a sendable destination.
    let mut mqtt = Message::new(ExchangeName::new("amq.topic").unwrap(), "k", "x");
    mqtt.properties.reply_to = Some("/exchange/amq.topic/a/b.c".into());
    let shown = message_headers(&mqtt);
    let reply_to = get(&shown, "reply-to").unwrap();
    assert_eq!(reply_to, "/exchange/amq.topic/a%2Fb.c");
    assert_eq!(
        Destination::parse(reply_to)
            .unwrap()
            .publish_target()
            .unwrap(),
        (ExchangeName::new("amq.topic").unwrap(), "a/b.c".to_owned())
    );
}

#[test]
fn unresolved_temp_queue_is_refused() {
    assert_eq!(
        send("/queue/q", &[("reply-to", "/temp-queue/t")]).unwrap_err(),
        ConvertError::UnresolvedTempQueue("/temp-queue/t".into())
    );
}

#[test]
fn send_destinations_route() {
    for (destination, exchange, key) in [
        ("/topic/a.b", "amq.topic", "a.b"),
        ("/queue/q%2F1", "", "q/1"),
        ("/amq/queue/q", "", "q"),
        ("/exchange/e/k", "e", "k"),
        ("/exchange/e", "e", ""),
        ("/reply-queue/amq.gen-1", "", "amq.gen-1"),
    ] {
        let message = send(destination, &[]).unwrap();
        assert_eq!(message.exchange.as_str(), exchange, "{destination}");
        assert_eq!(&*message.routing_key, key, "{destination}");
    }
    assert!(matches!(
        send("/temp-queue/t", &[]),
        Err(ConvertError::Destination(_))
    ));
}

#[test]
fn body_is_shared_not_copied() {
    let body = Bytes::from(vec![0u8, 1, 2, 0]);
    let message = message_from_send(
        &Destination::parse("/queue/q").unwrap(),
        &[],
        body.clone(),
        "alice",
    )
    .unwrap();
    assert_eq!(message.body.as_ptr(), body.as_ptr());
}

#[test]
fn stomp_to_core_to_stomp_round_trip() {
    let mut input = ALL_PROPERTIES.to_vec();
    input.extend([("h1", "v1"), ("x-retain", "true"), ("h:2", "a\\b\nc")]);
    let message = send("/exchange/logs/k%2F1", &input).unwrap();
    let frame = message_frame_headers(&delivery(message, false), "s", "M", None);
    assert_eq!(get(&frame, "destination"), Some("/exchange/logs/k%2F1"));
    assert_eq!(&frame[4..], &headers(&input)[..]);
}
