//! `block-publisher`: confirmations held while the queue is over its limit and has a consumer.

use super::*;
use crate::confirm::ConfirmTracker;
use crate::outbox::{PublishId, PublishOutcome, PublishRejection};
use crate::queue::arguments::{MAX_LENGTH, OVERFLOW};

fn block_publisher_queue(h: &Harness, max_length: i64) -> Arc<Queue> {
    h.queue(&[
        (MAX_LENGTH, int(max_length)),
        (OVERFLOW, FieldValue::from("block-publisher")),
    ])
}

/// Publishes `text` asking for confirmation `id` from `publisher`.
fn confirmed(
    queue: &Queue,
    publisher: &Client,
    id: u64,
    text: &str,
    now: Instant,
) -> EnqueueOutcome {
    let tracker = ConfirmTracker::new(Arc::clone(&publisher.outbox), PublishId(id));
    let outcome = queue.enqueue(message(text), tracker.completion(), now);
    tracker.finish();
    outcome
}

fn settled(client: &mut Client) -> Vec<(u64, PublishOutcome)> {
    client
        .events()
        .into_iter()
        .filter_map(|event| match event {
            Event::PublishSettled { id, outcome } => Some((id.0, outcome)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_full_queue_holds_confirmations_until_its_consumer_drains_it() {
    let h = Harness::new();
    let queue = block_publisher_queue(&h, 2);
    let mut consumer = Client::new(1);
    // A prefetch of 1 keeps the rest ready, so the queue fills.
    queue
        .consume(consumer.spec("c", AckMode::Manual, 1), h.at(0))
        .unwrap();
    let mut publisher = Client::new(9);
    for (id, text) in ["1", "2", "3", "4", "5"].iter().enumerate() {
        assert_eq!(
            confirmed(&queue, &publisher, id as u64, text, h.at(0)),
            EnqueueOutcome::Accepted
        );
    }
    // "1" went to the consumer; "2" and "3" fit; "4" and "5" are over the limit and held.
    assert_eq!(
        settled(&mut publisher),
        [
            (0, PublishOutcome::Confirmed),
            (1, PublishOutcome::Confirmed),
            (2, PublishOutcome::Confirmed)
        ]
    );
    assert_eq!(queue.stats().ready, 4, "held messages stay in the queue");
    assert_eq!(h.read(|m| &m.confirms_held), 2);
    // Each ack delivers one more; the confirmations come once ready is back to 2.
    let mut received = Vec::new();
    for _ in 0..2 {
        let delivery = consumer.deliveries().pop().unwrap();
        received.push(body(&delivery.message));
        consumer.ack(delivery.tag);
    }
    assert_eq!(queue.stats().ready, 2);
    assert_eq!(
        settled(&mut publisher),
        [
            (3, PublishOutcome::Confirmed),
            (4, PublishOutcome::Confirmed)
        ]
    );
    // Nothing was lost on the way.
    while let Some(delivery) = consumer.deliveries().pop() {
        received.push(body(&delivery.message));
        consumer.ack(delivery.tag);
    }
    assert_eq!(received, ["1", "2", "3", "4", "5"]);
    assert_eq!(h.read(|m| &m.overflow_dropped), 0);
    assert_eq!(h.read(|m| &m.overflow_rejected), 0);
}

#[test]
fn an_unconfirmed_publish_into_a_full_queue_is_refused_and_counted() {
    let h = Harness::new();
    let queue = block_publisher_queue(&h, 1);
    let consumer = Client::new(1);
    queue
        .consume(consumer.spec("c", AckMode::Manual, 1), h.at(0))
        .unwrap();
    assert_eq!(
        publish(&queue, "delivered", h.at(0)),
        EnqueueOutcome::Accepted
    );
    assert_eq!(publish(&queue, "ready", h.at(0)), EnqueueOutcome::Accepted);
    assert_eq!(publish(&queue, "over", h.at(0)), EnqueueOutcome::Rejected);
    assert_eq!(queue.stats().ready, 1);
    assert_eq!(h.read(|m| &m.overflow_rejected), 1);
}

#[test]
fn without_a_consumer_it_drops_the_head_and_releases_held_confirmations() {
    let h = Harness::new();
    let queue = block_publisher_queue(&h, 1);
    let mut consumer = Client::new(1);
    queue
        .consume(consumer.spec("c", AckMode::Manual, 1), h.at(0))
        .unwrap();
    let mut publisher = Client::new(9);
    confirmed(&queue, &publisher, 1, "delivered", h.at(0));
    confirmed(&queue, &publisher, 2, "ready", h.at(0));
    confirmed(&queue, &publisher, 3, "held", h.at(0));
    assert_eq!(settled(&mut publisher).len(), 2);
    // The consumer goes (an MQTT client going offline): the held publish is confirmed and the
    // queue is trimmed to its limit from the head, counted.
    queue.session_closed(consumer.session(), h.at(1));
    assert_eq!(settled(&mut publisher), [(3, PublishOutcome::Confirmed)]);
    assert_eq!(queue.stats().ready, 1);
    assert_eq!(h.read(|m| &m.overflow_dropped), 1);
    // Offline, publishes are accepted and the oldest dropped, never refused or held.
    confirmed(&queue, &publisher, 4, "newest", h.at(2));
    assert_eq!(settled(&mut publisher), [(4, PublishOutcome::Confirmed)]);
    let reader = Client::new(2);
    let (delivery, _) = queue.get(&reader.outbox, AckMode::Auto, h.at(2)).unwrap();
    assert_eq!(body(&delivery.message), "newest");
    drop(consumer.events());
}

#[test]
fn purge_releases_and_delete_fails_held_confirmations() {
    let h = Harness::new();
    let consumer = Client::new(1);
    let mut publisher = Client::new(9);
    let holding = |id: u64, publisher: &mut Client| {
        let queue = block_publisher_queue(&h, 1);
        queue
            .consume(
                consumer.spec(&format!("c{id}"), AckMode::Manual, 1),
                h.at(0),
            )
            .unwrap();
        for n in 0..3 {
            confirmed(&queue, publisher, id * 10 + n, "m", h.at(0));
        }
        assert_eq!(settled(publisher).len(), 2, "the third is held");
        queue
    };
    let purged = holding(1, &mut publisher);
    assert_eq!(purged.purge(), 2);
    assert_eq!(settled(&mut publisher), [(12, PublishOutcome::Confirmed)]);
    let deleted = holding(2, &mut publisher);
    deleted.delete();
    assert_eq!(
        settled(&mut publisher),
        [(22, PublishOutcome::Rejected(PublishRejection::QueueDeleted))]
    );
}
