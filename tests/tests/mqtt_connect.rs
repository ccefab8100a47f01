//! MQTT connect edges and session basics over raw sockets (and rumqttc where convenient):
//! 3.1 clients, unsupported versions, empty client ids, Receive Maximum, UNSUBSCRIBE and
//! keepalive with wills, each against an in-process gateway on port 0.

#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway;
#[allow(dead_code)]
#[path = "support/mqtt.rs"]
mod mqtt;

use gateway::start;
use mqtt::*;
use rumqttc::{AsyncClient, QoS};

#[tokio::test]
async fn mqtt_31_client_connects_and_publishes_and_subscribes() {
    let (_gateway, addr) = start(|_| {}).await;
    let id = unique("v31");
    let mut raw = Raw::open(addr).await;
    raw.send(&connect_v31(&id)).await;
    // 3.1's CONNACK has 3.1.1's layout (its first byte of body is reserved, here 0).
    let ack = raw.connack().await;
    assert_eq!((ack.session_present, ack.code), (false, 0));
    raw.subscribe(1, "v31/+", 1, false).await;

    // Its own publishes, QoS 0 and 1.
    raw.send(&publish(0, b"v31/a", 0, None, b"zero")).await;
    let (byte1, body) = raw.packet_of(PUBLISH).await;
    assert_eq!(
        parse_publish(byte1, &body, false),
        ("v31/a".to_owned(), b"zero".to_vec())
    );
    raw.send(&publish(1, b"v31/b", 9, None, b"one")).await;
    let mut got_puback = false;
    let mut got_publish = false;
    while !(got_puback && got_publish) {
        let (byte1, body) = raw.packet().await;
        match byte1 >> 4 {
            PUBACK => {
                assert_eq!(body, vec![0, 9]);
                got_puback = true;
            }
            PUBLISH => {
                assert_eq!(
                    parse_publish(byte1, &body, false),
                    ("v31/b".to_owned(), b"one".to_vec())
                );
                let pkid = u16::from_be_bytes([body[7], body[8]]);
                raw.send(&puback(pkid)).await;
                got_publish = true;
            }
            other => panic!("unexpected packet type {other}"),
        }
    }

    // A 3.1.1 client (rumqttc) publishes; the 3.1 client receives.
    let (client, events) = AsyncClient::new(v4::options(&unique("to-v31"), addr), 16);
    let driver = v4::drive(events);
    client
        .publish("v31/from-311", QoS::AtMostOnce, false, "hi 3.1")
        .await
        .unwrap();
    let (byte1, body) = raw.packet_of(PUBLISH).await;
    assert_eq!(
        parse_publish(byte1, &body, false),
        ("v31/from-311".to_owned(), b"hi 3.1".to_vec())
    );
    driver.abort();
}

#[tokio::test]
async fn unsupported_protocol_level_gets_connack_0x01() {
    let (_gateway, addr) = start(|_| {}).await;
    for (name, level) in [
        (&b"MQTT"[..], 6),
        (b"MQTT", 3),
        (b"MQIsdp", 4),
        (b"MQTT", 0),
    ] {
        let mut raw = Raw::open(addr).await;
        raw.send(&connect(name, level, 0x02, 30, None, &string(b"c")))
            .await;
        // 3.1.1's form (section 3.2.2.3), which clients of every version can read.
        assert_eq!(
            raw.next().await,
            Read::Packet(0x20, vec![0x00, 0x01]),
            "{name:?} level {level}"
        );
        raw.closed().await;
    }
    assert_other_client_works(addr).await;
}

#[tokio::test]
async fn level_5_under_another_protocol_name_gets_v5_connack_0x84() {
    let (_gateway, addr) = start(|_| {}).await;
    // The client speaks MQTT 5 framing, so the refusal is an MQTT 5 CONNACK (a 3.1.1 one would
    // be malformed to it): 0x84 Unsupported Protocol Version.
    for name in [&b"MQTX"[..], b"mqtt", b"MQIsdp"] {
        let mut raw = Raw::open(addr).await;
        raw.send(&connect(name, 5, 0x02, 30, Some(&[]), &string(b"c")))
            .await;
        raw.refused_v5(0x84).await;
    }
    assert_other_client_works(addr).await;
}

#[tokio::test]
async fn empty_client_id_in_311_needs_clean_session() {
    let (_gateway, addr) = start(|_| {}).await;
    // Clean session 0: CONNACK 0x02 Identifier Rejected ([MQTT-3.1.3-8]), then close.
    let mut raw = Raw::open(addr).await;
    raw.send(&connect_v311(b"", false)).await;
    assert_eq!(raw.next().await, Read::Packet(0x20, vec![0x00, 0x02]));
    raw.closed().await;
    // Clean session 1: accepted, and the connection works.
    let mut raw = Raw::open(addr).await;
    raw.send(&connect_v311(b"", true)).await;
    assert_eq!(raw.connack().await.code, 0);
    let topic = unique("anon");
    raw.subscribe(1, &topic, 0, false).await;
    raw.send(&publish(0, topic.as_bytes(), 0, None, b"x")).await;
    raw.packet_of(PUBLISH).await;
    // 3.1 allows no empty client id at all.
    let mut raw = Raw::open(addr).await;
    raw.send(&connect(b"MQIsdp", 3, 0x02, 30, None, &string(b"")))
        .await;
    assert_eq!(raw.next().await, Read::Packet(0x20, vec![0x00, 0x02]));
    raw.closed().await;
    assert_other_client_works(addr).await;
}

#[tokio::test]
async fn empty_client_id_in_v5_gets_an_assigned_client_identifier() {
    let (_gateway, addr) = start(|_| {}).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut raw = Raw::open(addr).await;
        raw.send(&connect_v5(b"", &[])).await;
        let ack = raw.connack_v5().await;
        assert_eq!(ack.code, 0);
        let assigned = ack.property(0x12).expect("Assigned Client Identifier");
        let assigned = String::from_utf8(assigned[2..].to_vec()).unwrap();
        assert!(!assigned.is_empty());
        // The session works under it.
        let topic = unique("assigned");
        raw.subscribe(1, &topic, 0, true).await;
        raw.send(&publish(0, topic.as_bytes(), 0, Some(&[]), b"x"))
            .await;
        raw.packet_of(PUBLISH).await;
        ids.push((assigned, raw));
    }
    assert_ne!(ids[0].0, ids[1].0, "each connection gets its own id");
    // A client that sends an id gets none assigned.
    let (_raw, ack) = Raw::v5(addr, &unique("named")).await;
    assert!(ack.property(0x12).is_none());
}

#[tokio::test]
async fn exceeding_the_servers_receive_maximum_gets_disconnect_0x93() {
    let (_gateway, addr) = start(|_| {}).await;
    let (mut raw, ack) = Raw::v5(addr, &unique("flood")).await;
    let receive_maximum = ack.u16_property(0x21).unwrap_or(65_535);
    assert!(receive_maximum < 1000, "announced {receive_maximum}");
    // QoS 1 publishes stop counting once PUBACKed, and the server acks promptly, so a flood of
    // QoS 1 proves nothing. A QoS 2 publish counts until its PUBCOMP (MQTT 5.0 4.9): send one
    // more than Receive Maximum without ever sending PUBREL.
    let mut flood = Vec::new();
    for pkid in 1..=receive_maximum + 1 {
        flood.extend(publish(2, b"flood/t", pkid, Some(&[]), b"x"));
    }
    raw.send(&flood).await;
    assert_eq!(raw.disconnect_code().await, 0x93);

    // Within the window, QoS 1 without waiting for PUBACK is fine: all are acknowledged.
    let (mut raw, _) = Raw::v5(addr, &unique("within")).await;
    let mut burst = Vec::new();
    for pkid in 1..=receive_maximum {
        burst.extend(publish(1, b"flood/t", pkid, Some(&[]), b"x"));
    }
    raw.send(&burst).await;
    for _ in 0..receive_maximum {
        raw.packet_of(PUBACK).await;
    }
    assert_other_client_works(addr).await;
}

#[tokio::test]
async fn unsubscribe_stops_deliveries() {
    let (_gateway, addr) = start(|_| {}).await;
    for v5 in [false, true] {
        let id = unique("unsub");
        let mut raw = if v5 {
            Raw::v5(addr, &id).await.0
        } else {
            Raw::v311(addr, &id).await
        };
        let props = v5.then_some(&[][..]);
        let gone = format!("{id}/gone");
        let marker = format!("{id}/marker");
        raw.subscribe(1, &gone, 0, v5).await;
        raw.subscribe(2, &marker, 0, v5).await;
        raw.send(&publish(0, gone.as_bytes(), 0, props, b"before"))
            .await;
        let (byte1, body) = raw.packet_of(PUBLISH).await;
        assert_eq!(parse_publish(byte1, &body, v5).0, gone);

        raw.send(&unsubscribe(3, &gone, v5)).await;
        let (byte1, body) = raw.packet().await;
        assert_eq!(byte1, 0xB0, "UNSUBACK");
        assert_eq!(&body[..2], &[0, 3]);
        if v5 {
            assert_eq!(body.last(), Some(&0x00), "UNSUBACK reason: success");
        }
        // One queue per session delivers in order: had `gone` still matched, its message would
        // arrive before the marker's.
        raw.send(&publish(1, gone.as_bytes(), 4, props, b"after"))
            .await;
        raw.packet_of(PUBACK).await;
        raw.send(&publish(0, marker.as_bytes(), 0, props, b"marker"))
            .await;
        let (byte1, body) = raw.packet().await;
        assert_eq!(byte1 >> 4, PUBLISH);
        assert_eq!(
            parse_publish(byte1, &body, v5),
            (marker, b"marker".to_vec()),
            "no delivery after UNSUBACK"
        );
    }
    assert_other_client_works(addr).await;
}

#[tokio::test]
async fn keepalive_closes_a_silent_client_and_publishes_its_will() {
    let (_gateway, addr) = start(|_| {}).await;
    let (watcher, mut watch_events) = AsyncClient::new(v4::options(&unique("watcher"), addr), 16);
    watcher
        .subscribe("wills/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    v4::suback(&mut watch_events).await;

    for v5 in [false, true] {
        let id = unique("silent");
        let will_topic = format!("wills/{id}");
        let mut payload = string(id.as_bytes());
        if v5 {
            payload.push(0); // will properties
        }
        payload.extend(string(will_topic.as_bytes()));
        payload.extend(string(b"lost"));
        // Clean session, will at QoS 1, keepalive 1 s.
        let level = if v5 { 5 } else { 4 };
        let properties = v5.then_some(&[][..]);
        let mut raw = Raw::open(addr).await;
        raw.send(&connect(b"MQTT", level, 0x0E, 1, properties, &payload))
            .await;
        let code = if v5 {
            raw.connack_v5().await.code
        } else {
            raw.connack().await.code
        };
        assert_eq!(code, 0);
        // Silent from now on: closed after 1.5 s (plus a tick), within 5 s.
        if v5 {
            assert_eq!(raw.disconnect_code().await, 0x8D, "Keep Alive timeout");
        } else {
            raw.closed().await;
        }
        let will = v4::next_publish(&mut watch_events).await;
        assert_eq!(will.topic, will_topic);
        assert_eq!(&will.payload[..], b"lost");
    }
}
