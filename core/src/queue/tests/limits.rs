//! TTL, length limits, overflow policies and dead-letter reasons.

use super::*;
use crate::queue::arguments::{
    DEAD_LETTER_EXCHANGE, MAX_LENGTH, MAX_LENGTH_BYTES, MESSAGE_TTL, OVERFLOW,
};

fn dlx() -> (&'static str, FieldValue) {
    (DEAD_LETTER_EXCHANGE, FieldValue::from("dlx"))
}

fn ready(queue: &Queue, client: &mut Client, now: Instant) -> Vec<String> {
    let mut bodies = Vec::new();
    while let Some((delivery, _)) = queue.get(&client.outbox, AckMode::Auto, now) {
        bodies.push(body(&delivery.message));
    }
    bodies
}

#[test]
fn queue_ttl_expires_messages_and_dead_letters_them() {
    let h = Harness::new();
    let queue = h.queue(&[(MESSAGE_TTL, int(1000)), dlx()]);
    publish(&queue, "old", h.at(0));
    publish(&queue, "new", h.at(500));
    queue.expire(h.at(1000));
    assert_eq!(
        queue.stats().ready,
        2,
        "alive up to and including its deadline"
    );
    queue.expire(h.at(1001));
    assert_eq!(queue.stats().ready, 1);
    assert_eq!(h.dead_letters(), [(DeathReason::Expired, "old".to_owned())]);
    assert_eq!(h.read(|m| &m.expired), 1);
    // Dispatch never hands out an expired head either.
    let mut client = Client::new(1);
    queue
        .consume(client.spec("c", AckMode::Auto, 0), h.at(1501))
        .unwrap();
    assert!(client.deliveries().is_empty());
    assert_eq!(h.read(|m| &m.expired), 2);
    assert_eq!(h.memory.used(), 0);
}

#[test]
fn per_message_ttl_and_the_smaller_of_both_apply() {
    let h = Harness::new();
    let queue = h.queue(&[(MESSAGE_TTL, int(1000))]);
    let mut short = Message::new(ExchangeName::default_exchange(), "q", "short");
    short.properties.expiration_ms = Some(100);
    let mut long = Message::new(ExchangeName::default_exchange(), "q", "long");
    long.properties.expiration_ms = Some(5000);
    queue.enqueue(Arc::new(short), Completion::detached(), h.at(0));
    queue.enqueue(Arc::new(long), Completion::detached(), h.at(0));
    queue.expire(h.at(101));
    assert_eq!(queue.stats().ready, 1);
    queue.expire(h.at(1001));
    assert_eq!(queue.stats().ready, 0, "the queue's TTL caps the message's");
    assert_eq!(h.read(|m| &m.expired), 2);
    assert!(h.dead_letters().is_empty(), "no DLX: dropped and counted");
}

#[test]
fn per_message_ttl_expires_only_at_the_head() {
    let h = Harness::new();
    let queue = h.queue(&[]);
    let mut client = Client::new(1);
    publish(&queue, "forever", h.at(0));
    let mut brief = Message::new(ExchangeName::default_exchange(), "q", "brief");
    brief.properties.expiration_ms = Some(10);
    queue.enqueue(Arc::new(brief), Completion::detached(), h.at(0));
    queue.expire(h.at(50));
    assert_eq!(queue.stats().ready, 2, "RabbitMQ expires at the head only");
    assert_eq!(ready(&queue, &mut client, h.at(50)), ["forever"]);
    assert_eq!(
        h.read(|m| &m.expired),
        1,
        "the get dropped the expired head"
    );
}

#[test]
fn ttl_zero_delivers_only_to_a_consumer_ready_now() {
    let h = Harness::new();
    let queue = h.queue(&[(MESSAGE_TTL, int(0)), dlx()]);
    publish(&queue, "nobody", h.at(0));
    assert_eq!(queue.stats().ready, 0);
    assert_eq!(
        h.dead_letters(),
        [(DeathReason::Expired, "nobody".to_owned())]
    );
    let mut client = Client::new(1);
    queue
        .consume(client.spec("c", AckMode::Manual, 1), h.at(0))
        .unwrap();
    publish(&queue, "taken", h.at(0));
    publish(&queue, "no credit", h.at(0));
    assert_eq!(client.bodies(), ["taken"]);
    assert_eq!(queue.stats().ready, 0);
    assert_eq!(h.read(|m| &m.expired), 2);
}

#[test]
fn drop_head_with_max_length_drops_the_oldest() {
    let h = Harness::new();
    let queue = h.queue(&[(MAX_LENGTH, int(2)), dlx()]);
    for text in ["1", "2", "3", "4"] {
        assert_eq!(publish(&queue, text, h.at(0)), EnqueueOutcome::Accepted);
    }
    let mut client = Client::new(1);
    assert_eq!(ready(&queue, &mut client, h.at(0)), ["3", "4"]);
    assert_eq!(
        h.dead_letters(),
        [
            (DeathReason::Maxlen, "1".to_owned()),
            (DeathReason::Maxlen, "2".to_owned())
        ]
    );
    assert_eq!(h.read(|m| &m.overflow_dropped), 2);
}

#[test]
fn drop_head_with_max_length_bytes_counts_body_bytes() {
    let h = Harness::new();
    let queue = h.queue(&[(MAX_LENGTH_BYTES, int(10))]);
    publish(&queue, "aaaa", h.at(0));
    publish(&queue, "bbbb", h.at(0));
    publish(&queue, "cccc", h.at(0));
    assert_eq!(queue.stats().ready_bytes, 8);
    let mut client = Client::new(1);
    assert_eq!(ready(&queue, &mut client, h.at(0)), ["bbbb", "cccc"]);
    assert_eq!(h.read(|m| &m.overflow_dropped), 1);
    assert!(h.dead_letters().is_empty());
}

#[test]
fn max_length_zero_holds_nothing() {
    let h = Harness::new();
    let queue = h.queue(&[(MAX_LENGTH, int(0)), dlx()]);
    assert_eq!(publish(&queue, "x", h.at(0)), EnqueueOutcome::Accepted);
    assert_eq!(queue.stats().ready, 0);
    assert_eq!(h.dead_letters(), [(DeathReason::Maxlen, "x".to_owned())]);
    assert_eq!(h.memory.used(), 0);
}

#[test]
fn reject_publish_refuses_new_messages_with_max_length() {
    let h = Harness::new();
    let queue = h.queue(&[
        (MAX_LENGTH, int(1)),
        (OVERFLOW, FieldValue::from("reject-publish")),
        dlx(),
    ]);
    assert_eq!(publish(&queue, "1", h.at(0)), EnqueueOutcome::Accepted);
    assert_eq!(publish(&queue, "2", h.at(0)), EnqueueOutcome::Rejected);
    let mut client = Client::new(1);
    assert_eq!(ready(&queue, &mut client, h.at(0)), ["1"]);
    assert!(h.dead_letters().is_empty());
    assert_eq!(h.read(|m| &m.overflow_rejected), 1);
}

#[test]
fn reject_publish_with_max_length_bytes() {
    let h = Harness::new();
    let queue = h.queue(&[
        (MAX_LENGTH_BYTES, int(5)),
        (OVERFLOW, FieldValue::from("reject-publish")),
    ]);
    assert_eq!(publish(&queue, "abc", h.at(0)), EnqueueOutcome::Accepted);
    assert_eq!(publish(&queue, "def", h.at(0)), EnqueueOutcome::Rejected);
    assert_eq!(publish(&queue, "gh", h.at(0)), EnqueueOutcome::Accepted);
    assert_eq!(queue.stats().ready_bytes, 5);
}

#[test]
fn reject_publish_dlx_refuses_and_dead_letters() {
    let h = Harness::new();
    let queue = h.queue(&[
        (MAX_LENGTH, int(1)),
        (OVERFLOW, FieldValue::from("reject-publish-dlx")),
        dlx(),
    ]);
    publish(&queue, "1", h.at(0));
    assert_eq!(
        publish(&queue, "2", h.at(0)),
        EnqueueOutcome::RejectedDeadLettered
    );
    assert_eq!(h.dead_letters(), [(DeathReason::Maxlen, "2".to_owned())]);
    assert_eq!(queue.stats().ready, 1);
}

#[test]
fn reject_publish_dlx_with_max_length_bytes() {
    let h = Harness::new();
    let queue = h.queue(&[
        (MAX_LENGTH_BYTES, int(3)),
        (OVERFLOW, FieldValue::from("reject-publish-dlx")),
        dlx(),
    ]);
    assert_eq!(
        publish(&queue, "toolong", h.at(0)),
        EnqueueOutcome::RejectedDeadLettered
    );
    assert_eq!(
        h.dead_letters(),
        [(DeathReason::Maxlen, "toolong".to_owned())]
    );
    assert_eq!(h.memory.used(), 0);
}

#[test]
fn nack_without_requeue_dead_letters_as_rejected() {
    let h = Harness::new();
    let queue = h.queue(&[dlx()]);
    let mut client = Client::new(1);
    queue
        .consume(client.spec("c", AckMode::Manual, 0), h.at(0))
        .unwrap();
    publish(&queue, "bad", h.at(0));
    let delivery = client.deliveries().remove(0);
    client.nack(delivery.tag, false);
    assert_eq!(
        h.dead_letters(),
        [(DeathReason::Rejected, "bad".to_owned())]
    );
    assert_eq!((queue.stats().ready, queue.stats().unacked), (0, 0));
    assert_eq!(h.memory.used(), 0);
}

#[test]
fn nack_without_requeue_and_without_dlx_is_dropped_and_counted() {
    let h = Harness::new();
    let queue = h.queue(&[]);
    let mut client = Client::new(1);
    queue
        .consume(client.spec("c", AckMode::Manual, 0), h.at(0))
        .unwrap();
    publish(&queue, "bad", h.at(0));
    let delivery = client.deliveries().remove(0);
    client.nack(delivery.tag, false);
    assert!(h.dead_letters().is_empty());
    assert_eq!(h.read(|m| &m.dead_letter_dropped), 1);
    assert_eq!(queue.stats().unacked, 0);
}

#[test]
fn dead_letters_may_route_back_into_the_same_queue() {
    // The sink is called without the queue's lock: republishing into the queue must not deadlock.
    struct Loopback(Mutex<Option<Arc<Queue>>>, Instant);
    impl DeadLetterSink for Loopback {
        fn dead_letter(&self, _from: &QueueConfig, letters: Vec<DeadLetter>) {
            let queue = self.0.lock().clone();
            if let Some(queue) = queue {
                for letter in letters {
                    queue.enqueue(letter.message, Completion::detached(), self.1);
                }
            }
        }
    }
    let h = Harness::new();
    let sink = Arc::new(Loopback(Mutex::new(None), h.at(0)));
    let mut env = h.env();
    env.dead_letters = sink.clone();
    let queue = Queue::new(h.config("q", &[dlx()]), env, h.at(0));
    *sink.0.lock() = Some(Arc::clone(&queue));
    let mut client = Client::new(1);
    queue
        .consume(client.spec("c", AckMode::Manual, 0), h.at(0))
        .unwrap();
    publish(&queue, "loop", h.at(0));
    let first = client.deliveries().remove(0);
    client.nack(first.tag, false);
    let second = client.deliveries();
    assert_eq!(second.len(), 1);
    assert_eq!(body(&second[0].message), "loop");
    *sink.0.lock() = None;
}
