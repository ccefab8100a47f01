use std::collections::BTreeMap;

use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::basic::{gen_properties, parse_properties, AMQPProperties};
use amq_protocol::types::generation::gen_value;
use amq_protocol::types::{
    AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString,
};
use bytes::Bytes;
use mqgate_core::message::{FieldValue, Headers, Message, Origin, Properties};
use mqgate_core::names::ExchangeName;
use proptest::prelude::*;

use super::*;

fn publish(properties: &AMQPProperties) -> Result<Message, ConvertError> {
    message_from_publish(
        "amq.topic",
        "orders.new",
        properties,
        Bytes::from_static(b"body"),
        "alice",
    )
}

fn short(text: &str) -> ShortString {
    ShortString::from(text)
}

fn table(entries: Vec<(&str, AMQPValue)>) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in entries {
        table.insert(short(key), value);
    }
    table
}

fn headers(entries: Vec<(&str, FieldValue)>) -> Headers {
    entries
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
}

/// Field values compared with floats by bit pattern, so NaN equals itself.
fn same(a: &FieldValue, b: &FieldValue) -> bool {
    match (a, b) {
        (FieldValue::F32(x), FieldValue::F32(y)) => x.to_bits() == y.to_bits(),
        (FieldValue::F64(x), FieldValue::F64(y)) => x.to_bits() == y.to_bits(),
        (FieldValue::Array(xs), FieldValue::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same(x, y))
        }
        (FieldValue::Table(xs), FieldValue::Table(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .zip(ys.iter())
                    .all(|((kx, x), (ky, y))| kx == ky && same(x, y))
        }
        _ => a == b,
    }
}

/// A field value's wire encoding (type tag and value), for bit-exact comparisons.
fn wire(value: &AMQPValue) -> Vec<u8> {
    gen_value(value)(WriteContext::from(Vec::new()))
        .unwrap()
        .write
}

/// Every AMQP value type with the core value it maps to and back from.
fn every_type() -> Vec<(AMQPValue, FieldValue)> {
    vec![
        (AMQPValue::Boolean(true), FieldValue::Bool(true)),
        (AMQPValue::ShortShortInt(-8), FieldValue::I8(-8)),
        (AMQPValue::ShortShortUInt(200), FieldValue::U8(200)),
        (AMQPValue::ShortInt(-16_000), FieldValue::I16(-16_000)),
        (AMQPValue::ShortUInt(65_000), FieldValue::U16(65_000)),
        (AMQPValue::LongInt(i32::MIN), FieldValue::I32(i32::MIN)),
        (AMQPValue::LongUInt(u32::MAX), FieldValue::U32(u32::MAX)),
        (AMQPValue::LongLongInt(i64::MIN), FieldValue::I64(i64::MIN)),
        (AMQPValue::Float(1.5), FieldValue::F32(1.5)),
        (AMQPValue::Double(-2.25), FieldValue::F64(-2.25)),
        (
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 12_345,
            }),
            FieldValue::Decimal {
                scale: 2,
                value: 12_345,
            },
        ),
        (
            AMQPValue::LongString(LongString::from("héllo")),
            FieldValue::Str("héllo".to_owned()),
        ),
        (
            AMQPValue::ByteArray(ByteArray::from(vec![0, 159, 255])),
            FieldValue::Bytes(Bytes::from_static(&[0, 159, 255])),
        ),
        (
            AMQPValue::Timestamp(1_700_000_000),
            FieldValue::Timestamp(1_700_000_000),
        ),
        (
            AMQPValue::FieldArray(FieldArray::from(vec![
                AMQPValue::LongInt(1),
                AMQPValue::Void,
            ])),
            FieldValue::Array(vec![FieldValue::I32(1), FieldValue::Void]),
        ),
        (
            AMQPValue::FieldTable(table(vec![("k", AMQPValue::Boolean(false))])),
            FieldValue::Table(headers(vec![("k", FieldValue::Bool(false))])),
        ),
        (AMQPValue::Void, FieldValue::Void),
    ]
}

#[test]
fn every_value_type_maps_to_its_namesake_and_back_to_the_same_type() {
    for (amqp, core) in every_type() {
        let from = value_from_amqp(&amqp);
        assert!(same(&from, &core), "{amqp:?} became {from:?}");
        let back = value_to_amqp(&core);
        assert_eq!(back.get_type(), amqp.get_type(), "{core:?}");
        assert_eq!(wire(&back), wire(&amqp), "{core:?}");
    }
}

#[test]
fn nan_and_signed_zero_floats_keep_their_bits() {
    for bits in [f32::NAN.to_bits(), 0x7fc0_0001, (-0.0f32).to_bits()] {
        let value = AMQPValue::Float(f32::from_bits(bits));
        assert_eq!(wire(&value_to_amqp(&value_from_amqp(&value))), wire(&value));
    }
    let value = AMQPValue::Double(f64::from_bits(0x7ff8_0000_0000_0001));
    assert_eq!(wire(&value_to_amqp(&value_from_amqp(&value))), wire(&value));
}

#[test]
fn tables_and_arrays_nest_three_deep_both_ways() {
    let innermost = table(vec![
        ("s", AMQPValue::LongString(LongString::from("deep"))),
        ("n", AMQPValue::ShortInt(-3)),
    ]);
    let middle = AMQPValue::FieldArray(FieldArray::from(vec![
        AMQPValue::FieldTable(innermost),
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Timestamp(7)])),
    ]));
    let outer = table(vec![
        ("list", middle),
        ("b", AMQPValue::ByteArray(ByteArray::from(vec![1, 2]))),
    ]);

    let core = headers_from_table(&outer);
    let expected = headers(vec![
        ("b", FieldValue::Bytes(Bytes::from_static(&[1, 2]))),
        (
            "list",
            FieldValue::Array(vec![
                FieldValue::Table(headers(vec![
                    ("n", FieldValue::I16(-3)),
                    ("s", FieldValue::Str("deep".to_owned())),
                ])),
                FieldValue::Array(vec![FieldValue::Timestamp(7)]),
            ]),
        ),
    ]);
    assert_eq!(core, expected);
    assert_eq!(table_from_headers(&core), outer);
}

#[test]
fn a_long_string_that_is_not_utf8_keeps_its_type() {
    let raw = vec![b'a', 0xff, 0xfe];
    let value = value_from_amqp(&AMQPValue::LongString(LongString::from(raw.clone())));
    assert_eq!(value, FieldValue::BinaryStr(Bytes::from(raw.clone())));
    assert_eq!(value.to_text(), "a\u{fffd}\u{fffd}");
    assert_eq!(
        value_to_amqp(&value),
        AMQPValue::LongString(LongString::from(raw))
    );
}

#[test]
fn a_short_string_value_becomes_text_and_goes_out_as_a_long_string() {
    let value = value_from_amqp(&AMQPValue::ShortString(short("name")));
    assert_eq!(value, FieldValue::Str("name".to_owned()));
    assert_eq!(
        value_to_amqp(&value),
        AMQPValue::LongString(LongString::from("name"))
    );
}

#[test]
fn tables_come_in_key_order_and_arguments_read_them() {
    let arguments_table = table(vec![
        (
            "x-queue-type",
            AMQPValue::LongString(LongString::from("quorum")),
        ),
        ("x-max-length", AMQPValue::LongLongInt(10)),
        (
            "x-dead-letter-exchange",
            AMQPValue::LongString(LongString::from("dlx")),
        ),
    ]);
    let read = arguments(&arguments_table);
    let keys: Vec<&str> = read.iter().map(|(key, _)| key).collect();
    assert_eq!(
        keys,
        ["x-dead-letter-exchange", "x-max-length", "x-queue-type"]
    );
    assert_eq!(read.get("x-max-length"), Some(&FieldValue::I64(10)));
    assert_eq!(read, headers_from_table(&arguments_table));
}

#[test]
fn header_keys_longer_than_a_short_string_are_left_out_at_any_depth() {
    let long = "k".repeat(256);
    let nested = headers(vec![
        (long.as_str(), FieldValue::I8(1)),
        ("ok", FieldValue::I8(2)),
    ]);
    let outer = headers(vec![
        (long.as_str(), FieldValue::Bool(true)),
        ("t", FieldValue::Table(nested)),
        (&"m".repeat(255), FieldValue::Void),
    ]);
    let out = table_from_headers(&outer);
    assert_eq!(
        out,
        table(vec![
            (&"m".repeat(255), AMQPValue::Void),
            (
                "t",
                AMQPValue::FieldTable(table(vec![("ok", AMQPValue::ShortShortInt(2))]))
            ),
        ])
    );
}

fn all_properties() -> AMQPProperties {
    AMQPProperties::default()
        .with_content_type(short("application/json"))
        .with_content_encoding(short("gzip"))
        .with_headers(table(vec![
            ("x-retain", AMQPValue::Boolean(true)),
            ("custom", AMQPValue::LongString(LongString::from("v"))),
        ]))
        .with_delivery_mode(2)
        .with_priority(9)
        .with_correlation_id(short("c-1"))
        .with_reply_to(short("amq.gen-abc"))
        .with_expiration(short("60000"))
        .with_message_id(short("m-1"))
        .with_timestamp(1_700_000_000)
        .with_type(short("order.created"))
        .with_user_id(short("alice"))
        .with_app_id(short("shop"))
        .with_cluster_id(short("ignored"))
}

#[test]
fn every_publish_property_maps_to_the_core() {
    let message = publish(&all_properties()).unwrap();
    assert_eq!(message.exchange.as_str(), "amq.topic");
    assert_eq!(&*message.routing_key, "orders.new");
    assert_eq!(message.body, Bytes::from_static(b"body"));
    assert_eq!(message.origin, None);
    assert_eq!(
        message.properties,
        Properties {
            content_type: Some("application/json".to_owned()),
            content_encoding: Some("gzip".to_owned()),
            correlation_id: Some("c-1".to_owned()),
            reply_to: Some("amq.gen-abc".to_owned()),
            message_id: Some("m-1".to_owned()),
            timestamp: Some(1_700_000_000),
            expiration_ms: Some(60_000),
            priority: Some(9),
            persistent: true,
            user_id: Some("alice".to_owned()),
            app_id: Some("shop".to_owned()),
            message_type: Some("order.created".to_owned()),
        }
    );
    assert_eq!(
        message.headers,
        headers(vec![
            ("custom", FieldValue::Str("v".to_owned())),
            ("x-retain", FieldValue::Bool(true)),
        ])
    );
}

#[test]
fn a_publish_without_properties_is_a_plain_message() {
    let message = publish(&AMQPProperties::default()).unwrap();
    assert_eq!(message.properties, Properties::default());
    assert!(message.headers.is_empty());
    let default_exchange =
        message_from_publish("", "q", &AMQPProperties::default(), Bytes::new(), "alice").unwrap();
    assert!(default_exchange.exchange.is_default());
}

#[test]
fn every_property_is_delivered_and_a_publish_round_trips() {
    let original = all_properties();
    let delivered = delivery_properties(&publish(&original).unwrap());
    // Everything but cluster_id, which is deprecated and never delivered.
    let expected = original.clone().with_cluster_id(short("x"));
    assert_eq!(delivered.cluster_id(), &None);
    assert_eq!(delivered.content_type(), expected.content_type());
    assert_eq!(delivered.content_encoding(), expected.content_encoding());
    assert_eq!(delivered.headers(), expected.headers());
    assert_eq!(delivered.delivery_mode(), &Some(2));
    assert_eq!(delivered.priority(), &Some(9));
    assert_eq!(delivered.correlation_id(), expected.correlation_id());
    assert_eq!(delivered.reply_to(), expected.reply_to());
    assert_eq!(delivered.expiration(), expected.expiration());
    assert_eq!(delivered.message_id(), expected.message_id());
    assert_eq!(delivered.timestamp(), &Some(1_700_000_000));
    assert_eq!(delivered.kind(), expected.kind());
    assert_eq!(delivered.user_id(), expected.user_id());
    assert_eq!(delivered.app_id(), expected.app_id());
}

#[test]
fn delivered_properties_encode_and_parse_back() {
    let delivered = delivery_properties(&publish(&all_properties()).unwrap());
    let bytes = gen_properties(&delivered)(WriteContext::from(Vec::new()))
        .unwrap()
        .write;
    let (rest, parsed) = parse_properties(bytes.as_slice()).unwrap();
    assert!(rest.is_empty());
    assert_eq!(parsed, delivered);
}

#[test]
fn a_message_from_stomp_or_mqtt_delivers_text_headers_as_long_strings() {
    let mut message = Message::new(ExchangeName::new("amq.topic").unwrap(), "a.b", "x");
    message.headers.insert("custom-header", "value");
    message.headers.insert("x-mqtt-publish-qos", 1i64);
    message.headers.insert("x-retain", true);
    message.properties.reply_to = Some("/exchange/amq.topic/replies".to_owned());
    message.origin = Some(Origin::new("mqtt:/:client"));
    let delivered = delivery_properties(&message);
    assert_eq!(
        delivered.headers(),
        &Some(table(vec![
            (
                "custom-header",
                AMQPValue::LongString(LongString::from("value"))
            ),
            ("x-mqtt-publish-qos", AMQPValue::LongLongInt(1)),
            ("x-retain", AMQPValue::Boolean(true)),
        ]))
    );
    assert_eq!(
        delivered.reply_to(),
        &Some(short("/exchange/amq.topic/replies"))
    );
    // Nothing else: no origin anywhere, no delivery mode for a transient message.
    assert_eq!(
        delivered,
        AMQPProperties::default()
            .with_reply_to(short("/exchange/amq.topic/replies"))
            .with_headers(delivered.headers().clone().unwrap())
    );
}

#[test]
fn x_death_is_delivered_as_rabbitmq_writes_it() {
    let death = headers(vec![
        ("count", FieldValue::I64(1)),
        ("reason", FieldValue::Str("rejected".to_owned())),
        ("queue", FieldValue::Str("q".to_owned())),
        ("time", FieldValue::Timestamp(1_700_000_000)),
        ("exchange", FieldValue::Str(String::new())),
        (
            "routing-keys",
            FieldValue::Array(vec![FieldValue::Str("q".to_owned())]),
        ),
    ]);
    let mut message = Message::new(ExchangeName::default_exchange(), "q", "x");
    message
        .headers
        .insert("x-death", FieldValue::Array(vec![FieldValue::Table(death)]));
    let delivered = delivery_properties(&message);
    let x_death = delivered
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get("x-death"))
        .unwrap();
    let AMQPValue::FieldArray(entries) = x_death else {
        panic!("x-death is not an array: {x_death:?}");
    };
    let AMQPValue::FieldTable(entry) = &entries.as_slice()[0] else {
        panic!("x-death entry is not a table");
    };
    let get = |key: &str| entry.inner().get(key).unwrap().clone();
    assert_eq!(get("count"), AMQPValue::LongLongInt(1));
    assert_eq!(
        get("reason"),
        AMQPValue::LongString(LongString::from("rejected"))
    );
    assert_eq!(get("time"), AMQPValue::Timestamp(1_700_000_000));
    assert_eq!(
        get("routing-keys"),
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongString(
            LongString::from("q")
        )]))
    );
}

#[test]
fn a_property_too_long_for_a_short_string_is_delivered_as_a_header() {
    let long = format!("/exchange/amq.topic/{}", "r".repeat(300));
    let mut message = Message::new(ExchangeName::default_exchange(), "q", "x");
    message.properties.reply_to = Some(long.clone());
    message.properties.correlation_id = Some("c".repeat(256));
    message.properties.content_type = Some("t".repeat(255));
    message.headers.insert("correlation-id", "already there");
    let delivered = delivery_properties(&message);
    assert_eq!(delivered.reply_to(), &None);
    assert_eq!(delivered.correlation_id(), &None);
    assert_eq!(delivered.content_type(), &Some(short(&"t".repeat(255))));
    assert_eq!(
        delivered.headers(),
        &Some(table(vec![
            (
                "correlation-id",
                AMQPValue::LongString(LongString::from("already there"))
            ),
            ("reply-to", AMQPValue::LongString(LongString::from(long))),
        ]))
    );
}

#[test]
fn delivery_mode_two_is_persistent_one_or_none_transient_others_refused() {
    let with = |mode: u8| publish(&AMQPProperties::default().with_delivery_mode(mode));
    assert!(with(2).unwrap().properties.persistent);
    assert!(!with(1).unwrap().properties.persistent);
    assert!(
        !publish(&AMQPProperties::default())
            .unwrap()
            .properties
            .persistent
    );
    for mode in [0, 3, 255] {
        let error = with(mode).unwrap_err();
        assert_eq!(error, ConvertError::InvalidDeliveryMode(mode));
        assert_eq!(
            error.to_string(),
            format!("invalid message: {{delivery_mode_unknown,{mode}}}")
        );
    }
    let mut message = Message::new(ExchangeName::default_exchange(), "q", "x");
    assert_eq!(delivery_properties(&message).delivery_mode(), &None);
    message.properties.persistent = true;
    assert_eq!(delivery_properties(&message).delivery_mode(), &Some(2));
}

#[test]
fn user_id_must_be_the_authenticated_user() {
    let claimed = |user: &str| publish(&AMQPProperties::default().with_user_id(short(user)));
    assert_eq!(
        claimed("alice").unwrap().properties.user_id.as_deref(),
        Some("alice")
    );
    for user in ["bob", "", "Alice"] {
        let error = claimed(user).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("user_id property set to '{user}' but authenticated user was 'alice'")
        );
    }
}

#[test]
fn refusals_come_in_rabbitmq_order_user_id_expiration_delivery_mode() {
    let bad = AMQPProperties::default()
        .with_delivery_mode(3)
        .with_expiration(short("abc"))
        .with_user_id(short("bob"));
    assert!(matches!(
        publish(&bad),
        Err(ConvertError::UserIdMismatch { .. })
    ));
    let bad = bad.with_user_id(short("alice"));
    assert!(matches!(
        publish(&bad),
        Err(ConvertError::InvalidExpiration { .. })
    ));
    let bad = bad.with_expiration(short("5"));
    assert_eq!(publish(&bad), Err(ConvertError::InvalidDeliveryMode(3)));
}

#[test]
fn expirations_rabbitmq_accepts() {
    for (text, ms) in [
        ("0", 0),
        ("60000", 60_000),
        ("+5", 5),
        ("0005", 5),
        ("-0", 0),
        ("-000", 0),
        ("4294967296", 4_294_967_296),
        ("315360000000", MAX_EXPIRATION_MS),
        ("000000000000000000000315360000000", MAX_EXPIRATION_MS),
    ] {
        assert_eq!(parse_expiration(text), Ok(ms), "{text:?}");
        let message = publish(&AMQPProperties::default().with_expiration(short(text))).unwrap();
        assert_eq!(message.properties.expiration_ms, Some(ms));
    }
}

/// RabbitMQ 3.10.8's reply texts, after `PRECONDITION_FAILED - `, as its server sent them.
#[test]
fn expiration_refusals_read_as_rabbitmq_writes_them() {
    // Texts captured from RabbitMQ 3.10.8 (reasons short enough to stay on one line there).
    let cases = [
        ("abc", "invalid expiration 'abc': no_integer"),
        ("", "invalid expiration '': no_integer"),
        (" 5", "invalid expiration ' 5': no_integer"),
        ("+", "invalid expiration '+': no_integer"),
        ("+-5", "invalid expiration '+-5': no_integer"),
        ("-1", "invalid expiration '-1': {value_negative,-1}"),
        ("-007", "invalid expiration '-007': {value_negative,-7}"),
        ("1.5", r#"invalid expiration '1.5': {leftover_string,".5"}"#),
        ("5 ", r#"invalid expiration '5 ': {leftover_string," "}"#),
        ("1e3", r#"invalid expiration '1e3': {leftover_string,"e3"}"#),
        (
            "315360000001",
            "invalid expiration '315360000001': {value_too_large,315360000001}",
        ),
        (
            "+999999999999",
            "invalid expiration '+999999999999': {value_too_large,999999999999}",
        ),
    ];
    for (value, text) in cases {
        let error = parse_expiration(value).unwrap_err();
        assert_eq!(error.to_string(), text, "for {value:?}");
    }
}

fn leaf() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        any::<bool>().prop_map(FieldValue::Bool),
        any::<i8>().prop_map(FieldValue::I8),
        any::<u8>().prop_map(FieldValue::U8),
        any::<i16>().prop_map(FieldValue::I16),
        any::<u16>().prop_map(FieldValue::U16),
        any::<i32>().prop_map(FieldValue::I32),
        any::<u32>().prop_map(FieldValue::U32),
        any::<i64>().prop_map(FieldValue::I64),
        any::<u32>().prop_map(|bits| FieldValue::F32(f32::from_bits(bits))),
        any::<u64>().prop_map(|bits| FieldValue::F64(f64::from_bits(bits))),
        (any::<u8>(), any::<u32>()).prop_map(|(scale, value)| FieldValue::Decimal { scale, value }),
        ".{0,16}".prop_map(FieldValue::Str),
        proptest::collection::vec(any::<u8>(), 0..16)
            .prop_map(|bytes| FieldValue::Bytes(Bytes::from(bytes))),
        any::<u64>().prop_map(FieldValue::Timestamp),
        Just(FieldValue::Void),
    ]
}

/// Trees of core values up to 4 levels deep; table keys of 0-255 bytes, sorted (as a field
/// table keeps them).
fn core_tree() -> impl Strategy<Value = FieldValue> {
    leaf().prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(FieldValue::Array),
            proptest::collection::btree_map("[a-z0-9-]{0,8}|.{0,60}", inner, 0..6).prop_map(
                |entries: BTreeMap<String, FieldValue>| FieldValue::Table(
                    entries.into_iter().collect()
                )
            ),
        ]
    })
}

/// Trees of AMQP values that map 1:1 (no ShortString, LongStrings valid UTF-8).
fn amqp_tree() -> impl Strategy<Value = AMQPValue> {
    core_tree().prop_map(|value| value_to_amqp(&value))
}

fn amqp_leaf_with_strings() -> impl Strategy<Value = AMQPValue> {
    prop_oneof![
        "[a-z]{0,8}".prop_map(|text| AMQPValue::ShortString(ShortString::from(text))),
        proptest::collection::vec(any::<u8>(), 0..16)
            .prop_map(|bytes| AMQPValue::LongString(LongString::from(bytes))),
        amqp_tree(),
    ]
}

proptest! {
    #[test]
    fn core_values_survive_amqp(value in core_tree()) {
        let back = value_from_amqp(&value_to_amqp(&value));
        prop_assert!(same(&back, &value), "{:?} came back as {:?}", value, back);
    }

    #[test]
    fn amqp_values_that_map_one_to_one_survive_the_core(value in amqp_tree()) {
        let back = value_to_amqp(&value_from_amqp(&value));
        prop_assert_eq!(wire(&back), wire(&value));
    }

    #[test]
    fn strings_change_type_only_as_documented(value in amqp_leaf_with_strings()) {
        let back = value_to_amqp(&value_from_amqp(&value));
        match &value {
            AMQPValue::ShortString(text) => {
                prop_assert_eq!(back, AMQPValue::LongString(LongString::from(text.as_str())));
            }
            _ => prop_assert_eq!(wire(&back), wire(&value)),
        }
    }

    #[test]
    fn expirations_never_panic_and_refusals_name_the_value(text in ".{0,40}") {
        match parse_expiration(&text) {
            Ok(ms) => prop_assert!(ms <= MAX_EXPIRATION_MS),
            Err(error) => {
                let refusal = error.to_string();
                let prefix = format!("invalid expiration '{text}': ");
                prop_assert!(refusal.starts_with(&prefix));
            }
        }
    }
}
