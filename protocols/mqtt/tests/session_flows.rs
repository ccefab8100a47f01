//! Session scripts: packets in, packets and core effects out, no sockets.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mqgate_core::broker::{Broker, BrokerConfig};
use mqgate_core::names::{ConnectionId, VhostName};

use mqgate_mqtt::codec::{Inbound, ProtocolVersion};
use mqgate_mqtt::convert::packet::{build_publish, publish_header};
use mqgate_mqtt::convert::PublishHeader;
use mqgate_mqtt::registry::{ClientId, Registry, SessionKey};
use mqgate_mqtt::session::{MqttInbox, MqttSession, SessionParams};
use mqgate_mqtt::MqttSettings;
use mqgate_session::{CloseReason, Inbox, Outbound, Session, Step};
use rumqttd::protocol::{
    Connect, Disconnect, DisconnectReasonCode, Filter, Packet, PubRel, PubRelReason,
    PublishProperties, QoS, RetainForwardRule, Subscribe,
};

struct Client {
    session: MqttSession,
    inbox: MqttInbox,
    out: Outbound<Packet>,
}

fn broker() -> Arc<Broker> {
    let broker = Broker::new(BrokerConfig::default());
    broker.add_vhost(VhostName::default_vhost());
    broker
}

fn client(
    broker: &Arc<Broker>,
    registry: &Arc<Registry>,
    id: &str,
    version: ProtocolVersion,
) -> Client {
    let connection = broker.connect(&VhostName::default_vhost(), None).unwrap();
    let connection_id: ConnectionId = connection.id();
    let claim = registry.claim(
        SessionKey {
            vhost: VhostName::default_vhost(),
            client: ClientId::new(id),
        },
        connection_id,
    );
    let params = SessionParams {
        client_id: ClientId::new(id),
        version,
        settings: Arc::new(MqttSettings::default()),
        keepalive: 10,
        clean_start: true,
        expiry: Duration::ZERO,
        will: None,
        client_receive_maximum: None,
        client_max_packet_size: None,
        client_topic_alias_max: 0,
    };
    let (session, inbox, present) = MqttSession::open(params, connection, claim).unwrap();
    assert!(!present);
    Client {
        session,
        inbox,
        out: Outbound::new(),
    }
}

impl Client {
    fn send(&mut self, packet: Packet) -> Step {
        self.session
            .on_frame(Inbound::Packet(packet), &mut self.out)
    }

    /// Feeds every ready core event to the session.
    fn pump(&mut self) {
        while let Some(event) = self.inbox.try_recv() {
            assert_eq!(self.session.on_event(event, &mut self.out), Step::Continue);
        }
    }

    fn take(&mut self) -> Vec<Packet> {
        self.out.drain().collect()
    }

    fn subscribe(&mut self, filter: &str, qos: QoS) {
        let step = self.send(Packet::Subscribe(
            Subscribe {
                pkid: 1,
                filters: vec![Filter {
                    path: filter.to_owned(),
                    qos,
                    nolocal: false,
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
}

fn publish(topic: &str, qos: QoS, pkid: u16, dup: bool, body: &'static str) -> Packet {
    Packet::Publish(
        build_publish(
            Bytes::from(topic.to_owned()),
            Bytes::from_static(body.as_bytes()),
            false,
            PublishHeader { qos, pkid, dup },
        ),
        None,
    )
}

#[test]
fn session_qos2_inbound_pubrec_only_after_confirm_and_duplicates_not_republished() {
    let broker = broker();
    let registry = Registry::new(10);
    let mut sub = client(&broker, &registry, "sub", ProtocolVersion::V3_1_1);
    sub.subscribe("t/#", QoS::AtMostOnce);
    let mut publisher = client(&broker, &registry, "pub", ProtocolVersion::V3_1_1);

    assert_eq!(
        publisher.send(publish("t/x", QoS::ExactlyOnce, 7, false, "one")),
        Step::Continue
    );
    assert!(
        publisher.take().is_empty(),
        "no PUBREC before the core confirmed"
    );
    publisher.pump();
    let packets = publisher.take();
    assert!(
        matches!(packets.as_slice(), [Packet::PubRec(rec, None)] if rec.pkid == 7),
        "{packets:?}"
    );

    // The client resends (DUP) before PUBREL: answered again, not republished.
    assert_eq!(
        publisher.send(publish("t/x", QoS::ExactlyOnce, 7, true, "one")),
        Step::Continue
    );
    publisher.pump();
    assert!(matches!(publisher.take().as_slice(), [Packet::PubRec(rec, None)] if rec.pkid == 7));
    assert_eq!(
        publisher.send(Packet::PubRel(
            PubRel {
                pkid: 7,
                reason: PubRelReason::Success
            },
            None
        )),
        Step::Continue
    );
    assert!(matches!(publisher.take().as_slice(), [Packet::PubComp(comp, None)] if comp.pkid == 7));

    sub.pump();
    let delivered: Vec<_> = sub
        .take()
        .into_iter()
        .filter(|p| matches!(p, Packet::Publish(..)))
        .collect();
    assert_eq!(delivered.len(), 1, "one copy: {delivered:?}");
}

#[test]
fn session_overlapping_subscriptions_give_one_copy_at_the_highest_qos() {
    let broker = broker();
    let registry = Registry::new(10);
    let mut sub = client(&broker, &registry, "sub", ProtocolVersion::V3_1_1);
    sub.subscribe("a/+", QoS::AtMostOnce);
    sub.subscribe("a/#", QoS::AtLeastOnce);
    let mut publisher = client(&broker, &registry, "pub", ProtocolVersion::V3_1_1);
    assert_eq!(
        publisher.send(publish("a/b", QoS::ExactlyOnce, 1, false, "x")),
        Step::Continue
    );
    publisher.pump();
    sub.pump();
    let packets = sub.take();
    let publishes: Vec<_> = packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(publish, _) => Some(publish_header(publish)),
            _ => None,
        })
        .collect();
    assert_eq!(publishes.len(), 1, "{packets:?}");
    assert_eq!(publishes[0].qos, QoS::AtLeastOnce);
}

#[test]
fn session_dollar_topics_not_matched_by_leading_wildcards() {
    let broker = broker();
    let registry = Registry::new(10);
    let mut sub = client(&broker, &registry, "sub", ProtocolVersion::V3_1_1);
    sub.subscribe("#", QoS::AtMostOnce);
    let mut publisher = client(&broker, &registry, "pub", ProtocolVersion::V3_1_1);
    assert_eq!(
        publisher.send(publish("$SYS/load", QoS::AtMostOnce, 0, false, "x")),
        Step::Continue
    );
    assert_eq!(
        publisher.send(publish("plain", QoS::AtMostOnce, 0, false, "y")),
        Step::Continue
    );
    sub.pump();
    let topics: Vec<_> = sub
        .take()
        .into_iter()
        .filter_map(|p| match p {
            Packet::Publish(publish, _) => Some(publish.topic),
            _ => None,
        })
        .collect();
    assert_eq!(topics, vec![Bytes::from_static(b"plain")]);
}

#[test]
fn session_v5_protocol_violations_get_disconnect_codes() {
    let broker = broker();
    let registry = Registry::new(10);
    let cases: Vec<(Packet, DisconnectReasonCode)> = vec![
        (
            Packet::Connect(
                Connect {
                    keep_alive: 10,
                    client_id: "c".to_owned(),
                    clean_session: true,
                },
                None,
                None,
                None,
                None,
            ),
            DisconnectReasonCode::ProtocolError,
        ),
        (
            publish("a/+", QoS::AtMostOnce, 0, false, "x"),
            DisconnectReasonCode::TopicNameInvalid,
        ),
        (
            publish("", QoS::AtMostOnce, 0, false, "x"),
            DisconnectReasonCode::ProtocolError,
        ),
        (
            {
                let Packet::Publish(p, _) = publish("a", QoS::AtMostOnce, 0, false, "x") else {
                    unreachable!()
                };
                Packet::Publish(
                    p,
                    Some(PublishProperties {
                        topic_alias: Some(0),
                        ..PublishProperties::default()
                    }),
                )
            },
            DisconnectReasonCode::TopicAliasInvalid,
        ),
    ];
    for (index, (packet, code)) in cases.into_iter().enumerate() {
        let mut c = client(
            &broker,
            &registry,
            &format!("c{index}"),
            ProtocolVersion::V5,
        );
        let step = c.send(packet);
        assert!(
            matches!(step, Step::Close(CloseReason::Protocol(_))),
            "{step:?}"
        );
        let packets = c.take();
        assert!(
            matches!(packets.as_slice(), [Packet::Disconnect(d, _)] if d.reason_code == code),
            "case {index}: {packets:?}"
        );
    }
    // v3: the same violation closes without a DISCONNECT.
    let mut c = client(&broker, &registry, "v3", ProtocolVersion::V3_1_1);
    assert!(matches!(
        c.send(publish("a/#", QoS::AtMostOnce, 0, false, "x")),
        Step::Close(_)
    ));
    assert!(c.take().is_empty());
}

#[tokio::test(start_paused = true)]
async fn session_keepalive_times_out_at_one_and_a_half_times() {
    let broker = broker();
    let registry = Registry::new(10);
    let mut c = client(&broker, &registry, "k", ProtocolVersion::V5);
    let start = tokio::time::Instant::now();
    assert_eq!(
        c.session
            .on_tick(start + Duration::from_secs(14), &mut c.out),
        Step::Continue
    );
    let step = c
        .session
        .on_tick(start + Duration::from_millis(15_100), &mut c.out);
    assert_eq!(step, Step::Close(CloseReason::KeepaliveTimeout));
    assert!(matches!(
        c.take().as_slice(),
        [Packet::Disconnect(d, _)] if d.reason_code == DisconnectReasonCode::KeepAliveTimeout
    ));
}

#[test]
fn session_clean_disconnect_ends_without_error() {
    let broker = broker();
    let registry = Registry::new(10);
    let mut c = client(&broker, &registry, "d", ProtocolVersion::V3_1_1);
    let step = c.send(Packet::Disconnect(
        Disconnect {
            reason_code: DisconnectReasonCode::NormalDisconnection,
        },
        None,
    ));
    assert_eq!(step, Step::Close(CloseReason::Disconnected));
    c.session.on_close(&CloseReason::Disconnected);
    assert_eq!(registry.live_count(), 0, "client id released");
}
