//! MQTT 5 end to end with rumqttc v5 against an in-process gateway on port 0: subscription
//! identifiers, no-local, retain-as-published, retain handling, inbound topic aliases, session
//! expiry, server keepalive, maximum packet size and user properties.

#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway;
#[allow(dead_code)]
#[path = "support/mqtt.rs"]
mod mqtt;

use std::time::Duration;

use gateway::{eventually, session_stats, start_serving, wait_offline, STEP};
use mqgate_mqtt::MqttSettings;
use mqtt::unique;
use mqtt::v5::{connack, connect, next_publish, options, publisher, suback, wait_for};
use rumqttc::v5::mqttbytes::v5::{
    Filter, Packet, PublishProperties, RetainForwardRule, SubscribeProperties,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, EventLoop};

fn filter(path: &str, qos: QoS) -> Filter {
    Filter::new(path, qos)
}

async fn subscribe(client: &AsyncClient, events: &mut EventLoop, filter: Filter) {
    client.subscribe_many([filter]).await.unwrap();
    suback(events).await;
}

#[tokio::test]
async fn mqtt_v5_subscription_identifiers_are_delivered() {
    let (_gateway, addr) = start_serving(MqttSettings::default()).await;
    let (sub, mut events) = connect(addr, &unique("sid")).await;
    for (path, id) in [("sid/a", 7), ("sid/#", 9)] {
        sub.subscribe_with_properties(
            path,
            QoS::AtLeastOnce,
            SubscribeProperties {
                id: Some(id),
                user_properties: Vec::new(),
            },
        )
        .await
        .unwrap();
        suback(&mut events).await;
    }
    let publisher = publisher(addr, &unique("sid-pub")).await;
    publisher
        .publish("sid/a", QoS::AtLeastOnce, false, "both")
        .await
        .unwrap();
    publisher
        .publish("sid/b", QoS::AtLeastOnce, false, "one")
        .await
        .unwrap();
    let first = next_publish(&mut events).await;
    assert_eq!(&first.payload[..], b"both");
    let mut ids = first.properties.unwrap().subscription_identifiers;
    ids.sort_unstable();
    assert_eq!(ids, vec![7, 9], "one copy with both identifiers");
    let second = next_publish(&mut events).await;
    assert_eq!(&second.payload[..], b"one");
    assert_eq!(second.properties.unwrap().subscription_identifiers, vec![9]);
}

#[tokio::test]
async fn mqtt_v5_no_local_suppresses_own_messages() {
    let (_gateway, addr) = start_serving(MqttSettings::default()).await;
    let (me, mut events) = connect(addr, &unique("nl")).await;
    let mut own = filter("nl/#", QoS::AtLeastOnce);
    own.nolocal = true;
    subscribe(&me, &mut events, own).await;
    me.publish("nl/mine", QoS::AtLeastOnce, false, "mine")
        .await
        .unwrap();
    // The PUBACK follows the engine's confirmation: had it been queued for us, it would be ahead.
    wait_for(&mut events, |p| match p {
        Packet::PubAck(_) => Some(()),
        Packet::Publish(publish) => panic!("own message delivered: {publish:?}"),
        _ => None,
    })
    .await;
    let other = publisher(addr, &unique("nl-other")).await;
    other
        .publish("nl/theirs", QoS::AtLeastOnce, false, "theirs")
        .await
        .unwrap();
    let received = next_publish(&mut events).await;
    assert_eq!(&received.payload[..], b"theirs", "own message suppressed");
    let user_properties = received
        .properties
        .map(|p| p.user_properties)
        .unwrap_or_default();
    assert!(user_properties.is_empty(), "{user_properties:?}");
}

#[tokio::test]
async fn mqtt_v5_retain_as_published_keeps_the_flag_on_live_deliveries() {
    let (_gateway, addr) = start_serving(MqttSettings::default()).await;
    let (keeps, mut keeps_events) = connect(addr, &unique("rap-keep")).await;
    let mut with_rap = filter("rap/t", QoS::AtLeastOnce);
    with_rap.preserve_retain = true;
    subscribe(&keeps, &mut keeps_events, with_rap).await;
    let (plain, mut plain_events) = connect(addr, &unique("rap-plain")).await;
    subscribe(&plain, &mut plain_events, filter("rap/t", QoS::AtLeastOnce)).await;
    let publisher = publisher(addr, &unique("rap-pub")).await;
    publisher
        .publish("rap/t", QoS::AtLeastOnce, true, "retained")
        .await
        .unwrap();
    assert!(next_publish(&mut keeps_events).await.retain);
    assert!(!next_publish(&mut plain_events).await.retain);
}

#[tokio::test]
async fn mqtt_v5_retain_handling_0_1_2() {
    let (_gateway, addr) = start_serving(MqttSettings::default()).await;
    let (publisher, mut publisher_events) = connect(addr, &unique("rh-pub")).await;
    publisher
        .publish("rh/t", QoS::AtLeastOnce, true, "kept")
        .await
        .unwrap();
    // PUBACK follows the engine's confirmation: the retained store holds it by then.
    mqtt::v5::puback(&mut publisher_events).await;
    mqtt::v5::drive(publisher_events);
    let (sub, mut events) = connect(addr, &unique("rh")).await;

    let mut every = filter("rh/t", QoS::AtLeastOnce);
    every.retain_forward_rule = RetainForwardRule::OnEverySubscribe;
    subscribe(&sub, &mut events, every.clone()).await;
    let first = next_publish(&mut events).await;
    assert!(first.retain && &first.payload[..] == b"kept");
    // 0: again on every subscribe, even an existing one.
    subscribe(&sub, &mut events, every).await;
    let again = next_publish(&mut events).await;
    assert!(again.retain && &again.payload[..] == b"kept");

    // 1: only for a new subscription.
    let mut on_new = filter("rh/+", QoS::AtLeastOnce);
    on_new.retain_forward_rule = RetainForwardRule::OnNewSubscribe;
    subscribe(&sub, &mut events, on_new.clone()).await;
    let new = next_publish(&mut events).await;
    assert!(new.retain && &new.payload[..] == b"kept");
    subscribe(&sub, &mut events, on_new).await;

    // 2: never.
    let mut never = filter("rh/#", QoS::AtLeastOnce);
    never.retain_forward_rule = RetainForwardRule::Never;
    subscribe(&sub, &mut events, never).await;

    // Nothing retained came after the last two SUBACKs: the next message is the live marker.
    publisher
        .publish("rh/t", QoS::AtLeastOnce, false, "marker")
        .await
        .unwrap();
    let next = next_publish(&mut events).await;
    assert_eq!(&next.payload[..], b"marker");
    assert!(!next.retain);
}

#[tokio::test]
async fn mqtt_v5_inbound_topic_alias_names_the_topic() {
    let (_gateway, addr) = start_serving(MqttSettings::default()).await;
    let (sub, mut events) = connect(addr, &unique("ta-sub")).await;
    subscribe(&sub, &mut events, filter("ta/#", QoS::AtLeastOnce)).await;
    let publisher = publisher(addr, &unique("ta-pub")).await;
    let alias = |payload: &'static str, topic: &str| {
        let publisher = publisher.clone();
        let topic = topic.to_owned();
        async move {
            publisher
                .publish_with_properties(
                    topic,
                    QoS::AtLeastOnce,
                    false,
                    payload,
                    PublishProperties {
                        topic_alias: Some(1),
                        ..PublishProperties::default()
                    },
                )
                .await
                .unwrap();
        }
    };
    alias("named", "ta/x").await;
    alias("aliased", "").await;
    for expected in ["named", "aliased"] {
        let received = next_publish(&mut events).await;
        assert_eq!(&received.payload[..], expected.as_bytes());
        assert_eq!(&received.topic[..], b"ta/x");
    }
}

#[tokio::test]
async fn mqtt_v5_session_kept_within_expiry_with_dup_for_unacked() {
    let (gateway, addr) = start_serving(MqttSettings::default()).await;
    let id = unique("se");
    let persistent = || {
        let mut options = options(&id, addr);
        options.set_clean_start(false);
        options.set_session_expiry_interval(Some(60));
        options.set_manual_acks(true);
        options
    };
    let (sub, mut events) = AsyncClient::new(persistent(), 32);
    assert!(!connack(&mut events).await.session_present);
    subscribe(&sub, &mut events, filter("se/#", QoS::AtLeastOnce)).await;
    let publisher = publisher(addr, &unique("se-pub")).await;
    publisher
        .publish("se/t", QoS::AtLeastOnce, false, "m1")
        .await
        .unwrap();
    let first = next_publish(&mut events).await;
    assert_eq!(&first.payload[..], b"m1");
    assert!(!first.dup);
    // The connection drops with m1 unacknowledged; m2 and m3 are published once the gateway
    // has noticed (the session queue has no consumer left).
    drop(events);
    drop(sub);
    wait_offline(&gateway, &id).await;
    for body in ["m2", "m3"] {
        publisher
            .publish("se/t", QoS::AtLeastOnce, false, body)
            .await
            .unwrap();
    }

    let (sub, mut events) = AsyncClient::new(persistent(), 32);
    assert!(connack(&mut events).await.session_present);
    let mut received = Vec::new();
    while received.len() < 3 {
        let publish = next_publish(&mut events).await;
        sub.ack(&publish).await.unwrap();
        received.push((
            String::from_utf8_lossy(&publish.payload).into_owned(),
            publish.dup,
        ));
    }
    assert_eq!(
        received,
        vec![
            ("m1".to_owned(), true),
            ("m2".to_owned(), false),
            ("m3".to_owned(), false)
        ]
    );
}

#[tokio::test]
async fn mqtt_v5_session_gone_after_its_expiry() {
    let (gateway, addr) = start_serving(MqttSettings::default()).await;
    let id = unique("sx");
    let persistent = || {
        let mut options = options(&id, addr);
        options.set_clean_start(false);
        options.set_session_expiry_interval(Some(1));
        options
    };
    let (sub, mut events) = AsyncClient::new(persistent(), 32);
    assert!(!connack(&mut events).await.session_present);
    subscribe(&sub, &mut events, filter("sx/#", QoS::AtLeastOnce)).await;
    drop(events);
    drop(sub);

    // The sweep (every 100 ms) deletes the session queue once the expiry has passed.
    eventually(STEP, "session queue not swept", || {
        session_stats(&gateway, &id).is_none()
    })
    .await;

    let (_sub, mut events) = AsyncClient::new(persistent(), 32);
    assert!(!connack(&mut events).await.session_present);
}

#[tokio::test]
async fn mqtt_v5_server_keepalive_caps_a_longer_client_keepalive() {
    let settings = MqttSettings {
        max_keepalive: 10,
        ..MqttSettings::default()
    };
    let (_gateway, addr) = start_serving(settings).await;
    let mut options = options(&unique("ka"), addr);
    options.set_keep_alive(Duration::from_secs(60));
    let (_client, mut events) = AsyncClient::new(options, 8);
    let ack = connack(&mut events).await;
    assert_eq!(ack.properties.and_then(|p| p.server_keep_alive), Some(10));

    let mut options = self::options(&unique("ka-short"), addr);
    options.set_keep_alive(Duration::from_secs(5));
    let (_client, mut events) = AsyncClient::new(options, 8);
    let ack = connack(&mut events).await;
    assert_eq!(ack.properties.and_then(|p| p.server_keep_alive), None);
}

#[tokio::test]
async fn mqtt_v5_never_sends_more_than_the_client_maximum_packet_size() {
    let (gateway, addr) = start_serving(MqttSettings::default()).await;
    let mut options = options(&unique("mps"), addr);
    options.set_max_packet_size(Some(512));
    let (sub, mut events) = AsyncClient::new(options, 8);
    connack(&mut events).await;
    subscribe(&sub, &mut events, filter("mps/#", QoS::AtLeastOnce)).await;
    let publisher = publisher(addr, &unique("mps-pub")).await;
    publisher
        .publish("mps/t", QoS::AtLeastOnce, false, vec![b'x'; 2000])
        .await
        .unwrap();
    publisher
        .publish("mps/t", QoS::AtLeastOnce, false, "small")
        .await
        .unwrap();
    // An oversized packet would fail the client's poll (its incoming limit is 512 bytes).
    let received = next_publish(&mut events).await;
    assert_eq!(&received.payload[..], b"small");
    // The dropped one is counted by the engine, not lost silently.
    assert_eq!(
        mqgate_core::metrics::Metrics::read(&gateway.broker().metrics().undeliverable_dropped),
        1
    );
}

#[tokio::test]
async fn mqtt_v5_user_properties_arrive_in_order() {
    let (_gateway, addr) = start_serving(MqttSettings::default()).await;
    let (sub, mut events) = connect(addr, &unique("up")).await;
    subscribe(&sub, &mut events, filter("up/t", QoS::AtLeastOnce)).await;
    let publisher = publisher(addr, &unique("up-pub")).await;
    let sent = vec![
        ("zeta".to_owned(), "1".to_owned()),
        ("alpha".to_owned(), "2".to_owned()),
        ("mid".to_owned(), "3".to_owned()),
    ];
    publisher
        .publish_with_properties(
            "up/t",
            QoS::AtLeastOnce,
            false,
            "props",
            PublishProperties {
                user_properties: sent.clone(),
                ..PublishProperties::default()
            },
        )
        .await
        .unwrap();
    let received = next_publish(&mut events).await;
    assert_eq!(received.properties.unwrap().user_properties, sent);
}
