//! The codec through its public API over an async pipe: frames encoded on one side arrive in
//! reads of a few dozen bytes on the other and decode to the same frames.

use amq_protocol::protocol::{basic, connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable};
use bytes::{Bytes, BytesMut};
use mqgate_amqp::codec::{AmqpCodec, Inbound, OutFrame, PROTOCOL_HEADER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

const FRAME_MAX: usize = 131_072;

fn start_ok() -> AMQPClass {
    let mut capabilities = FieldTable::default();
    capabilities.insert("publisher_confirms".into(), AMQPValue::Boolean(true));
    let mut properties = FieldTable::default();
    properties.insert("product".into(), AMQPValue::LongString("test".into()));
    properties.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
    AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
        client_properties: properties,
        mechanism: "PLAIN".into(),
        response: "\0guest\0guest".into(),
        locale: "en_US".into(),
    }))
}

fn publish() -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: "amq.topic".into(),
        routing_key: "a.b".into(),
        mandatory: false,
        immediate: false,
    }))
}

#[tokio::test]
async fn frames_survive_small_reads() {
    let body = Bytes::from(
        (0..300_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let (mut client, mut server) = tokio::io::duplex(61);

    let sent_body = body.clone();
    let writer = tokio::spawn(async move {
        let mut codec = AmqpCodec::new();
        codec.set_frame_max(FRAME_MAX);
        let mut out = BytesMut::new();
        out.extend_from_slice(PROTOCOL_HEADER);
        let frames = [
            OutFrame::Method {
                channel: 0,
                method: start_ok(),
            },
            OutFrame::Heartbeat,
            OutFrame::Content {
                channel: 1,
                method: publish(),
                properties: basic::AMQPProperties::default().with_delivery_mode(2),
                body: sent_body,
            },
        ];
        for frame in frames {
            codec.encode(frame, &mut out).unwrap();
        }
        client.write_all(&out).await.unwrap();
        client.shutdown().await.unwrap();
    });

    let mut codec = AmqpCodec::new();
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    loop {
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            if matches!(item, Inbound::ProtocolHeader { supported: true }) {
                // As the handshake would after tune-ok.
                codec.set_frame_max(FRAME_MAX);
            }
            items.push(item);
        }
        assert!(
            buf.len() <= FRAME_MAX + 61,
            "at most one frame and one read"
        );
        if server.read_buf(&mut buf).await.unwrap() == 0 {
            break;
        }
    }
    writer.await.unwrap();
    assert!(buf.is_empty());
    assert!(!codec.is_poisoned());

    assert!(matches!(
        items.first(),
        Some(Inbound::ProtocolHeader { supported: true })
    ));
    assert!(matches!(
        items.get(1),
        Some(Inbound::Method { channel: 0, method }) if *method == start_ok()
    ));
    assert!(matches!(items.get(2), Some(Inbound::Heartbeat)));
    assert!(matches!(
        items.get(3),
        Some(Inbound::Method { channel: 1, method }) if *method == publish()
    ));
    assert!(matches!(
        items.get(4),
        Some(Inbound::Header { channel: 1, class_id: 60, body_size: 300_000, properties })
            if properties.delivery_mode() == &Some(2)
    ));
    let mut received = Vec::new();
    let mut frames = 0;
    for item in items.iter().skip(5) {
        match item {
            Inbound::Body {
                channel: 1,
                payload,
            } => {
                assert!(payload.len() <= FRAME_MAX - 8);
                received.extend_from_slice(payload);
                frames += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(frames, 3, "300,000 bytes in frames of 131,064");
    assert_eq!(received, body);
}
