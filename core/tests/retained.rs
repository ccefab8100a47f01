//! Retained messages through the public API: any publisher can retain with the `x-retain`
//! header, and a subscriber's pattern finds retained messages with the core's topic semantics.

use std::sync::Arc;

use bytes::Bytes;
use mqgate_core::declare::{BindingDeclaration, QueueDeclaration};
use mqgate_core::errors::PublishError;
use mqgate_core::message::{FieldValue, Headers, Message};
use mqgate_core::metrics::Metrics;
use mqgate_core::names::{ExchangeName, QueueName, VhostName};
use mqgate_core::retained::{DEFAULT_MAX_BYTES, RETAIN_HEADER};
use mqgate_core::{Broker, BrokerConfig, Session};

fn amq_topic() -> ExchangeName {
    ExchangeName::new("amq.topic").unwrap()
}

fn setup() -> (Arc<Broker>, mqgate_core::Connection, Session) {
    let broker = Broker::new(BrokerConfig::default());
    broker.add_vhost(VhostName::default_vhost());
    let connection = broker.connect(&VhostName::default_vhost(), None).unwrap();
    let (session, _events) = connection.open_session();
    (broker, connection, session)
}

fn retained(key: &str, body: impl Into<Bytes>, flag: FieldValue) -> Message {
    let mut message = Message::new(amq_topic(), key, body);
    message.headers.insert(RETAIN_HEADER, flag);
    message
}

fn keys(found: &[Arc<Message>]) -> Vec<&str> {
    found.iter().map(|m| &*m.routing_key).collect()
}

#[test]
fn header_retains_and_wildcard_patterns_find_it() {
    let (_broker, connection, mut session) = setup();
    let routed = session
        .publish(
            retained("sensors.kitchen.temp", "21", FieldValue::Bool(true)),
            false,
            None,
        )
        .unwrap();
    assert_eq!(routed.queues, 0, "unroutable, yet retained");
    session
        .publish(
            retained("sensors.hall.temp", "19", FieldValue::from("true")),
            false,
            None,
        )
        .unwrap();
    session
        .publish(
            Message::new(amq_topic(), "sensors.attic.temp", "5"),
            false,
            None,
        )
        .unwrap();
    let store = connection.vhost().retained();
    assert_eq!(store.len(), 2);
    assert_eq!(
        keys(&store.matching(&amq_topic(), "sensors.#")),
        ["sensors.hall.temp", "sensors.kitchen.temp"]
    );
    assert_eq!(
        keys(&store.matching(&amq_topic(), "sensors.*.temp")),
        ["sensors.hall.temp", "sensors.kitchen.temp"]
    );
    assert_eq!(
        keys(&store.matching(&amq_topic(), "sensors.kitchen.*")),
        ["sensors.kitchen.temp"]
    );

    // An empty body clears the key.
    session
        .publish(
            retained("sensors.kitchen.temp", "", FieldValue::Bool(true)),
            false,
            None,
        )
        .unwrap();
    assert_eq!(
        keys(&store.matching(&amq_topic(), "#")),
        ["sensors.hall.temp"]
    );
}

#[test]
fn retained_message_still_routes_to_subscribers() {
    let (_broker, connection, mut session) = setup();
    let queue = QueueName::new("q").unwrap();
    session
        .declare_queue(QueueDeclaration::named(queue.clone()))
        .unwrap();
    session
        .bind_queue(BindingDeclaration {
            source: amq_topic(),
            destination: "q".into(),
            routing_key: "a.*".into(),
            arguments: Headers::new(),
        })
        .unwrap();
    let routed = session
        .publish(retained("a.b", "x", FieldValue::Bool(true)), false, None)
        .unwrap();
    assert_eq!(routed.queues, 1);
    assert_eq!(connection.vhost().retained().len(), 1);
}

#[test]
fn publish_to_a_missing_exchange_retains_nothing() {
    let (_broker, connection, mut session) = setup();
    let mut message = retained("k", "x", FieldValue::Bool(true));
    message.exchange = ExchangeName::new("missing").unwrap();
    assert!(matches!(
        session.publish(message, false, None),
        Err(PublishError::ExchangeNotFound { .. })
    ));
    assert!(connection.vhost().retained().is_empty());
}

#[test]
fn full_store_refuses_counts_and_still_routes() {
    let (broker, connection, mut session) = setup();
    // One 16 MiB body shared by every message: the store counts each, memory holds one.
    let body = Bytes::from(vec![0u8; 16 * 1024 * 1024]);
    let fits = DEFAULT_MAX_BYTES / body.len() - 1;
    for i in 0..fits {
        session
            .publish(
                retained(&format!("k.{i}"), body.clone(), FieldValue::Bool(true)),
                false,
                None,
            )
            .unwrap();
    }
    let store = connection.vhost().retained();
    assert_eq!(store.len(), fits);
    assert_eq!(Metrics::read(&broker.metrics().retained_refused), 0);

    let queue = QueueName::new("over").unwrap();
    session
        .declare_queue(QueueDeclaration::named(queue.clone()))
        .unwrap();
    session
        .bind_queue(BindingDeclaration {
            source: amq_topic(),
            destination: "over".into(),
            routing_key: "over".into(),
            arguments: Headers::new(),
        })
        .unwrap();
    let routed = session
        .publish(
            retained("over", body.clone(), FieldValue::Bool(true)),
            false,
            None,
        )
        .unwrap();
    assert_eq!(routed.queues, 1, "a refused retain still routes");
    assert_eq!(store.len(), fits);
    assert!(store.bytes() <= DEFAULT_MAX_BYTES);
    assert_eq!(Metrics::read(&broker.metrics().retained_refused), 1);
}
