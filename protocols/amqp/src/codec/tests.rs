//! Codec tests: golden bytes, round trips through `amq-protocol`, byte-at-a-time decoding,
//! every refusal, and a property test over arbitrary input. No sockets.

use amq_protocol::frame::{gen_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::{basic, connection, exchange, queue, AMQPClass};
use amq_protocol::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable};
use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

use super::*;

// ---- helpers ------------------------------------------------------------------------------

/// A codec past the protocol header.
fn framing_codec() -> AmqpCodec {
    let mut codec = AmqpCodec::new();
    let mut src = BytesMut::from(&PROTOCOL_HEADER[..]);
    assert!(matches!(
        codec.decode(&mut src).unwrap(),
        Some(Inbound::ProtocolHeader { supported: true })
    ));
    codec
}

fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    out.extend_from_slice(payload);
    out.push(0xCE);
    out
}

fn method_payload(class_id: u16, method_id: u16, arguments: &[u8]) -> Vec<u8> {
    let mut out = class_id.to_be_bytes().to_vec();
    out.extend_from_slice(&method_id.to_be_bytes());
    out.extend_from_slice(arguments);
    out
}

fn table(entries: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(entries.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(entries);
    out
}

/// queue.declare "q" on channel 1 with `arguments` as its raw table bytes.
fn queue_declare_frame(arguments: &[u8]) -> Vec<u8> {
    let mut args = vec![0, 0, 1, b'q', 0];
    args.extend_from_slice(arguments);
    frame(1, 1, &method_payload(50, 10, &args))
}

/// `amq-protocol`'s own encoding of `frame` (into a `Vec`, independent of our writer).
fn reference_bytes(frame: &AMQPFrame) -> Vec<u8> {
    let (writer, _) = gen_frame(frame)(WriteContext::from(Vec::new()))
        .unwrap()
        .into_inner();
    writer
}

/// Everything `codec` yields for `bytes`, fed at once.
fn decode_all(codec: &mut AmqpCodec, bytes: &[u8]) -> Vec<Inbound> {
    let mut src = BytesMut::from(bytes);
    let mut items = Vec::new();
    while let Some(item) = codec.decode(&mut src).unwrap() {
        items.push(item);
    }
    items
}

/// The one refusal `bytes` (after the protocol header) gets.
fn refusal(bytes: &[u8]) -> FrameError {
    refusal_at(framing_codec(), bytes)
}

fn refusal_at(mut codec: AmqpCodec, bytes: &[u8]) -> FrameError {
    let mut src = BytesMut::from(bytes);
    let item = codec.decode(&mut src).unwrap();
    assert!(codec.is_poisoned());
    assert!(src.is_empty(), "input is discarded once poisoned");
    match item {
        Some(Inbound::Invalid(error)) => error,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn encode(codec: &mut AmqpCodec, frame: OutFrame) -> Vec<u8> {
    let mut dst = BytesMut::new();
    codec.encode(frame, &mut dst).unwrap();
    dst.to_vec()
}

/// A table with every value type `amq-protocol` writes and reads back (short strings excluded:
/// it writes them with type '_', which no AMQP peer reads), nested `depth` times.
fn every_type_table(depth: usize) -> FieldTable {
    let mut table = FieldTable::default();
    table.insert("bool".into(), AMQPValue::Boolean(true));
    table.insert("i8".into(), AMQPValue::ShortShortInt(-8));
    table.insert("u8".into(), AMQPValue::ShortShortUInt(8));
    table.insert("i16".into(), AMQPValue::ShortInt(-16));
    table.insert("u16".into(), AMQPValue::ShortUInt(16));
    table.insert("i32".into(), AMQPValue::LongInt(-32));
    table.insert("u32".into(), AMQPValue::LongUInt(32));
    table.insert("i64".into(), AMQPValue::LongLongInt(-64));
    table.insert("f32".into(), AMQPValue::Float(1.5));
    table.insert("f64".into(), AMQPValue::Double(-2.25));
    table.insert(
        "decimal".into(),
        AMQPValue::DecimalValue(DecimalValue {
            scale: 2,
            value: 314,
        }),
    );
    table.insert("longstr".into(), AMQPValue::LongString("text".into()));
    table.insert("timestamp".into(), AMQPValue::Timestamp(1_700_000_000));
    table.insert(
        "bytes".into(),
        AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 254, 255])),
    );
    table.insert("void".into(), AMQPValue::Void);
    table.insert(
        "array".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![
            AMQPValue::LongString("a".into()),
            AMQPValue::LongInt(1),
            AMQPValue::FieldArray(FieldArray::default()),
        ])),
    );
    if depth > 0 {
        table.insert(
            "nested".into(),
            AMQPValue::FieldTable(every_type_table(depth - 1)),
        );
    }
    table
}

/// One of each method that carries a field table, with `arguments` in it.
fn table_methods(arguments: &FieldTable) -> Vec<AMQPClass> {
    vec![
        AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
            version_major: 0,
            version_minor: 9,
            server_properties: arguments.clone(),
            mechanisms: "PLAIN".into(),
            locales: "en_US".into(),
        })),
        AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: arguments.clone(),
            mechanism: "PLAIN".into(),
            response: "\0guest\0guest".into(),
            locale: "en_US".into(),
        })),
        AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: "x".into(),
            kind: "topic".into(),
            passive: false,
            durable: true,
            auto_delete: false,
            internal: true,
            nowait: false,
            arguments: arguments.clone(),
        })),
        AMQPClass::Exchange(exchange::AMQPMethod::Bind(exchange::Bind {
            destination: "d".into(),
            source: "s".into(),
            routing_key: "a.b".into(),
            nowait: true,
            arguments: arguments.clone(),
        })),
        AMQPClass::Exchange(exchange::AMQPMethod::Unbind(exchange::Unbind {
            destination: "d".into(),
            source: "s".into(),
            routing_key: "a.b".into(),
            nowait: false,
            arguments: arguments.clone(),
        })),
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "q".into(),
            passive: false,
            durable: true,
            exclusive: false,
            auto_delete: true,
            nowait: false,
            arguments: arguments.clone(),
        })),
        AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
            queue: "q".into(),
            exchange: "x".into(),
            routing_key: "k".into(),
            nowait: false,
            arguments: arguments.clone(),
        })),
        AMQPClass::Queue(queue::AMQPMethod::Unbind(queue::Unbind {
            queue: "q".into(),
            exchange: "x".into(),
            routing_key: "k".into(),
            arguments: arguments.clone(),
        })),
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: "q".into(),
            consumer_tag: "ctag".into(),
            no_local: false,
            no_ack: true,
            exclusive: false,
            nowait: false,
            arguments: arguments.clone(),
        })),
    ]
}

fn deliver() -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
        consumer_tag: "ctag".into(),
        delivery_tag: 1,
        redelivered: false,
        exchange: "".into(),
        routing_key: "q".into(),
    }))
}

/// basic.deliver "ctag"/1/""/"q" on channel 1, as bytes.
const DELIVER_FRAME: &[u8] = &[
    1, 0, 1, 0, 0, 0, 21, // method frame, channel 1, 21 bytes
    0, 60, 0, 60, // basic.deliver
    4, b'c', b't', b'a', b'g', // consumer-tag
    0, 0, 0, 0, 0, 0, 0, 1, // delivery-tag
    0, // redelivered
    0, // exchange ""
    1, b'q', // routing-key
    0xCE,
];

// ---- protocol header ----------------------------------------------------------------------

#[test]
fn protocol_header_then_frames_in_one_buffer() {
    let mut codec = AmqpCodec::new();
    let mut bytes = PROTOCOL_HEADER.to_vec();
    bytes.extend_from_slice(&frame(8, 0, &[]));
    let items = decode_all(&mut codec, &bytes);
    assert!(matches!(
        items.as_slice(),
        [
            Inbound::ProtocolHeader { supported: true },
            Inbound::Heartbeat
        ]
    ));
    assert!(!codec.is_poisoned());
}

#[test]
fn protocol_header_waits_for_eight_bytes() {
    let mut codec = AmqpCodec::new();
    let mut src = BytesMut::from(&b"AMQP\x00\x00\x09"[..]);
    assert!(codec.decode(&mut src).unwrap().is_none());
    assert_eq!(src.len(), 7, "nothing consumed");
    src.put_u8(1);
    assert!(matches!(
        codec.decode(&mut src).unwrap(),
        Some(Inbound::ProtocolHeader { supported: true })
    ));
    assert!(src.is_empty());
}

#[test]
fn unsupported_protocol_headers_poison() {
    for header in [
        &b"AMQP\x01\x01\x00\x09"[..], // 0-9 in the old form: RabbitMQ speaks 0-9 back
        b"AMQP\x00\x00\x09\x00",      // RabbitMQ: AMQP 0 0 9 1 and close, as for all below
        b"AMQP\x00\x00\x08\x00",
        b"AMQP\x03\x01\x00\x00", // AMQP 1.0 SASL
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00", // a TLS ClientHello
        b"G",                    // decided at the first wrong byte
    ] {
        let mut codec = AmqpCodec::new();
        let mut src = BytesMut::from(header);
        assert!(
            matches!(
                codec.decode(&mut src).unwrap(),
                Some(Inbound::ProtocolHeader { supported: false })
            ),
            "{header:?}"
        );
        assert!(codec.is_poisoned());
        assert!(src.is_empty());
        src.extend_from_slice(&frame(8, 0, &[]));
        assert!(codec.decode(&mut src).unwrap().is_none());
    }
}

// ---- encoder: golden bytes ----------------------------------------------------------------

#[test]
fn encode_method_golden() {
    let mut codec = AmqpCodec::new();
    let tune = AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
        channel_max: 2047,
        frame_max: 131_072,
        heartbeat: 60,
    }));
    assert_eq!(
        encode(
            &mut codec,
            OutFrame::Method {
                channel: 0,
                method: tune
            }
        ),
        [
            1, 0, 0, 0, 0, 0, 12, // method frame, channel 0, 12 bytes
            0, 10, 0, 30, // connection.tune
            0x07, 0xFF, // channel-max 2047
            0, 2, 0, 0, // frame-max 131072
            0, 60,   // heartbeat
            0xCE, // frame end
        ]
    );
    assert_eq!(
        encode(
            &mut codec,
            OutFrame::Method {
                channel: 1,
                method: deliver()
            }
        ),
        DELIVER_FRAME
    );
}

#[test]
fn encode_method_with_a_table_golden() {
    let mut properties = FieldTable::default();
    properties.insert("product".into(), AMQPValue::LongString("mq".into()));
    let start = AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: properties,
        mechanisms: "PLAIN".into(),
        locales: "en_US".into(),
    }));
    let bytes = encode(
        &mut AmqpCodec::new(),
        OutFrame::Method {
            channel: 0,
            method: start,
        },
    );
    let mut expected = vec![1, 0, 0, 0, 0, 0, 43, 0, 10, 0, 10, 0, 9];
    expected.extend_from_slice(&[0, 0, 0, 15, 7]); // table of 15 bytes, key of 7
    expected.extend_from_slice(b"productS\x00\x00\x00\x02mq");
    expected.extend_from_slice(b"\x00\x00\x00\x05PLAIN\x00\x00\x00\x05en_US\xCE");
    assert_eq!(bytes, expected);
}

#[test]
fn encode_content_split_at_a_small_frame_max() {
    // frame_max 20 leaves 12 bytes of payload per body frame (the codec's own floor is 4096;
    // the splitting itself is tested at this size to keep the golden bytes short).
    let body = Bytes::from_static(b"hello world, amqp!"); // 18 bytes
    let mut dst = BytesMut::new();
    encode::write(
        OutFrame::Content {
            channel: 1,
            method: deliver(),
            properties: basic::AMQPProperties::default().with_delivery_mode(2),
            body,
        },
        20,
        &mut dst,
    )
    .unwrap();
    let mut expected = DELIVER_FRAME.to_vec();
    expected.extend_from_slice(&[
        2, 0, 1, 0, 0, 0, 15, // header frame, channel 1, 15 bytes
        0, 60, 0, 0, // class basic, weight 0
        0, 0, 0, 0, 0, 0, 0, 18, // body size
        0x10, 0x00, // flags: delivery-mode
        2,    // delivery-mode 2
        0xCE,
    ]);
    expected.extend_from_slice(&[3, 0, 1, 0, 0, 0, 12]);
    expected.extend_from_slice(b"hello world,");
    expected.push(0xCE);
    expected.extend_from_slice(&[3, 0, 1, 0, 0, 0, 6]);
    expected.extend_from_slice(b" amqp!");
    expected.push(0xCE);
    assert_eq!(&dst[..], expected.as_slice());
}

#[test]
fn encode_content_frames_respect_frame_max() {
    let mut codec = AmqpCodec::new();
    codec.set_frame_max(4096);
    let body = Bytes::from((0..10_000u32).map(|i| i as u8).collect::<Vec<_>>());
    let bytes = encode(
        &mut codec,
        OutFrame::Content {
            channel: 7,
            method: deliver(),
            properties: basic::AMQPProperties::default(),
            body: body.clone(),
        },
    );
    // Decoding with the same frame_max accepts every frame; the bodies add up to the body.
    let mut decoder = framing_codec();
    decoder.set_frame_max(4096);
    let items = decode_all(&mut decoder, &bytes);
    let sizes: Vec<usize> = items
        .iter()
        .filter_map(|item| match item {
            Inbound::Body {
                channel: 7,
                payload,
            } => Some(payload.len()),
            _ => None,
        })
        .collect();
    assert_eq!(sizes, [4088, 4088, 1824]);
    let joined: Vec<u8> = items
        .iter()
        .filter_map(|item| match item {
            Inbound::Body { payload, .. } => Some(payload.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(joined, body);
    assert!(matches!(
        items.get(1),
        Some(Inbound::Header {
            channel: 7,
            class_id: 60,
            body_size: 10_000,
            ..
        })
    ));
}

#[test]
fn encode_empty_body_has_no_body_frame() {
    let bytes = encode(
        &mut AmqpCodec::new(),
        OutFrame::Content {
            channel: 1,
            method: deliver(),
            properties: basic::AMQPProperties::default(),
            body: Bytes::new(),
        },
    );
    let mut expected = DELIVER_FRAME.to_vec();
    expected.extend_from_slice(&[
        2, 0, 1, 0, 0, 0, 14, 0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    expected.push(0xCE);
    assert_eq!(bytes, expected);
}

#[test]
fn encode_heartbeat_and_protocol_header_golden() {
    let mut codec = AmqpCodec::new();
    assert_eq!(
        encode(&mut codec, OutFrame::Heartbeat),
        [8, 0, 0, 0, 0, 0, 0, 0xCE]
    );
    assert_eq!(
        encode(&mut codec, OutFrame::ProtocolHeader),
        b"AMQP\x00\x00\x09\x01"
    );
}

#[test]
fn encode_appends_to_what_is_buffered() {
    let mut codec = AmqpCodec::new();
    let mut dst = BytesMut::from(&b"before"[..]);
    codec.encode(OutFrame::Heartbeat, &mut dst).unwrap();
    codec
        .encode(
            OutFrame::Method {
                channel: 1,
                method: deliver(),
            },
            &mut dst,
        )
        .unwrap();
    let mut expected = b"before".to_vec();
    expected.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0xCE]);
    expected.extend_from_slice(DELIVER_FRAME);
    assert_eq!(&dst[..], expected.as_slice());
}

/// Our writer (back-patched length prefixes in the `BytesMut`) against `amq-protocol`'s `Vec`
/// writer, for methods and a content header with nested tables of every type.
#[test]
fn encoder_matches_amq_protocol() {
    let arguments = every_type_table(4);
    for method in table_methods(&arguments) {
        let reference = reference_bytes(&AMQPFrame::Method(3, method.clone()));
        let ours = encode(
            &mut AmqpCodec::new(),
            OutFrame::Method { channel: 3, method },
        );
        assert_eq!(ours, reference);
    }
    let properties = basic::AMQPProperties::default()
        .with_content_type("text/plain".into())
        .with_headers(arguments)
        .with_priority(3);
    let mut dst = BytesMut::new();
    encode::write(
        OutFrame::Content {
            channel: 3,
            method: deliver(),
            properties: properties.clone(),
            body: Bytes::from_static(b"x"),
        },
        FRAME_MIN_SIZE,
        &mut dst,
    )
    .unwrap();
    let mut reference = reference_bytes(&AMQPFrame::Method(3, deliver()));
    reference.extend(reference_bytes(&AMQPFrame::Header(
        3,
        AMQPContentHeader {
            class_id: 60,
            body_size: 1,
            properties,
        },
    )));
    reference.extend_from_slice(&[3, 0, 3, 0, 0, 0, 1, b'x', 0xCE]);
    assert_eq!(&dst[..], reference.as_slice());
}

// ---- round trips --------------------------------------------------------------------------

#[test]
fn methods_with_nested_tables_round_trip() {
    // As deep as the cap allows (see `nesting_at_the_cap_is_accepted`).
    let arguments = every_type_table(MAX_TABLE_DEPTH - 3);
    for method in table_methods(&arguments) {
        let bytes = reference_bytes(&AMQPFrame::Method(5, method.clone()));
        match decode_all(&mut framing_codec(), &bytes).as_slice() {
            [Inbound::Method {
                channel: 5,
                method: decoded,
            }] => assert_eq!(decoded, &method),
            other => panic!("{method:?} decoded as {other:?}"),
        }
    }
}

#[test]
fn content_header_round_trips() {
    let properties = basic::AMQPProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(every_type_table(3))
        .with_delivery_mode(2)
        .with_priority(9)
        .with_correlation_id("c".into())
        .with_reply_to("r".into())
        .with_expiration("1000".into())
        .with_message_id("m".into())
        .with_timestamp(42)
        .with_type("t".into())
        .with_user_id("guest".into())
        .with_app_id("app".into())
        .with_cluster_id("cl".into());
    let bytes = reference_bytes(&AMQPFrame::Header(
        2,
        AMQPContentHeader {
            class_id: 60,
            body_size: 1 << 40,
            properties: properties.clone(),
        },
    ));
    match decode_all(&mut framing_codec(), &bytes).as_slice() {
        [Inbound::Header {
            channel: 2,
            class_id: 60,
            body_size,
            properties: decoded,
        }] => {
            assert_eq!(*body_size, 1 << 40);
            assert_eq!(**decoded, properties);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn our_encoding_decodes_back() {
    let mut codec = framing_codec();
    let properties = basic::AMQPProperties::default().with_headers(every_type_table(2));
    let mut bytes = Vec::new();
    for method in table_methods(&every_type_table(2)) {
        bytes.extend(encode(&mut codec, OutFrame::Method { channel: 1, method }));
    }
    bytes.extend(encode(
        &mut codec,
        OutFrame::Content {
            channel: 1,
            method: deliver(),
            properties: properties.clone(),
            body: Bytes::from_static(b"body"),
        },
    ));
    bytes.extend(encode(&mut codec, OutFrame::Heartbeat));
    let items = decode_all(&mut codec, &bytes);
    assert_eq!(items.len(), 9 + 3 + 1);
    assert!(
        matches!(items.get(10), Some(Inbound::Header { properties: p, .. }) if **p == properties)
    );
    assert!(
        matches!(items.get(11), Some(Inbound::Body { channel: 1, payload }) if payload.as_ref() == b"body")
    );
    assert!(matches!(items.get(12), Some(Inbound::Heartbeat)));
}

// ---- decoder ------------------------------------------------------------------------------

/// A connection's worth of frames: methods, content in several body frames, heartbeats.
fn conversation() -> Vec<u8> {
    let mut bytes = PROTOCOL_HEADER.to_vec();
    let mut codec = AmqpCodec::new();
    for method in table_methods(&every_type_table(2)) {
        bytes.extend(encode(&mut codec, OutFrame::Method { channel: 1, method }));
    }
    bytes.extend(encode(&mut codec, OutFrame::Heartbeat));
    let mut body = BytesMut::new();
    body.put_bytes(b'z', 9000);
    bytes.extend(encode(
        &mut codec,
        OutFrame::Content {
            channel: 2,
            method: deliver(),
            properties: basic::AMQPProperties::default().with_app_id("a".into()),
            body: body.freeze(),
        },
    ));
    bytes.extend(frame(3, 2, &[])); // an empty body frame is legal
    bytes
}

fn summary(items: &[Inbound]) -> Vec<String> {
    items.iter().map(|item| format!("{item:?}")).collect()
}

#[test]
fn decode_one_byte_at_a_time() {
    let bytes = conversation();
    let whole = decode_all(&mut AmqpCodec::new(), &bytes);
    // Header, 9 methods, heartbeat, deliver + header + 2 body frames, empty body frame.
    assert_eq!(whole.len(), 1 + 9 + 1 + 4 + 1);

    let mut codec = AmqpCodec::new();
    let mut src = BytesMut::new();
    let mut items = Vec::new();
    for &byte in &bytes {
        src.put_u8(byte);
        while let Some(item) = codec.decode(&mut src).unwrap() {
            items.push(item);
        }
    }
    assert!(src.is_empty());
    assert_eq!(summary(&items), summary(&whole));
}

/// Cancel safety: the partial state is all in the buffer. Stopping at any byte and going on
/// with a fresh codec (in the same phase, with the same frame_max) yields the same items.
#[test]
fn partial_state_lives_in_the_buffer() {
    let bytes = conversation();
    let whole = summary(&decode_all(&mut AmqpCodec::new(), &bytes));
    // Past the protocol header, every cut point (stepping to keep the test quick).
    for cut in (9..bytes.len()).step_by(97) {
        let mut first = AmqpCodec::new();
        let mut src = BytesMut::from(&bytes[..cut]);
        let mut items = Vec::new();
        while let Some(item) = first.decode(&mut src).unwrap() {
            items.push(item);
        }
        let mut second = framing_codec();
        src.extend_from_slice(&bytes[cut..]);
        while let Some(item) = second.decode(&mut src).unwrap() {
            items.push(item);
        }
        assert_eq!(summary(&items), whole, "cut at {cut}");
    }
}

#[test]
fn body_payload_is_a_slice_of_the_read_buffer() {
    let mut codec = framing_codec();
    let mut src = BytesMut::with_capacity(4096);
    src.extend_from_slice(&frame(3, 9, b"payload bytes"));
    let start = src.as_ptr() as usize;
    match codec.decode(&mut src).unwrap() {
        Some(Inbound::Body {
            channel: 9,
            payload,
        }) => {
            assert_eq!(payload.as_ref(), b"payload bytes");
            assert_eq!(payload.as_ptr() as usize, start + 7, "not copied");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn capacity_is_reserved_for_the_whole_frame() {
    let mut codec = framing_codec();
    codec.set_frame_max(131_072);
    let mut src = BytesMut::new();
    src.extend_from_slice(&[3, 0, 1, 0, 0, 0x50, 0x00]); // body of 20480 bytes
    assert!(codec.decode(&mut src).unwrap().is_none());
    assert!(src.capacity() >= 20_480 + 8);
    assert_eq!(src.len(), 7, "nothing consumed");
}

#[test]
fn set_frame_max_has_a_floor() {
    let mut codec = AmqpCodec::new();
    assert_eq!(codec.frame_max(), FRAME_MIN_SIZE);
    codec.set_frame_max(131_072);
    assert_eq!(codec.frame_max(), 131_072);
    codec.set_frame_max(0);
    assert_eq!(codec.frame_max(), FRAME_MAX_FLOOR);
}

#[test]
fn header_frames_of_another_class_are_passed_on() {
    // The session answers a header for class 50 (RabbitMQ: 505 "expected content header for
    // class 60, got one for class 50 instead"); the codec only reports it.
    let payload = [0, 50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert!(matches!(
        decode_all(&mut framing_codec(), &frame(2, 1, &payload)).as_slice(),
        [Inbound::Header {
            class_id: 50,
            body_size: 0,
            ..
        }]
    ));
}

// ---- refusals (each with what RabbitMQ 3.10.8 answered to the same bytes) -----------------

#[test]
fn frame_over_frame_max_is_refused_from_its_header() {
    // RabbitMQ: 501 "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,200000,131064}".
    let mut codec = framing_codec();
    codec.set_frame_max(131_072);
    let header = [1, 0, 1, 0, 0x03, 0x0D, 0x40]; // 200000 bytes announced, none sent
    let error = refusal_at(codec, &header);
    assert_eq!(error.code, 501);
    assert!(error
        .text
        .starts_with("FRAME_ERROR - type 1: frame_too_large"));
    assert!(error.text.contains("200000") && error.text.contains("131064"));
    assert!(error.text.contains("131072"));
    // One byte over: a payload of frame_max - 7 (RabbitMQ lets up to frame_max through).
    let error = refusal(&[3, 0, 1, 0, 0, 0x1F, 0xF9]);
    assert_eq!(error.code, 501);
    assert!(error.text.contains("8185") && error.text.contains("8184"));
    // Exactly frame_max is fine.
    let mut codec = framing_codec();
    let mut src = BytesMut::from(&[3u8, 0, 1, 0, 0, 0x1F, 0xF8][..]);
    assert!(codec.decode(&mut src).unwrap().is_none());
    assert!(!codec.is_poisoned());
}

#[test]
fn bad_frame_end() {
    // RabbitMQ: 501 "FRAME_ERROR - type 1, all octets = <<0,20,0,10,0>>:
    // {invalid_frame_end_marker,0}".
    let mut bytes = frame(1, 1, &method_payload(20, 10, &[0]));
    *bytes.last_mut().unwrap() = 0;
    let error = refusal(&bytes);
    assert_eq!(error.code, 501);
    assert_eq!(
        error.text,
        "FRAME_ERROR - type 1: invalid_frame_end_marker 0x00, not 0xce"
    );
    let mut bytes = frame(3, 1, b"abc");
    *bytes.last_mut().unwrap() = 0xCD;
    assert_eq!(refusal(&bytes).code, 501);
}

#[test]
fn unknown_frame_type() {
    // RabbitMQ: 501 "FRAME_ERROR - type 5, all octets = <<"abc">>: unknown_frame" (0 and 4
    // too). Decided from the header: the payload need not arrive.
    for kind in [0u8, 4, 5, 9, b'A', 0xFF] {
        let error = refusal(&[kind, 0, 1, 0, 0, 0, 3]);
        assert_eq!(error.code, 501);
        assert_eq!(
            error.text,
            format!("FRAME_ERROR - type {kind}: unknown_frame")
        );
    }
}

#[test]
fn heartbeat_on_another_channel() {
    // RabbitMQ: 505 "UNEXPECTED_FRAME - type 8, all octets = <<>>".
    let error = refusal(&frame(8, 3, &[]));
    assert_eq!(error.code, 505);
    assert_eq!(
        error.text,
        "UNEXPECTED_FRAME - type 8: heartbeat on channel 3, not 0"
    );
    // RabbitMQ: 501 "FRAME_ERROR - type 8, all octets = <<"xx">>: unknown_frame".
    let error = refusal(&frame(8, 0, b"xx"));
    assert_eq!(error.code, 501);
    assert!(error.text.contains("unknown_frame"));
}

#[test]
fn truncated_method() {
    // RabbitMQ: 501 "FRAME_ERROR - cannot decode <<0,0,5,97,98>>", class 50, method 10.
    let error = refusal(&frame(
        1,
        1,
        &method_payload(50, 10, &[0, 0, 5, b'a', b'b']),
    ));
    assert_eq!((error.code, error.class_id, error.method_id), (501, 50, 10));
    assert!(error
        .text
        .starts_with("FRAME_ERROR - cannot decode queue.declare"));
    // Past the walker (basic.qos has no table): amq-protocol's own failure.
    let error = refusal(&frame(1, 1, &method_payload(60, 10, &[0, 0, 0])));
    assert_eq!((error.code, error.class_id, error.method_id), (501, 60, 10));
    assert!(error
        .text
        .starts_with("FRAME_ERROR - cannot decode basic.qos"));
    // RabbitMQ: 501 "FRAME_ERROR - type 1, all octets = <<0,50>>: unknown_frame", ids 0.
    for payload in [&[][..], &[0, 50], &[0, 50, 0]] {
        let error = refusal(&frame(1, 1, payload));
        assert_eq!((error.code, error.class_id, error.method_id), (501, 0, 0));
        assert!(error.text.contains("unknown_frame"));
    }
}

#[test]
fn trailing_bytes_after_a_method() {
    // RabbitMQ: 501 "FRAME_ERROR - cannot decode <<0,0,0,0,0,10,0,106,117,110,107>>", 60.10.
    let error = refusal(&frame(
        1,
        1,
        &method_payload(60, 10, b"\x00\x00\x00\x00\x00\x0a\x00junk"),
    ));
    assert_eq!((error.code, error.class_id, error.method_id), (501, 60, 10));
    assert_eq!(
        error.text,
        "FRAME_ERROR - cannot decode basic.qos: 4 bytes after its last argument"
    );
    // After a table, too.
    let mut bytes = queue_declare_frame(&table(&[]));
    let end = bytes.len() - 1;
    bytes.splice(end..end, *b"junk");
    let size = u32::try_from(bytes.len() - 8).unwrap().to_be_bytes();
    bytes.splice(3..7, size);
    let error = refusal(&bytes);
    assert_eq!((error.code, error.class_id, error.method_id), (501, 50, 10));
}

#[test]
fn unknown_class_or_method() {
    // RabbitMQ drops the socket ({unknown_method_id,{99,10}}); we close with 540.
    for (class_id, method_id) in [(99, 10), (50, 99), (10, 99), (40, 50)] {
        let error = refusal(&frame(1, 1, &method_payload(class_id, method_id, &[])));
        assert_eq!(
            (error.code, error.class_id, error.method_id),
            (540, class_id, method_id)
        );
        assert_eq!(
            error.text,
            format!("NOT_IMPLEMENTED - unknown method {class_id}.{method_id}")
        );
    }
}

#[test]
fn table_length_past_the_payload() {
    // RabbitMQ: 501 "FRAME_ERROR - cannot decode <<0,0,1,113,0,0,0,3,232,1,97>>", 50.10.
    let error = refusal(&queue_declare_frame(&[0, 0, 3, 232, 1, b'a']));
    assert_eq!((error.code, error.class_id, error.method_id), (501, 50, 10));
    assert_eq!(
        error.text,
        "FRAME_ERROR - cannot decode queue.declare: field table of 1000 bytes past the end of \
         its container (2 bytes left)"
    );
}

#[test]
fn long_string_past_its_table() {
    // RabbitMQ drops the socket (function_clause in its table parser).
    let error = refusal(&queue_declare_frame(&table(&[
        1, b'k', b'S', 0, 0, 0, 100, b'a', b'b',
    ])));
    assert_eq!((error.code, error.class_id, error.method_id), (501, 50, 10));
    assert!(error.text.contains("long string of 100 bytes"));
}

#[test]
fn unknown_value_type() {
    // RabbitMQ drops the socket.
    let error = refusal(&queue_declare_frame(&table(&[1, b'k', b'Z', 0, 0])));
    assert_eq!((error.code, error.class_id, error.method_id), (502, 50, 10));
    assert_eq!(
        error.text,
        "SYNTAX_ERROR - queue.declare: unknown field value type 'Z' (0x5a)"
    );
}

#[test]
fn short_string_that_is_not_utf8() {
    // RabbitMQ: 501 "FRAME_ERROR - Malformed UTF-8 in shortstr", ids 0; amq-protocol refuses
    // it too, and we blame the method.
    let error = refusal(&frame(
        1,
        1,
        &method_payload(50, 10, &[0, 0, 1, 0xFF, 0, 0, 0, 0, 0]),
    ));
    assert_eq!((error.code, error.class_id, error.method_id), (501, 50, 10));
}

/// ~21,800 nested empty tables, all a 128 KiB queue.declare can hold, decoded on a 256 KiB
/// stack: refused at level 33 by the walker, never handed to `amq-protocol`'s recursion.
#[test]
fn deeply_nested_tables_do_not_overflow_the_stack() {
    const FRAME_MAX: usize = 128 * 1024;
    // Each level: empty name (1), 'F' (1), length (4).
    let levels = (FRAME_MAX - 8 - 4 - 5 - 4) / 6;
    let mut entries = Vec::with_capacity(levels * 6);
    for k in 1..=levels {
        entries.extend_from_slice(&[0, b'F']);
        entries.extend_from_slice(&u32::try_from(6 * (levels - k)).unwrap().to_be_bytes());
    }
    let bytes = queue_declare_frame(&table(&entries));
    assert!(bytes.len() <= FRAME_MAX && bytes.len() > FRAME_MAX - 8);
    let error = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let mut codec = framing_codec();
            codec.set_frame_max(FRAME_MAX);
            refusal_at(codec, &bytes)
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!((error.code, error.class_id, error.method_id), (502, 50, 10));
    assert_eq!(
        error.text,
        "SYNTAX_ERROR - queue.declare: field tables and arrays nested deeper than 32 levels"
    );
}

#[test]
fn nesting_at_the_cap_is_accepted() {
    // every_type_table(n) nests n + 1 tables; the deepest holds an array of an array, two
    // levels more: 29 + 1 + 2 = 32.
    let method = AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: "q".into(),
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: false,
        nowait: false,
        arguments: every_type_table(MAX_TABLE_DEPTH - 3),
    }));
    let bytes = reference_bytes(&AMQPFrame::Method(1, method.clone()));
    assert!(matches!(
        decode_all(&mut framing_codec(), &bytes).as_slice(),
        [Inbound::Method { method: decoded, .. }] if *decoded == method
    ));
    let method = AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: "q".into(),
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: false,
        nowait: false,
        arguments: every_type_table(MAX_TABLE_DEPTH - 2),
    }));
    let bytes = reference_bytes(&AMQPFrame::Method(1, method));
    let mut codec = framing_codec();
    codec.set_frame_max(1 << 20);
    assert_eq!(refusal_at(codec, &bytes).code, 502);
}

#[test]
fn content_header_refusals() {
    // Weight other than 0. RabbitMQ: 505 "UNEXPECTED_FRAME - expected content header for
    // class 60, got non content header frame instead".
    let error = refusal(&frame(2, 1, &[0, 60, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    assert_eq!(error.code, 505);
    assert_eq!(
        error.text,
        "UNEXPECTED_FRAME - content header with weight 7, not 0"
    );
    // Shorter than its fixed fields. RabbitMQ: 501 "FRAME_ERROR - type 2, all octets =
    // <<0,60,0,0,0>>: unknown_frame".
    assert_eq!(refusal(&frame(2, 1, &[0, 60, 0, 0, 0])).code, 501);
    // A content-type past the payload, and bytes after the properties. RabbitMQ: 541
    // INTERNAL_ERROR, once it reads the properties.
    let mut truncated = vec![0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0];
    truncated.extend_from_slice(&[5, b'a', b'b']);
    assert_eq!(refusal(&frame(2, 1, &truncated)).code, 501);
    let mut trailing = vec![0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    trailing.extend_from_slice(b"zz");
    let error = refusal(&frame(2, 1, &trailing));
    assert_eq!(error.code, 501);
    assert_eq!(
        error.text,
        "FRAME_ERROR - cannot decode content header: 2 bytes after its properties"
    );
    // A bad value type in headers (RabbitMQ: 541 later), and nesting past the cap.
    let mut bad_type = vec![0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0];
    bad_type.extend_from_slice(&table(&[1, b'k', b'Z']));
    assert_eq!(refusal(&frame(2, 1, &bad_type)).code, 502);
    let mut deep = vec![0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0];
    // A table holding 40 nested arrays: empty name, then 'A' and a length per level.
    let levels = 40;
    let mut entries = vec![0];
    for k in 1..=levels {
        entries.push(b'A');
        entries.extend_from_slice(&u32::try_from(5 * (levels - k)).unwrap().to_be_bytes());
    }
    deep.extend_from_slice(&table(&entries));
    let error = refusal(&frame(2, 1, &deep));
    assert_eq!((error.code, error.class_id, error.method_id), (502, 0, 0));
    assert!(error.text.starts_with("SYNTAX_ERROR - content header"));
}

#[test]
fn poisoned_after_invalid() {
    let mut codec = framing_codec();
    let mut src = BytesMut::from(&frame(8, 3, &[])[..]);
    src.extend_from_slice(&frame(8, 0, &[]));
    assert!(matches!(
        codec.decode(&mut src).unwrap(),
        Some(Inbound::Invalid(_))
    ));
    assert!(src.is_empty(), "the heartbeat after it was discarded too");
    for _ in 0..3 {
        src.extend_from_slice(&frame(8, 0, &[]));
        assert!(codec.decode(&mut src).unwrap().is_none());
        assert!(src.is_empty());
    }
    // decode_eof does not complain about the discarded bytes either.
    src.extend_from_slice(&frame(8, 0, &[]));
    assert!(codec.decode_eof(&mut src).unwrap().is_none());
}

/// The table of known methods is exactly what `amq-protocol` parses: every id it knows parses
/// from zeroed arguments, and no other does.
#[test]
fn method_table_matches_amq_protocol() {
    for class_id in 0..=100u16 {
        for method_id in 0..=130u16 {
            let payload = method_payload(class_id, method_id, &[0; 64]);
            let parsed = amq_protocol::protocol::parse_class(payload.as_slice()).is_ok();
            assert_eq!(
                parsed,
                methods::name(class_id, method_id).is_some(),
                "{class_id}.{method_id}"
            );
        }
    }
}

// ---- property test ------------------------------------------------------------------------

/// Input after a valid protocol header: mostly frame-shaped, with any payload and end octet.
fn chunk() -> impl Strategy<Value = Vec<u8>> {
    let framed = (
        prop_oneof![Just(1u8), Just(2), Just(3), Just(8), any::<u8>()],
        prop_oneof![Just(0u16), any::<u16>()],
        prop_oneof![
            // A known method's ids, then anything.
            (
                prop::sample::select(vec![
                    (10u16, 11u16),
                    (40, 10),
                    (50, 10),
                    (50, 50),
                    (60, 20),
                    (60, 40)
                ]),
                prop::collection::vec(any::<u8>(), 0..200)
            )
                .prop_map(|((class_id, method_id), rest)| method_payload(
                    class_id, method_id, &rest
                )),
            prop::collection::vec(any::<u8>(), 0..300),
        ],
        prop_oneof![Just(0xCEu8), any::<u8>()],
        any::<bool>(),
    )
        .prop_map(|(kind, channel, payload, end, honest_size)| {
            let mut bytes = frame(kind, channel, &payload);
            *bytes.last_mut().unwrap() = end;
            if !honest_size {
                // Lie about the size, sometimes hugely.
                let size = u32::try_from(payload.len()).unwrap().wrapping_mul(977);
                bytes.splice(3..7, size.to_be_bytes());
            }
            bytes
        });
    prop_oneof![4 => framed, 1 => prop::collection::vec(any::<u8>(), 0..64)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_input_never_panics_and_stays_bounded(
        chunks in prop::collection::vec(chunk(), 1..8),
        read_size in 1usize..5000,
    ) {
        let mut codec = framing_codec();
        let limit = codec.frame_max();
        let input: Vec<u8> = chunks.concat();
        let mut src = BytesMut::new();
        for read in input.chunks(read_size) {
            src.extend_from_slice(read);
            // What a read can leave: one incomplete frame plus one read.
            prop_assert!(src.len() <= limit + FRAME_OVERHEAD + read_size);
            while let Some(item) = codec.decode(&mut src).unwrap() {
                if let Inbound::Invalid(error) = &item {
                    prop_assert!([501, 502, 505, 540].contains(&error.code));
                    prop_assert!(error.text.len() <= 255);
                }
            }
            // Between reads: at most one incomplete frame, never past frame_max.
            prop_assert!(src.len() < limit);
        }
    }
}
