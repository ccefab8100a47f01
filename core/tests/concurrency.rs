//! Many concurrent publishers and consumers: every confirmed message is processed exactly once
//! by a clustering group (even when a member leaves with unacked messages) and received exactly
//! once by every broadcast member.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mqgate_core::groups::{GroupMode, GroupSubscription};
use mqgate_core::message::Message;
use mqgate_core::names::{ExchangeName, VhostName};
use mqgate_core::outbox::{AckMode, Event, EventReceiver, PublishId, PublishOutcome};
use mqgate_core::{Broker, BrokerConfig, Connection, Session};

const PUBLISHERS: usize = 4;
const PER_PUBLISHER: usize = 5_000;
const TOTAL: usize = PUBLISHERS * PER_PUBLISHER;
const BOUND: Duration = Duration::from_secs(60);

fn subscription(mode: GroupMode, ack_mode: AckMode) -> GroupSubscription {
    GroupSubscription {
        group: "load".into(),
        mode,
        exchange: ExchangeName::new("amq.topic").unwrap(),
        pattern: "load.*".into(),
        tag_filter: None,
        durable: false,
        ack_mode,
        prefetch: 50,
    }
}

fn open(broker: &Broker) -> (Connection, Session, EventReceiver) {
    let connection = broker.connect(&VhostName::default_vhost(), None).unwrap();
    let (session, events) = connection.open_session_with_window(64 * 1024);
    (connection, session, events)
}

/// Reads deliveries until `done` says the whole run is finished; acks manual ones unless this
/// member is the one that leaves early. Returns the bodies it processed (acked or auto-acked).
async fn member(
    _connection: Connection,
    mut session: Session,
    mut events: EventReceiver,
    ack_mode: AckMode,
    leave_after: Option<usize>,
    processed_total: Arc<AtomicUsize>,
    target: usize,
) -> Vec<String> {
    let mut processed = Vec::new();
    let mut received = 0;
    loop {
        if processed_total.load(Ordering::SeqCst) >= target {
            return processed;
        }
        let event = match tokio::time::timeout(Duration::from_millis(50), events.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => return processed,
            Err(_) => continue,
        };
        let Event::Delivery(delivery) = event else {
            continue;
        };
        received += 1;
        if leave_after.is_some_and(|limit| received > limit) {
            // Leave holding this delivery (and any others in flight) unacked: they must be
            // requeued to the other members.
            session.close();
            return processed;
        }
        let body = String::from_utf8(delivery.message.body.to_vec()).unwrap();
        if ack_mode == AckMode::Manual {
            session.ack(delivery.tag, false).unwrap();
        }
        processed.push(body);
        processed_total.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_reach_groups_exactly_once() {
    let broker = Broker::new(BrokerConfig::default());
    broker.add_vhost(VhostName::default_vhost());

    let clustered = Arc::new(AtomicUsize::new(0));
    let mut cluster_members = Vec::new();
    for index in 0..3 {
        let (connection, mut session, events) = open(&broker);
        session
            .join_group(&subscription(GroupMode::Clustering, AckMode::Manual))
            .unwrap();
        let leave_after = (index == 0).then_some(500);
        cluster_members.push(tokio::spawn(member(
            connection,
            session,
            events,
            AckMode::Manual,
            leave_after,
            Arc::clone(&clustered),
            TOTAL,
        )));
    }
    let mut broadcast_members = Vec::new();
    for _ in 0..2 {
        let (connection, mut session, events) = open(&broker);
        session
            .join_group(&subscription(GroupMode::Broadcast, AckMode::Auto))
            .unwrap();
        broadcast_members.push(tokio::spawn(member(
            connection,
            session,
            events,
            AckMode::Auto,
            None,
            Arc::new(AtomicUsize::new(0)),
            TOTAL,
        )));
    }

    let mut publishers = Vec::new();
    for publisher in 0..PUBLISHERS {
        let (connection, mut session, mut events) = open(&broker);
        publishers.push(tokio::spawn(async move {
            let _connection = connection;
            for i in 0..PER_PUBLISHER {
                let message = Message::new(
                    ExchangeName::new("amq.topic").unwrap(),
                    &format!("load.{publisher}"),
                    format!("{publisher}:{i}"),
                );
                session
                    .publish(message, false, Some(PublishId(i as u64)))
                    .unwrap();
                if i % 100 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            let mut confirmed = 0;
            while confirmed < PER_PUBLISHER {
                match events.recv().await {
                    Some(Event::PublishSettled { outcome, .. }) => {
                        assert_eq!(outcome, PublishOutcome::Confirmed);
                        confirmed += 1;
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            confirmed
        }));
    }

    let run = async {
        let mut confirmed = 0;
        for publisher in publishers {
            confirmed += publisher.await.unwrap();
        }
        assert_eq!(confirmed, TOTAL, "every publish confirmed");

        let mut cluster_counts: HashMap<String, usize> = HashMap::new();
        for member in cluster_members {
            for body in member.await.unwrap() {
                *cluster_counts.entry(body).or_default() += 1;
            }
        }
        assert_eq!(
            cluster_counts.len(),
            TOTAL,
            "every message processed by the cluster"
        );
        assert!(
            cluster_counts.values().all(|&n| n == 1),
            "no message processed twice by the cluster"
        );

        for member in broadcast_members {
            let bodies = member.await.unwrap();
            assert_eq!(bodies.len(), TOTAL, "broadcast member got every message");
            let mut unique = bodies.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), TOTAL, "broadcast member got no duplicate");
        }
    };
    tokio::time::timeout(BOUND, run)
        .await
        .expect("the run finishes within its bound");
    assert_eq!(broker.memory().used(), 0, "every message left the queues");
}
