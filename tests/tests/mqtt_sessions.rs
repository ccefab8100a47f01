//! MQTT 3.1.1 persistent sessions end to end with rumqttc against an in-process gateway on port
//! 0: clean session false keeps subscriptions and queues QoS 1/2 while offline (bounded, with
//! the configured overflow), resends in order, session present both ways; takeover keeps the
//! state; a shared-subscription member that leaves hands its unacked messages to the others.

#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway;
#[allow(dead_code)]
#[path = "support/mqtt.rs"]
mod mqtt;

use std::net::SocketAddr;
use std::sync::Arc;

use gateway::{eventually, start_serving, wait_offline, wait_ready, within, STEP};
use mqgate_core::metrics::Metrics;
use mqgate_mqtt::settings::SessionOverflow;
use mqgate_mqtt::MqttSettings;
use mqtt::unique;
use mqtt::v4::{connack, drive, next_publish, publisher, subscribe};
use rumqttc::{AsyncClient, MqttOptions, Publish, QoS};

/// The default options with clean session as given.
fn options(id: &str, addr: SocketAddr, clean: bool) -> MqttOptions {
    let mut options = mqtt::v4::options(id, addr);
    options.set_clean_session(clean);
    options
}

fn text(publish: &Publish) -> String {
    String::from_utf8_lossy(&publish.payload).into_owned()
}

#[tokio::test]
async fn mqtt_sessions_clean_session_false_queues_while_offline_and_resends_in_order() {
    let (gateway, addr) = start_serving(MqttSettings::default()).await;
    let id = unique("keep");
    let (sub, mut events) = AsyncClient::new(options(&id, addr, false), 32);
    assert!(!connack(&mut events).await.session_present, "first connect");
    subscribe(&sub, &mut events, "keep/#", QoS::ExactlyOnce).await;
    sub.disconnect().await.unwrap();
    drop(events);
    wait_offline(&gateway, &id).await;

    let publisher = publisher(addr, &unique("keep-pub")).await;
    for (body, qos) in [
        ("m1", QoS::AtLeastOnce),
        ("m2", QoS::ExactlyOnce),
        ("m3", QoS::AtLeastOnce),
    ] {
        publisher.publish("keep/t", qos, false, body).await.unwrap();
    }
    wait_ready(&gateway, &id, 3).await;

    let (_sub, mut events) = AsyncClient::new(options(&id, addr, false), 32);
    assert!(connack(&mut events).await.session_present, "resumed");
    let mut received = Vec::new();
    for _ in 0..3 {
        let publish = next_publish(&mut events).await;
        received.push((text(&publish), publish.qos));
    }
    assert_eq!(
        received,
        vec![
            ("m1".to_owned(), QoS::AtLeastOnce),
            ("m2".to_owned(), QoS::ExactlyOnce),
            ("m3".to_owned(), QoS::AtLeastOnce),
        ],
        "subscriptions kept, QoS 1/2 queued and resent in order"
    );
    drop(events);
    wait_offline(&gateway, &id).await;

    // Clean session true discards it: no session present.
    let (_sub, mut events) = AsyncClient::new(options(&id, addr, true), 32);
    assert!(!connack(&mut events).await.session_present);
}

#[tokio::test]
async fn mqtt_sessions_offline_queue_is_bounded_and_drop_head_keeps_the_newest() {
    let settings = MqttSettings {
        session_queue_length: 3,
        session_overflow: SessionOverflow::DropHead,
        ..MqttSettings::default()
    };
    let (gateway, addr) = start_serving(settings).await;
    let id = unique("bound");
    let (sub, mut events) = AsyncClient::new(options(&id, addr, false), 32);
    connack(&mut events).await;
    subscribe(&sub, &mut events, "bound/#", QoS::AtLeastOnce).await;
    drop(events);
    drop(sub);
    wait_offline(&gateway, &id).await;

    let dropped_before = Metrics::read(&gateway.broker().metrics().overflow_dropped);
    let publisher = publisher(addr, &unique("bound-pub")).await;
    for n in 1..=5 {
        publisher
            .publish("bound/t", QoS::AtLeastOnce, false, format!("m{n}"))
            .await
            .unwrap();
    }
    let metrics = Arc::clone(gateway.broker().metrics());
    eventually(STEP, "overflow drops not counted", || {
        Metrics::read(&metrics.overflow_dropped) >= dropped_before + 2
    })
    .await;
    wait_ready(&gateway, &id, 3).await;

    let (_sub, mut events) = AsyncClient::new(options(&id, addr, false), 32);
    assert!(connack(&mut events).await.session_present);
    let mut received = Vec::new();
    for _ in 0..3 {
        received.push(text(&next_publish(&mut events).await));
    }
    assert_eq!(received, ["m3", "m4", "m5"], "the newest three");
    publisher
        .publish("bound/t", QoS::AtLeastOnce, false, "marker")
        .await
        .unwrap();
    assert_eq!(
        text(&next_publish(&mut events).await),
        "marker",
        "nothing else queued"
    );
    assert_eq!(
        Metrics::read(&gateway.broker().metrics().overflow_dropped),
        dropped_before + 2
    );
}

#[tokio::test]
async fn mqtt_sessions_takeover_of_a_persistent_session_keeps_its_state() {
    let (_gateway, addr) = start_serving(MqttSettings::default()).await;
    let id = unique("take");
    let (old, mut old_events) = AsyncClient::new(options(&id, addr, false), 32);
    connack(&mut old_events).await;
    subscribe(&old, &mut old_events, "take/#", QoS::AtLeastOnce).await;
    // Keep the old connection's loop running so it can be taken over.
    // Ends when the gateway closes it.
    let old_loop = drive(old_events);

    let (_new, mut events) = AsyncClient::new(options(&id, addr, false), 32);
    assert!(
        connack(&mut events).await.session_present,
        "state taken over"
    );
    within(STEP, "old connection not closed", old_loop)
        .await
        .unwrap();
    let publisher = publisher(addr, &unique("take-pub")).await;
    publisher
        .publish("take/t", QoS::AtLeastOnce, false, "after")
        .await
        .unwrap();
    let publish = next_publish(&mut events).await;
    assert_eq!(text(&publish), "after", "the subscription came along");
    drop(old);
}

#[tokio::test]
async fn mqtt_sessions_shared_member_leaving_hands_unacked_messages_to_the_other() {
    let (_gateway, addr) = start_serving(MqttSettings::default()).await;
    let manual = |id: &str| {
        let mut options = options(id, addr, true);
        options.set_manual_acks(true);
        options
    };
    let (first, mut first_events) = AsyncClient::new(manual(&unique("sh-a")), 32);
    connack(&mut first_events).await;
    subscribe(&first, &mut first_events, "$share/g/sh/#", QoS::AtLeastOnce).await;

    let publisher = publisher(addr, &unique("sh-pub")).await;
    for body in ["s1", "s2"] {
        publisher
            .publish("sh/t", QoS::AtLeastOnce, false, body)
            .await
            .unwrap();
    }
    // The only member gets both and acknowledges neither.
    assert_eq!(text(&next_publish(&mut first_events).await), "s1");
    assert_eq!(text(&next_publish(&mut first_events).await), "s2");

    let (second, mut second_events) = AsyncClient::new(manual(&unique("sh-b")), 32);
    connack(&mut second_events).await;
    subscribe(
        &second,
        &mut second_events,
        "$share/g/sh/#",
        QoS::AtLeastOnce,
    )
    .await;
    drop(first_events);
    drop(first);

    let mut moved = Vec::new();
    for _ in 0..2 {
        let publish = next_publish(&mut second_events).await;
        second.ack(&publish).await.unwrap();
        moved.push((text(&publish), publish.dup));
    }
    assert_eq!(
        moved,
        vec![("s1".to_owned(), true), ("s2".to_owned(), true)],
        "unacked messages moved to the remaining member, flagged DUP"
    );
}
