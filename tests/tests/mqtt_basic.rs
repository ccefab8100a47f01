//! MQTT end to end: real clients (rumqttc v4 and v5) against an in-process gateway on port 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mqgate::protocols::Protocol;
use mqgate::{Gateway, ListenerSpec, RunningGateway, Settings, Transport};
use mqgate_core::auth::{hash_password, PermissionSpec, User, UserSpec, Users};
use mqgate_core::names::UserName;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};

const STEP: Duration = Duration::from_secs(5);

fn users() -> Users {
    let spec = |name: &str, password: &str| UserSpec {
        name: name.to_owned(),
        password_hash: hash_password(password).unwrap(),
        loopback_only: true,
        tags: vec!["administrator".to_owned()],
        permissions: vec![PermissionSpec {
            vhost: "/".to_owned(),
            configure: ".*".to_owned(),
            write: ".*".to_owned(),
            read: ".*".to_owned(),
        }],
    };
    Users::new([
        User::new(spec("guest", "guest")).unwrap(),
        User::new(spec("alice", "s3cret")).unwrap(),
    ])
    .unwrap()
}

async fn gateway(anonymous: bool) -> (RunningGateway, SocketAddr) {
    let settings = Settings {
        listeners: vec![ListenerSpec {
            protocol: Protocol::Mqtt,
            transport: Transport::Plain,
            addr: "127.0.0.1:0".parse().unwrap(),
        }],
        users: Arc::new(users()),
        anonymous: anonymous.then(|| UserName::new("guest").unwrap()),
        ..Settings::default()
    };
    let running = Gateway::start(settings).await.unwrap();
    let addr = running
        .local_addr(Protocol::Mqtt, Transport::Plain)
        .unwrap();
    (running, addr)
}

fn options(id: &str, addr: SocketAddr) -> MqttOptions {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(5));
    options
}

/// Polls until `pick` accepts an incoming packet, failing after `STEP`.
async fn wait_for<T>(events: &mut EventLoop, mut pick: impl FnMut(&Packet) -> Option<T>) -> T {
    tokio::time::timeout(STEP, async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(packet)) => {
                    if let Some(found) = pick(&packet) {
                        return found;
                    }
                }
                Ok(Event::Outgoing(_)) => {}
                Err(error) => panic!("connection failed: {error:?}"),
            }
        }
    })
    .await
    .expect("timed out")
}

/// Drives an event loop in the background (for a publisher).
fn drive(mut events: EventLoop) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { while events.poll().await.is_ok() {} })
}

#[tokio::test]
async fn mqtt_v311_publish_and_subscribe_at_every_qos() {
    let (_gateway, addr) = gateway(true).await;
    let (subscriber, mut sub_events) = AsyncClient::new(options("sub", addr), 16);
    wait_for(&mut sub_events, |p| {
        matches!(p, Packet::ConnAck(_)).then_some(())
    })
    .await;
    subscriber
        .subscribe("sensors/+/temp", QoS::ExactlyOnce)
        .await
        .unwrap();
    let granted = wait_for(&mut sub_events, |p| match p {
        Packet::SubAck(ack) => Some(ack.return_codes.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        granted,
        vec![rumqttc::SubscribeReasonCode::Success(QoS::ExactlyOnce)]
    );

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
        let received = wait_for(&mut sub_events, |p| match p {
            Packet::Publish(publish) => Some(publish.clone()),
            _ => None,
        })
        .await;
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
    wait_for(&mut pub_events, |p| {
        matches!(p, Packet::PubAck(_)).then_some(())
    })
    .await;

    let (subscriber, mut sub_events) = AsyncClient::new(options("late", addr), 16);
    subscriber
        .subscribe("home/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let received = wait_for(&mut sub_events, |p| match p {
        Packet::Publish(publish) => Some(publish.clone()),
        _ => None,
    })
    .await;
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
    let error = tokio::time::timeout(STEP, events.poll())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        format!("{error:?}").contains("BadUserNamePassword"),
        "{error:?}"
    );
    let (_client, mut events) = AsyncClient::new(options("anon", addr), 4);
    let error = tokio::time::timeout(STEP, events.poll())
        .await
        .unwrap()
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
    wait_for(&mut watch_events, |p| {
        matches!(p, Packet::SubAck(_)).then_some(())
    })
    .await;

    let mut dying = options("device-1", addr);
    dying.set_last_will(rumqttc::LastWill::new(
        "status/device-1",
        "gone",
        QoS::AtLeastOnce,
        false,
    ));
    let (_first, mut first_events) = AsyncClient::new(dying, 4);
    wait_for(&mut first_events, |p| {
        matches!(p, Packet::ConnAck(_)).then_some(())
    })
    .await;
    // A second connection with the same client id takes over; the first is closed (abnormally,
    // so its will fires).
    let (_second, mut second_events) = AsyncClient::new(options("device-1", addr), 4);
    wait_for(&mut second_events, |p| {
        matches!(p, Packet::ConnAck(_)).then_some(())
    })
    .await;
    let closed = tokio::time::timeout(STEP, async {
        loop {
            if first_events.poll().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the older connection was closed");
    let will = wait_for(&mut watch_events, |p| match p {
        Packet::Publish(publish) => Some(publish.clone()),
        _ => None,
    })
    .await;
    assert_eq!(will.topic, "status/device-1");
    assert_eq!(&will.payload[..], b"gone");
}

#[tokio::test]
async fn mqtt_v5_client_connects_and_receives_at_the_granted_qos() {
    use rumqttc::v5::mqttbytes::v5::Packet as P5;
    use rumqttc::v5::mqttbytes::QoS as Q5;
    use rumqttc::v5::{AsyncClient as Client5, Event as E5, MqttOptions as Options5};

    let (_gateway, addr) = gateway(true).await;
    let mut options = Options5::new("v5-sub", addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = Client5::new(options, 16);
    client.subscribe("a/b", Q5::AtLeastOnce).await.unwrap();
    let mut published = false;
    let received = tokio::time::timeout(STEP, async {
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
    .await
    .expect("timed out");
    assert_eq!(&received.payload[..], b"hello v5");
    assert_eq!(received.qos, Q5::AtLeastOnce, "min(granted 1, publish 2)");
}
