//! MQTT connection and session lifecycle edges against an in-process gateway on port 0: the
//! gateway's shutdown (v5 DISCONNECT 0x8B, a plain close for 3.1.1, within the drain timeout),
//! the v5 DISCONNECT 0x04 will, SUBACK failure codes (subscription quota, invalid filter) and
//! the persistent-session limit (server busy).
//!
//! Hand-written packets over raw sockets where the exact codes matter, rumqttc (3.1.1) for the
//! observers. Every wait is bounded; nothing sleeps to synchronise.
//!
//! Not here: an outbound PUBLISH over a v5 client's Maximum Packet Size is covered by
//! `mqtt_v5.rs` (`mqtt_v5_never_sends_more_than_the_client_maximum_packet_size`).

#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway;
#[allow(dead_code)]
#[path = "support/mqtt.rs"]
mod mqtt;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gateway::{session_stats, wait_offline, within, STEP};
use mqgate::{RunningGateway, Settings};
use mqtt::{connect, connect_v311, frame, string, unique, Raw, SUBACK};
use rumqttc::QoS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The drain timeout of the gateways here: long enough for a polite goodbye, short enough
/// that a hung drain fails the test quickly.
const DRAIN: Duration = Duration::from_secs(4);

async fn start(tune: impl FnOnce(&mut Settings)) -> (RunningGateway, SocketAddr) {
    gateway::start(|settings| {
        settings.drain_timeout = DRAIN;
        tune(settings);
    })
    .await
}

/// A SUBSCRIBE of several `(filter, qos)` at once.
fn subscribe_many(pkid: u16, filters: &[(&str, u8)], v5: bool) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    if v5 {
        body.push(0);
    }
    for (filter, qos) in filters {
        body.extend(string(filter.as_bytes()));
        body.push(*qos);
    }
    frame(0x82, &body)
}

/// The reason codes of the SUBACK for `pkid` (v5: after the property block).
async fn suback_codes(raw: &mut Raw, pkid: u16, v5: bool) -> Vec<u8> {
    let (byte1, body) = raw.packet_of(SUBACK).await;
    assert_eq!(byte1, 0x90, "SUBACK flags");
    assert_eq!(&body[..2], &pkid.to_be_bytes(), "SUBACK packet id");
    let mut at = 2;
    if v5 {
        // The property length, a Variable Byte Integer, and the block it counts.
        let mut len = 0usize;
        for (index, byte) in body[2..].iter().take(4).enumerate() {
            len |= usize::from(byte & 0x7F) << (7 * index);
            at += 1;
            if byte & 0x80 == 0 {
                break;
            }
        }
        at += len;
    }
    body[at..].to_vec()
}

/// A v5 CONNECT with clean start, keepalive 30 s and a QoS 1 will of `will_payload` on
/// `will_topic`.
fn connect_v5_with_will(client_id: &str, will_topic: &str, will_payload: &[u8]) -> Vec<u8> {
    let mut payload = string(client_id.as_bytes());
    payload.push(0); // will properties: none
    payload.extend(string(will_topic.as_bytes()));
    payload.extend(string(will_payload));
    // clean start 0x02, will flag 0x04, will QoS 1 (0x08).
    connect(b"MQTT", 5, 0x02 | 0x04 | 0x08, 30, Some(&[]), &payload)
}

/// A v5 CONNECT with `clean_start`, keepalive 30 s and Session Expiry Interval `expiry` s.
fn connect_v5_persistent(client_id: &str, clean_start: bool, expiry: u32) -> Vec<u8> {
    let mut props = vec![0x11];
    props.extend_from_slice(&expiry.to_be_bytes());
    connect(
        b"MQTT",
        5,
        u8::from(clean_start) << 1,
        30,
        Some(&props),
        &string(client_id.as_bytes()),
    )
}

/// Connects a v5 client with a will on `will_topic`, subscribes it (so its session queue
/// exists and its end can be observed), then sends DISCONNECT with `reason` and waits for the
/// gateway to close the connection and end the session.
async fn will_client_disconnects(
    gateway: &RunningGateway,
    addr: SocketAddr,
    will_topic: &str,
    reason: u8,
) {
    let id = unique("will5");
    let mut raw = Raw::open(addr).await;
    raw.send(&connect_v5_with_will(&id, will_topic, b"gone"))
        .await;
    assert_eq!(raw.connack_v5().await.code, 0, "CONNACK");
    raw.subscribe(1, &format!("own/{id}"), 0, true).await;
    assert!(
        session_stats(gateway, &id).is_some(),
        "session queue exists"
    );
    raw.send(&frame(0xE0, &[reason, 0])).await;
    raw.closed().await;
    // The will (if due) is routed before the session's consumer goes.
    wait_offline(gateway, &id).await;
}

// ---------------------------------------------------------------------------------------------
// Shutdown.

#[tokio::test]
async fn shutdown_sends_v5_disconnect_0x8b_and_closes_v311_within_the_drain_timeout() {
    let (gateway, addr) = start(|_| {}).await;
    let (mut v5, _) = Raw::v5(addr, &unique("shut5")).await;
    v5.subscribe(1, "shutdown/#", 1, true).await;
    let mut v311 = Raw::v311(addr, &unique("shut311")).await;
    v311.subscribe(1, "shutdown/#", 1, false).await;

    let began = Instant::now();
    gateway.shutdown();
    assert_eq!(v5.disconnect_code().await, 0x8B, "v5: server shutting down");
    v311.closed().await;
    let report = within(DRAIN + STEP, "the gateway's shutdown", gateway.wait()).await;
    let took = began.elapsed();
    assert!(
        report.cut_off.is_empty(),
        "connections cut off: {:?}",
        report.cut_off
    );
    assert!(
        took < DRAIN,
        "shutdown took {took:?}, drain timeout {DRAIN:?}"
    );
    assert!(
        report.drain_time < DRAIN,
        "drain time {:?}",
        report.drain_time
    );
}

#[tokio::test]
async fn shutdown_handle_ends_clients_and_the_listener() {
    let (gateway, addr) = start(|_| {}).await;
    let (mut v5, _) = Raw::v5(addr, &unique("handle5")).await;
    let mut v311 = Raw::v311(addr, &unique("handle311")).await;
    let handle = gateway.shutdown_handle();
    assert!(!handle.is_shutting_down());

    let began = Instant::now();
    let signal = tokio::spawn(async move {
        handle.shutdown();
        handle
    });
    let handle = within(STEP, "the shutdown task", signal).await.unwrap();
    assert!(handle.is_shutting_down());
    assert_eq!(v5.disconnect_code().await, 0x8B, "v5: server shutting down");
    v311.closed().await;
    let report = within(DRAIN + STEP, "the gateway's shutdown", gateway.wait()).await;
    assert!(report.cut_off.is_empty(), "cut off: {:?}", report.cut_off);
    assert!(
        began.elapsed() < DRAIN,
        "shutdown took {:?}",
        began.elapsed()
    );

    // The listener is closed: a new connection is refused, or at least never answered.
    if let Ok(Ok(mut stream)) =
        tokio::time::timeout(STEP, tokio::net::TcpStream::connect(addr)).await
    {
        let connect = connect_v311(unique("late").as_bytes(), true);
        let _ = stream.write_all(&connect).await;
        let mut answer = [0u8; 16];
        let read = within(
            STEP,
            "a connection after shutdown",
            stream.read(&mut answer),
        )
        .await;
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "served after shutdown: {read:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Wills and the v5 DISCONNECT reason.

#[tokio::test]
async fn v5_disconnect_with_will_message_0x04_publishes_the_will() {
    let (gateway, addr) = start(|_| {}).await;
    let topic = format!("wills/{}", unique("w04"));
    let (watcher, mut events) = mqtt::v4::connect(addr, &unique("watch04")).await;
    mqtt::v4::subscribe(&watcher, &mut events, &topic, QoS::AtLeastOnce).await;

    will_client_disconnects(&gateway, addr, &topic, 0x04).await;
    let will = mqtt::v4::next_publish(&mut events).await;
    assert_eq!(will.topic, topic);
    assert_eq!(&will.payload[..], b"gone");
    assert_eq!(will.qos, QoS::AtLeastOnce);
}

#[tokio::test]
async fn v5_normal_disconnect_0x00_does_not_publish_the_will() {
    let (gateway, addr) = start(|_| {}).await;
    let topic = format!("wills/{}", unique("w00"));
    let (watcher, mut events) = mqtt::v4::connect(addr, &unique("watch00")).await;
    mqtt::v4::subscribe(&watcher, &mut events, &topic, QoS::AtLeastOnce).await;

    will_client_disconnects(&gateway, addr, &topic, 0x00).await;
    // The session has ended (its will, had it been due, is already routed): the next message
    // on the topic is a marker published now, not the will.
    let marker = mqtt::v4::publisher(addr, &unique("marker00")).await;
    marker
        .publish(&topic, QoS::AtLeastOnce, false, "marker")
        .await
        .unwrap();
    let first = mqtt::v4::next_publish(&mut events).await;
    assert_eq!(&first.payload[..], b"marker", "the will was published");
}

// ---------------------------------------------------------------------------------------------
// SUBACK failure codes.

#[tokio::test]
async fn v5_subscriptions_past_max_subscriptions_get_suback_0x97() {
    let (_gateway, addr) = start(|settings| settings.mqtt.max_subscriptions = 2).await;
    let id = unique("quota5");
    let (mut raw, _) = Raw::v5(addr, &id).await;
    raw.send(&subscribe_many(
        7,
        &[("quota/a", 1), ("quota/b", 2), ("quota/c", 0)],
        true,
    ))
    .await;
    assert_eq!(suback_codes(&mut raw, 7, true).await, vec![1, 2, 0x97]);

    // Re-subscribing a filter it holds replaces it and is granted; a new one is still over.
    raw.send(&subscribe_many(8, &[("quota/a", 0), ("quota/d", 1)], true))
        .await;
    assert_eq!(suback_codes(&mut raw, 8, true).await, vec![0, 0x97]);

    // The granted subscriptions work, the refused one does not.
    let publisher = mqtt::v4::publisher(addr, &unique("quota5-pub")).await;
    for (topic, body) in [
        ("quota/c", "refused"),
        ("quota/d", "refused"),
        ("quota/b", "b"),
    ] {
        publisher
            .publish(topic, QoS::AtLeastOnce, false, body)
            .await
            .unwrap();
    }
    let (byte1, body) = raw.packet_of(mqtt::PUBLISH).await;
    assert_eq!(
        mqtt::parse_publish(byte1, &body, true),
        ("quota/b".to_owned(), b"b".to_vec())
    );
}

#[tokio::test]
async fn v311_subscriptions_past_max_subscriptions_get_suback_0x80() {
    let (_gateway, addr) = start(|settings| settings.mqtt.max_subscriptions = 2).await;
    let mut raw = Raw::v311(addr, &unique("quota311")).await;
    raw.send(&subscribe_many(
        3,
        &[("q311/a", 0), ("q311/b", 1), ("q311/c", 2)],
        false,
    ))
    .await;
    assert_eq!(suback_codes(&mut raw, 3, false).await, vec![0, 1, 0x80]);

    let publisher = mqtt::v4::publisher(addr, &unique("quota311-pub")).await;
    for (topic, body) in [("q311/c", "refused"), ("q311/b", "b")] {
        publisher
            .publish(topic, QoS::AtLeastOnce, false, body)
            .await
            .unwrap();
    }
    let (byte1, body) = raw.packet_of(mqtt::PUBLISH).await;
    assert_eq!(
        mqtt::parse_publish(byte1, &body, false),
        ("q311/b".to_owned(), b"b".to_vec())
    );
}

/// `a/#/b` breaks MQTT-4.7.1-1 (`#` must be the last level). The codec leaves filter syntax to
/// the session, which answers SUBACK 0x8F (Topic Filter invalid) for that filter only and keeps
/// the connection and the other filters.
#[tokio::test]
async fn v5_invalid_filter_gets_suback_0x8f_and_the_connection_stays() {
    let (_gateway, addr) = start(|_| {}).await;
    let (mut raw, _) = Raw::v5(addr, &unique("badfilter")).await;
    raw.send(&subscribe_many(
        5,
        &[("a/#/b", 1), ("ok/+", 1), ("x+/y", 0)],
        true,
    ))
    .await;
    assert_eq!(suback_codes(&mut raw, 5, true).await, vec![0x8F, 1, 0x8F]);

    let publisher = mqtt::v4::publisher(addr, &unique("badfilter-pub")).await;
    publisher
        .publish("ok/1", QoS::AtLeastOnce, false, "fine")
        .await
        .unwrap();
    let (byte1, body) = raw.packet_of(mqtt::PUBLISH).await;
    assert_eq!(
        mqtt::parse_publish(byte1, &body, true),
        ("ok/1".to_owned(), b"fine".to_vec())
    );
}

// ---------------------------------------------------------------------------------------------
// Persistent-session limit.

/// With `mqtt.max_persistent_sessions` = 1 and one persistent session kept offline, another
/// persistent session is refused as server busy (v5 CONNACK 0x89, 3.1.1 return code 3, per
/// `errors.rs`'s `Refusal::ServerBusy`), clean sessions still connect, and the kept session
/// resumes.
#[tokio::test]
async fn second_persistent_session_is_refused_server_busy_while_clean_sessions_connect() {
    let (gateway, addr) = start(|settings| settings.mqtt.max_persistent_sessions = 1).await;
    let kept = unique("kept");
    let mut first = Raw::open(addr).await;
    first.send(&connect_v5_persistent(&kept, true, 300)).await;
    assert_eq!(first.connack_v5().await.code, 0);
    first.subscribe(1, "kept/#", 1, true).await;
    first.send(&frame(0xE0, &[0x00, 0])).await;
    first.closed().await;
    wait_offline(&gateway, &kept).await;

    // v5, persistent: server busy.
    let mut refused = Raw::open(addr).await;
    refused
        .send(&connect_v5_persistent(&unique("busy5"), true, 300))
        .await;
    refused.refused_v5(0x89).await;

    // 3.1.1, clean session false: return code 3 (server unavailable), then the close.
    let mut refused = Raw::open(addr).await;
    refused
        .send(&connect_v311(unique("busy311").as_bytes(), false))
        .await;
    let ack = refused.connack().await;
    assert_eq!(ack.code, 3, "3.1.1 CONNACK return code");
    assert!(!ack.session_present);
    refused.closed().await;

    // Clean sessions still connect, in both versions.
    let (mut clean5, _) = Raw::v5(addr, &unique("clean5")).await;
    clean5.subscribe(1, "clean/#", 0, true).await;
    let mut clean311 = Raw::v311(addr, &unique("clean311")).await;
    clean311.subscribe(1, "clean/#", 0, false).await;

    // The kept session itself resumes.
    let mut back = Raw::open(addr).await;
    back.send(&connect_v5_persistent(&kept, false, 300)).await;
    let ack = back.connack_v5().await;
    assert_eq!(ack.code, 0);
    assert!(ack.session_present, "the kept session resumes");
}

/// The limit must also hold while the first persistent session is online: otherwise two are
/// accepted and the second is silently not kept when its client goes away.
#[tokio::test]
async fn persistent_session_limit_counts_sessions_that_are_online() {
    let (_gateway, addr) = start(|settings| settings.mqtt.max_persistent_sessions = 1).await;
    let mut online = Raw::open(addr).await;
    online
        .send(&connect_v5_persistent(&unique("online"), true, 300))
        .await;
    assert_eq!(online.connack_v5().await.code, 0);

    let mut second = Raw::open(addr).await;
    second
        .send(&connect_v5_persistent(&unique("second"), true, 300))
        .await;
    second.refused_v5(0x89).await;

    let mut v311 = Raw::open(addr).await;
    v311.send(&connect_v311(unique("second311").as_bytes(), false))
        .await;
    assert_eq!(v311.connack().await.code, 3);
    v311.closed().await;

    // Still usable: the online one is untouched and clean sessions connect.
    online.subscribe(1, "online/#", 1, true).await;
    let _clean = Raw::v311(addr, &unique("clean")).await;
}
