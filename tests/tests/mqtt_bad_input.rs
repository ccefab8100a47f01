//! MQTT bad input (issue 3, "Bad input"): hand-written packets over raw sockets against an
//! in-process gateway. Each case asserts the exact answer (MQTT 5 CONNACK or DISCONNECT reason
//! code; a plain close where 3.1.1 has no code) and then that another client still completes a
//! publish/subscribe round trip on the same gateway.

#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway;
#[allow(dead_code)]
#[path = "support/mqtt.rs"]
mod mqtt;

use std::net::SocketAddr;

use gateway::start;
use mqgate::Limits;
use mqtt::*;

/// Connects a 5.0 client, sends `bad`, expects DISCONNECT `code` and the close.
async fn v5_disconnects(addr: SocketAddr, bad: &[u8], code: u8) {
    let (mut raw, _) = Raw::v5(addr, &unique("bad-v5")).await;
    raw.send(bad).await;
    assert_eq!(
        raw.disconnect_code().await,
        code,
        "DISCONNECT reason code for {bad:02x?}"
    );
}

/// Connects a 3.1.1 client, sends `bad`, expects a plain close.
async fn v311_closes(addr: SocketAddr, bad: &[u8]) {
    let mut raw = Raw::v311(addr, &unique("bad-v311")).await;
    raw.send(bad).await;
    raw.closed().await;
}

#[tokio::test]
async fn remaining_length_over_four_bytes_is_malformed() {
    let (_gateway, addr) = start(|_| {}).await;
    let bad = [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F];
    v5_disconnects(addr, &bad, 0x81).await;
    v311_closes(addr, &bad).await;
    // As the very first packet: the version is unknown, so a plain close.
    let mut raw = Raw::open(addr).await;
    raw.send(&[0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]).await;
    raw.closed().await;
    assert_other_client_works(addr).await;
}

#[tokio::test]
async fn first_packet_not_connect_is_closed() {
    let (_gateway, addr) = start(|_| {}).await;
    for first in [
        vec![0xC0, 0x00],                  // PINGREQ
        publish(0, b"a/b", 0, None, b"x"), // PUBLISH
        subscribe(1, "a/#", 0, false),     // SUBSCRIBE
        vec![0xE0, 0x00],                  // DISCONNECT
    ] {
        let mut raw = Raw::open(addr).await;
        raw.send(&first).await;
        raw.closed().await;
    }
    assert_other_client_works(addr).await;
}

#[tokio::test]
async fn second_connect_is_a_protocol_error() {
    let (_gateway, addr) = start(|_| {}).await;
    let id = unique("twice");
    let (mut raw, _) = Raw::v5(addr, &id).await;
    raw.send(&connect_v5(id.as_bytes(), &[])).await;
    assert_eq!(raw.disconnect_code().await, 0x82);
    let id = unique("twice-v311");
    let mut raw = Raw::v311(addr, &id).await;
    raw.send(&connect_v311(id.as_bytes(), true)).await;
    raw.closed().await;
    assert_other_client_works(addr).await;
}

#[tokio::test]
async fn reserved_packet_types() {
    let (_gateway, addr) = start(|_| {}).await;
    // Type 0 is reserved in every version: malformed.
    v5_disconnects(addr, &[0x00, 0x00], 0x81).await;
    v311_closes(addr, &[0x00, 0x00]).await;
    // Type 15 is AUTH in MQTT 5; we accept no authentication method, so AUTH is a Protocol Error
    // (MQTT 5.0 section 4.12). Before 5.0 it is reserved.
    v5_disconnects(addr, &[0xF0, 0x00], 0x82).await;
    v311_closes(addr, &[0xF0, 0x00]).await;
    // Before CONNECT.
    for first in [[0x00, 0x00], [0xF0, 0x00]] {
        let mut raw = Raw::open(addr).await;
        raw.send(&first).await;
        raw.closed().await;
    }
    assert_other_client_works(addr).await;
}

#[tokio::test]
async fn bad_fixed_header_flags_are_malformed() {
    let (_gateway, addr) = start(|_| {}).await;
    let cases: [&[u8]; 5] = [
        &[0x80, 0x07, 0, 1, 0, 0, 1, b'a', 0], // SUBSCRIBE with flags 0000 (must be 0010)
        &[0xA0, 0x06, 0, 1, 0, 0, 1, b'a'],    // UNSUBSCRIBE with flags 0000
        &[0x36, 0x05, 0, 1, b't', 0, 1],       // PUBLISH QoS 3
        &[0x38, 0x04, 0, 1, b't', 0],          // PUBLISH QoS 0 with DUP
        &[0xC1, 0x00],                         // PINGREQ with a flag
    ];
    for bad in cases {
        v5_disconnects(addr, bad, 0x81).await;
    }
    // 3.1.1 bodies (no property length) for the same faults.
    let cases: [&[u8]; 4] = [
        &[0x80, 0x06, 0, 1, 0, 1, b'a', 0],
        &[0x36, 0x05, 0, 1, b't', 0, 1],
        &[0x38, 0x03, 0, 1, b't'],
        &[0xC1, 0x00],
    ];
    for bad in cases {
        v311_closes(addr, bad).await;
    }
    // A CONNECT with its reserved flag bit set, in MQTT 5: CONNACK 0x81.
    let mut raw = Raw::open(addr).await;
    raw.send(&connect(b"MQTT", 5, 0x03, 30, Some(&[]), &string(b"c")))
        .await;
    raw.refused_v5(0x81).await;
    assert_other_client_works(addr).await;
}

/// A topic or client id that is not valid UTF-8 (0xC3 0x28), and one holding U+0000.
const BAD_STRINGS: [&[u8]; 2] = [&[b'a', 0xC3, 0x28], b"a\0b"];

#[tokio::test]
async fn invalid_utf8_and_nul_in_a_topic_are_malformed() {
    let (_gateway, addr) = start(|_| {}).await;
    for topic in BAD_STRINGS {
        v5_disconnects(addr, &publish(0, topic, 0, Some(&[]), b"x"), 0x81).await;
        v5_disconnects(addr, &publish(1, topic, 1, Some(&[]), b"x"), 0x81).await;
        v311_closes(addr, &publish(0, topic, 0, None, b"x")).await;
        // In a SUBSCRIBE filter too.
        let mut body = vec![0, 1, 0];
        body.extend(string(topic));
        body.push(0);
        v5_disconnects(addr, &frame(0x82, &body), 0x81).await;
    }
    assert_other_client_works(addr).await;
}

#[tokio::test]
async fn invalid_utf8_and_nul_in_the_client_id_are_malformed() {
    let (_gateway, addr) = start(|_| {}).await;
    for id in BAD_STRINGS {
        let mut raw = Raw::open(addr).await;
        raw.send(&connect_v5(id, &[])).await;
        raw.refused_v5(0x81).await;
        // 3.1.1 has no CONNACK code for a malformed packet: close ([MQTT-1.5.3-1]).
        let mut raw = Raw::open(addr).await;
        raw.send(&connect_v311(id, true)).await;
        raw.closed().await;
    }
    assert_other_client_works(addr).await;
}

#[tokio::test]
async fn wildcards_in_a_publish_topic_are_topic_name_invalid() {
    let (_gateway, addr) = start(|_| {}).await;
    // [MQTT-3.3.2-2]: no wildcards in a Topic Name; MQTT 5 names the fault 0x90.
    for topic in [&b"a/+/c"[..], b"a/#", b"#", b"+", b"a+b"] {
        v5_disconnects(addr, &publish(0, topic, 0, Some(&[]), b"x"), 0x90).await;
        v5_disconnects(addr, &publish(1, topic, 7, Some(&[]), b"x"), 0x90).await;
        v311_closes(addr, &publish(1, topic, 7, None, b"x")).await;
    }
    assert_other_client_works(addr).await;
}

#[tokio::test]
async fn empty_topic_without_an_alias_is_a_protocol_error() {
    let (_gateway, addr) = start(|_| {}).await;
    // MQTT 5.0 section 3.3.2.1: "It is a Protocol Error if the Topic Name is zero length and
    // there is no Topic Alias." So 0x82, not 0x90: the name is not invalid, it is missing.
    v5_disconnects(addr, &publish(0, b"", 0, Some(&[]), b"x"), 0x82).await;
    v5_disconnects(addr, &publish(1, b"", 3, Some(&[]), b"x"), 0x82).await;
    // 3.1.1 requires at least one character ([MQTT-4.7.3-1]): close.
    v311_closes(addr, &publish(0, b"", 0, None, b"x")).await;
    assert_other_client_works(addr).await;
}

#[tokio::test]
async fn zero_and_out_of_range_topic_aliases_are_topic_alias_invalid() {
    let (_gateway, addr) = start(|_| {}).await;
    // Alias 0 is never valid ([MQTT-3.3.2-8]); above the server's Topic Alias Maximum is
    // 0x94 by definition (MQTT 5.0 3.3.2.3.4). Both are 0x94, as in Mosquitto and EMQX.
    v5_disconnects(
        addr,
        &publish(0, b"a/b", 0, Some(&[0x23, 0, 0]), b"x"),
        0x94,
    )
    .await;
    v5_disconnects(addr, &publish(0, b"", 0, Some(&[0x23, 0, 0]), b"x"), 0x94).await;
    let (mut raw, ack) = Raw::v5(addr, &unique("alias-max")).await;
    let max = ack.u16_property(0x22).unwrap_or(0);
    let over = max
        .checked_add(1)
        .expect("a Topic Alias Maximum below 65535");
    let [high, low] = over.to_be_bytes();
    raw.send(&publish(0, b"a/b", 0, Some(&[0x23, high, low]), b"x"))
        .await;
    assert_eq!(raw.disconnect_code().await, 0x94);
    assert_other_client_works(addr).await;
}

#[tokio::test]
async fn unknown_topic_alias_is_a_protocol_error() {
    // An empty topic with an alias that is in range but was never mapped on this connection.
    // MQTT 5.0 defines 0x94 only for an alias above the maximum (3.3.2.3.4 and the 0x94 text);
    // a zero-length topic that names no topic is the Protocol Error of 3.3.2.1. Mosquitto,
    // EMQX and HiveMQ all answer it with 0x82, so the gateway does.
    let (_gateway, addr) = start(|_| {}).await;
    v5_disconnects(addr, &publish(0, b"", 0, Some(&[0x23, 0, 1]), b"x"), 0x82).await;
    // A mapping made on one connection is not known on another.
    let (mut first, _) = Raw::v5(addr, &unique("alias-set")).await;
    first
        .send(&publish(1, b"alias/t", 1, Some(&[0x23, 0, 2]), b"x"))
        .await;
    first.packet_of(PUBACK).await;
    v5_disconnects(addr, &publish(1, b"", 1, Some(&[0x23, 0, 2]), b"x"), 0x82).await;
    // And on the connection that set it, the alias works.
    first.send(&subscribe(2, "alias/t", 0, true)).await;
    first.packet_of(SUBACK).await;
    first
        .send(&publish(0, b"", 0, Some(&[0x23, 0, 2]), b"via alias"))
        .await;
    let (byte1, body) = first.packet_of(PUBLISH).await;
    assert_eq!(
        parse_publish(byte1, &body, true),
        ("alias/t".to_owned(), b"via alias".to_vec())
    );
    assert_other_client_works(addr).await;
}

#[tokio::test]
async fn duplicate_and_misplaced_v5_properties_are_protocol_errors() {
    let (_gateway, addr) = start(|_| {}).await;
    for block in [
        &[0x01, 0, 0x01, 1][..],                   // Payload Format Indicator twice
        &[0x02, 0, 0, 0, 9, 0x02, 0, 0, 0, 9][..], // Message Expiry Interval twice
        &[0x21, 0, 1][..],                         // Receive Maximum in PUBLISH
        &[0x0B, 1][..],                            // Subscription Identifier from a client
        &[0x24, 1][..],                            // Maximum QoS (server only)
    ] {
        v5_disconnects(addr, &publish(0, b"a/b", 0, Some(block), b"x"), 0x82).await;
    }
    // In CONNECT: CONNACK 0x82 (MQTT 5.0 3.2.2.2), then close.
    for block in [
        &[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1][..], // Session Expiry Interval twice
        &[0x21, 0, 5, 0x21, 0, 5][..],             // Receive Maximum twice
        &[0x23, 0, 1][..],                         // Topic Alias in CONNECT
        &[0x1F, 0, 1, b'x'][..],                   // Reason String in CONNECT
    ] {
        let mut raw = Raw::open(addr).await;
        raw.send(&connect_v5(unique("props").as_bytes(), block))
            .await;
        raw.refused_v5(0x82).await;
    }
    // In SUBSCRIBE: Reason String.
    let mut body = vec![0, 1];
    body.extend(props(&[0x1F, 0, 1, b'x']));
    body.extend(string(b"a/b"));
    body.push(0);
    v5_disconnects(addr, &frame(0x82, &body), 0x82).await;
    assert_other_client_works(addr).await;
}

#[tokio::test]
async fn receive_maximum_zero_in_connect_is_refused_with_connack_0x82() {
    let (_gateway, addr) = start(|_| {}).await;
    let mut raw = Raw::open(addr).await;
    raw.send(&connect_v5(unique("rm0").as_bytes(), &[0x21, 0, 0]))
        .await;
    raw.refused_v5(0x82).await;
    // Maximum Packet Size 0 likewise (MQTT 5.0 3.1.2.11.4).
    let mut raw = Raw::open(addr).await;
    raw.send(&connect_v5(unique("mps0").as_bytes(), &[0x27, 0, 0, 0, 0]))
        .await;
    raw.refused_v5(0x82).await;
    assert_other_client_works(addr).await;
}

/// The largest packet `build(n)` makes that is at most `total` bytes; it must be exactly that.
fn sized(total: usize, build: impl Fn(usize) -> Vec<u8>) -> Vec<u8> {
    let mut pad = total;
    loop {
        let packet = build(pad);
        if packet.len() <= total {
            assert_eq!(packet.len(), total, "no packet of exactly {total} bytes");
            return packet;
        }
        pad -= 1;
    }
}

/// A CONNECT of exactly `total` bytes at protocol `level` (4 or 5): MQTT 5 pads with a user
/// property, 3.1.1 with a will payload.
fn connect_of_size(level: u8, total: usize) -> Vec<u8> {
    let id = unique("size");
    sized(total, |pad| {
        let filler = vec![b'x'; pad.min(65_535)];
        if level == 5 {
            let mut block = vec![0x26];
            block.extend(string(b"k"));
            block.extend(string(&filler));
            connect_v5(id.as_bytes(), &block)
        } else {
            let mut payload = string(id.as_bytes());
            payload.extend(string(b"will/t"));
            payload.extend(string(&filler));
            connect(b"MQTT", 4, 0x06, 30, None, &payload)
        }
    })
}

/// A QoS 1 PUBLISH of exactly `total` bytes.
fn publish_of_size(total: usize, v5: bool) -> Vec<u8> {
    sized(total, |pad| {
        publish(1, b"big/t", 1, v5.then_some(&[][..]), &vec![b'x'; pad])
    })
}

#[tokio::test]
async fn connect_over_64_kib_before_authentication_is_refused() {
    let (_gateway, addr) = start(|_| {}).await;
    let total = 64 * 1024 + 1;
    // Only the first KiB is sent: the server must refuse from the header, and bytes it never
    // reads would turn its close into a reset that can overtake its answer.
    // MQTT 5: the version is in the first bytes, so CONNACK 0x95 Packet Too Large.
    let mut raw = Raw::open(addr).await;
    raw.send(&connect_of_size(5, total)[..1024]).await;
    raw.refused_v5(0x95).await;
    // 3.1.1 has no code for it: close.
    let mut raw = Raw::open(addr).await;
    raw.send(&connect_of_size(4, total)[..1024]).await;
    raw.closed().await;
    // Exactly 64 KiB is accepted.
    let mut raw = Raw::open(addr).await;
    raw.send(&connect_of_size(5, 64 * 1024)).await;
    assert_eq!(raw.connack_v5().await.code, 0);
    assert_other_client_works(addr).await;
}

#[tokio::test]
async fn publish_over_the_configured_maximum_gets_disconnect_0x95() {
    let limits = Limits {
        max_message_size: 4 * 1024,
        ..Limits::default()
    };
    let (_gateway, addr) = start(|settings| settings.limits = limits).await;
    let (mut raw, ack) = Raw::v5(addr, &unique("big")).await;
    // The announced Maximum Packet Size counts the whole packet.
    let max = usize::try_from(ack.u32_property(0x27).expect("Maximum Packet Size")).unwrap();
    raw.send(&publish_of_size(max + 1, true)[..1024]).await;
    assert_eq!(raw.disconnect_code().await, 0x95);
    // Exactly the maximum is accepted.
    let (mut raw, _) = Raw::v5(addr, &unique("max")).await;
    raw.send(&publish_of_size(max, true)).await;
    raw.packet_of(PUBACK).await;
    // 3.1.1: close.
    let mut raw = Raw::v311(addr, &unique("big-v311")).await;
    raw.send(&publish_of_size(max + 1, false)[..1024]).await;
    raw.closed().await;
    assert_other_client_works(addr).await;
}

#[tokio::test]
async fn a_declared_268_mb_packet_is_refused_from_its_header_alone() {
    let (_gateway, addr) = start(|_| {}).await;
    // After CONNECT: a PUBLISH header announcing 268 435 455 bytes, and nothing else.
    let (mut raw, _) = Raw::v5(addr, &unique("huge")).await;
    let before = raw.sent;
    raw.send(&[0x32, 0xFF, 0xFF, 0xFF, 0x7F]).await;
    assert_eq!(raw.disconnect_code().await, 0x95);
    assert!(raw.sent - before < 1024);
    let mut raw = Raw::v311(addr, &unique("huge-v311")).await;
    raw.send(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F]).await;
    raw.closed().await;
    // Before authentication: a CONNECT header announcing 268 MB and its protocol name and level.
    let mut raw = Raw::open(addr).await;
    raw.send(&[
        0x10, 0xFF, 0xFF, 0xFF, 0x7F, 0, 4, b'M', b'Q', b'T', b'T', 5,
    ])
    .await;
    raw.refused_v5(0x95).await;
    assert!(raw.sent < 1024);
    let mut raw = Raw::open(addr).await;
    raw.send(&[
        0x10, 0xFF, 0xFF, 0xFF, 0x7F, 0, 4, b'M', b'Q', b'T', b'T', 4,
    ])
    .await;
    raw.closed().await;
    // Any other first packet announcing it: closed at once.
    let mut raw = Raw::open(addr).await;
    raw.send(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F]).await;
    raw.closed().await;
    assert_other_client_works(addr).await;
}
