//! The engine through its public API, as an adapter uses it: connections, sessions, events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mqgate_core::declare::{
    BindingDeclaration, ExchangeDeclaration, ExchangeKind, QueueDeclaration,
};
use mqgate_core::errors::{
    BindError, DeclareExchangeError, DeclareQueueError, PublishError, QueueAccessError,
};
use mqgate_core::groups::{GroupMode, GroupSubscription};
use mqgate_core::message::{FieldValue, Headers, Message};
use mqgate_core::metrics::Metrics;
use mqgate_core::names::{ExchangeName, QueueName, VhostName};
use mqgate_core::outbox::{
    AckMode, CancelReason, Delivery, DeliveryTag, Event, EventReceiver, FlowState, PublishId,
    PublishOutcome, PublishRejection,
};
use mqgate_core::{Broker, BrokerConfig, ConsumeRequest, Session};

fn broker() -> Arc<Broker> {
    let broker = Broker::new(BrokerConfig::default());
    broker.add_vhost(VhostName::default_vhost());
    broker
}

fn session(broker: &Broker) -> (mqgate_core::Connection, Session, EventReceiver) {
    let connection = broker
        .connect(&VhostName::default_vhost(), None)
        .expect("vhost exists");
    let (session, events) = connection.open_session();
    (connection, session, events)
}

fn q(name: &str) -> QueueName {
    QueueName::new(name).unwrap()
}

fn x(name: &str) -> ExchangeName {
    ExchangeName::new(name).unwrap()
}

fn declare(session: &mut Session, name: &str, arguments: Headers) {
    session
        .declare_queue(QueueDeclaration {
            arguments,
            ..QueueDeclaration::named(q(name))
        })
        .unwrap();
}

fn bind(session: &mut Session, exchange: &str, queue: &str, key: &str) {
    session
        .bind_queue(BindingDeclaration {
            source: x(exchange),
            destination: queue.into(),
            routing_key: key.into(),
            arguments: Headers::new(),
        })
        .unwrap();
}

fn publish(session: &mut Session, exchange: &str, key: &str, body: &str) -> usize {
    session
        .publish(Message::new(x(exchange), key, body.to_owned()), false, None)
        .unwrap()
        .queues
}

fn next_delivery(events: &mut EventReceiver) -> Option<Delivery> {
    while let Some(event) = events.try_recv() {
        if let Event::Delivery(delivery) = event {
            return Some(delivery);
        }
    }
    None
}

fn body(delivery: &Delivery) -> &[u8] {
    &delivery.message.body
}

#[test]
fn default_exchange_routes_by_queue_name_and_cannot_be_bound() {
    let broker = broker();
    let (_c, mut s, mut events) = session(&broker);
    declare(&mut s, "plain", Headers::new());
    assert_eq!(publish(&mut s, "", "plain", "hello"), 1);
    assert_eq!(publish(&mut s, "", "missing", "lost"), 0);
    s.consume(ConsumeRequest::auto(q("plain"))).unwrap();
    assert_eq!(body(&next_delivery(&mut events).unwrap()), b"hello");
    let err = s
        .bind_queue(BindingDeclaration {
            source: ExchangeName::default_exchange(),
            destination: "plain".into(),
            routing_key: "k".into(),
            arguments: Headers::new(),
        })
        .unwrap_err();
    assert_eq!(err, BindError::DefaultExchange);
}

#[test]
fn built_in_exchanges_exist_and_amq_names_are_reserved() {
    let broker = broker();
    let (_c, mut s, _events) = session(&broker);
    for name in ["amq.direct", "amq.fanout", "amq.topic", "amq.headers"] {
        let passive = ExchangeDeclaration {
            passive: true,
            ..ExchangeDeclaration::new(x(name), ExchangeKind::Direct)
        };
        assert_eq!(s.declare_exchange(passive), Ok(()), "{name}");
    }
    let err = s
        .declare_exchange(ExchangeDeclaration::new(x("amq.mine"), ExchangeKind::Topic))
        .unwrap_err();
    assert!(matches!(err, DeclareExchangeError::ReservedName { .. }));
    let err = s
        .declare_queue(QueueDeclaration::named(q("amq.mine")))
        .unwrap_err();
    assert!(matches!(err, DeclareQueueError::ReservedName { .. }));
}

#[test]
fn redeclare_with_other_properties_is_inequivalent() {
    let broker = broker();
    let (_c, mut s, _events) = session(&broker);
    s.declare_exchange(ExchangeDeclaration::new(x("orders"), ExchangeKind::Direct))
        .unwrap();
    let err = s
        .declare_exchange(ExchangeDeclaration::new(x("orders"), ExchangeKind::Fanout))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "inequivalent arg 'type' for exchange 'orders' in vhost '/': received 'fanout' but current is 'direct'"
    );
    let mut args = Headers::new();
    args.insert("x-max-length", 10i64);
    declare(&mut s, "limited", args);
    let mut other = Headers::new();
    other.insert("x-max-length", 20i64);
    let err = s
        .declare_queue(QueueDeclaration {
            arguments: other,
            ..QueueDeclaration::named(q("limited"))
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("inequivalent arg 'x-max-length'"),
        "{err}"
    );
    let mut same_value_other_width = Headers::new();
    same_value_other_width.insert("x-max-length", FieldValue::I32(10));
    s.declare_queue(QueueDeclaration {
        arguments: same_value_other_width,
        ..QueueDeclaration::named(q("limited"))
    })
    .unwrap();
}

#[test]
fn server_named_queue_and_passive_declare() {
    let broker = broker();
    let (_c, mut s, _events) = session(&broker);
    let declared = s.declare_queue(QueueDeclaration::default()).unwrap();
    assert!(declared.name.as_str().starts_with("amq.gen-"));
    let passive = s
        .declare_queue(QueueDeclaration {
            passive: true,
            ..QueueDeclaration::named(declared.name.clone())
        })
        .unwrap();
    assert_eq!(passive.name, declared.name);
    let err = s
        .declare_queue(QueueDeclaration {
            passive: true,
            ..QueueDeclaration::named(q("nope"))
        })
        .unwrap_err();
    assert_eq!(err.to_string(), "no queue 'nope' in vhost '/'");
}

#[test]
fn exclusive_queue_is_locked_to_its_connection_and_dies_with_it() {
    let broker = broker();
    let (owner, mut s1, _e1) = session(&broker);
    let (_other, mut s2, _e2) = session(&broker);
    s1.declare_queue(QueueDeclaration {
        exclusive: true,
        ..QueueDeclaration::named(q("mine"))
    })
    .unwrap();
    let err = s2.consume(ConsumeRequest::auto(q("mine"))).unwrap_err();
    assert!(err
        .to_string()
        .contains("exclusive access to locked queue 'mine'"));
    assert!(matches!(
        s2.purge_queue(&q("mine")),
        Err(QueueAccessError::Locked { .. })
    ));
    drop(s1);
    drop(owner);
    assert!(broker
        .vhost(&VhostName::default_vhost())
        .unwrap()
        .queue(&q("mine"))
        .is_none());
}

#[test]
fn topic_fanout_headers_and_exchange_to_exchange() {
    let broker = broker();
    let (_c, mut s, _events) = session(&broker);
    for name in ["t1", "t2", "f1", "h1", "e2e"] {
        declare(&mut s, name, Headers::new());
    }
    bind(&mut s, "amq.topic", "t1", "cities.*");
    bind(&mut s, "amq.topic", "t2", "cities.#");
    bind(&mut s, "amq.fanout", "f1", "");
    assert_eq!(publish(&mut s, "amq.topic", "cities.london", "a"), 2);
    assert_eq!(publish(&mut s, "amq.topic", "cities", "b"), 1);
    assert_eq!(publish(&mut s, "amq.fanout", "anything", "c"), 1);

    let mut args = Headers::new();
    args.insert("x-match", "any");
    args.insert("kind", "alert");
    s.bind_queue(BindingDeclaration {
        source: x("amq.headers"),
        destination: "h1".into(),
        routing_key: String::new(),
        arguments: args,
    })
    .unwrap();
    let mut alert = Message::new(x("amq.headers"), "", "d");
    alert.headers.insert("kind", "alert");
    assert_eq!(s.publish(alert, false, None).unwrap().queues, 1);

    s.declare_exchange(ExchangeDeclaration::new(x("edge"), ExchangeKind::Fanout))
        .unwrap();
    s.bind_exchange(BindingDeclaration {
        source: x("edge"),
        destination: "amq.topic".into(),
        routing_key: String::new(),
        arguments: Headers::new(),
    })
    .unwrap();
    // a cycle back to edge must not loop
    s.bind_exchange(BindingDeclaration {
        source: x("amq.topic"),
        destination: "edge".into(),
        routing_key: "#".into(),
        arguments: Headers::new(),
    })
    .unwrap();
    assert_eq!(
        publish(&mut s, "edge", "cities.paris", "e"),
        2,
        "edge -> amq.topic -> t1, t2; one copy each despite the cycle"
    );
}

#[test]
fn alternate_exchange_takes_unroutable_messages() {
    let broker = broker();
    let (_c, mut s, mut events) = session(&broker);
    declare(&mut s, "unrouted", Headers::new());
    s.declare_exchange(ExchangeDeclaration::new(x("ae"), ExchangeKind::Fanout))
        .unwrap();
    bind(&mut s, "ae", "unrouted", "");
    let mut args = Headers::new();
    args.insert("alternate-exchange", "ae");
    s.declare_exchange(ExchangeDeclaration {
        arguments: args,
        ..ExchangeDeclaration::new(x("main"), ExchangeKind::Direct)
    })
    .unwrap();
    assert_eq!(publish(&mut s, "main", "nobody", "m"), 1);
    s.consume(ConsumeRequest::auto(q("unrouted"))).unwrap();
    assert_eq!(body(&next_delivery(&mut events).unwrap()), b"m");
}

#[test]
fn unroutable_and_missing_exchange() {
    let broker = broker();
    let (_c, mut s, mut events) = session(&broker);
    let routed = s
        .publish(
            Message::new(x("amq.direct"), "nobody", "m"),
            true,
            Some(PublishId(1)),
        )
        .unwrap();
    assert_eq!(routed.queues, 0);
    assert!(matches!(
        events.try_recv(),
        Some(Event::PublishSettled {
            id: PublishId(1),
            outcome: PublishOutcome::Confirmed
        })
    ));
    assert_eq!(Metrics::read(&broker.metrics().unroutable_returned), 1);
    publish(&mut s, "amq.direct", "nobody", "m");
    assert_eq!(Metrics::read(&broker.metrics().unroutable_dropped), 1);
    let err = s
        .publish(Message::new(x("nope"), "k", "m"), false, None)
        .unwrap_err();
    assert!(matches!(err, PublishError::ExchangeNotFound { .. }));
    assert_eq!(err.to_string(), "no exchange 'nope' in vhost '/'");
}

#[test]
fn confirm_is_rejected_by_reject_publish_overflow() {
    let broker = broker();
    let (_c, mut s, mut events) = session(&broker);
    let mut args = Headers::new();
    args.insert("x-max-length", 1i64);
    args.insert("x-overflow", "reject-publish");
    declare(&mut s, "one", args);
    for id in 1..=2 {
        s.publish(Message::new(x(""), "one", "m"), false, Some(PublishId(id)))
            .unwrap();
    }
    let mut outcomes = Vec::new();
    while let Some(event) = events.try_recv() {
        if let Event::PublishSettled { id, outcome } = event {
            outcomes.push((id.0, outcome));
        }
    }
    assert_eq!(
        outcomes,
        vec![
            (1, PublishOutcome::Confirmed),
            (2, PublishOutcome::Rejected(PublishRejection::QueueFull))
        ]
    );
}

#[test]
fn nack_without_requeue_dead_letters_with_x_death() {
    let broker = broker();
    let (_c, mut s, mut events) = session(&broker);
    s.declare_exchange(ExchangeDeclaration::new(x("dlx"), ExchangeKind::Direct))
        .unwrap();
    declare(&mut s, "dead", Headers::new());
    bind(&mut s, "dlx", "dead", "failed");
    let mut args = Headers::new();
    args.insert("x-dead-letter-exchange", "dlx");
    args.insert("x-dead-letter-routing-key", "failed");
    declare(&mut s, "work", args);
    publish(&mut s, "", "work", "job");
    let work = s.consume(ConsumeRequest::manual(q("work"), 10)).unwrap();
    let delivery = next_delivery(&mut events).unwrap();
    assert_eq!(delivery.consumer.as_ref(), Some(&work));
    s.nack(delivery.tag, false, false).unwrap();
    s.consume(ConsumeRequest::manual(q("dead"), 10)).unwrap();
    let dead = next_delivery(&mut events).unwrap();
    assert_eq!(body(&dead), b"job");
    let Some(FieldValue::Array(deaths)) = dead.message.headers.get("x-death") else {
        panic!("no x-death: {:?}", dead.message.headers);
    };
    let FieldValue::Table(entry) = &deaths[0] else {
        panic!()
    };
    assert_eq!(
        entry.get("reason").and_then(FieldValue::as_str),
        Some("rejected")
    );
    assert_eq!(
        entry.get("queue").and_then(FieldValue::as_str),
        Some("work")
    );
    assert_eq!(Metrics::read(&broker.metrics().dead_lettered), 1);
    assert!(s.ack(delivery.tag, false).is_err(), "already settled");
}

#[test]
fn ttl_expiry_dead_letters_on_sweep() {
    let broker = broker();
    let (_c, mut s, mut events) = session(&broker);
    s.declare_exchange(ExchangeDeclaration::new(x("dlx-ttl"), ExchangeKind::Fanout))
        .unwrap();
    declare(&mut s, "expired", Headers::new());
    bind(&mut s, "dlx-ttl", "expired", "");
    let mut args = Headers::new();
    args.insert("x-message-ttl", 50i64);
    args.insert("x-dead-letter-exchange", "dlx-ttl");
    declare(&mut s, "short", args);
    publish(&mut s, "", "short", "old");
    broker.sweep(Instant::now() + Duration::from_secs(1));
    s.consume(ConsumeRequest::auto(q("expired"))).unwrap();
    let dead = next_delivery(&mut events).unwrap();
    assert_eq!(
        dead.message
            .headers
            .get("x-first-death-reason")
            .and_then(FieldValue::as_str),
        Some("expired")
    );
    assert_eq!(Metrics::read(&broker.metrics().expired), 1);
}

#[test]
fn x_expires_deletes_unused_queue_on_sweep() {
    let broker = broker();
    let (_c, mut s, _events) = session(&broker);
    let mut args = Headers::new();
    args.insert("x-expires", 1000i64);
    declare(&mut s, "temporary", args);
    let vhost = broker.vhost(&VhostName::default_vhost()).unwrap();
    broker.sweep(Instant::now());
    assert!(vhost.queue(&q("temporary")).is_some());
    broker.sweep(Instant::now() + Duration::from_secs(5));
    assert!(vhost.queue(&q("temporary")).is_none());
}

#[test]
fn closing_a_session_requeues_its_unacked_as_redelivered() {
    let broker = broker();
    let (_c1, mut first, mut first_events) = session(&broker);
    let (_c2, mut second, mut second_events) = session(&broker);
    declare(&mut first, "jobs", Headers::new());
    first.consume(ConsumeRequest::manual(q("jobs"), 1)).unwrap();
    publish(&mut first, "", "jobs", "j1");
    let got = next_delivery(&mut first_events).unwrap();
    assert!(!got.redelivered);
    second
        .consume(ConsumeRequest::manual(q("jobs"), 1))
        .unwrap();
    assert!(next_delivery(&mut second_events).is_none());
    first.close();
    let again = next_delivery(&mut second_events).unwrap();
    assert_eq!(body(&again), b"j1");
    assert!(again.redelivered);
    assert_eq!(again.delivery_count, 1);
}

#[test]
fn auto_delete_queue_goes_with_last_consumer() {
    let broker = broker();
    let (_c, mut s, _events) = session(&broker);
    s.declare_queue(QueueDeclaration {
        auto_delete: true,
        ..QueueDeclaration::named(q("fleeting"))
    })
    .unwrap();
    let tag = s.consume(ConsumeRequest::auto(q("fleeting"))).unwrap();
    assert!(s.cancel(&tag));
    assert!(broker
        .vhost(&VhostName::default_vhost())
        .unwrap()
        .queue(&q("fleeting"))
        .is_none());
}

#[test]
fn deleting_a_queue_cancels_its_consumers() {
    let broker = broker();
    let (_c, mut s, mut events) = session(&broker);
    declare(&mut s, "doomed", Headers::new());
    let tag = s.consume(ConsumeRequest::auto(q("doomed"))).unwrap();
    publish(&mut s, "", "doomed", "m");
    assert!(next_delivery(&mut events).is_some());
    s.cancel(&tag);
    publish(&mut s, "", "doomed", "m2");
    assert_eq!(s.delete_queue(&q("doomed"), false, false).unwrap(), 1);
    declare(&mut s, "doomed2", Headers::new());
    let tag = s.consume(ConsumeRequest::auto(q("doomed2"))).unwrap();
    s.delete_queue(&q("doomed2"), false, false).unwrap();
    let cancelled = std::iter::from_fn(|| events.try_recv()).any(|e| {
        matches!(e, Event::ConsumerCancelled { consumer, reason: CancelReason::QueueDeleted } if consumer == tag)
    });
    assert!(cancelled);
}

#[test]
fn memory_watermark_blocks_and_unblocks_publishers() {
    let broker = Broker::new(BrokerConfig {
        memory_high_watermark: 10_000,
        ..BrokerConfig::default()
    });
    broker.add_vhost(VhostName::default_vhost());
    let (_c, mut s, mut events) = session(&broker);
    declare(&mut s, "big", Headers::new());
    for _ in 0..20 {
        s.publish(Message::new(x(""), "big", vec![0u8; 1000]), false, None)
            .unwrap();
    }
    assert!(s.is_flow_blocked());
    assert!(std::iter::from_fn(|| events.try_recv())
        .any(|e| matches!(e, Event::Flow(FlowState::Blocked))));
    assert_eq!(Metrics::read(&broker.metrics().flow_blocked), 1);
    s.purge_queue(&q("big")).unwrap();
    assert!(!s.is_flow_blocked());
    assert!(std::iter::from_fn(|| events.try_recv())
        .any(|e| matches!(e, Event::Flow(FlowState::Unblocked))));
    assert_eq!(broker.memory().used(), 0);
}

#[test]
fn transit_window_bounds_a_session_that_does_not_read() {
    let broker = broker();
    let connection = broker.connect(&VhostName::default_vhost(), None).unwrap();
    let (mut s, mut events) = connection.open_session_with_window(10_000);
    declare(&mut s, "firehose", Headers::new());
    s.consume(ConsumeRequest::auto(q("firehose"))).unwrap();
    for _ in 0..1000 {
        s.publish(
            Message::new(x(""), "firehose", vec![1u8; 1000]),
            false,
            None,
        )
        .unwrap();
    }
    let vhost = broker.vhost(&VhostName::default_vhost()).unwrap();
    let stats = vhost.queue(&q("firehose")).unwrap().stats();
    assert!(
        stats.ready > 900,
        "most wait in the queue, not the outbox: {stats:?}"
    );
    let mut received = 0;
    while let Some(event) = events.try_recv() {
        if matches!(event, Event::Delivery(_)) {
            received += 1;
        }
    }
    assert_eq!(received, 1000, "draining the outbox pulls the rest through");
}

#[test]
fn clustering_and_broadcast_groups() {
    let broker = broker();
    let (_c1, mut a, mut a_events) = session(&broker);
    let (_c2, mut b, mut b_events) = session(&broker);
    let subscription = |mode| GroupSubscription {
        group: "g".into(),
        mode,
        exchange: x("amq.topic"),
        pattern: "sensors.#".into(),
        tag_filter: None,
        durable: false,
        ack_mode: AckMode::Auto,
        prefetch: 0,
    };
    let ma = a.join_group(&subscription(GroupMode::Clustering)).unwrap();
    let mb = b.join_group(&subscription(GroupMode::Clustering)).unwrap();
    assert_eq!(ma.queue, mb.queue, "clustering members share one queue");
    a.join_group(&subscription(GroupMode::Broadcast)).unwrap();
    b.join_group(&subscription(GroupMode::Broadcast)).unwrap();
    for i in 0..10 {
        publish(&mut a, "amq.topic", "sensors.t", &i.to_string());
    }
    let (mut a_all, mut b_all) = (Vec::new(), Vec::new());
    while let Some(e) = a_events.try_recv() {
        a_all.push(e);
    }
    while let Some(e) = b_events.try_recv() {
        b_all.push(e);
    }
    let shared = |all: &Vec<Event>| {
        all.iter()
            .filter(|e| matches!(e, Event::Delivery(d) if d.queue == ma.queue))
            .count()
    };
    let own = |all: &Vec<Event>| {
        all.iter()
            .filter(|e| matches!(e, Event::Delivery(d) if d.queue != ma.queue))
            .count()
    };
    assert_eq!(
        shared(&a_all) + shared(&b_all),
        10,
        "each message once across the cluster"
    );
    assert_eq!(own(&a_all), 10, "broadcast: every message to a");
    assert_eq!(own(&b_all), 10, "broadcast: every message to b");
}

#[test]
fn tag_filtered_group_subscription() {
    let broker = broker();
    let (_c, mut s, mut events) = session(&broker);
    s.join_group(&GroupSubscription {
        group: "tags".into(),
        mode: GroupMode::Clustering,
        exchange: x("amq.topic"),
        pattern: "orders".into(),
        tag_filter: Some("Paid || Shipped".into()),
        durable: false,
        ack_mode: AckMode::Auto,
        prefetch: 0,
    })
    .unwrap();
    for tag in ["Paid", "Created", "Shipped"] {
        let mut m = Message::new(x("amq.topic"), "orders", tag.to_owned());
        m.headers.insert("x-tags", tag);
        s.publish(m, false, None).unwrap();
    }
    let bodies: Vec<_> = std::iter::from_fn(|| next_delivery(&mut events))
        .map(|d| String::from_utf8_lossy(&d.message.body).into_owned())
        .collect();
    assert_eq!(bodies, vec!["Paid", "Shipped"]);
}

/// A store that completes appends only when told, from another thread: what a disk store does
/// after fsync.
#[derive(Debug, Default)]
struct DeferredStorage {
    pending: parking_lot::Mutex<Vec<mqgate_core::confirm::Completion>>,
    inner: mqgate_core::storage::MemoryStorage,
}

impl mqgate_core::storage::Storage for DeferredStorage {
    fn append(
        &self,
        queue: &mqgate_core::storage::QueueKey,
        entry: mqgate_core::outbox::EntryId,
        message: &Arc<Message>,
        done: mqgate_core::confirm::Completion,
    ) {
        self.inner.append(
            queue,
            entry,
            message,
            mqgate_core::confirm::Completion::detached(),
        );
        self.pending.lock().push(done);
    }
    fn remove(&self, queue: &mqgate_core::storage::QueueKey, entry: mqgate_core::outbox::EntryId) {
        self.inner.remove(queue, entry);
    }
    fn clear(&self, queue: &mqgate_core::storage::QueueKey) {
        self.inner.clear(queue);
    }
    fn load(
        &self,
        queue: &mqgate_core::storage::QueueKey,
    ) -> Vec<(mqgate_core::outbox::EntryId, Arc<Message>)> {
        self.inner.load(queue)
    }
}

#[test]
fn confirmation_waits_for_storage_of_persistent_messages_on_durable_queues() {
    let storage = Arc::new(DeferredStorage::default());
    let broker = Broker::new(BrokerConfig {
        storage: storage.clone(),
        ..BrokerConfig::default()
    });
    broker.add_vhost(VhostName::default_vhost());
    let (_c, mut s, mut events) = session(&broker);
    s.declare_queue(QueueDeclaration {
        durable: true,
        ..QueueDeclaration::named(q("durable"))
    })
    .unwrap();
    declare(&mut s, "transient", Headers::new());
    for key in ["durable", "transient"] {
        bind(&mut s, "amq.fanout", key, "");
    }
    let mut persistent = Message::new(x("amq.fanout"), "", "keep me");
    persistent.properties.persistent = true;
    s.publish(persistent, false, Some(PublishId(1))).unwrap();
    assert!(
        events.try_recv().is_none(),
        "not confirmed before the durable queue's copy is stored"
    );
    let pending = std::mem::take(&mut *storage.pending.lock());
    assert_eq!(pending.len(), 1, "only the durable queue stores it");
    std::thread::spawn(move || {
        for completion in pending {
            completion.complete(Ok(()));
        }
    })
    .join()
    .unwrap();
    assert!(matches!(
        events.try_recv(),
        Some(Event::PublishSettled {
            id: PublishId(1),
            outcome: PublishOutcome::Confirmed
        })
    ));
    // A transient message is confirmed at once even on a durable queue.
    s.publish(
        Message::new(x("amq.fanout"), "", "fleeting"),
        false,
        Some(PublishId(2)),
    )
    .unwrap();
    assert!(matches!(
        events.try_recv(),
        Some(Event::PublishSettled {
            id: PublishId(2),
            outcome: PublishOutcome::Confirmed
        })
    ));
}

#[test]
fn ack_each_settles_deliveries_of_several_queues_and_counts_unknown_tags() {
    let broker = broker();
    let (_c, mut s, mut events) = session(&broker);
    declare(&mut s, "batch-a", Headers::new());
    declare(&mut s, "batch-b", Headers::new());
    for (queue, body) in [("batch-a", "a1"), ("batch-a", "a2"), ("batch-b", "b1")] {
        publish(&mut s, "", queue, body);
    }
    s.consume(ConsumeRequest::manual(q("batch-a"), 2)).unwrap();
    s.consume(ConsumeRequest::manual(q("batch-b"), 2)).unwrap();
    let tags: Vec<_> = (0..3)
        .map(|_| next_delivery(&mut events).unwrap().tag)
        .collect();
    publish(&mut s, "", "batch-a", "a3");
    // Prefetch 2: "a3" waits until the batch frees credit.
    let unknown = s.ack_each(&[tags[0], tags[1], tags[2], DeliveryTag(999)]);
    assert_eq!(unknown, 1);
    assert_eq!(Metrics::read(&broker.metrics().acked), 3);
    let next = next_delivery(&mut events).unwrap();
    assert_eq!(body(&next), b"a3");
    assert!(s.ack(tags[0], false).is_err(), "already settled");
}
