//! Decode and encode of the hot frames of the three protocol codecs, through their public APIs:
//! `mqgate_mqtt::codec::MqttCodec`, `mqgate_stomp::codec::StompCodec` and
//! `mqgate_amqp::codec::AmqpCodec` (each a `tokio_util` `Decoder` + `Encoder`).
//!
//! Every message carries a body of 100 bytes or 4 KiB:
//! - MQTT: PUBLISH QoS 0 and QoS 1 (packet id 1), in 3.1.1 and in 5.0 with two user properties.
//! - STOMP 1.2: SEND with three headers (`destination`, `content-type`, `content-length`) is
//!   decoded; MESSAGE with five (`destination`, `message-id`, `subscription`, `redelivered`,
//!   `content-type`; the encoder adds `content-length`) is encoded.
//! - AMQP 0-9-1: basic.publish + content header (content-type, delivery-mode, two headers) + one
//!   body frame is decoded; basic.deliver as `OutFrame::Content` with the same properties is
//!   encoded.
//!
//! Decoding: a read buffer holding [`FRAMES`] messages back to back (as a socket read delivers
//! them) is decoded until empty. The copy of the buffer is made, and freed, outside the timed
//! routine; the decoded items are dropped inside it, as the session would drop them. Each codec
//! is first driven past its handshake (MQTT CONNECT, STOMP `set_version` + `set_connected`, AMQP
//! protocol header), once, outside the timing. The input bytes come from the reference libraries
//! (`rumqttd`'s writers, `amq-protocol`'s `gen_frame`) or are written out by hand (STOMP), not
//! from our encoders.
//!
//! Encoding: a prepared packet or frame is cloned outside the timed routine (the clone shares the
//! body) and encoded into a write buffer that is cleared, not freed, between iterations.
//!
//! Throughput is messages (`Throughput::Elements`): criterion's "time" is per iteration, i.e. per
//! [`FRAMES`] messages for decode and per message for encode; "thrpt" is messages per second.
//!
//! Run: `cargo bench -p mqgate-benches --bench codecs` (about 80 seconds on 2 cores, once built).

use amq_protocol::frame::{gen_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::basic::{self, AMQPProperties};
use amq_protocol::protocol::AMQPClass;
use amq_protocol::types::{AMQPValue, FieldTable};
use bytes::{Bytes, BytesMut};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use mqgate_amqp::codec::{AmqpCodec, OutFrame, PROTOCOL_HEADER};
use mqgate_mqtt::codec::MqttCodec;
use mqgate_mqtt::convert::packet::{build_publish, PublishHeader};
use mqgate_stomp::codec::{Limits, Outbound, ServerCommand, ServerFrame, StompCodec, StompVersion};
use rumqttd::protocol::{v4::V4, v5::V5, Packet, Protocol, PublishProperties, QoS};
use std::hint::black_box;
use std::time::Duration;
use tokio_util::codec::{Decoder, Encoder};

/// Body sizes, in bytes.
const SIZES: [usize; 2] = [100, 4096];
/// Messages in each decoded read buffer.
const FRAMES: usize = 32;

const MQTT_TOPIC: &str = "sensors/site42/device1234/temp";
const STOMP_DESTINATION: &str = "/topic/sensors.site42.device1234.temp";
const AMQP_EXCHANGE: &str = "amq.topic";
const AMQP_ROUTING_KEY: &str = "sensors.site42.device1234.temp";

fn body(size: usize) -> Bytes {
    // Printable, so that the STOMP body is plain text; no NUL (STOMP frames carry content-length
    // anyway).
    Bytes::from(
        (0..size)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<u8>>(),
    )
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
}

/// Times decoding `input` (holding [`FRAMES`] messages) until the buffer is empty.
fn bench_decode<D>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    codec: &mut D,
    input: &BytesMut,
) where
    D: Decoder,
    D::Error: std::fmt::Debug,
{
    group.throughput(Throughput::Elements(FRAMES as u64));
    group.bench_function(id, |b| {
        b.iter_batched(
            || input.clone(),
            |mut buf| {
                let mut items = 0usize;
                while let Some(item) = codec.decode(&mut buf).expect("decoders never fail") {
                    black_box(item);
                    items += 1;
                }
                // The emptied buffer still owns the allocation (decoded items only shared it):
                // returned, so that criterion frees it after the timing.
                (items, buf)
            },
            BatchSize::LargeInput,
        );
    });
}

/// Times encoding one clone of `item` into a reused write buffer.
fn bench_encode<E, T>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    codec: &mut E,
    item: &T,
) where
    E: Encoder<T>,
    E::Error: std::fmt::Debug,
    T: Clone,
{
    let mut dst = BytesMut::with_capacity(8192);
    group.throughput(Throughput::Elements(1));
    group.bench_function(id, |b| {
        b.iter_batched(
            || item.clone(),
            |item| {
                dst.clear();
                codec.encode(item, &mut dst).expect("encodable");
                black_box(dst.len())
            },
            BatchSize::LargeInput,
        );
    });
}

/// Decodes `input` once, outside any timing, and checks it holds `FRAMES` items that `is_hot`
/// accepts.
fn check_decode<D: Decoder>(
    name: &str,
    codec: &mut D,
    input: &BytesMut,
    is_hot: impl Fn(&D::Item) -> bool,
) where
    D::Error: std::fmt::Debug,
{
    let mut buf = input.clone();
    let mut hot = 0;
    while let Some(item) = codec.decode(&mut buf).expect("decoders never fail") {
        assert!(is_hot(&item), "{name}: unexpected item");
        hot += 1;
    }
    assert_eq!(hot, FRAMES, "{name}: decoded {hot} items");
    eprintln!(
        "{name}: {} bytes for {FRAMES} messages ({} bytes each)",
        input.len(),
        input.len() / FRAMES
    );
}

// ---- MQTT ---------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum MqttVersion {
    V311,
    V5,
}

impl MqttVersion {
    fn name(self) -> &'static str {
        match self {
            Self::V311 => "v311",
            Self::V5 => "v5",
        }
    }

    /// A CONNECT for this version, client id "bench", clean session, keep-alive 60 (and an empty
    /// property list in 5.0).
    fn connect(self) -> &'static [u8] {
        match self {
            Self::V311 => b"\x10\x11\x00\x04MQTT\x04\x02\x00\x3c\x00\x05bench",
            Self::V5 => b"\x10\x12\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x05bench",
        }
    }

    /// A codec that has read this version's CONNECT.
    fn codec(self) -> MqttCodec {
        let mut codec = MqttCodec::new(1 << 20);
        let mut src = BytesMut::from(self.connect());
        match codec.decode(&mut src).expect("decoders never fail") {
            Some(mqgate_mqtt::codec::Inbound::Packet(Packet::Connect(..))) => {}
            other => panic!("CONNECT refused: {other:?}"),
        }
        assert!(codec.version().is_some());
        codec
    }

    fn publish(self, qos: QoS, size: usize) -> Packet {
        let pkid = if qos == QoS::AtMostOnce { 0 } else { 1 };
        let publish = build_publish(
            Bytes::from_static(MQTT_TOPIC.as_bytes()),
            body(size),
            false,
            PublishHeader {
                qos,
                pkid,
                dup: false,
            },
        );
        let properties = match self {
            Self::V311 => None,
            Self::V5 => Some(PublishProperties {
                user_properties: vec![
                    ("site".to_owned(), "42".to_owned()),
                    ("unit".to_owned(), "celsius".to_owned()),
                ],
                ..PublishProperties::default()
            }),
        };
        Packet::Publish(publish, properties)
    }

    /// `FRAMES` copies of `packet` as `rumqttd` writes them.
    fn wire(self, packet: &Packet) -> BytesMut {
        let mut out = BytesMut::new();
        for _ in 0..FRAMES {
            match self {
                Self::V311 => V4.write(packet.clone(), &mut out),
                Self::V5 => V5.write(packet.clone(), &mut out),
            }
            .expect("rumqttd writes the PUBLISH");
        }
        out
    }
}

fn bench_mqtt(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec_mqtt");
    configure(&mut group);
    for version in [MqttVersion::V311, MqttVersion::V5] {
        for (qos_name, qos) in [("qos0", QoS::AtMostOnce), ("qos1", QoS::AtLeastOnce)] {
            for size in SIZES {
                let packet = version.publish(qos, size);
                let name = format!("{}_{qos_name}", version.name());

                let input = version.wire(&packet);
                let mut codec = version.codec();
                check_decode(
                    &format!("mqtt decode_{name}/{size}"),
                    &mut codec,
                    &input,
                    |item| {
                        matches!(
                            item,
                            mqgate_mqtt::codec::Inbound::Packet(Packet::Publish(..))
                        )
                    },
                );
                bench_decode(
                    &mut group,
                    BenchmarkId::new(format!("decode_{name}"), size),
                    &mut codec,
                    &input,
                );

                let mut codec = version.codec();
                bench_encode(
                    &mut group,
                    BenchmarkId::new(format!("encode_{name}"), size),
                    &mut codec,
                    &packet,
                );
            }
        }
    }
    group.finish();
}

// ---- STOMP --------------------------------------------------------------------------------------

/// A connected STOMP 1.2 codec.
fn stomp_codec() -> StompCodec {
    let mut codec = StompCodec::new(Limits::default());
    codec.set_version(StompVersion::V1_2);
    codec.set_connected();
    codec
}

/// `FRAMES` SEND frames with three headers.
fn stomp_send(size: usize) -> BytesMut {
    let body = body(size);
    let mut out = BytesMut::new();
    for _ in 0..FRAMES {
        out.extend_from_slice(
            format!(
                "SEND\ndestination:{STOMP_DESTINATION}\ncontent-type:text/plain\n\
                 content-length:{}\n\n",
                body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(&body);
        out.extend_from_slice(b"\0");
    }
    out
}

/// A MESSAGE as the session sends it for an auto-ack subscription.
fn stomp_message(size: usize) -> Outbound {
    Outbound::Frame(
        ServerFrame::new(ServerCommand::Message)
            .with_header("destination", STOMP_DESTINATION)
            .with_header("message-id", "T_sub-0@@session-1@@1234")
            .with_header("subscription", "sub-0")
            .with_header("redelivered", "false")
            .with_header("content-type", "text/plain")
            .with_body(body(size)),
    )
}

fn bench_stomp(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec_stomp");
    configure(&mut group);
    for size in SIZES {
        let input = stomp_send(size);
        let mut codec = stomp_codec();
        check_decode(
            &format!("stomp decode_send/{size}"),
            &mut codec,
            &input,
            |item| matches!(item, mqgate_stomp::codec::Inbound::Frame(frame) if frame.headers.len() == 3),
        );
        bench_decode(
            &mut group,
            BenchmarkId::new("decode_send", size),
            &mut codec,
            &input,
        );

        let mut codec = stomp_codec();
        bench_encode(
            &mut group,
            BenchmarkId::new("encode_message", size),
            &mut codec,
            &stomp_message(size),
        );
    }
    group.finish();
}

// ---- AMQP ---------------------------------------------------------------------------------------

/// RabbitMQ's default `frame_max`.
const AMQP_FRAME_MAX: usize = 131_072;

/// A codec past the protocol header, with RabbitMQ's default `frame_max`.
fn amqp_codec() -> AmqpCodec {
    let mut codec = AmqpCodec::new();
    let mut src = BytesMut::from(&PROTOCOL_HEADER[..]);
    match codec.decode(&mut src).expect("decoders never fail") {
        Some(mqgate_amqp::codec::Inbound::ProtocolHeader { supported: true }) => {}
        other => panic!("protocol header refused: {other:?}"),
    }
    codec.set_frame_max(AMQP_FRAME_MAX);
    codec
}

fn amqp_properties() -> AMQPProperties {
    let mut headers = FieldTable::default();
    headers.insert("site".into(), AMQPValue::LongString("42".into()));
    headers.insert("unit".into(), AMQPValue::LongString("celsius".into()));
    AMQPProperties::default()
        .with_content_type("text/plain".into())
        .with_delivery_mode(2)
        .with_headers(headers)
}

fn reference_bytes(frame: &AMQPFrame, out: &mut BytesMut) {
    let (bytes, _) = gen_frame(frame)(WriteContext::from(Vec::new()))
        .expect("amq-protocol writes the frame")
        .into_inner();
    out.extend_from_slice(&bytes);
}

/// `FRAMES` messages published on channel 1: basic.publish, content header, one body frame.
fn amqp_publish(size: usize) -> BytesMut {
    let body = body(size);
    let method = AMQPFrame::Method(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: AMQP_EXCHANGE.into(),
            routing_key: AMQP_ROUTING_KEY.into(),
            mandatory: false,
            immediate: false,
        })),
    );
    let header = AMQPFrame::Header(
        1,
        AMQPContentHeader {
            class_id: 60,
            body_size: body.len() as u64,
            properties: amqp_properties(),
        },
    );
    let body = AMQPFrame::Body(1, body.to_vec());
    let mut out = BytesMut::new();
    for _ in 0..FRAMES {
        for frame in [&method, &header, &body] {
            reference_bytes(frame, &mut out);
        }
    }
    out
}

/// basic.deliver of one message to an auto-ack consumer on channel 1.
fn amqp_deliver(size: usize) -> OutFrame {
    OutFrame::Content {
        channel: 1,
        method: AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: "amq.ctag-1-1".into(),
            delivery_tag: 1234,
            redelivered: false,
            exchange: AMQP_EXCHANGE.into(),
            routing_key: AMQP_ROUTING_KEY.into(),
        })),
        properties: amqp_properties(),
        body: body(size),
    }
}

/// Decodes a buffer of whole messages (three frames each) and counts messages, not frames.
struct AmqpMessages(AmqpCodec);

impl Decoder for AmqpMessages {
    type Item = mqgate_amqp::codec::Inbound;
    type Error = std::io::Error;

    /// Yields the body frame, after decoding (and dropping) the method and content header
    /// before it.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        for _ in 0..2 {
            match self.0.decode(src)? {
                Some(item) => {
                    black_box(item);
                }
                None => return Ok(None),
            }
        }
        self.0.decode(src)
    }
}

fn bench_amqp(c: &mut Criterion) {
    use mqgate_amqp::codec::Inbound;
    let mut group = c.benchmark_group("codec_amqp");
    configure(&mut group);
    for size in SIZES {
        let input = amqp_publish(size);
        let mut check = amqp_codec();
        let mut frames = input.clone();
        let mut kinds = Vec::new();
        while let Some(item) = check.decode(&mut frames).expect("decoders never fail") {
            kinds.push(match item {
                Inbound::Method {
                    method: AMQPClass::Basic(basic::AMQPMethod::Publish(_)),
                    ..
                } => 'm',
                Inbound::Header { .. } => 'h',
                Inbound::Body { payload, .. } if payload.len() == size => 'b',
                other => panic!("unexpected item {other:?}"),
            });
        }
        assert_eq!(kinds.iter().collect::<String>(), "mhb".repeat(FRAMES));

        let mut codec = AmqpMessages(amqp_codec());
        check_decode(
            &format!("amqp decode_publish/{size}"),
            &mut codec,
            &input,
            |item| matches!(item, Inbound::Body { .. }),
        );
        bench_decode(
            &mut group,
            BenchmarkId::new("decode_publish", size),
            &mut codec,
            &input,
        );

        let mut codec = amqp_codec();
        bench_encode(
            &mut group,
            BenchmarkId::new("encode_deliver", size),
            &mut codec,
            &amqp_deliver(size),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_mqtt, bench_stomp, bench_amqp);
criterion_main!(benches);
