//! MQTT end to end: real clients (rumqttc v4 and v5) against an in-process gateway on port 0.

#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway;
#[allow(dead_code)]
#[path = "support/mqtt.rs"]
mod mqtt;

use std::sync::Arc;

use gateway::{users, within, ADMINISTRATOR, ALICE, GUEST, STEP};
use mqgate::RunningGateway;
use mqgate_core::names::UserName;
use mqtt::v4::{connack, drive, next_publish, options, puback, suback, subscribe_granted};
use rumqttc::{AsyncClient, QoS};

/// A gateway whose users are `guest` and `alice`, anonymous logins as guest if `anonymous`.
async fn gateway(anonymous: bool) -> (RunningGateway, std::net::SocketAddr) {
    gateway::start(|settings| {
        settings.users = Arc::new(users(&[GUEST, ALICE], ADMINISTRATOR));
        settings.anonymous = anonymous.then(|| UserName::new("guest").unwrap());
    })
    .await
}

#[tokio::test]
async fn mqtt_v311_publish_and_subscribe_at_every_qos() {
    let (_gateway, addr) = gateway(true).await;
    let (subscriber, mut sub_events) = AsyncClient::new(options("sub", addr), 16);
    connack(&mut sub_events).await;
    subscribe_granted(
        STEP,
        &subscriber,
        &mut sub_events,
        "sensors/+/temp",
        QoS::ExactlyOnce,
    )
    .await;

    let mut publisher_options = options("pub", addr);
    publisher_options.set_credentials("alice", "s3cret");
    let (publisher, pub_events) = AsyncClient::new(publisher_options, 16);
    let _driver = drive(pub_events);
    for (index, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        publisher
            .publish("sensors/kitchen/temp", qos, false, format!("{index}"))
            .await
            .unwrap();
        let received = next_publish(&mut sub_events).await;
        assert_eq!(received.topic, "sensors/kitchen/temp");
        assert_eq!(&received.payload[..], format!("{index}").as_bytes());
        assert_eq!(received.qos, qos, "delivered at the publish QoS");
    }
}

#[tokio::test]
async fn mqtt_retained_message_reaches_a_later_wildcard_subscriber() {
    let (_gateway, addr) = gateway(true).await;
    let (publisher, mut pub_events) = AsyncClient::new(options("retainer", addr), 16);
    publisher
        .publish("home/door", QoS::AtLeastOnce, true, "open")
        .await
        .unwrap();
    puback(&mut pub_events).await;

    let (subscriber, mut sub_events) = AsyncClient::new(options("late", addr), 16);
    subscriber
        .subscribe("home/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let received = next_publish(&mut sub_events).await;
    assert_eq!(received.topic, "home/door");
    assert!(received.retain);
    assert_eq!(&received.payload[..], b"open");
}

#[tokio::test]
async fn mqtt_bad_password_and_anonymous_off_are_refused() {
    let (_gateway, addr) = gateway(false).await;
    let mut bad = options("bad", addr);
    bad.set_credentials("alice", "wrong");
    let (_client, mut events) = AsyncClient::new(bad, 4);
    let error = within(STEP, "the refusal", events.poll())
        .await
        .unwrap_err();
    assert!(
        format!("{error:?}").contains("BadUserNamePassword"),
        "{error:?}"
    );
    let (_client, mut events) = AsyncClient::new(options("anon", addr), 4);
    let error = within(STEP, "the refusal", events.poll())
        .await
        .unwrap_err();
    assert!(format!("{error:?}").contains("NotAuthorized"), "{error:?}");
}

#[tokio::test]
async fn mqtt_will_is_published_when_a_client_vanishes_and_takeover_closes_the_old_one() {
    let (_gateway, addr) = gateway(true).await;
    let (watcher, mut watch_events) = AsyncClient::new(options("watcher", addr), 16);
    watcher
        .subscribe("status/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    suback(&mut watch_events).await;

    let mut dying = options("device-1", addr);
    dying.set_last_will(rumqttc::LastWill::new(
        "status/device-1",
        "gone",
        QoS::AtLeastOnce,
        false,
    ));
    let (_first, mut first_events) = AsyncClient::new(dying, 4);
    connack(&mut first_events).await;
    // A second connection with the same client id takes over; the first is closed (abnormally,
    // so its will fires).
    let (_second, mut second_events) = AsyncClient::new(options("device-1", addr), 4);
    connack(&mut second_events).await;
    within(STEP, "the older connection was closed", async {
        while first_events.poll().await.is_ok() {}
    })
    .await;
    let will = next_publish(&mut watch_events).await;
    assert_eq!(will.topic, "status/device-1");
    assert_eq!(&will.payload[..], b"gone");
}

#[tokio::test]
async fn mqtt_v5_client_connects_and_receives_at_the_granted_qos() {
    use rumqttc::v5::mqttbytes::v5::Packet as P5;
    use rumqttc::v5::mqttbytes::QoS as Q5;
    use rumqttc::v5::{AsyncClient as Client5, Event as E5};

    let (_gateway, addr) = gateway(true).await;
    let (client, mut events) = Client5::new(mqtt::v5::options("v5-sub", addr), 16);
    client.subscribe("a/b", Q5::AtLeastOnce).await.unwrap();
    let mut published = false;
    let received = within(STEP, "the v5 delivery", async {
        loop {
            match events.poll().await.unwrap() {
                E5::Incoming(P5::SubAck(_)) if !published => {
                    published = true;
                    client
                        .publish("a/b", Q5::ExactlyOnce, false, "hello v5")
                        .await
                        .unwrap();
                }
                E5::Incoming(P5::Publish(publish)) => return publish,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(&received.payload[..], b"hello v5");
    assert_eq!(received.qos, Q5::AtLeastOnce, "min(granted 1, publish 2)");
}
