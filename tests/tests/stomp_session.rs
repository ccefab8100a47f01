//! STOMP session behaviour over raw frames against an in-process gateway: `/temp-queue/` reply
//! queues, transactions, heart-beats in both directions, and NACK `requeue:false`
//! dead-lettering.
//!
//! Every wait is bounded ([`STEP`] unless a test says otherwise); "nothing arrived" is proven
//! by a marker message that would have queued behind it, never by sleeping.

#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway;
#[allow(dead_code)]
#[path = "support/stomp.rs"]
mod stomp;

use std::net::SocketAddr;
use std::time::Duration;

use gateway::{eventually, queue_stats, STEP};
use stomp::{connect, unique, Client, Style};
use tokio::time::Instant;

// ---------------------------------------------------------------------------------------------
// /temp-queue/ in reply-to.

#[tokio::test]
async fn temp_queue_reply_to_is_rewritten_and_replies_reach_the_requester() {
    let (running, addr) = stomp::start().await;
    let service = format!("/queue/{}", unique("service"));
    let mut responder = connect(addr).await;
    responder.subscribe("svc", &service, &[]).await;

    let mut requester = connect(addr).await;
    requester
        .with_receipt(
            "SEND",
            &[
                ("destination", &service),
                ("reply-to", "/temp-queue/replies"),
            ],
            b"ping-1",
        )
        .await;
    let request = responder.recv().await.expect("MESSAGE");
    assert_eq!(request.body, b"ping-1");
    let reply_to = request.header("reply-to").unwrap().to_owned();
    let queue = reply_to
        .strip_prefix("/reply-queue/")
        .unwrap_or_else(|| panic!("reply-to not rewritten: {reply_to}"))
        .to_owned();
    assert!(queue_stats(running.broker(), &queue).is_some_and(|s| s.consumers == 1));

    responder
        .with_receipt(
            "SEND",
            &[("destination", &reply_to), ("x-answer", "42")],
            b"pong-1",
        )
        .await;
    let reply = requester.recv().await.expect("MESSAGE");
    assert_eq!(reply.body, b"pong-1");
    assert_eq!(reply.header("subscription"), Some("/temp-queue/replies"));
    assert_eq!(reply.header("destination"), Some(reply_to.as_str()));
    assert_eq!(reply.header("x-answer"), Some("42"));
    assert_eq!(
        reply.header("ack"),
        None,
        "an auto-ack internal subscription"
    );

    // The same name reuses the queue (declared once); another name gets its own.
    requester
        .with_receipt(
            "SEND",
            &[
                ("destination", &service),
                ("reply-to", "/temp-queue/replies"),
            ],
            b"ping-2",
        )
        .await;
    let again = responder.recv().await.expect("MESSAGE");
    assert_eq!(again.header("reply-to"), Some(reply_to.as_str()));
    requester
        .with_receipt(
            "SEND",
            &[("destination", &service), ("reply-to", "/temp-queue/other")],
            b"ping-3",
        )
        .await;
    let other = responder.recv().await.expect("MESSAGE");
    let other_reply_to = other.header("reply-to").unwrap().to_owned();
    assert!(other_reply_to.starts_with("/reply-queue/"));
    assert_ne!(other_reply_to, reply_to);
    responder
        .with_receipt("SEND", &[("destination", &other_reply_to)], b"pong-3")
        .await;
    let reply = requester.recv().await.expect("MESSAGE");
    assert_eq!(reply.header("subscription"), Some("/temp-queue/other"));
    assert_eq!(reply.body, b"pong-3");

    // Another connection's /temp-queue/replies is a queue of its own.
    let mut second = connect(addr).await;
    second
        .with_receipt(
            "SEND",
            &[
                ("destination", &service),
                ("reply-to", "/temp-queue/replies"),
            ],
            b"ping-4",
        )
        .await;
    let fourth = responder.recv().await.expect("MESSAGE");
    let second_reply_to = fourth.header("reply-to").unwrap().to_owned();
    assert_ne!(second_reply_to, reply_to);
    responder
        .with_receipt("SEND", &[("destination", &second_reply_to)], b"pong-4")
        .await;
    assert_eq!(second.next_body().await, b"pong-4");

    // The reply queues die with their connection.
    requester.with_receipt("DISCONNECT", &[], b"").await;
    eventually(STEP, "the reply queue outlived its connection", || {
        queue_stats(running.broker(), &queue).is_none()
    })
    .await;
}

#[tokio::test]
async fn temp_queue_is_refused_outside_reply_to() {
    let (_running, addr) = stomp::start().await;
    let mut client = connect(addr).await;
    client
        .send("SEND", &[("destination", "/temp-queue/x")], b"")
        .await;
    client.refused("invalid destination").await;

    let mut client = connect(addr).await;
    client
        .send(
            "SUBSCRIBE",
            &[("id", "s"), ("destination", "/temp-queue/x")],
            b"",
        )
        .await;
    client.refused("invalid destination").await;
}

// ---------------------------------------------------------------------------------------------
// Transactions.

/// A consumer of a fresh queue and a producer; returns (queue destination, consumer, producer).
async fn queue_pair(addr: SocketAddr) -> (String, Client, Client) {
    let destination = format!("/queue/{}", unique("tx"));
    let mut consumer = connect(addr).await;
    consumer.subscribe("s", &destination, &[]).await;
    let producer = connect(addr).await;
    (destination, consumer, producer)
}

#[tokio::test]
async fn transaction_sends_take_effect_together_at_commit() {
    let (_running, addr) = stomp::start().await;
    let (queue, mut consumer, mut producer) = queue_pair(addr).await;
    producer
        .with_receipt("BEGIN", &[("transaction", "t1")], b"")
        .await;
    for body in [&b"tx-1"[..], b"tx-2"] {
        producer
            .with_receipt(
                "SEND",
                &[("destination", &queue), ("transaction", "t1")],
                body,
            )
            .await;
    }
    // Nothing is published before COMMIT: a later plain SEND arrives first.
    producer.publish(&queue, b"marker").await;
    assert_eq!(consumer.next_body().await, b"marker");
    producer
        .with_receipt("COMMIT", &[("transaction", "t1")], b"")
        .await;
    assert_eq!(consumer.next_body().await, b"tx-1");
    assert_eq!(consumer.next_body().await, b"tx-2");
    // The name is free again once committed.
    producer
        .with_receipt("BEGIN", &[("transaction", "t1")], b"")
        .await;
    producer
        .with_receipt("COMMIT", &[("transaction", "t1")], b"")
        .await;
}

#[tokio::test]
async fn aborted_and_abandoned_transactions_publish_nothing() {
    let (_running, addr) = stomp::start().await;
    let (queue, mut consumer, mut producer) = queue_pair(addr).await;
    producer
        .with_receipt("BEGIN", &[("transaction", "t")], b"")
        .await;
    producer
        .with_receipt(
            "SEND",
            &[("destination", &queue), ("transaction", "t")],
            b"aborted",
        )
        .await;
    producer
        .with_receipt("ABORT", &[("transaction", "t")], b"")
        .await;
    producer.publish(&queue, b"after-abort").await;
    assert_eq!(consumer.next_body().await, b"after-abort");

    // DISCONNECT with an open transaction drops it.
    producer
        .with_receipt("BEGIN", &[("transaction", "t")], b"")
        .await;
    producer
        .with_receipt(
            "SEND",
            &[("destination", &queue), ("transaction", "t")],
            b"disconnected",
        )
        .await;
    producer.with_receipt("DISCONNECT", &[], b"").await;
    assert!(producer.closed_within(STEP).await);

    // So does a connection that just goes away.
    let mut dropped = connect(addr).await;
    dropped
        .with_receipt("BEGIN", &[("transaction", "t")], b"")
        .await;
    dropped
        .with_receipt(
            "SEND",
            &[("destination", &queue), ("transaction", "t")],
            b"dropped",
        )
        .await;
    drop(dropped);

    let mut marker = connect(addr).await;
    marker.publish(&queue, b"marker").await;
    assert_eq!(consumer.next_body().await, b"marker");
}

#[tokio::test]
async fn transaction_acks_take_effect_at_commit_only() {
    let (_running, addr) = stomp::start().await;
    let queue = format!("/queue/{}", unique("txack"));
    let mut producer = connect(addr).await;
    for body in [&b"one"[..], b"two"] {
        producer.publish(&queue, body).await;
    }
    let mut consumer = connect(addr).await;
    consumer
        .subscribe("s", &queue, &[("ack", "client-individual")])
        .await;
    let one = consumer.recv().await.expect("MESSAGE");
    let two = consumer.recv().await.expect("MESSAGE");
    let (one_id, two_id) = (
        one.header("ack").unwrap().to_owned(),
        two.header("ack").unwrap().to_owned(),
    );

    // An aborted ACK acknowledges nothing: the id is still open to a plain ACK.
    consumer
        .with_receipt("BEGIN", &[("transaction", "a")], b"")
        .await;
    consumer
        .with_receipt("ACK", &[("id", &one_id), ("transaction", "a")], b"")
        .await;
    consumer
        .with_receipt("ABORT", &[("transaction", "a")], b"")
        .await;

    // A committed ACK settles "two"; "one" stays unacknowledged until the consumer leaves.
    consumer
        .with_receipt("BEGIN", &[("transaction", "c")], b"")
        .await;
    consumer
        .with_receipt("ACK", &[("id", &two_id), ("transaction", "c")], b"")
        .await;
    consumer
        .with_receipt("COMMIT", &[("transaction", "c")], b"")
        .await;
    consumer.with_receipt("DISCONNECT", &[], b"").await;

    // Only "one" comes back, redelivered.
    let mut next = connect(addr).await;
    next.subscribe("s", &queue, &[("ack", "client-individual")])
        .await;
    let back = next.recv().await.expect("MESSAGE");
    assert_eq!(back.body, b"one");
    assert_eq!(back.header("redelivered"), Some("true"));
    producer.publish(&queue, b"marker").await;
    assert_eq!(next.next_body().await, b"marker");
}

#[tokio::test]
async fn transaction_frames_are_checked_when_they_arrive() {
    let (_running, addr) = stomp::start().await;
    let (queue, mut consumer, mut producer) = queue_pair(addr).await;
    producer
        .with_receipt("BEGIN", &[("transaction", "t")], b"")
        .await;
    producer
        .with_receipt(
            "SEND",
            &[("destination", &queue), ("transaction", "t")],
            b"never",
        )
        .await;
    // Refused at once, not at COMMIT; the connection and its transaction are gone.
    producer
        .send(
            "SEND",
            &[("destination", "/nowhere/x"), ("transaction", "t")],
            b"",
        )
        .await;
    producer.refused("invalid destination").await;
    let mut marker = connect(addr).await;
    marker.publish(&queue, b"marker").await;
    assert_eq!(consumer.next_body().await, b"marker");

    let mut client = connect(addr).await;
    client
        .with_receipt("BEGIN", &[("transaction", "t")], b"")
        .await;
    client
        .send(
            "SEND",
            &[
                ("destination", &queue),
                ("transaction", "t"),
                ("priority", "high"),
            ],
            b"",
        )
        .await;
    client.refused("invalid SEND").await;
}

#[tokio::test]
async fn a_committed_cumulative_ack_covers_later_acks_of_the_same_transaction() {
    let (_running, addr) = stomp::start().await;
    let queue = format!("/queue/{}", unique("txcum"));
    let mut producer = connect(addr).await;
    for body in [&b"one"[..], b"two"] {
        producer.publish(&queue, body).await;
    }
    let mut consumer = connect(addr).await;
    consumer.subscribe("s", &queue, &[("ack", "client")]).await;
    let one = consumer.recv().await.expect("MESSAGE");
    let two = consumer.recv().await.expect("MESSAGE");
    consumer
        .with_receipt("BEGIN", &[("transaction", "t")], b"")
        .await;
    for message in [&two, &one] {
        let id = message.header("ack").unwrap();
        consumer
            .with_receipt("ACK", &[("id", id), ("transaction", "t")], b"")
            .await;
    }
    // The ACK of "two" settles "one" too; the later ACK of "one" is then nothing to do.
    consumer
        .with_receipt("COMMIT", &[("transaction", "t")], b"")
        .await;
    consumer.with_receipt("DISCONNECT", &[], b"").await;
    let mut next = connect(addr).await;
    next.subscribe("s", &queue, &[]).await;
    producer.publish(&queue, b"marker").await;
    assert_eq!(next.next_body().await, b"marker");
}

#[tokio::test]
async fn unknown_transactions_are_errors() {
    let (_running, addr) = stomp::start().await;
    let queue = format!("/queue/{}", unique("txunknown"));
    for (command, headers) in [
        (
            "SEND",
            vec![("destination", queue.as_str()), ("transaction", "nope")],
        ),
        ("COMMIT", vec![("transaction", "nope")]),
        ("ABORT", vec![("transaction", "nope")]),
    ] {
        let mut client = connect(addr).await;
        let mut headers = headers.clone();
        headers.push(("receipt", "r-unknown"));
        client.send(command, &headers, b"").await;
        let error = client.refused("unknown transaction").await;
        assert_eq!(error.header("receipt-id"), Some("r-unknown"), "{command}");
    }
    let mut client = connect(addr).await;
    client
        .with_receipt("BEGIN", &[("transaction", "dup")], b"")
        .await;
    client.send("BEGIN", &[("transaction", "dup")], b"").await;
    client.refused("transaction already active").await;

    let mut client = connect(addr).await;
    client.send("COMMIT", &[], b"").await;
    client.refused("missing transaction header").await;
}

#[tokio::test]
async fn open_transactions_are_bounded() {
    let (_running, addr) = stomp::start().await;
    let limit = mqgate_stomp::StompSettings::default().max_transactions;
    let mut client = connect(addr).await;
    for n in 0..limit {
        client
            .with_receipt("BEGIN", &[("transaction", &format!("t{n}"))], b"")
            .await;
    }
    client
        .send("BEGIN", &[("transaction", "one-too-many")], b"")
        .await;
    client.refused("resource limit reached").await;
}

// ---------------------------------------------------------------------------------------------
// Heart-beats.

#[tokio::test]
async fn the_server_beats_at_the_negotiated_rate() {
    let (_running, addr) = stomp::start().await;
    // The client wants beats every 500 ms; the server's floor is 1 s.
    let (mut client, connected) =
        Client::guest(addr, Style::ESCAPED, &[("heart-beat", "0,500")]).await;
    assert_eq!(connected.header("heart-beat"), Some("1000,0"));
    let start = Instant::now();
    client.beats(3, Duration::from_secs(5)).await;
    let elapsed = start.elapsed();
    // Three beats at most a second apart, and not a burst.
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed <= Duration::from_millis(3500), "{elapsed:?}");
    // The connection still works, and a client that sends nothing is not expected to.
    client
        .publish(&format!("/queue/{}", unique("hb")), b"x")
        .await;

    // Without a heart-beat header, nothing beats.
    let (_quiet, connected) = Client::guest(addr, Style::ESCAPED, &[]).await;
    assert_eq!(connected.header("heart-beat"), Some("0,0"));
}

#[tokio::test]
async fn a_silent_client_that_promised_beats_is_closed_after_the_grace_period() {
    let (_running, addr) = stomp::start().await;
    let grace = mqgate_stomp::StompSettings::default().heartbeat_grace_factor;
    let (mut silent, connected) =
        Client::guest(addr, Style::ESCAPED, &[("heart-beat", "1000,0")]).await;
    assert_eq!(connected.header("heart-beat"), Some("0,1000"));
    let start = Instant::now();
    assert!(silent.closed_within(Duration::from_secs(6)).await);
    let elapsed = start.elapsed();
    let expected = Duration::from_secs(u64::from(grace));
    assert!(
        elapsed >= expected - Duration::from_millis(300),
        "closed after {elapsed:?}, before the grace period"
    );

    // A client that keeps its promise stays connected past the grace period.
    let (mut beating, _) = Client::guest(addr, Style::ESCAPED, &[("heart-beat", "1000,0")]).await;
    let until = Instant::now() + expected + Duration::from_secs(1);
    let mut pace = tokio::time::interval(Duration::from_millis(300));
    while Instant::now() < until {
        pace.tick().await;
        beating.write(b"\n").await;
    }
    beating
        .publish(&format!("/queue/{}", unique("hb")), b"alive")
        .await;
}

// ---------------------------------------------------------------------------------------------
// NACK requeue:false dead-letters.

#[tokio::test]
async fn nack_without_requeue_dead_letters_with_x_death() {
    let (_running, addr) = stomp::start().await;
    let key = unique("dead");
    let work = unique("work");
    let mut dead = connect(addr).await;
    dead.subscribe("dl", &format!("/exchange/amq.direct/{key}"), &[])
        .await;

    let mut worker = connect(addr).await;
    worker
        .subscribe(
            "w",
            &format!("/queue/{work}"),
            &[
                ("ack", "client-individual"),
                ("x-dead-letter-exchange", "amq.direct"),
                ("x-dead-letter-routing-key", &key),
            ],
        )
        .await;
    let mut producer = connect(addr).await;
    producer
        .with_receipt(
            "SEND",
            &[("destination", &format!("/queue/{work}")), ("x-tag", "t1")],
            b"doomed",
        )
        .await;
    let message = worker.recv().await.expect("MESSAGE");
    let ack = message.header("ack").unwrap().to_owned();
    worker
        .with_receipt("NACK", &[("id", &ack), ("requeue", "false")], b"")
        .await;

    let letter = dead.recv().await.expect("MESSAGE");
    assert_eq!(letter.body, b"doomed");
    assert_eq!(
        letter.header("destination"),
        Some(format!("/exchange/amq.direct/{key}").as_str())
    );
    assert_eq!(letter.header("x-tag"), Some("t1"));
    let death = letter
        .header("x-death")
        .unwrap_or_else(|| panic!("no x-death: {letter:?}"));
    assert!(death.contains(&work), "{death}");
    assert!(death.contains("rejected"), "{death}");
    assert_eq!(letter.header("x-first-death-reason"), Some("rejected"));

    // The dead-lettered message left the work queue: a marker arrives next, not a redelivery.
    producer.publish(&format!("/queue/{work}"), b"marker").await;
    assert_eq!(worker.next_body().await, b"marker");
}
