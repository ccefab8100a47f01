//! MQTT 3.1.1 persistent sessions end to end with rumqttc against an in-process gateway on port
//! 0: clean session false keeps subscriptions and queues QoS 1/2 while offline (bounded, with
//! the configured overflow), resends in order, session present both ways; takeover keeps the
//! state; a shared-subscription member that leaves hands its unacked messages to the others.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mqgate::protocols::Protocol;
use mqgate::{
    AsyncStream, BoxFuture, ConnectionHandler, ConnectionMeta, Gateway, ListenerSpec,
    RunningGateway, Settings, Transport,
};
use mqgate_core::auth::{hash_password, PermissionSpec, User, UserSpec, Users};
use mqgate_core::metrics::Metrics;
use mqgate_core::names::{QueueName, UserName, VhostName};
use mqgate_mqtt::settings::SessionOverflow;
use mqgate_mqtt::{MqttContext, MqttSettings};
use mqgate_session::DriverConfig;
use rumqttc::{AsyncClient, ConnAck, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use tokio_util::sync::CancellationToken;

const STEP: Duration = Duration::from_secs(5);

/// Serves MQTT with chosen settings (the gateway's own handler uses the defaults).
struct Handler {
    ctx: OnceLock<MqttContext>,
}

impl ConnectionHandler for Handler {
    fn handle(
        &self,
        stream: Box<dyn AsyncStream>,
        meta: ConnectionMeta,
        shutdown: CancellationToken,
    ) -> BoxFuture<()> {
        let ctx = self.ctx.get().cloned();
        Box::pin(async move {
            if let Some(ctx) = ctx {
                let _ = mqgate_mqtt::serve(stream, &ctx, meta.peer, None, meta.id, shutdown).await;
            }
        })
    }
}

fn users() -> Users {
    Users::new([User::new(UserSpec {
        name: "guest".to_owned(),
        password_hash: hash_password("guest").unwrap(),
        loopback_only: true,
        tags: vec!["administrator".to_owned()],
        permissions: vec![PermissionSpec {
            vhost: "/".to_owned(),
            configure: ".*".to_owned(),
            write: ".*".to_owned(),
            read: ".*".to_owned(),
        }],
    })
    .unwrap()])
    .unwrap()
}

async fn gateway(settings: MqttSettings) -> (RunningGateway, SocketAddr) {
    let users = Arc::new(users());
    let gateway_settings = Settings {
        listeners: vec![ListenerSpec {
            protocol: Protocol::Mqtt,
            transport: Transport::Plain,
            addr: "127.0.0.1:0".parse().unwrap(),
        }],
        users: Arc::clone(&users),
        anonymous: Some(UserName::new("guest").unwrap()),
        ..Settings::default()
    };
    let handler = Arc::new(Handler {
        ctx: OnceLock::new(),
    });
    let running = Gateway::builder(gateway_settings)
        .handler(Protocol::Mqtt, handler.clone())
        .start()
        .await
        .unwrap();
    let ctx = MqttContext::new(
        Arc::clone(running.broker()),
        users,
        Some(UserName::new("guest").unwrap()),
        settings,
        DriverConfig::default(),
    );
    assert!(handler.ctx.set(ctx).is_ok());
    let addr = running
        .local_addr(Protocol::Mqtt, Transport::Plain)
        .unwrap();
    (running, addr)
}

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A client id unique within this test binary.
fn unique(prefix: &str) -> String {
    format!("s311-{prefix}-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

fn options(id: &str, addr: SocketAddr, clean: bool) -> MqttOptions {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(5));
    options.set_clean_session(clean);
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

async fn connack(events: &mut EventLoop) -> ConnAck {
    wait_for(events, |p| match p {
        Packet::ConnAck(ack) => Some(ack.clone()),
        _ => None,
    })
    .await
}

async fn next_publish(events: &mut EventLoop) -> Publish {
    wait_for(events, |p| match p {
        Packet::Publish(publish) => Some(publish.clone()),
        _ => None,
    })
    .await
}

async fn subscribe(client: &AsyncClient, events: &mut EventLoop, filter: &str, qos: QoS) {
    client.subscribe(filter, qos).await.unwrap();
    wait_for(events, |p| matches!(p, Packet::SubAck(_)).then_some(())).await;
}

/// A connected client whose event loop runs in the background (a publisher).
async fn publisher(addr: SocketAddr, id: &str) -> AsyncClient {
    let (client, mut events) = AsyncClient::new(options(id, addr, true), 64);
    connack(&mut events).await;
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    client
}

/// Waits until the session queue of `id` has no consumer (its connection is gone).
async fn wait_offline(gateway: &RunningGateway, id: &str) {
    let vhost = gateway.broker().vhost(&VhostName::default_vhost()).unwrap();
    let queue = QueueName::new(format!("mqtt-session.{id}")).unwrap();
    tokio::time::timeout(STEP, async {
        while vhost
            .queue(&queue)
            .is_some_and(|queue| queue.stats().consumers > 0)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the gateway did not notice the disconnect");
}

/// Waits until the session queue of `id` holds `ready` messages.
async fn wait_ready(gateway: &RunningGateway, id: &str, ready: u32) {
    let vhost = gateway.broker().vhost(&VhostName::default_vhost()).unwrap();
    let queue = QueueName::new(format!("mqtt-session.{id}")).unwrap();
    tokio::time::timeout(STEP, async {
        while vhost
            .queue(&queue)
            .is_none_or(|queue| queue.stats().ready != ready)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the session queue did not reach the expected count");
}

fn text(publish: &Publish) -> String {
    String::from_utf8_lossy(&publish.payload).into_owned()
}

#[tokio::test]
async fn mqtt_sessions_clean_session_false_queues_while_offline_and_resends_in_order() {
    let (gateway, addr) = gateway(MqttSettings::default()).await;
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
    let (gateway, addr) = gateway(settings).await;
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
    tokio::time::timeout(STEP, async {
        while Metrics::read(&metrics.overflow_dropped) < dropped_before + 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("overflow drops not counted");
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
    let (_gateway, addr) = gateway(MqttSettings::default()).await;
    let id = unique("take");
    let (old, mut old_events) = AsyncClient::new(options(&id, addr, false), 32);
    connack(&mut old_events).await;
    subscribe(&old, &mut old_events, "take/#", QoS::AtLeastOnce).await;
    // Keep the old connection's loop running so it can be taken over.
    let old_loop = tokio::spawn(async move {
        // Ends when the gateway closes it.
        while old_events.poll().await.is_ok() {}
    });

    let (_new, mut events) = AsyncClient::new(options(&id, addr, false), 32);
    assert!(
        connack(&mut events).await.session_present,
        "state taken over"
    );
    tokio::time::timeout(STEP, old_loop)
        .await
        .expect("old connection not closed")
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
    let (_gateway, addr) = gateway(MqttSettings::default()).await;
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
