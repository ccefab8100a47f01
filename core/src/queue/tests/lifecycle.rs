//! Purge, delete, expiry of unused queues, auto-delete, memory, storage, confirms.

use super::*;
use crate::confirm::ConfirmTracker;
use crate::outbox::{CancelReason, PublishId, PublishOutcome, PublishRejection};
use crate::queue::arguments::{EXPIRES, MAX_LENGTH, MESSAGE_TTL, OVERFLOW};
use crate::queue::QueueStats;

fn persistent(text: &str) -> Arc<Message> {
    let mut m = Message::new(ExchangeName::default_exchange(), "q", text.to_owned());
    m.properties.persistent = true;
    Arc::new(m)
}

#[test]
fn purge_removes_ready_messages_only() {
    let h = Harness::new();
    let queue = h.queue(&[]);
    let mut client = Client::new(1);
    queue
        .consume(client.spec("c", AckMode::Manual, 1), h.at(0))
        .unwrap();
    for text in ["a", "b", "c"] {
        publish(&queue, text, h.at(0));
    }
    assert_eq!(queue.purge(), 2);
    assert_eq!(h.read(|m| &m.purged), 2);
    assert_eq!(queue.stats().unacked, 1);
    let held = client.deliveries().remove(0);
    client.ack(held.tag);
    let expected = QueueStats {
        consumers: 1,
        ..QueueStats::default()
    };
    assert_eq!(queue.stats(), expected);
    assert_eq!(h.memory.used(), 0);
}

#[test]
fn delete_cancels_consumers_and_ignores_later_acks() {
    let h = Harness::new();
    let queue = h.queue(&[]);
    let mut client = Client::new(1);
    queue
        .consume(client.spec("c", AckMode::Manual, 1), h.at(0))
        .unwrap();
    publish(&queue, "held", h.at(0));
    publish(&queue, "ready", h.at(0));
    assert_eq!(queue.delete(), 1);
    let events = client.events();
    let Event::Delivery(held) = &events[0] else {
        panic!("first the delivery")
    };
    assert!(matches!(
        &events[1],
        Event::ConsumerCancelled { consumer, reason: CancelReason::QueueDeleted }
            if consumer.as_str() == "c"
    ));
    client.ack(held.tag);
    assert_eq!(
        h.read(|m| &m.acked),
        0,
        "the ack of a deleted queue's entry is ignored"
    );
    assert_eq!(h.read(|m| &m.purged), 2);
    assert_eq!(h.memory.used(), 0);
    assert_eq!(
        publish(&queue, "late", h.at(1)),
        EnqueueOutcome::QueueDeleted
    );
    assert!(queue
        .consume(client.spec("d", AckMode::Auto, 0), h.at(1))
        .is_err());
}

#[test]
fn unused_queue_expires_after_x_expires() {
    let h = Harness::new();
    let queue = h.queue(&[(EXPIRES, int(1000))]);
    assert!(!queue.is_unused_expired(h.at(999)));
    assert!(queue.is_unused_expired(h.at(1000)));
    queue.touch(h.at(1000));
    assert!(!queue.is_unused_expired(h.at(1500)));
    let client = Client::new(1);
    queue
        .consume(client.spec("c", AckMode::Auto, 0), h.at(1500))
        .unwrap();
    assert!(
        !queue.is_unused_expired(h.at(9000)),
        "a consumer keeps it alive"
    );
    queue.cancel(
        client.session(),
        &ConsumerTag::new("c").unwrap(),
        h.at(9000),
    );
    assert!(!queue.is_unused_expired(h.at(9999)));
    queue.get(&client.outbox, AckMode::Auto, h.at(9999));
    assert!(!queue.is_unused_expired(h.at(10_500)), "get counts as use");
    assert!(queue.is_unused_expired(h.at(10_999)));
    assert!(!h.queue(&[]).is_unused_expired(h.at(1_000_000)));
}

#[test]
fn auto_delete_queue_reports_when_its_last_consumer_goes() {
    let h = Harness::new();
    let mut config = h.config("q", &[]);
    config.auto_delete = true;
    let queue = Queue::new(config, h.env(), h.at(0));
    let one = Client::new(1);
    let two = Client::new(2);
    let tag = ConsumerTag::new("c").unwrap();
    assert_eq!(
        queue.cancel(one.session(), &tag, h.at(0)),
        Default::default()
    );
    queue
        .consume(one.spec("c", AckMode::Auto, 0), h.at(0))
        .unwrap();
    queue
        .consume(two.spec("c", AckMode::Auto, 0), h.at(0))
        .unwrap();
    assert!(!queue.cancel(one.session(), &tag, h.at(1)).auto_delete);
    let last = queue.session_closed(two.session(), h.at(2));
    assert_eq!(last.removed, 1);
    assert!(last.auto_delete);
}

#[test]
fn memory_charge_returns_to_zero_after_every_way_out() {
    let h = Harness::new();
    let queue = h.queue(&[(MESSAGE_TTL, int(10)), (MAX_LENGTH, int(3))]);
    let mut client = Client::new(1);
    // Acked after delivery.
    queue
        .consume(client.spec("c", AckMode::Manual, 0), h.at(0))
        .unwrap();
    publish(&queue, "acked", h.at(0));
    assert!(h.memory.used() > 0);
    let delivery = client.deliveries().remove(0);
    client.ack(delivery.tag);
    assert_eq!(h.memory.used(), 0);
    queue.session_closed(client.session(), h.at(0));
    // Expired, overflowed, purged, then deleted with ready and unacked messages.
    publish(&queue, "expires", h.at(0));
    queue.expire(h.at(11));
    for text in ["1", "2", "3", "4"] {
        publish(&queue, text, h.at(20));
    }
    queue.purge();
    assert_eq!(h.memory.used(), 0);
    publish(&queue, "unacked", h.at(20));
    publish(&queue, "ready", h.at(20));
    queue
        .get(&client.outbox, AckMode::Manual, h.at(20))
        .unwrap();
    assert!(h.memory.used() > 0);
    queue.delete();
    assert_eq!(h.memory.used(), 0);
}

#[test]
fn only_persistent_messages_on_durable_queues_are_stored() {
    let h = Harness::new();
    let transient_queue = h.queue(&[]);
    transient_queue.enqueue(persistent("p"), Completion::detached(), h.at(0));
    assert_eq!(h.storage.len(&transient_queue.config().key), 0);

    let mut config = h.config("durable", &[(MAX_LENGTH, int(2))]);
    config.durable = true;
    let queue = Queue::new(config, h.env(), h.at(0));
    let key = queue.config().key.clone();
    queue.enqueue(persistent("p1"), Completion::detached(), h.at(0));
    publish(&queue, "transient", h.at(0));
    assert_eq!(h.storage.len(&key), 1);
    queue.enqueue(persistent("p2"), Completion::detached(), h.at(0));
    queue.enqueue(persistent("p3"), Completion::detached(), h.at(0));
    assert_eq!(h.storage.len(&key), 2, "p1 was dropped from the head");
    let mut client = Client::new(1);
    queue
        .consume(client.spec("c", AckMode::Manual, 0), h.at(0))
        .unwrap();
    let deliveries = client.deliveries();
    assert_eq!(h.storage.len(&key), 2, "unacked messages stay stored");
    client.ack(deliveries[0].tag);
    assert_eq!(h.storage.len(&key), 1);
    queue.delete();
    assert_eq!(h.storage.len(&key), 0);
}

#[test]
fn confirms_settle_ok_or_queue_full() {
    let h = Harness::new();
    let queue = h.queue(&[
        (MAX_LENGTH, int(1)),
        (OVERFLOW, FieldValue::from("reject-publish")),
    ]);
    let mut publisher = Client::new(9);
    let settle = |id: u64, text: &str| {
        let tracker = ConfirmTracker::new(Arc::clone(&publisher.outbox), PublishId(id));
        let outcome = queue.enqueue(message(text), tracker.completion(), h.at(0));
        tracker.finish();
        outcome
    };
    assert_eq!(settle(1, "fits"), EnqueueOutcome::Accepted);
    assert_eq!(settle(2, "full"), EnqueueOutcome::Rejected);
    let settled: Vec<(PublishId, PublishOutcome)> = publisher
        .events()
        .into_iter()
        .filter_map(|event| match event {
            Event::PublishSettled { id, outcome } => Some((id, outcome)),
            _ => None,
        })
        .collect();
    assert_eq!(
        settled,
        [
            (PublishId(1), PublishOutcome::Confirmed),
            (
                PublishId(2),
                PublishOutcome::Rejected(PublishRejection::QueueFull)
            )
        ]
    );
}

#[test]
fn persistent_publish_is_confirmed_by_storage() {
    let h = Harness::new();
    let mut config = h.config("durable", &[]);
    config.durable = true;
    let queue = Queue::new(config, h.env(), h.at(0));
    let mut publisher = Client::new(9);
    let tracker = ConfirmTracker::new(Arc::clone(&publisher.outbox), PublishId(5));
    queue.enqueue(persistent("p"), tracker.completion(), h.at(0));
    tracker.finish();
    assert!(matches!(
        publisher.events().as_slice(),
        [Event::PublishSettled {
            id: PublishId(5),
            outcome: PublishOutcome::Confirmed
        }]
    ));
}
