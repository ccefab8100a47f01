//! Dispatch: order, credit, consumer selection, parking, `get`.

use super::*;
use crate::queue::arguments::{MAX_PRIORITY, SINGLE_ACTIVE_CONSUMER};
use crate::queue::ConsumeError;

#[test]
fn messages_are_delivered_in_fifo_order() {
    let h = Harness::new();
    let queue = h.queue(&[]);
    for text in ["a", "b", "c"] {
        publish(&queue, text, h.at(0));
    }
    let mut client = Client::new(1);
    queue
        .consume(client.spec("c", AckMode::Manual, 0), h.at(0))
        .unwrap();
    publish(&queue, "d", h.at(0));
    assert_eq!(client.bodies(), ["a", "b", "c", "d"]);
    assert_eq!(h.read(|m| &m.delivered), 4);
}

#[test]
fn requeued_message_returns_to_the_head_flagged_redelivered() {
    let h = Harness::new();
    let queue = h.queue(&[]);
    for text in ["a", "b", "c"] {
        publish(&queue, text, h.at(0));
    }
    let mut client = Client::new(1);
    queue
        .consume(client.spec("c", AckMode::Manual, 1), h.at(0))
        .unwrap();
    let first = client.deliveries();
    assert_eq!(first.len(), 1);
    assert!(!first[0].redelivered);
    assert_eq!(first[0].delivery_count, 0);
    client.nack(first[0].tag, true);
    let again = client.deliveries();
    assert_eq!(body(&again[0].message), "a", "back in front of b and c");
    assert!(again[0].redelivered);
    assert_eq!(again[0].delivery_count, 1);
    assert_eq!(h.read(|m| &m.requeued), 1);
    client.ack(again[0].tag);
    assert_eq!(client.bodies(), ["b"]);
}

#[test]
fn session_requeue_puts_entries_back_in_order() {
    let h = Harness::new();
    let queue = h.queue(&[]);
    let mut client = Client::new(1);
    queue
        .consume(client.spec("c", AckMode::Manual, 2), h.at(0))
        .unwrap();
    for text in ["a", "b", "c"] {
        publish(&queue, text, h.at(0));
    }
    assert_eq!(client.bodies(), ["a", "b"]);
    // The session closes: it removes its consumers and requeues what it held.
    queue.session_closed(client.session(), h.at(1));
    let held: Vec<_> = client
        .outbox
        .drain_unacked(None)
        .into_iter()
        .map(|(_, u)| u.entry)
        .collect();
    queue.requeue(held, h.at(1));
    let mut other = Client::new(2);
    queue
        .consume(other.spec("c", AckMode::Auto, 0), h.at(2))
        .unwrap();
    let deliveries = other.deliveries();
    let bodies: Vec<String> = deliveries.iter().map(|d| body(&d.message)).collect();
    assert_eq!(bodies, ["a", "b", "c"]);
    assert!(deliveries[0].redelivered && deliveries[1].redelivered);
    assert!(!deliveries[2].redelivered);
}

#[test]
fn prefetch_limits_unacked_and_ack_frees_credit() {
    let h = Harness::new();
    let queue = h.queue(&[]);
    let mut client = Client::new(1);
    queue
        .consume(client.spec("c", AckMode::Manual, 2), h.at(0))
        .unwrap();
    for text in ["a", "b", "c", "d"] {
        publish(&queue, text, h.at(0));
    }
    let first = client.deliveries();
    assert_eq!(first.len(), 2);
    assert_eq!(queue.stats().unacked, 2);
    assert_eq!(queue.stats().ready, 2);
    client.ack(first[0].tag);
    assert_eq!(client.bodies(), ["c"]);
    assert_eq!(h.read(|m| &m.acked), 1);
}

#[test]
fn auto_ack_delivery_removes_the_message() {
    let h = Harness::new();
    let queue = h.queue(&[]);
    let mut client = Client::new(1);
    queue
        .consume(client.spec("c", AckMode::Auto, 0), h.at(0))
        .unwrap();
    publish(&queue, "a", h.at(0));
    assert_eq!(client.bodies(), ["a"]);
    assert_eq!((queue.stats().ready, queue.stats().unacked), (0, 0));
    assert_eq!(client.outbox.unacked_count(), 0);
    assert_eq!(h.read(|m| &m.acked), 1);
    assert_eq!(h.memory.used(), 0);
}

#[test]
fn consumers_of_equal_priority_take_turns() {
    let h = Harness::new();
    let queue = h.queue(&[]);
    let mut one = Client::new(1);
    let mut two = Client::new(2);
    queue
        .consume(one.spec("c", AckMode::Auto, 0), h.at(0))
        .unwrap();
    queue
        .consume(two.spec("c", AckMode::Auto, 0), h.at(0))
        .unwrap();
    for text in ["1", "2", "3", "4"] {
        publish(&queue, text, h.at(0));
    }
    assert_eq!(one.bodies(), ["1", "3"]);
    assert_eq!(two.bodies(), ["2", "4"]);
}

#[test]
fn higher_priority_consumer_is_served_until_it_is_full() {
    let h = Harness::new();
    let queue = h.queue(&[]);
    let mut low = Client::new(1);
    let mut high = Client::new(2);
    queue
        .consume(low.spec("low", AckMode::Manual, 0), h.at(0))
        .unwrap();
    let mut spec = high.spec("high", AckMode::Manual, 2);
    spec.priority = 10;
    queue.consume(spec, h.at(0)).unwrap();
    for text in ["1", "2", "3"] {
        publish(&queue, text, h.at(0));
    }
    assert_eq!(high.bodies(), ["1", "2"]);
    assert_eq!(
        low.bodies(),
        ["3"],
        "only once the high one is out of credit"
    );
}

#[test]
fn single_active_consumer_hands_over_in_registration_order() {
    let h = Harness::new();
    let queue = h.queue(&[(SINGLE_ACTIVE_CONSUMER, FieldValue::Bool(true))]);
    let mut first = Client::new(1);
    let mut second = Client::new(2);
    let mut third = Client::new(3);
    for client in [&first, &second, &third] {
        queue
            .consume(client.spec("c", AckMode::Manual, 1), h.at(0))
            .unwrap();
    }
    publish(&queue, "a", h.at(0));
    publish(&queue, "b", h.at(0));
    let got = first.deliveries();
    assert_eq!(
        got.len(),
        1,
        "the active consumer is out of credit; others wait"
    );
    assert!(second.deliveries().is_empty() && third.deliveries().is_empty());
    let removal = queue.cancel(first.session(), &ConsumerTag::new("c").unwrap(), h.at(1));
    assert_eq!(removal.removed, 1);
    assert_eq!(second.bodies(), ["b"]);
    assert!(third.deliveries().is_empty());
    // The cancelled consumer's delivery is still ackable.
    first.ack(got[0].tag);
    assert_eq!(h.read(|m| &m.acked), 1);
}

#[test]
fn exclusive_consumer_refuses_others_and_is_refused_among_others() {
    let h = Harness::new();
    let queue = h.queue(&[]);
    let one = Client::new(1);
    let two = Client::new(2);
    let mut exclusive = one.spec("x", AckMode::Auto, 0);
    exclusive.exclusive = true;
    queue.consume(exclusive.clone(), h.at(0)).unwrap();
    let refused = queue
        .consume(two.spec("y", AckMode::Auto, 0), h.at(0))
        .unwrap_err();
    assert_eq!(refused.to_string(), "queue 'q' in exclusive use");
    queue.cancel(one.session(), &exclusive.tag, h.at(0));
    queue
        .consume(two.spec("y", AckMode::Auto, 0), h.at(0))
        .unwrap();
    assert!(matches!(
        queue.consume(exclusive, h.at(0)),
        Err(ConsumeError::ExclusiveUse { .. })
    ));
}

#[test]
fn consumer_tag_is_unique_per_session() {
    let h = Harness::new();
    let queue = h.queue(&[]);
    let one = Client::new(1);
    let two = Client::new(2);
    queue
        .consume(one.spec("c", AckMode::Auto, 0), h.at(0))
        .unwrap();
    assert!(matches!(
        queue.consume(one.spec("c", AckMode::Auto, 0), h.at(0)),
        Err(ConsumeError::TagInUse { .. })
    ));
    queue
        .consume(two.spec("c", AckMode::Auto, 0), h.at(0))
        .unwrap();
}

#[test]
fn full_window_parks_the_consumer_and_draining_resumes_delivery() {
    let h = Harness::new();
    let queue = h.queue(&[]);
    let weight = message("0123456789").weight();
    // Room for two deliveries in transit.
    let mut client = Client::with_window(1, weight * 2);
    queue
        .consume(client.spec("c", AckMode::Auto, 0), h.at(0))
        .unwrap();
    for _ in 0..5 {
        publish(&queue, "0123456789", h.at(0));
    }
    assert_eq!(queue.stats().ready, 3, "two in transit, the rest wait");
    assert_eq!(h.read(|m| &m.consumer_parked), 1);
    // Taking events out drains the window and wakes the queue, which delivers again.
    let mut received = 0;
    while let Some(event) = client.receiver.try_recv() {
        assert!(matches!(event, Event::Delivery(_)));
        received += 1;
    }
    assert_eq!(received, 5);
    assert_eq!(queue.stats().ready, 0);
    assert_eq!(client.outbox.in_transit(), 0);
}

#[test]
fn oversized_message_on_a_half_full_window_does_not_loop() {
    let h = Harness::new();
    let queue = h.queue(&[]);
    let small = "s".repeat(200);
    let big = "b".repeat(700);
    let window = 1000;
    assert!(message(&small).weight() <= window / 2);
    assert!(message(&small).weight() + message(&big).weight() > window);
    let mut client = Client::with_window(1, window);
    queue
        .consume(client.spec("c", AckMode::Auto, 0), h.at(0))
        .unwrap();
    publish(&queue, &small, h.at(0));
    // The window is under half full yet the big one does not fit: parking must neither recurse
    // nor spin, and must not wait for a half-window drain that cannot come.
    publish(&queue, &big, h.at(0));
    assert_eq!(queue.stats().ready, 1, "the big one waits in the queue");
    // Draining the small one empties the window, which wakes the queue to send the big one.
    assert_eq!(client.bodies(), [small, big]);
    assert_eq!(client.outbox.in_transit(), 0);
    assert_eq!(queue.stats().ready, 0);
}

#[test]
fn priority_queue_delivers_higher_priorities_first() {
    let h = Harness::new();
    let queue = h.queue(&[(MAX_PRIORITY, int(5))]);
    for (text, priority) in [
        ("none", None),
        ("p1", Some(1)),
        ("p9", Some(9)),
        ("p5", Some(5)),
    ] {
        let mut m = Message::new(ExchangeName::default_exchange(), "q", text.to_owned());
        m.properties.priority = priority;
        queue.enqueue(Arc::new(m), Completion::detached(), h.at(0));
    }
    let mut client = Client::new(1);
    queue
        .consume(client.spec("c", AckMode::Auto, 0), h.at(0))
        .unwrap();
    // 9 is clamped to 5 and was published before p5, so it goes first within level 5.
    assert_eq!(client.bodies(), ["p9", "p5", "p1", "none"]);
}

#[test]
fn get_returns_the_head_and_the_count_left() {
    let h = Harness::new();
    let queue = h.queue(&[]);
    let client = Client::new(1);
    assert!(queue
        .get(&client.outbox, AckMode::Manual, h.at(0))
        .is_none());
    publish(&queue, "a", h.at(0));
    publish(&queue, "b", h.at(0));
    let (delivery, left) = queue.get(&client.outbox, AckMode::Manual, h.at(0)).unwrap();
    assert_eq!((body(&delivery.message).as_str(), left), ("a", 1));
    assert_eq!(delivery.consumer, None);
    assert_eq!(queue.stats().unacked, 1);
    client.nack(delivery.tag, true);
    let (again, left) = queue.get(&client.outbox, AckMode::Auto, h.at(0)).unwrap();
    assert_eq!((body(&again.message).as_str(), left), ("a", 1));
    assert!(again.redelivered);
    assert_eq!(queue.stats().unacked, 0);
}

#[test]
fn deliveries_carry_the_enqueue_time_and_requeues_keep_it() {
    let h = Harness::new();
    let queue = h.queue(&[]);
    publish(&queue, "a", h.at(5));
    let mut client = Client::new(1);
    queue
        .consume(client.spec("c", AckMode::Manual, 1), h.at(9))
        .unwrap();
    let first = client.deliveries();
    assert_eq!(
        first[0].enqueued_at,
        h.at(5),
        "the publish instant, not the consume"
    );
    client.nack(first[0].tag, true);
    let again = client.deliveries();
    assert!(again[0].redelivered);
    assert_eq!(
        again[0].enqueued_at,
        h.at(5),
        "a requeue keeps the original time"
    );
}
