//! Session scripts for No Local origins, message expiry on delivery, PUBREL after a reconnect
//! and will delay: packets in, packets and core effects out, no sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqgate_core::broker::{Broker, BrokerConfig};
use mqgate_core::declare::{BindingDeclaration, QueueDeclaration};
use mqgate_core::message::Headers;
use mqgate_core::metrics::Metrics;
use mqgate_core::names::{QueueName, VhostName};
use mqgate_core::outbox::{AckMode, Event};
use mqgate_mqtt::codec::{Inbound, ProtocolVersion};
use mqgate_mqtt::convert::packet::{build_publish, publish_header};
use mqgate_mqtt::convert::PublishHeader;
use mqgate_mqtt::registry::{ClientId, Registry, SessionKey};
use mqgate_mqtt::session::{MqttEvent, MqttInbox, MqttSession, SessionParams, Will};
use mqgate_mqtt::MqttSettings;
use mqgate_session::{CloseReason, Inbox, Outbound, Session, Step};
use rumqttd::protocol::{
    Filter, LastWill, LastWillProperties, Packet, PubComp, PubCompReason, PubRec, PubRecReason,
    PublishProperties, QoS, RetainForwardRule, Subscribe,
};

struct Client {
    session: MqttSession,
    inbox: MqttInbox,
    out: Outbound<Packet>,
    present: bool,
}

fn broker() -> Arc<Broker> {
    let broker = Broker::new(BrokerConfig::default());
    broker.add_vhost(VhostName::default_vhost());
    broker
}

struct Opts {
    version: ProtocolVersion,
    clean_start: bool,
    expiry: Duration,
    will: Option<Will>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            version: ProtocolVersion::V5,
            clean_start: true,
            expiry: Duration::ZERO,
            will: None,
        }
    }
}

fn client(broker: &Arc<Broker>, registry: &Arc<Registry>, id: &str, opts: Opts) -> Client {
    let connection = broker.connect(&VhostName::default_vhost(), None).unwrap();
    let claim = registry.claim(
        SessionKey {
            vhost: VhostName::default_vhost(),
            client: ClientId::new(id),
        },
        connection.id(),
    );
    let params = SessionParams {
        client_id: ClientId::new(id),
        version: opts.version,
        settings: Arc::new(MqttSettings::default()),
        keepalive: 0,
        clean_start: opts.clean_start,
        expiry: opts.expiry,
        will: opts.will,
        client_receive_maximum: None,
        client_max_packet_size: None,
        client_topic_alias_max: 0,
    };
    let (session, inbox, present) = MqttSession::open(params, connection, claim).unwrap();
    Client {
        session,
        inbox,
        out: Outbound::new(),
        present,
    }
}

impl Client {
    fn send(&mut self, packet: Packet) -> Step {
        self.session
            .on_frame(Inbound::Packet(packet), &mut self.out)
    }

    fn pump(&mut self) {
        while let Some(event) = self.inbox.try_recv() {
            assert_eq!(self.session.on_event(event, &mut self.out), Step::Continue);
        }
    }

    fn take(&mut self) -> Vec<Packet> {
        self.out.drain().collect()
    }

    fn subscribe_with(&mut self, filter: &str, qos: QoS, nolocal: bool) {
        let step = self.send(Packet::Subscribe(
            Subscribe {
                pkid: 1,
                filters: vec![Filter {
                    path: filter.to_owned(),
                    qos,
                    nolocal,
                    preserve_retain: false,
                    retain_forward_rule: RetainForwardRule::OnEverySubscribe,
                }],
            },
            None,
        ));
        assert_eq!(step, Step::Continue);
        let packets = self.take();
        assert!(
            matches!(packets.first(), Some(Packet::SubAck(..))),
            "{packets:?}"
        );
    }

    /// Publishes and pumps until the core confirmed (QoS 1/2).
    fn publish(&mut self, topic: &str, qos: QoS, pkid: u16, properties: Option<PublishProperties>) {
        let packet = Packet::Publish(
            build_publish(
                Bytes::from(topic.to_owned()),
                Bytes::from_static(b"payload"),
                false,
                PublishHeader {
                    qos,
                    pkid,
                    dup: false,
                },
            ),
            properties,
        );
        assert_eq!(self.send(packet), Step::Continue);
        self.pump();
        self.take();
    }

    fn publishes(&mut self) -> Vec<(rumqttd::protocol::Publish, Option<PublishProperties>)> {
        self.pump();
        self.take()
            .into_iter()
            .filter_map(|packet| match packet {
                Packet::Publish(publish, properties) => Some((publish, properties)),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn session_no_local_uses_the_core_origin_not_a_header() {
    let broker = broker();
    let registry = Registry::new(10);
    // A core queue sees what AMQP and STOMP consumers would see.
    let (mut probe, _events) = broker
        .connect(&VhostName::default_vhost(), None)
        .unwrap()
        .open_session();
    let probe_queue = QueueName::new("probe").unwrap();
    probe
        .declare_queue(QueueDeclaration {
            name: Some(probe_queue.clone()),
            durable: false,
            exclusive: false,
            auto_delete: false,
            passive: false,
            arguments: Headers::new(),
        })
        .unwrap();
    probe
        .bind_queue(BindingDeclaration {
            source: mqgate_core::names::ExchangeName::new("amq.topic").unwrap(),
            destination: "probe".to_owned(),
            routing_key: "nl.#".to_owned(),
            arguments: Headers::new(),
        })
        .unwrap();

    let mut me = client(&broker, &registry, "nl-me", Opts::default());
    me.subscribe_with("nl/#", QoS::AtLeastOnce, true);
    let mut other = client(&broker, &registry, "nl-other", Opts::default());
    other.subscribe_with("nl/#", QoS::AtLeastOnce, false);

    me.publish("nl/a", QoS::AtLeastOnce, 3, None);
    assert!(me.publishes().is_empty(), "no-local suppresses own message");
    let received = other.publishes();
    assert_eq!(received.len(), 1);
    let user_properties = received[0]
        .1
        .as_ref()
        .map(|p| p.user_properties.clone())
        .unwrap_or_default();
    assert!(user_properties.is_empty(), "{user_properties:?}");

    let (delivery, _) = probe.get(&probe_queue, AckMode::Auto).unwrap().unwrap();
    assert!(
        delivery
            .message
            .headers
            .iter()
            .all(|(key, _)| !key.contains("publisher")),
        "no header names the publisher: {:?}",
        delivery.message.headers
    );
    assert!(delivery.message.origin.is_some());

    // The origin is per client id: a new connection of the same id is still "own".
    me.session.on_close(&CloseReason::Disconnected);
    let mut again = client(&broker, &registry, "nl-me", Opts::default());
    again.subscribe_with("nl/#", QoS::AtLeastOnce, true);
    other.publish("nl/b", QoS::AtLeastOnce, 4, None);
    assert_eq!(again.publishes().len(), 1, "others' messages still arrive");
    again.publish("nl/c", QoS::AtMostOnce, 0, None);
    assert!(again.publishes().is_empty());
}

#[test]
fn session_message_expiry_is_decremented_by_time_queued_and_expired_ones_are_not_sent() {
    let broker = broker();
    let registry = Registry::new(10);
    let mut sub = client(&broker, &registry, "exp-sub", Opts::default());
    sub.subscribe_with("exp/#", QoS::AtLeastOnce, false);
    let mut publisher = client(&broker, &registry, "exp-pub", Opts::default());
    let expiring = || {
        Some(PublishProperties {
            message_expiry_interval: Some(10),
            ..PublishProperties::default()
        })
    };
    publisher.publish("exp/a", QoS::AtLeastOnce, 1, expiring());
    publisher.publish("exp/b", QoS::AtLeastOnce, 2, expiring());

    let mut deliveries = Vec::new();
    while let Some(event) = sub.inbox.try_recv() {
        match event {
            MqttEvent::Core(Event::Delivery(delivery)) => deliveries.push(delivery),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(deliveries.len(), 2);
    let second = deliveries.pop().unwrap();
    let first = deliveries.pop().unwrap();

    // 3.5 s in the queue: 6.5 s left, announced as 7 (whole seconds, rounded up).
    let at = first.enqueued_at + Duration::from_millis(3500);
    assert_eq!(
        sub.session.on_delivery_at(first, at, &mut sub.out),
        Step::Continue
    );
    let packets = sub.take();
    let Some(Packet::Publish(_, Some(properties))) = packets.first() else {
        panic!("{packets:?}")
    };
    assert_eq!(properties.message_expiry_interval, Some(7));

    // 11 s in the queue: expired, acked to the core, not sent, counted.
    let expired_before = Metrics::read(&broker.metrics().expired);
    let at = second.enqueued_at + Duration::from_secs(11);
    assert_eq!(
        sub.session.on_delivery_at(second, at, &mut sub.out),
        Step::Continue
    );
    assert!(sub.take().is_empty());
    assert_eq!(sub.session.expired(), 1);
    assert_eq!(Metrics::read(&broker.metrics().expired), expired_before + 1);
    // The driver ends every batch so; the deferred ack reaches the core.
    sub.session.on_batch_end();
    let queue = broker
        .vhost(&VhostName::default_vhost())
        .unwrap()
        .queue(&QueueName::new("mqtt-session.exp-sub").unwrap())
        .unwrap();
    assert_eq!(queue.stats().unacked, 1, "only the sent one awaits PUBACK");
}

#[test]
fn session_pubrel_is_resent_after_reconnect_and_its_packet_id_is_not_reused() {
    let broker = broker();
    let registry = Registry::new(10);
    let persistent = || Opts {
        version: ProtocolVersion::V3_1_1,
        clean_start: false,
        expiry: Duration::from_secs(60),
        will: None,
    };
    let mut sub = client(&broker, &registry, "rel-sub", persistent());
    sub.subscribe_with("rel/#", QoS::ExactlyOnce, false);
    let mut publisher = client(&broker, &registry, "rel-pub", Opts::default());
    publisher.publish("rel/a", QoS::ExactlyOnce, 1, None);
    let sent = sub.publishes();
    assert_eq!(sent.len(), 1);
    let pkid = publish_header(&sent[0].0).pkid;
    let _ = sub.send(Packet::PubRec(
        PubRec {
            pkid,
            reason: PubRecReason::Success,
        },
        None,
    ));
    assert!(
        matches!(sub.take().as_slice(), [Packet::PubRel(rel, _)] if rel.pkid == pkid),
        "PUBREL answers PUBREC"
    );
    // The connection drops before PUBCOMP.
    sub.session.on_close(&CloseReason::PeerClosed);

    let mut resumed = client(&broker, &registry, "rel-sub", persistent());
    assert!(resumed.present);
    publisher.publish("rel/b", QoS::ExactlyOnce, 2, None);
    resumed.pump();
    let packets = resumed.take();
    match packets.as_slice() {
        [Packet::PubRel(rel, _), Packet::Publish(publish, _)] => {
            assert_eq!(rel.pkid, pkid, "PUBREL resent first");
            assert_ne!(publish_header(publish).pkid, pkid, "no packet-id collision");
            assert_eq!(publish.payload, Bytes::from_static(b"payload"));
        }
        other => panic!("expected PUBREL then the new PUBLISH: {other:?}"),
    }
    assert_eq!(resumed.session.in_flight(), 2);
    let _ = resumed.send(Packet::PubComp(
        PubComp {
            pkid,
            reason: PubCompReason::Success,
        },
        None,
    ));
    assert_eq!(
        resumed.session.in_flight(),
        1,
        "PUBCOMP completes the old flow"
    );
    let queue = broker
        .vhost(&VhostName::default_vhost())
        .unwrap()
        .queue(&QueueName::new("mqtt-session.rel-sub").unwrap())
        .unwrap();
    assert_eq!(
        queue.stats().ready,
        0,
        "the acked message was not redelivered"
    );
}

fn will(delay: u32) -> Will {
    Will::from_connect(
        LastWill {
            topic: Bytes::from_static(b"will/topic"),
            message: Bytes::from_static(b"gone"),
            qos: QoS::AtMostOnce,
            retain: false,
        },
        Some(LastWillProperties {
            delay_interval: Some(delay),
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: None,
            response_topic: None,
            correlation_data: None,
            user_properties: Vec::new(),
        }),
    )
    .unwrap()
}

/// Lets spawned timers run after the paused clock moved.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

fn will_opts(delay: u32, expiry: u64) -> Opts {
    Opts {
        version: ProtocolVersion::V5,
        clean_start: false,
        expiry: Duration::from_secs(expiry),
        will: Some(will(delay)),
    }
}

#[tokio::test(start_paused = true)]
async fn session_will_waits_for_its_delay() {
    let broker = broker();
    let registry = Registry::new(10);
    let mut watcher = client(&broker, &registry, "wd-watch", Opts::default());
    watcher.subscribe_with("will/#", QoS::AtMostOnce, false);
    let mut dying = client(&broker, &registry, "wd-dying", will_opts(5, 60));
    dying.session.on_close(&CloseReason::PeerClosed);
    assert_eq!(registry.delayed_wills(), 1);
    tokio::time::advance(Duration::from_secs(4)).await;
    settle().await;
    assert!(watcher.publishes().is_empty(), "not before the delay");
    tokio::time::advance(Duration::from_millis(1100)).await;
    settle().await;
    let wills = watcher.publishes();
    assert_eq!(wills.len(), 1);
    assert_eq!(wills[0].0.payload, Bytes::from_static(b"gone"));
    assert_eq!(registry.delayed_wills(), 0);
}

#[tokio::test(start_paused = true)]
async fn session_will_is_not_sent_when_the_client_returns_within_the_delay() {
    let broker = broker();
    let registry = Registry::new(10);
    let mut watcher = client(&broker, &registry, "wr-watch", Opts::default());
    watcher.subscribe_with("will/#", QoS::AtMostOnce, false);
    let mut dying = client(&broker, &registry, "wr-dying", will_opts(5, 60));
    dying.subscribe_with("elsewhere/#", QoS::AtLeastOnce, false);
    dying.session.on_close(&CloseReason::PeerClosed);
    tokio::time::advance(Duration::from_secs(2)).await;
    settle().await;
    let back = client(&broker, &registry, "wr-dying", will_opts(5, 60));
    assert!(back.present);
    assert_eq!(registry.delayed_wills(), 0, "the reconnect cancelled it");
    tokio::time::advance(Duration::from_secs(10)).await;
    settle().await;
    assert!(watcher.publishes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn session_will_is_sent_when_the_session_ends_before_the_delay() {
    let broker = broker();
    let registry = Registry::new(10);
    let mut watcher = client(&broker, &registry, "we-watch", Opts::default());
    watcher.subscribe_with("will/#", QoS::AtMostOnce, false);
    // Session expiry 2 s < will delay 30 s: the will goes when the session ends.
    let mut dying = client(&broker, &registry, "we-dying", will_opts(30, 2));
    dying.session.on_close(&CloseReason::PeerClosed);
    tokio::time::advance(Duration::from_millis(1900)).await;
    settle().await;
    assert!(watcher.publishes().is_empty());
    tokio::time::advance(Duration::from_millis(200)).await;
    settle().await;
    assert_eq!(watcher.publishes().len(), 1);

    // A session that ends with its connection publishes the will at once.
    let mut short = client(
        &broker,
        &registry,
        "we-short",
        Opts {
            will: Some(will(30)),
            ..Opts::default()
        },
    );
    short.session.on_close(&CloseReason::PeerClosed);
    assert_eq!(watcher.publishes().len(), 1);
    assert_eq!(registry.delayed_wills(), 0);
}

#[test]
fn session_message_without_expiry_carries_none_however_long_it_waited() {
    // A delivery with no expiry carries none, whatever the clock says.
    let broker = broker();
    let registry = Registry::new(10);
    let mut sub = client(&broker, &registry, "noexp-sub", Opts::default());
    sub.subscribe_with("noexp/#", QoS::AtMostOnce, false);
    let mut publisher = client(&broker, &registry, "noexp-pub", Opts::default());
    publisher.publish("noexp/a", QoS::AtMostOnce, 0, None);
    let Some(MqttEvent::Core(Event::Delivery(delivery))) = sub.inbox.try_recv() else {
        panic!("no delivery")
    };
    let later = Instant::now() + Duration::from_secs(3600);
    let _ = sub.session.on_delivery_at(delivery, later, &mut sub.out);
    let packets = sub.take();
    assert!(
        matches!(packets.as_slice(), [Packet::Publish(_, None)]),
        "{packets:?}"
    );
}
