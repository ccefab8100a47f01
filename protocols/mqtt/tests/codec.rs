//! Codec tests: golden bytes, round trips, every refusal with its reason code, incremental input,
//! and a seeded random-input loop. Test paths start with `codec_` so `cargo test codec` runs them.

use bytes::BytesMut;
use mqgate_mqtt::codec::{CodecError, Inbound, MqttCodec, ProtocolVersion};
use rumqttd::protocol::{
    ConnAck, Connect, ConnectReturnCode, Disconnect, DisconnectReasonCode, Login, Packet, PubAck,
    PubAckReason, QoS, SubAck, SubscribeReasonCode, UnsubAck, UnsubAckReason,
};
use tokio_util::codec::{Decoder, Encoder};

const LIMIT: usize = 64 * 1024;

const CONNECT_V311: &[u8] = &[
    0x10, 0x0E, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 2, b'c', b'1',
];
const CONNECT_V5: &[u8] = &[
    0x10, 0x14, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 5, 0x11, 0, 0, 0, 10, 0, 2, b'c',
    b'1',
];
const CONNECT_V31: &[u8] = &[
    0x10, 0x10, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0x02, 0, 60, 0, 2, b'c', b'1',
];

/// Decodes everything `bytes` holds.
fn decode_all(codec: &mut MqttCodec, bytes: &[u8]) -> Vec<Inbound> {
    let mut src = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(item) = codec.decode(&mut src).unwrap() {
        out.push(item);
    }
    out
}

fn decode_one(codec: &mut MqttCodec, bytes: &[u8]) -> Inbound {
    let mut items = decode_all(codec, bytes);
    assert_eq!(items.len(), 1, "{items:?}");
    items.remove(0)
}

fn packet(item: Inbound) -> Packet {
    match item {
        Inbound::Packet(packet) => packet,
        Inbound::Invalid(error) => panic!("refused: {error}"),
    }
}

fn invalid(item: Inbound) -> CodecError {
    match item {
        Inbound::Invalid(error) => error,
        Inbound::Packet(packet) => panic!("accepted: {packet:?}"),
    }
}

/// A codec that has read a CONNECT of `version`.
fn connected(version: ProtocolVersion) -> MqttCodec {
    let mut codec = MqttCodec::new(LIMIT);
    let connect = match version {
        ProtocolVersion::V3_1 => CONNECT_V31,
        ProtocolVersion::V3_1_1 => CONNECT_V311,
        ProtocolVersion::V5 => CONNECT_V5,
    };
    packet(decode_one(&mut codec, connect));
    assert_eq!(codec.version(), Some(version));
    codec
}

fn encode(codec: &mut MqttCodec, packet: Packet) -> Vec<u8> {
    let mut dst = BytesMut::new();
    let expected = codec.encoded_len(&packet);
    codec.encode(packet, &mut dst).unwrap();
    assert_eq!(
        expected,
        Some(dst.len()),
        "encoded_len disagrees with the encoder"
    );
    assert_frame_consistent(&dst);
    dst.to_vec()
}

/// The remaining length announced is the number of bytes that follow.
fn assert_frame_consistent(bytes: &[u8]) {
    let mut value = 0usize;
    let mut index = 1;
    loop {
        let byte = bytes[index];
        value |= usize::from(byte & 0x7F) << (7 * (index - 1));
        index += 1;
        if byte & 0x80 == 0 {
            break;
        }
    }
    assert_eq!(bytes.len() - index, value, "frame {bytes:02x?}");
}

/// Decodes `golden` after a CONNECT of `version`, encodes the packet back, and expects `golden`.
fn round_trip(version: ProtocolVersion, golden: &[u8]) -> Packet {
    let mut codec = connected(version);
    let decoded = packet(decode_one(&mut codec, golden));
    assert_eq!(encode(&mut codec, decoded.clone()), golden, "{decoded:?}");
    decoded
}

mod codec_golden {
    use super::*;

    #[test]
    fn connect_v311_round_trip() {
        let mut codec = MqttCodec::new(LIMIT);
        assert_eq!(codec.version(), None);
        let decoded = packet(decode_one(&mut codec, CONNECT_V311));
        assert_eq!(codec.version(), Some(ProtocolVersion::V3_1_1));
        let Packet::Connect(connect, None, None, None, None) = &decoded else {
            panic!("{decoded:?}")
        };
        assert_eq!(
            connect,
            &Connect {
                keep_alive: 60,
                client_id: "c1".into(),
                clean_session: true
            }
        );
        assert_eq!(encode(&mut codec, decoded), CONNECT_V311);
    }

    #[test]
    fn connect_v5_round_trip() {
        let mut codec = MqttCodec::new(LIMIT);
        let decoded = packet(decode_one(&mut codec, CONNECT_V5));
        assert_eq!(codec.version(), Some(ProtocolVersion::V5));
        let Packet::Connect(_, Some(properties), None, None, None) = &decoded else {
            panic!("{decoded:?}")
        };
        assert_eq!(properties.session_expiry_interval, Some(10));
        assert_eq!(encode(&mut codec, decoded), CONNECT_V5);
    }

    #[test]
    fn connect_v5_with_will_and_password_only() {
        // Will (QoS 1, retain) with a Will Delay Interval; password without user name (5.0 only).
        let golden = [
            0x10,
            0x1F,
            0,
            4,
            b'M',
            b'Q',
            b'T',
            b'T',
            5,
            0b0110_1110,
            0,
            60,
            0,
            0,
            1,
            b'c',
            5,
            0x18,
            0,
            0,
            0,
            5,
            0,
            1,
            b'w',
            0,
            2,
            b'b',
            b'y',
            0,
            2,
            b'p',
            b'w',
        ];
        let mut codec = MqttCodec::new(LIMIT);
        let decoded = packet(decode_one(&mut codec, &golden));
        let Packet::Connect(_, None, Some(will), Some(will_properties), Some(login)) = &decoded
        else {
            panic!("{decoded:?}")
        };
        assert_eq!(will.qos, QoS::AtLeastOnce);
        assert!(will.retain);
        assert_eq!(will_properties.delay_interval, Some(5));
        assert_eq!(
            login,
            &Login {
                username: String::new(),
                password: "pw".into()
            }
        );
    }

    #[test]
    fn connect_v31_is_decoded_as_311_layout() {
        let mut codec = MqttCodec::new(LIMIT);
        let decoded = packet(decode_one(&mut codec, CONNECT_V31));
        assert_eq!(codec.version(), Some(ProtocolVersion::V3_1));
        let Packet::Connect(connect, None, None, None, None) = &decoded else {
            panic!("{decoded:?}")
        };
        assert_eq!(connect.client_id, "c1");
        assert_eq!(connect.keep_alive, 60);
        // Then packets read as 3.1.1 and are written with the V4 writer.
        round_trip(ProtocolVersion::V3_1, &[0x40, 0x02, 0, 7]);
    }

    #[test]
    fn connect_v31_long_client_id_accepted() {
        let id = [b'x'; 40];
        let mut golden = vec![0x10, 16 + 38, 0, 6];
        golden.extend_from_slice(b"MQIsdp");
        golden.extend_from_slice(&[3, 0x02, 0, 60, 0, 40]);
        golden.extend_from_slice(&id);
        let mut codec = MqttCodec::new(LIMIT);
        let Packet::Connect(connect, ..) = packet(decode_one(&mut codec, &golden)) else {
            panic!()
        };
        assert_eq!(connect.client_id.len(), 40);
    }

    #[test]
    fn publish_v311_round_trips() {
        for golden in [
            &[0x30, 0x07, 0, 3, b'a', b'/', b'b', b'h', b'i'][..],
            &[0x32, 0x09, 0, 3, b'a', b'/', b'b', 0, 1, b'h', b'i'][..],
            &[0x3D, 0x09, 0, 3, b'a', b'/', b'b', 0, 2, b'h', b'i'][..],
            &[0x30, 0x05, 0, 3, b'a', b'/', b'b'][..],
        ] {
            let decoded = round_trip(ProtocolVersion::V3_1_1, golden);
            assert!(matches!(decoded, Packet::Publish(_, None)));
        }
    }

    #[test]
    fn publish_v5_round_trips() {
        round_trip(
            ProtocolVersion::V5,
            &[0x30, 0x08, 0, 3, b'a', b'/', b'b', 0, b'h', b'i'],
        );
        let golden = [
            0x32, 0x13, 0, 3, b'a', b'/', b'b', 0, 1, 9, 0x01, 1, 0x26, 0, 1, b'k', 0, 1, b'v',
            b'h', b'i',
        ];
        let Packet::Publish(publish, Some(properties)) = round_trip(ProtocolVersion::V5, &golden)
        else {
            panic!()
        };
        assert_eq!(&publish.topic[..], b"a/b");
        assert_eq!(&publish.payload[..], b"hi");
        assert_eq!(properties.payload_format_indicator, Some(1));
        assert_eq!(properties.user_properties, vec![("k".into(), "v".into())]);
    }

    #[test]
    fn acks_v311_round_trip() {
        for golden in [
            [0x40, 0x02, 0, 1],
            [0x50, 0x02, 0, 1],
            [0x62, 0x02, 0, 1],
            [0x70, 0x02, 0, 1],
        ] {
            round_trip(ProtocolVersion::V3_1_1, &golden);
        }
    }

    #[test]
    fn acks_v5_round_trip() {
        for golden in [
            &[0x40, 0x02, 0, 1][..],
            &[0x50, 0x02, 0, 1][..],
            &[0x62, 0x02, 0, 1][..],
            &[0x70, 0x02, 0, 1][..],
            &[0x40, 0x04, 0, 1, 0x10, 0][..],
            &[0x40, 0x08, 0, 1, 0x80, 4, 0x1F, 0, 1, b'x'][..],
        ] {
            round_trip(ProtocolVersion::V5, golden);
        }
        // Reason code without properties (remaining length 3) is accepted too.
        let mut codec = connected(ProtocolVersion::V5);
        let decoded = packet(decode_one(&mut codec, &[0x40, 0x03, 0, 1, 0x10]));
        assert_eq!(
            decoded,
            Packet::PubAck(
                PubAck {
                    pkid: 1,
                    reason: PubAckReason::NoMatchingSubscribers
                },
                None
            )
        );
    }

    #[test]
    fn subscribe_and_unsubscribe_round_trip() {
        round_trip(
            ProtocolVersion::V3_1_1,
            &[0x82, 0x08, 0, 1, 0, 3, b'a', b'/', b'b', 1],
        );
        round_trip(
            ProtocolVersion::V3_1_1,
            &[0xA2, 0x07, 0, 1, 0, 3, b'a', b'/', b'b'],
        );
        let Packet::Subscribe(subscribe, Some(properties)) = round_trip(
            ProtocolVersion::V5,
            &[0x82, 0x0B, 0, 1, 2, 0x0B, 7, 0, 3, b'a', b'/', b'#', 0x1D],
        ) else {
            panic!()
        };
        assert_eq!(properties.id, Some(7));
        assert!(subscribe.filters[0].nolocal && subscribe.filters[0].preserve_retain);
        round_trip(
            ProtocolVersion::V5,
            &[0xA2, 0x08, 0, 1, 0, 0, 3, b'a', b'/', b'b'],
        );
    }

    #[test]
    fn ping_and_disconnect() {
        for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            round_trip(version, &[0xC0, 0x00]);
            round_trip(version, &[0xE0, 0x00]);
        }
        let decoded = round_trip(ProtocolVersion::V5, &[0xE0, 0x01, 0x04]);
        assert!(matches!(
            decoded,
            Packet::Disconnect(
                Disconnect {
                    reason_code: DisconnectReasonCode::DisconnectWithWillMessage
                },
                None
            )
        ));
        let mut codec = connected(ProtocolVersion::V5);
        let decoded = packet(decode_one(&mut codec, &[0xE0, 0x02, 0x04, 0]));
        assert_eq!(encode(&mut codec, decoded), [0xE0, 0x01, 0x04]);
    }

    #[test]
    fn server_packets_v311() {
        let mut codec = connected(ProtocolVersion::V3_1_1);
        let connack = |code| {
            Packet::ConnAck(
                ConnAck {
                    session_present: false,
                    code,
                },
                None,
            )
        };
        assert_eq!(
            encode(&mut codec, connack(ConnectReturnCode::Success)),
            [0x20, 2, 0, 0]
        );
        // MQTT 5 codes are mapped to 3.1.1's.
        assert_eq!(
            encode(
                &mut codec,
                connack(ConnectReturnCode::UnsupportedProtocolVersion)
            ),
            [0x20, 2, 0, 1]
        );
        assert_eq!(
            encode(&mut codec, connack(ConnectReturnCode::Banned)),
            [0x20, 2, 0, 5]
        );
        let mut dst = BytesMut::new();
        assert!(codec
            .encode(connack(ConnectReturnCode::MalformedPacket), &mut dst)
            .is_err());
        assert!(dst.is_empty());
        let suback = Packet::SubAck(
            SubAck {
                pkid: 1,
                return_codes: vec![
                    SubscribeReasonCode::Success(QoS::AtLeastOnce),
                    SubscribeReasonCode::NotAuthorized,
                ],
            },
            None,
        );
        assert_eq!(encode(&mut codec, suback), [0x90, 4, 0, 1, 1, 0x80]);
        let unsuback = Packet::UnsubAck(
            UnsubAck {
                pkid: 1,
                reasons: vec![],
            },
            None,
        );
        assert_eq!(encode(&mut codec, unsuback), [0xB0, 2, 0, 1]);
        assert_eq!(
            encode(&mut codec, Packet::PingResp(rumqttd::protocol::PingResp)),
            [0xD0, 0]
        );
    }

    #[test]
    fn server_packets_v5() {
        let mut codec = connected(ProtocolVersion::V5);
        let connack = |code| {
            Packet::ConnAck(
                ConnAck {
                    session_present: true,
                    code,
                },
                None,
            )
        };
        assert_eq!(
            encode(&mut codec, connack(ConnectReturnCode::Success)),
            [0x20, 3, 1, 0, 0]
        );
        // 3.1.1-only codes are mapped to MQTT 5's (rumqttd's writer would panic on them).
        assert_eq!(
            encode(
                &mut codec,
                connack(ConnectReturnCode::RefusedProtocolVersion)
            ),
            [0x20, 3, 1, 0x84, 0]
        );
        let suback = Packet::SubAck(
            SubAck {
                pkid: 1,
                return_codes: vec![
                    SubscribeReasonCode::QoS1,
                    SubscribeReasonCode::NotAuthorized,
                ],
            },
            None,
        );
        assert_eq!(encode(&mut codec, suback), [0x90, 5, 0, 1, 0, 1, 0x87]);
        let unsuback = Packet::UnsubAck(
            UnsubAck {
                pkid: 1,
                reasons: vec![UnsubAckReason::Success],
            },
            None,
        );
        assert_eq!(encode(&mut codec, unsuback), [0xB0, 4, 0, 1, 0, 0]);
        let disconnect = |reason_code| Packet::Disconnect(Disconnect { reason_code }, None);
        assert_eq!(
            encode(
                &mut codec,
                disconnect(DisconnectReasonCode::ServerShuttingDown)
            ),
            [0xE0, 1, 0x8B]
        );
        assert_eq!(
            encode(
                &mut codec,
                disconnect(DisconnectReasonCode::NormalDisconnection)
            ),
            [0xE0, 0]
        );
    }

    #[test]
    fn before_connect_connack_is_written_in_311_form() {
        let mut codec = MqttCodec::new(LIMIT);
        let error = invalid(decode_one(
            &mut codec,
            &[0x10, 0x0C, 0, 4, b'M', b'Q', b'T', b'T', 6, 2, 0, 60, 0, 0],
        ));
        assert_eq!(error.reason_code(), 0x84);
        assert_eq!(codec.version(), None);
        let connack = Packet::ConnAck(
            ConnAck {
                session_present: false,
                code: ConnectReturnCode::UnsupportedProtocolVersion,
            },
            None,
        );
        assert_eq!(encode(&mut codec, connack), [0x20, 2, 0, 1]);
    }

    #[test]
    fn properties_are_dropped_for_v311() {
        let mut v5 = connected(ProtocolVersion::V5);
        let with_properties = packet(decode_one(
            &mut v5,
            &[0x40, 0x08, 0, 1, 0x80, 4, 0x1F, 0, 1, b'x'],
        ));
        let mut v311 = connected(ProtocolVersion::V3_1_1);
        assert_eq!(encode(&mut v311, with_properties), [0x40, 2, 0, 1]);
    }

    #[test]
    fn max_outgoing_refuses_without_writing() {
        let mut codec = connected(ProtocolVersion::V5);
        let mut golden = vec![0x30, 0x82, 0x01, 0, 1, b't', 0];
        golden.extend_from_slice(&[b'p'; 126]);
        let publish = packet(decode_one(&mut codec, &golden));
        assert_eq!(codec.encoded_len(&publish), Some(golden.len()));
        assert!(codec.fits_outgoing(&publish));
        codec.set_max_outgoing(Some(golden.len() - 1));
        assert!(!codec.fits_outgoing(&publish));
        let mut dst = BytesMut::from(&b"xy"[..]);
        let error = codec.encode(publish.clone(), &mut dst).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
        assert_eq!(
            error.get_ref().and_then(|e| e.downcast_ref::<CodecError>()),
            Some(&CodecError::PacketTooLarge {
                size: golden.len(),
                limit: golden.len() - 1
            })
        );
        assert_eq!(&dst[..], b"xy");
        codec.set_max_outgoing(Some(golden.len()));
        assert_eq!(encode(&mut codec, publish), golden);
    }

    #[test]
    fn incremental_byte_by_byte() {
        let stream: Vec<u8> = [
            CONNECT_V5,
            &[
                0x32, 0x13, 0, 3, b'a', b'/', b'b', 0, 1, 9, 0x01, 1, 0x26, 0, 1, b'k', 0, 1, b'v',
                b'h', b'i',
            ],
            &[0x82, 0x0B, 0, 1, 2, 0x0B, 7, 0, 3, b'a', b'/', b'#', 0x1D],
            &[0xC0, 0x00],
            &[0xE0, 0x01, 0x04],
        ]
        .concat();
        let mut whole = MqttCodec::new(LIMIT);
        let expected: Vec<Packet> = decode_all(&mut whole, &stream)
            .into_iter()
            .map(packet)
            .collect();
        assert_eq!(expected.len(), 5);

        let mut codec = MqttCodec::new(LIMIT);
        let mut src = BytesMut::new();
        let mut got = Vec::new();
        for byte in stream {
            src.extend_from_slice(&[byte]);
            while let Some(item) = codec.decode(&mut src).unwrap() {
                got.push(packet(item));
            }
        }
        assert_eq!(got, expected);
        assert!(src.is_empty());
    }
}

mod codec_invalid {
    use super::*;

    /// Expects `bytes` after a CONNECT of `version` to be refused with `reason`, then the decoder
    /// to stay poisoned.
    fn refused(version: ProtocolVersion, bytes: &[u8], reason: u8) -> CodecError {
        let mut codec = connected(version);
        let error = invalid(decode_one(&mut codec, bytes));
        assert_eq!(error.reason_code(), reason, "{bytes:02x?}: {error}");
        assert_poisoned(&mut codec);
        error
    }

    /// Like [`refused`], for a CONNECT on a fresh codec.
    fn connect_refused(bytes: &[u8], reason: u8) -> CodecError {
        let mut codec = MqttCodec::new(LIMIT);
        let error = invalid(decode_one(&mut codec, bytes));
        assert_eq!(error.reason_code(), reason, "{bytes:02x?}: {error}");
        assert_poisoned(&mut codec);
        error
    }

    fn assert_poisoned(codec: &mut MqttCodec) {
        assert!(codec.is_poisoned());
        let mut src = BytesMut::from(&[0xC0, 0x00, 0xC0, 0x00][..]);
        assert!(codec.decode(&mut src).unwrap().is_none());
        assert!(src.is_empty(), "a poisoned decoder discards its input");
        assert!(codec.decode_eof(&mut src).unwrap().is_none());
    }

    /// A v3.1.1 CONNECT with `flags` and `tail` after the client id "c".
    fn connect_v311(flags: u8, tail: &[u8]) -> Vec<u8> {
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, flags, 0, 60, 0, 1, b'c'];
        body.extend_from_slice(tail);
        let mut frame = vec![0x10, body.len() as u8];
        frame.extend_from_slice(&body);
        frame
    }

    /// A v5 CONNECT with `properties` (block without its length) and `tail` after client id "c".
    fn connect_v5(flags: u8, properties: &[u8], tail: &[u8]) -> Vec<u8> {
        let mut body = vec![
            0,
            4,
            b'M',
            b'Q',
            b'T',
            b'T',
            5,
            flags,
            0,
            60,
            properties.len() as u8,
        ];
        body.extend_from_slice(properties);
        body.extend_from_slice(&[0, 1, b'c']);
        body.extend_from_slice(tail);
        let mut frame = vec![0x10, body.len() as u8];
        frame.extend_from_slice(&body);
        frame
    }

    #[test]
    fn reserved_packet_types() {
        refused(ProtocolVersion::V3_1_1, &[0x00, 0x00], 0x81);
        refused(ProtocolVersion::V3_1_1, &[0xF0, 0x00], 0x81);
        // MQTT 5 AUTH without an authentication method.
        refused(ProtocolVersion::V5, &[0xF0, 0x00], 0x82);
        connect_refused(&[0x00, 0x00], 0x81);
    }

    #[test]
    fn fixed_header_flags() {
        for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            refused(version, &[0x60, 0x02, 0, 1], 0x81); // PUBREL flags 0
            refused(
                version,
                &[0x80, 0x08, 0, 1, 0, 3, b'a', b'/', b'b', 1],
                0x81,
            );
            refused(version, &[0xA0, 0x07, 0, 1, 0, 3, b'a', b'/', b'b'], 0x81);
            refused(version, &[0x41, 0x02, 0, 1], 0x81);
            refused(version, &[0xC1, 0x00], 0x81);
            refused(version, &[0xE2, 0x00], 0x81);
            refused(version, &[0x11, 0x00], 0x81);
            refused(version, &[0x36, 0x05, 0, 1, b't', 0, 1], 0x81); // QoS 3
            refused(version, &[0x38, 0x03, 0, 1, b't'], 0x81); // QoS 0 + DUP
        }
    }

    #[test]
    fn server_only_packets() {
        for bytes in [
            &[0x20, 0x02, 0, 0][..],
            &[0x90, 0x03, 0, 1, 0][..],
            &[0xB0, 0x02, 0, 1][..],
            &[0xD0, 0x00][..],
        ] {
            refused(ProtocolVersion::V3_1_1, bytes, 0x82);
            refused(ProtocolVersion::V5, bytes, 0x82);
        }
    }

    #[test]
    fn first_packet_must_be_connect() {
        connect_refused(&[0xC0, 0x00], 0x82);
        connect_refused(&[0x30, 0x03, 0, 1, b't'], 0x82);
    }

    #[test]
    fn unsupported_protocol_versions() {
        let error = connect_refused(
            &[0x10, 0x0C, 0, 4, b'M', b'Q', b'T', b'T', 3, 2, 0, 60, 0, 0],
            0x84,
        );
        assert_eq!(
            error,
            CodecError::UnsupportedProtocolVersion {
                name: "MQTT".into(),
                level: 3
            }
        );
        connect_refused(
            &[
                0x10, 0x0E, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 4, 2, 0, 60, 0, 0,
            ],
            0x84,
        );
    }

    #[test]
    fn too_large_connect_still_tells_the_version() {
        // MQTT 5: the version is read from the first body bytes, so the refusal can be a v5
        // CONNACK 0x95; the codec waits for those bytes (at most 9), not for the body.
        let mut codec = MqttCodec::new(LIMIT);
        let mut src = BytesMut::from(&[0x10, 0xFF, 0xFF, 0xFF, 0x7F, 0, 4][..]);
        assert!(codec.decode(&mut src).unwrap().is_none());
        src.extend_from_slice(b"MQTT\x05");
        let error = invalid(codec.decode(&mut src).unwrap().unwrap());
        assert_eq!(error.reason_code(), 0x95);
        assert_eq!(codec.version(), Some(ProtocolVersion::V5));
        // An unsupported name is refused at once, version unknown.
        let mut codec = MqttCodec::new(LIMIT);
        let error = invalid(decode_one(
            &mut codec,
            &[0x10, 0xFF, 0xFF, 0xFF, 0x7F, 0, 9],
        ));
        assert_eq!(error.reason_code(), 0x95);
        assert_eq!(codec.version(), None);
    }

    #[test]
    fn level_5_under_another_name_is_answered_in_v5_form() {
        let mut codec = MqttCodec::new(LIMIT);
        let error = invalid(decode_one(
            &mut codec,
            &[
                0x10, 0x0D, 0, 4, b'M', b'Q', b'T', b'X', 5, 2, 0, 60, 0, 0, 0,
            ],
        ));
        assert_eq!(error.reason_code(), 0x84);
        assert_eq!(codec.version(), Some(ProtocolVersion::V5));
    }

    #[test]
    fn remaining_length_over_four_bytes() {
        let error = refused(
            ProtocolVersion::V3_1_1,
            &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
            0x81,
        );
        assert_eq!(
            error,
            CodecError::Malformed("remaining length over 4 bytes".into())
        );
    }

    #[test]
    fn huge_length_refused_from_header_alone() {
        let mut codec = connected(ProtocolVersion::V3_1_1);
        let mut src = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]);
        let error = invalid(codec.decode(&mut src).unwrap().unwrap());
        assert_eq!(
            error,
            CodecError::PacketTooLarge {
                size: 268_435_455 + 5,
                limit: LIMIT
            }
        );
        assert_eq!(error.reason_code(), 0x95);
        assert_poisoned(&mut codec);
        // The limit applies to the whole packet and can change after authentication.
        let mut codec = connected(ProtocolVersion::V5);
        codec.set_max_incoming(10);
        packet(decode_one(
            &mut codec,
            &[0x30, 0x08, 0, 1, b't', 0, 1, 2, 3, 4],
        ));
        let error = invalid(decode_one(&mut codec, &[0x30, 0x09]));
        assert_eq!(
            error,
            CodecError::PacketTooLarge {
                size: 11,
                limit: 10
            }
        );
    }

    #[test]
    fn overrun_and_trailing_bytes() {
        refused(ProtocolVersion::V3_1_1, &[0x30, 0x03, 0, 5, b'a'], 0x81);
        refused(ProtocolVersion::V3_1_1, &[0x32, 0x04, 0, 1, b't', 0], 0x81);
        refused(ProtocolVersion::V3_1_1, &[0x40, 0x03, 0, 1, 0], 0x81);
        refused(ProtocolVersion::V3_1_1, &[0x62, 0x04, 0, 1, 0, 0], 0x81);
        refused(ProtocolVersion::V3_1_1, &[0xC0, 0x01, 0], 0x81);
        refused(ProtocolVersion::V3_1_1, &[0xE0, 0x01, 0], 0x81);
        refused(ProtocolVersion::V5, &[0xC0, 0x01, 0], 0x81);
        refused(
            ProtocolVersion::V3_1_1,
            &[0x82, 0x09, 0, 1, 0, 3, b'a', b'/', b'b', 1, 7],
            0x81,
        );
        refused(ProtocolVersion::V5, &[0x40, 0x05, 0, 1, 0, 0, 9], 0x81);
        refused(ProtocolVersion::V5, &[0xE0, 0x03, 0, 0, 9], 0x81);
        connect_refused(&connect_v311(0x02, &[0]), 0x81);
        // Property block longer than the packet, and a property overrunning its block.
        refused(
            ProtocolVersion::V5,
            &[0x30, 0x06, 0, 1, b't', 5, 0x01, 1],
            0x81,
        );
        refused(
            ProtocolVersion::V5,
            &[0x30, 0x09, 0, 1, b't', 2, 0x02, 0, 0, 0, 0],
            0x81,
        );
        // Unknown property identifier.
        refused(
            ProtocolVersion::V5,
            &[0x30, 0x06, 0, 1, b't', 2, 0x7E, 0],
            0x81,
        );
    }

    #[test]
    fn strings_utf8_without_nul() {
        let bad = [
            &[0, 2, 0xC3, 0x28][..],
            &[0, 2, b'a', 0][..],
            &[0, 3, 0xED, 0xA0, 0x80][..],
        ];
        for string in bad {
            // Topic name.
            let mut publish = vec![0x30, string.len() as u8];
            publish.extend_from_slice(string);
            refused(ProtocolVersion::V3_1_1, &publish, 0x81);
            // Topic filters.
            let mut subscribe = vec![0x82, string.len() as u8 + 3, 0, 1];
            subscribe.extend_from_slice(string);
            subscribe.push(0);
            refused(ProtocolVersion::V3_1_1, &subscribe, 0x81);
            let mut unsubscribe = vec![0xA2, string.len() as u8 + 2, 0, 1];
            unsubscribe.extend_from_slice(string);
            refused(ProtocolVersion::V3_1_1, &unsubscribe, 0x81);
            // Client id.
            let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60];
            body.extend_from_slice(string);
            let mut connect = vec![0x10, body.len() as u8];
            connect.extend_from_slice(&body);
            connect_refused(&connect, 0x81);
            // User name.
            connect_refused(&connect_v311(0x82, string), 0x81);
            // Will topic.
            let mut will = string.to_vec();
            will.extend_from_slice(&[0, 0]);
            connect_refused(&connect_v311(0x06, &will), 0x81);
            // MQTT 5 string property (Content Type) and user property value.
            let mut publish = vec![0x30, 0, 0, 1, b't', string.len() as u8 + 1, 0x03];
            publish.extend_from_slice(string);
            publish[1] = publish.len() as u8 - 2;
            refused(ProtocolVersion::V5, &publish, 0x81);
            let mut properties = vec![0x26, 0, 1, b'k'];
            properties.extend_from_slice(string);
            connect_refused(&connect_v5(0x02, &properties, &[]), 0x81);
        }
    }

    #[test]
    fn properties_duplicated_or_misplaced() {
        // Payload Format Indicator twice in PUBLISH.
        refused(
            ProtocolVersion::V5,
            &[0x30, 0x08, 0, 1, b't', 4, 1, 0, 1, 1],
            0x82,
        );
        // Receive Maximum in PUBLISH; Subscription Identifier in a client's PUBLISH.
        refused(
            ProtocolVersion::V5,
            &[0x30, 0x07, 0, 1, b't', 3, 0x21, 0, 1],
            0x82,
        );
        refused(
            ProtocolVersion::V5,
            &[0x30, 0x06, 0, 1, b't', 2, 0x0B, 1],
            0x82,
        );
        // Session Expiry Interval twice in CONNECT; Topic Alias in CONNECT; Will Delay in CONNECT.
        connect_refused(
            &connect_v5(2, &[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1], &[]),
            0x82,
        );
        connect_refused(&connect_v5(2, &[0x23, 0, 1], &[]), 0x82);
        connect_refused(&connect_v5(2, &[0x18, 0, 0, 0, 1], &[]), 0x82);
        // Reason String in SUBSCRIBE; Subscription Identifier in UNSUBSCRIBE.
        refused(
            ProtocolVersion::V5,
            &[0x82, 0x0B, 0, 1, 4, 0x1F, 0, 1, b'x', 0, 1, b'a', 0],
            0x82,
        );
        refused(
            ProtocolVersion::V5,
            &[0xA2, 0x08, 0, 1, 2, 0x0B, 1, 0, 1, b'a'],
            0x82,
        );
        // Topic Alias 0 passes the codec: the session refuses it with DISCONNECT 0x94.
        let mut codec = connected(ProtocolVersion::V5);
        packet(decode_one(
            &mut codec,
            &[0x30, 0x07, 0, 1, b't', 3, 0x23, 0, 0],
        ));
    }

    #[test]
    fn connect_flags() {
        connect_refused(&connect_v311(0x03, &[]), 0x81); // reserved bit
        connect_refused(&connect_v311(0x1E, &[0, 1, b'w', 0, 0]), 0x81); // will QoS 3
        connect_refused(&connect_v311(0x0A, &[]), 0x81); // will QoS without will
        connect_refused(&connect_v311(0x22, &[]), 0x81); // will retain without will
        connect_refused(&connect_v311(0x42, &[0, 2, b'p', b'w']), 0x81); // password, no user
        connect_refused(&connect_v5(0x03, &[], &[]), 0x81);
        // Flags promise a user name the packet does not hold.
        connect_refused(&connect_v311(0x82, &[]), 0x81);
        // MQTT 5 allows a password without a user name.
        let mut codec = MqttCodec::new(LIMIT);
        packet(decode_one(
            &mut codec,
            &connect_v5(0x42, &[], &[0, 2, b'p', b'w']),
        ));
    }

    #[test]
    fn connect_v5_limits_of_zero() {
        connect_refused(&connect_v5(2, &[0x21, 0, 0], &[]), 0x82); // Receive Maximum 0
        connect_refused(&connect_v5(2, &[0x27, 0, 0, 0, 0], &[]), 0x82); // Maximum Packet Size 0
        let mut codec = MqttCodec::new(LIMIT);
        packet(decode_one(
            &mut codec,
            &connect_v5(2, &[0x21, 0, 1, 0x27, 0, 0, 1, 0], &[]),
        ));
    }

    #[test]
    fn malformed_v5_connect_still_tells_the_version() {
        let mut codec = MqttCodec::new(LIMIT);
        let error = invalid(decode_one(&mut codec, &connect_v5(2, &[0x21, 0, 0], &[])));
        assert_eq!(error.reason_code(), 0x82);
        assert_eq!(codec.version(), Some(ProtocolVersion::V5));
    }

    #[test]
    fn empty_subscribe_and_unsubscribe() {
        refused(ProtocolVersion::V3_1_1, &[0x82, 0x02, 0, 1], 0x82);
        refused(ProtocolVersion::V3_1_1, &[0xA2, 0x02, 0, 1], 0x82);
        refused(ProtocolVersion::V5, &[0x82, 0x03, 0, 1, 0], 0x82);
        refused(ProtocolVersion::V5, &[0xA2, 0x03, 0, 1, 0], 0x82);
    }

    #[test]
    fn subscription_options() {
        refused(
            ProtocolVersion::V3_1_1,
            &[0x82, 0x06, 0, 1, 0, 1, b'a', 3],
            0x81,
        );
        refused(
            ProtocolVersion::V3_1_1,
            &[0x82, 0x06, 0, 1, 0, 1, b'a', 0x04],
            0x81,
        );
        refused(
            ProtocolVersion::V5,
            &[0x82, 0x07, 0, 1, 0, 0, 1, b'a', 3],
            0x82,
        );
        refused(
            ProtocolVersion::V5,
            &[0x82, 0x07, 0, 1, 0, 0, 1, b'a', 0x30],
            0x82,
        );
        refused(
            ProtocolVersion::V5,
            &[0x82, 0x07, 0, 1, 0, 0, 1, b'a', 0x40],
            0x81,
        );
    }

    #[test]
    fn packet_identifier_zero() {
        refused(
            ProtocolVersion::V3_1_1,
            &[0x32, 0x05, 0, 1, b't', 0, 0],
            0x82,
        );
        refused(
            ProtocolVersion::V3_1_1,
            &[0x82, 0x06, 0, 0, 0, 1, b'a', 0],
            0x82,
        );
        refused(ProtocolVersion::V3_1_1, &[0x40, 0x02, 0, 0], 0x82);
    }

    #[test]
    fn unknown_reason_code_is_malformed() {
        refused(ProtocolVersion::V5, &[0x40, 0x03, 0, 1, 0x05], 0x81);
        refused(ProtocolVersion::V5, &[0xE0, 0x01, 0x05], 0x81);
    }
}

mod codec_fuzz {
    use super::*;

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, bound: usize) -> usize {
            (self.next() % bound as u64) as usize
        }
    }

    const SEEDS: &[&[u8]] = &[
        &[0x30, 0x07, 0, 3, b'a', b'/', b'b', b'h', b'i'],
        &[
            0x32, 0x13, 0, 3, b'a', b'/', b'b', 0, 1, 9, 0x01, 1, 0x26, 0, 1, b'k', 0, 1, b'v',
            b'h', b'i',
        ],
        &[0x82, 0x0B, 0, 1, 2, 0x0B, 7, 0, 3, b'a', b'/', b'#', 0x1D],
        &[0xA2, 0x08, 0, 1, 0, 0, 3, b'a', b'/', b'b'],
        &[0x40, 0x08, 0, 1, 0x80, 4, 0x1F, 0, 1, b'x'],
        &[0xE0, 0x01, 0x04],
        CONNECT_V5,
        CONNECT_V311,
        CONNECT_V31,
    ];

    /// Random and mutated input never panics, and the buffer never holds more than one
    /// incomplete packet within the limit.
    #[test]
    fn random_input_never_panics_or_overfills() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut accepted = 0usize;
        let mut refused = 0usize;
        for _ in 0..10_000 {
            let limit = 16 + rng.below(512);
            let mut codec = MqttCodec::new(limit);
            let mut src = BytesMut::new();
            let mut input = Vec::new();
            match rng.below(3) {
                0 => {}
                1 => input.extend_from_slice(CONNECT_V311),
                _ => input.extend_from_slice(CONNECT_V5),
            }
            for _ in 0..rng.below(6) {
                if rng.below(2) == 0 {
                    let len = rng.below(64);
                    input.extend((0..len).map(|_| rng.next() as u8));
                } else {
                    let mut seed = SEEDS[rng.below(SEEDS.len())].to_vec();
                    for _ in 0..rng.below(4) {
                        let at = rng.below(seed.len());
                        seed[at] = rng.next() as u8;
                    }
                    seed.truncate(seed.len() - rng.below(3).min(seed.len()));
                    input.extend_from_slice(&seed);
                }
            }
            let mut rest = &input[..];
            while !rest.is_empty() {
                let take = 1 + rng.below(rest.len().min(40));
                src.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                while let Some(item) = codec.decode(&mut src).unwrap() {
                    match item {
                        Inbound::Packet(_) => accepted += 1,
                        Inbound::Invalid(error) => {
                            refused += 1;
                            assert!([0x81, 0x82, 0x84, 0x95].contains(&error.reason_code()));
                        }
                    }
                }
                assert!(
                    src.len() <= limit + 5,
                    "buffer {} over limit {limit}",
                    src.len()
                );
                assert!(
                    src.len() < limit.max(5),
                    "buffer {} over limit {limit}",
                    src.len()
                );
            }
            let _ = codec.decode_eof(&mut src);
        }
        // The loop exercised both paths.
        assert!(
            accepted > 1_000 && refused > 1_000,
            "{accepted} accepted, {refused} refused"
        );
    }

    /// Whatever the decoder accepts, the encoder writes without panicking, in a consistent frame.
    #[test]
    fn accepted_packets_encode() {
        let mut rng = XorShift(42);
        for _ in 0..5_000 {
            let version = if rng.below(2) == 0 {
                ProtocolVersion::V3_1_1
            } else {
                ProtocolVersion::V5
            };
            let mut codec = connected(version);
            let mut seed = SEEDS[rng.below(6)].to_vec();
            let at = rng.below(seed.len());
            seed[at] = rng.next() as u8;
            let mut src = BytesMut::from(&seed[..]);
            if let Some(Inbound::Packet(decoded)) = codec.decode(&mut src).unwrap() {
                let mut dst = BytesMut::new();
                if codec.encode(decoded.clone(), &mut dst).is_ok() {
                    assert_frame_consistent(&dst);
                    assert_eq!(codec.encoded_len(&decoded), Some(dst.len()));
                }
            }
        }
    }
}
