//! AMQP 0-9-1 with a real client (issue 5, "Rust integration tests with lapin"): lapin 4
//! against the broker under test (support/amqp.rs: the in-process gateway, or RabbitMQ when
//! `AMQP_REFERENCE_PORT` is set, so every expectation here is RabbitMQ's behaviour).
//!
//! Covered: a round trip with every basic property and a header of every field type, binary
//! and multi-frame bodies, publisher confirms and returns (312 NO_ROUTE), manual acks, nack
//! and reject, the prefetch bound, basic.get, the server cancelling consumers of a deleted
//! queue, exchange-to-exchange bindings, topic wildcards, transactions, channels with their own
//! delivery tags, a closed channel's unacked messages going to a consumer on another channel,
//! the server's properties and tuning, and heartbeats. The raw client checks what lapin does not
//! expose (server properties, heartbeat frames).
//!
//! Names are unique per test and per run (the reference broker is shared); queues are exclusive
//! where one connection suffices, otherwise deleted at the end. Every wait is bounded; counts
//! are read with passive declares, never by waiting for something not to happen.

#[allow(dead_code)]
#[path = "support/amqp.rs"]
mod amqp;
#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway;

use std::time::Duration;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString};
use amqp::{
    consumer_ended, declare_queue, delete_queue, next_delivery, open_channel, publish_confirmed,
    ready_count, unique, Target,
};
use gateway::{within, STEP};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions, ExchangeBindOptions,
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
};
use lapin::{BasicProperties, Channel, Confirmation, Consumer, ExchangeKind};

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A channel of `connection` in confirm mode.
async fn confirming(connection: &lapin::Connection) -> Channel {
    let channel = open_channel(connection).await;
    within(
        STEP,
        "confirm.select",
        channel.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    .expect("confirm.select");
    channel
}

/// A consumer of `queue` on `channel` tagged `tag`, with manual acks unless `no_ack`.
async fn consume(channel: &Channel, queue: &str, tag: &str, no_ack: bool) -> Consumer {
    within(
        STEP,
        "basic.consume",
        channel.basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions {
                no_ack,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("basic.consume")
}

/// Publishes `body` to the default exchange for `queue` and expects a plain ack.
async fn send(channel: &Channel, queue: &str, body: &[u8]) {
    let confirmation =
        publish_confirmed(channel, "", queue, body, BasicProperties::default()).await;
    assert_eq!(confirmation, Confirmation::Ack(None));
}

/// Declares exchange `name` of `kind` (transient), within [`STEP`].
async fn declare_exchange(channel: &Channel, name: &str, kind: ExchangeKind) {
    within(
        STEP,
        "exchange.declare",
        channel.exchange_declare(
            name.into(),
            kind,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap_or_else(|error| panic!("exchange.declare {name}: {error}"));
}

/// Deletes exchange `name`, within [`STEP`].
async fn delete_exchange(channel: &Channel, name: &str) {
    within(
        STEP,
        "exchange.delete",
        channel.exchange_delete(name.into(), ExchangeDeleteOptions::default()),
    )
    .await
    .unwrap_or_else(|error| panic!("exchange.delete {name}: {error}"));
}

/// Binds `queue` to `exchange` with `key`, within [`STEP`].
async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) {
    within(
        STEP,
        "queue.bind",
        channel.queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap_or_else(|error| panic!("queue.bind {queue} {exchange} {key}: {error}"));
}

/// Every message in `queue`, taken with basic.get (auto ack) until get-empty; their bodies.
async fn drain(channel: &Channel, queue: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    while let Some(message) = within(
        STEP,
        "basic.get",
        channel.basic_get(queue.into(), BasicGetOptions { no_ack: true }),
    )
    .await
    .expect("basic.get")
    {
        bodies.push(String::from_utf8(message.delivery.data.clone()).unwrap());
    }
    bodies.sort();
    bodies
}

/// A table with one value of every field type lapin can put on the wire (its `ShortString`
/// value has no type tag in 0-9-1 and is never sent), arrays and tables nested in each other.
fn every_field_type() -> FieldTable {
    let mut inner = FieldTable::default();
    inner.insert("answer".into(), AMQPValue::LongInt(42));
    inner.insert(
        "list".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![
            AMQPValue::Boolean(false),
            AMQPValue::LongString("in an array in a table".into()),
        ])),
    );
    let mut in_array = FieldTable::default();
    in_array.insert("deeper".into(), AMQPValue::Double(-0.25));

    let mut table = FieldTable::default();
    table.insert("bool".into(), AMQPValue::Boolean(true));
    table.insert("i8".into(), AMQPValue::ShortShortInt(-8));
    table.insert("u8".into(), AMQPValue::ShortShortUInt(200));
    table.insert("i16".into(), AMQPValue::ShortInt(-1600));
    table.insert("u16".into(), AMQPValue::ShortUInt(60_000));
    table.insert("i32".into(), AMQPValue::LongInt(-320_000));
    table.insert("u32".into(), AMQPValue::LongUInt(4_000_000_000));
    table.insert("i64".into(), AMQPValue::LongLongInt(-9_000_000_000));
    table.insert("f32".into(), AMQPValue::Float(1.5));
    table.insert("f64".into(), AMQPValue::Double(-2.25e100));
    table.insert(
        "decimal".into(),
        AMQPValue::DecimalValue(DecimalValue {
            scale: 2,
            value: 31_415,
        }),
    );
    table.insert(
        "string".into(),
        AMQPValue::LongString(LongString::from(&b"bytes \x00 and \xff"[..])),
    );
    table.insert(
        "array".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![
            AMQPValue::LongInt(1),
            AMQPValue::LongString("two".into()),
            AMQPValue::FieldTable(in_array),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Void])),
        ])),
    );
    table.insert("timestamp".into(), AMQPValue::Timestamp(1_700_000_000));
    table.insert("table".into(), AMQPValue::FieldTable(inner));
    table.insert(
        "bytes".into(),
        AMQPValue::ByteArray(ByteArray::from(&[0u8, 1, 2, 0xFE, 0xFF][..])),
    );
    table.insert("void".into(), AMQPValue::Void);
    table
}

// ---------------------------------------------------------------------------------------------
// Messages.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_round_trips_with_every_property_and_every_header_type() {
    let target = Target::start().await;
    let connection = target.connect().await;
    let channel = confirming(&connection).await;
    let queue = unique("props");
    declare_queue(&channel, &queue, false).await;
    let mut consumer = consume(&channel, &queue, "props", false).await;

    // Every property of the basic class but the reserved cluster-id; user-id must be the
    // logged-in user's (RabbitMQ refuses another with 406).
    let properties = BasicProperties::default()
        .with_content_type("application/x-test".into())
        .with_content_encoding("identity".into())
        .with_headers(every_field_type())
        .with_delivery_mode(2)
        .with_priority(5)
        .with_correlation_id("corr-1".into())
        .with_reply_to("replies".into())
        .with_expiration("60000".into())
        .with_message_id("msg-1".into())
        .with_timestamp(1_700_000_123)
        .with_type("test.type".into())
        .with_user_id("guest".into())
        .with_app_id("mqgate-tests".into());
    let confirmation = publish_confirmed(&channel, "", &queue, b"props", properties.clone()).await;
    assert_eq!(confirmation, Confirmation::Ack(None));

    let delivery = next_delivery(&mut consumer).await;
    assert_eq!(delivery.data, b"props");
    assert_eq!(delivery.exchange.as_str(), "");
    assert_eq!(delivery.routing_key.as_str(), queue);
    assert!(!delivery.redelivered);
    assert_eq!(delivery.properties.headers(), properties.headers());
    assert_eq!(delivery.properties, properties);
    delivery.ack(BasicAckOptions::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_bodies_and_bodies_larger_than_frame_max_arrive_whole() {
    let target = Target::start().await;
    let connection = target.connect().await;
    let frame_max = connection.configuration().frame_max() as usize;
    assert_eq!(frame_max, 131_072, "lapin takes the server's frame_max");
    let channel = confirming(&connection).await;
    let queue = unique("bodies");
    declare_queue(&channel, &queue, false).await;
    let mut consumer = consume(&channel, &queue, "bodies", true).await;

    let mut binary = vec![0u8, 0, b'x', 0];
    binary.extend(0..=255u8);
    binary.push(0);
    // Three full body frames and a bit: split by lapin, reassembled by the broker, split again.
    let large: Vec<u8> = (0..3 * frame_max + 17).map(|i| (i % 251) as u8).collect();
    let bodies = [Vec::new(), binary, large];
    for body in &bodies {
        send(&channel, &queue, body).await;
    }
    for body in &bodies {
        let delivery = next_delivery(&mut consumer).await;
        assert_eq!(delivery.data.len(), body.len());
        assert!(
            delivery.data == *body,
            "a body of {} bytes differs",
            body.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_get_takes_messages_then_answers_get_empty() {
    let target = Target::start().await;
    let connection = target.connect().await;
    let channel = confirming(&connection).await;
    let queue = unique("get");
    declare_queue(&channel, &queue, false).await;
    let get = || channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false });
    assert!(within(STEP, "basic.get", get()).await.unwrap().is_none());

    send(&channel, &queue, b"one").await;
    send(&channel, &queue, b"two").await;
    let first = within(STEP, "basic.get", get()).await.unwrap().unwrap();
    assert_eq!(first.delivery.data, b"one");
    assert_eq!(first.message_count, 1, "messages left after this one");
    let second = within(STEP, "basic.get", get()).await.unwrap().unwrap();
    assert_eq!(second.delivery.data, b"two");
    assert_eq!(second.message_count, 0);
    assert!(second.delivery.delivery_tag > first.delivery.delivery_tag);
    assert!(within(STEP, "basic.get", get()).await.unwrap().is_none());

    // Acked, the first is gone; nacked with requeue, the second comes back redelivered.
    first
        .delivery
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    second
        .delivery
        .nack(BasicNackOptions {
            multiple: false,
            requeue: true,
        })
        .await
        .unwrap();
    let again = within(STEP, "basic.get", get()).await.unwrap().unwrap();
    assert_eq!(again.delivery.data, b"two");
    assert!(again.delivery.redelivered);
    again
        .delivery
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    assert_eq!(ready_count(&channel, &queue).await, 0);
}

// ---------------------------------------------------------------------------------------------
// Publisher confirms and returns.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_confirms_ack_every_publish() {
    let target = Target::start().await;
    let connection = target.connect().await;
    let channel = confirming(&connection).await;
    let queue = unique("confirms");
    declare_queue(&channel, &queue, false).await;

    // One at a time.
    let confirmation =
        publish_confirmed(&channel, "", &queue, b"first", BasicProperties::default()).await;
    assert!(confirmation.is_ack());
    assert_eq!(confirmation, Confirmation::Ack(None));

    // Many in flight, then all confirmed.
    for n in 0..50 {
        let body = format!("m{n}");
        within(
            STEP,
            "basic.publish",
            channel.basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default(),
            ),
        )
        .await
        .expect("basic.publish");
    }
    let returned = within(STEP, "the confirms", channel.wait_for_confirms())
        .await
        .expect("wait_for_confirms");
    assert!(returned.is_empty(), "{returned:?}");
    assert_eq!(ready_count(&channel, &queue).await, 51);

    // An unroutable publish that is not mandatory is dropped and still acked.
    let confirmation = publish_confirmed(
        &channel,
        "amq.direct",
        &unique("nobody-bound"),
        b"lost",
        BasicProperties::default(),
    )
    .await;
    assert_eq!(confirmation, Confirmation::Ack(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mandatory_unroutable_publish_is_returned_with_312_no_route() {
    let target = Target::start().await;
    let connection = target.connect().await;
    let channel = confirming(&connection).await;
    for (exchange, key) in [
        ("", unique("no-such-queue")),
        ("amq.direct", unique("unbound")),
    ] {
        let properties = BasicProperties::default()
            .with_priority(3)
            .with_message_id("returned".into());
        let confirmation = within(STEP, "a mandatory publish", async {
            channel
                .basic_publish(
                    exchange.into(),
                    key.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        immediate: false,
                    },
                    b"back to sender",
                    properties.clone(),
                )
                .await
                .expect("basic.publish")
                .await
                .expect("the publisher confirm")
        })
        .await;
        // basic.return, then basic.ack: the publish was handled, by returning it.
        assert!(confirmation.is_ack(), "{confirmation:?}");
        let returned = confirmation.take_message().expect("the returned message");
        assert_eq!(returned.reply_code, 312);
        assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
        assert_eq!(returned.delivery.exchange.as_str(), exchange);
        assert_eq!(returned.delivery.routing_key.as_str(), key);
        assert_eq!(returned.delivery.data, b"back to sender");
        assert_eq!(returned.delivery.properties, properties);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_and_roll_back() {
    let target = Target::start().await;
    let connection = target.connect().await;
    let tx = open_channel(&connection).await;
    let observer = open_channel(&connection).await;
    let queue = unique("tx");
    declare_queue(&observer, &queue, false).await;
    within(STEP, "tx.select", tx.tx_select()).await.unwrap();

    let publish = |body: &'static [u8]| {
        tx.basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
    };
    within(STEP, "basic.publish", publish(b"committed"))
        .await
        .unwrap();
    // Not routed before the commit.
    assert_eq!(ready_count(&observer, &queue).await, 0);
    within(STEP, "tx.commit", tx.tx_commit()).await.unwrap();
    assert_eq!(ready_count(&observer, &queue).await, 1);

    within(STEP, "basic.publish", publish(b"rolled back"))
        .await
        .unwrap();
    within(STEP, "tx.rollback", tx.tx_rollback()).await.unwrap();
    assert_eq!(ready_count(&observer, &queue).await, 1);

    // An ack inside the transaction takes effect at the commit.
    let message = within(
        STEP,
        "basic.get",
        tx.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false }),
    )
    .await
    .unwrap()
    .expect("the committed message");
    assert_eq!(message.delivery.data, b"committed");
    message
        .delivery
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    within(STEP, "tx.commit", tx.tx_commit()).await.unwrap();
    assert_eq!(drain(&observer, &queue).await, Vec::<String>::new());
    // Closing the transactional channel requeues nothing: the ack was committed.
    within(STEP, "channel.close", tx.close(200, "bye".into()))
        .await
        .unwrap();
    assert_eq!(ready_count(&observer, &queue).await, 0);
}

// ---------------------------------------------------------------------------------------------
// Consumers.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_acks_nack_requeue_and_reject() {
    let target = Target::start().await;
    let connection = target.connect().await;
    let channel = confirming(&connection).await;
    let queue = unique("acks");
    declare_queue(&channel, &queue, false).await;
    let mut consumer = consume(&channel, &queue, "acks", false).await;
    send(&channel, &queue, b"nacked").await;

    let first = next_delivery(&mut consumer).await;
    assert_eq!(first.data, b"nacked");
    assert!(!first.redelivered);
    first
        .nack(BasicNackOptions {
            multiple: false,
            requeue: true,
        })
        .await
        .unwrap();
    let again = next_delivery(&mut consumer).await;
    assert_eq!(again.data, b"nacked");
    assert!(
        again.redelivered,
        "a requeued message is flagged redelivered"
    );
    assert!(again.delivery_tag > first.delivery_tag, "a new tag");
    again.ack(BasicAckOptions::default()).await.unwrap();

    // Rejected without requeue: gone.
    send(&channel, &queue, b"rejected").await;
    let rejected = next_delivery(&mut consumer).await;
    assert_eq!(rejected.data, b"rejected");
    rejected
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();

    // Multiple acks: three deliveries acked by the last tag.
    for body in [b"a", b"b", b"c"] {
        send(&channel, &queue, body).await;
    }
    let mut last = None;
    for body in [b"a", b"b", b"c"] {
        let delivery = next_delivery(&mut consumer).await;
        assert_eq!(delivery.data, body);
        last = Some(delivery);
    }
    last.unwrap()
        .ack(BasicAckOptions { multiple: true })
        .await
        .unwrap();
    let observer = open_channel(&connection).await;
    let count = ready_count(&observer, &queue).await;
    assert_eq!(count, 0);
    // Nothing unacked either: cancelling the consumer and closing its channel requeues nothing.
    within(STEP, "channel.close", channel.close(200, "bye".into()))
        .await
        .unwrap();
    assert_eq!(ready_count(&observer, &queue).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_qos_bounds_unacked_deliveries() {
    let target = Target::start().await;
    let connection = target.connect().await;
    let publisher = confirming(&connection).await;
    let queue = unique("qos");
    declare_queue(&publisher, &queue, false).await;
    for n in 0..5 {
        send(&publisher, &queue, format!("m{n}").as_bytes()).await;
    }
    let channel = open_channel(&connection).await;
    within(
        STEP,
        "basic.qos",
        channel.basic_qos(2, BasicQosOptions::default()),
    )
    .await
    .unwrap();
    let mut consumer = consume(&channel, &queue, "qos", false).await;
    let first = next_delivery(&mut consumer).await;
    let second = next_delivery(&mut consumer).await;
    assert_eq!(
        (&first.data[..], &second.data[..]),
        (&b"m0"[..], &b"m1"[..])
    );
    // Two unacked: the other three stay ready.
    assert_eq!(ready_count(&publisher, &queue).await, 3);
    first.ack(BasicAckOptions::default()).await.unwrap();
    let third = next_delivery(&mut consumer).await;
    assert_eq!(third.data, b"m2");
    assert_eq!(ready_count(&publisher, &queue).await, 2);
    second.ack(BasicAckOptions::default()).await.unwrap();
    third.ack(BasicAckOptions::default()).await.unwrap();
    for body in [b"m3", b"m4"] {
        let delivery = next_delivery(&mut consumer).await;
        assert_eq!(delivery.data, body);
        delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
    assert_eq!(ready_count(&publisher, &queue).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_queue_cancels_its_consumers() {
    let target = Target::start().await;
    let connection = target.connect().await;
    let channel = confirming(&connection).await;
    let queue = unique("deleted");
    declare_queue(&channel, &queue, true).await;
    let mut consumer = consume(&channel, &queue, "doomed", false).await;
    send(&channel, &queue, b"before").await;
    let delivery = next_delivery(&mut consumer).await;
    delivery.ack(BasicAckOptions::default()).await.unwrap();

    // Deleted from another connection: the server sends basic.cancel (consumer_cancel_notify).
    let other = target.connect().await;
    delete_queue(&open_channel(&other).await, &queue).await;
    consumer_ended(&mut consumer).await;
    // The consumer's channel goes on.
    let again = unique("after-cancel");
    declare_queue(&channel, &again, false).await;
    send(&channel, &again, b"still open").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_of_one_connection_have_their_own_delivery_tags() {
    let target = Target::start().await;
    let connection = target.connect().await;
    let publisher = confirming(&connection).await;
    let (first, second) = (
        open_channel(&connection).await,
        open_channel(&connection).await,
    );
    let (queue_a, queue_b) = (unique("tags-a"), unique("tags-b"));
    declare_queue(&publisher, &queue_a, false).await;
    declare_queue(&publisher, &queue_b, false).await;
    let mut consumer_a = consume(&first, &queue_a, "a", false).await;
    let mut consumer_b = consume(&second, &queue_b, "b", false).await;
    for queue in [&queue_a, &queue_b] {
        send(&publisher, queue, b"1").await;
        send(&publisher, queue, b"2").await;
    }
    let a: Vec<_> = [
        next_delivery(&mut consumer_a).await,
        next_delivery(&mut consumer_a).await,
    ]
    .into();
    let b: Vec<_> = [
        next_delivery(&mut consumer_b).await,
        next_delivery(&mut consumer_b).await,
    ]
    .into();
    // Each channel counts from 1.
    let tags = |deliveries: &[lapin::message::Delivery]| {
        deliveries
            .iter()
            .map(|d| d.delivery_tag)
            .collect::<Vec<_>>()
    };
    assert_eq!(tags(&a), [1, 2]);
    assert_eq!(tags(&b), [1, 2]);
    // Acking tag 2 on one channel says nothing about the other's tag 2.
    a[1].ack(BasicAckOptions { multiple: true }).await.unwrap();
    assert_eq!(ready_count(&publisher, &queue_b).await, 0);
    within(STEP, "channel.close", second.close(200, "bye".into()))
        .await
        .unwrap();
    // The second channel's two unacked messages went back; the first's were acked.
    assert_eq!(ready_count(&publisher, &queue_b).await, 2);
    assert_eq!(ready_count(&publisher, &queue_a).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_channel_requeues_its_unacked_messages_to_another_channel() {
    let target = Target::start().await;
    let connection = target.connect().await;
    let publisher = confirming(&connection).await;
    let queue = unique("requeue");
    declare_queue(&publisher, &queue, false).await;
    let holder = open_channel(&connection).await;
    let mut held = consume(&holder, &queue, "holder", false).await;
    send(&publisher, &queue, b"held").await;
    let delivery = next_delivery(&mut held).await;
    assert_eq!(delivery.data, b"held");
    assert!(!delivery.redelivered);

    let taker = open_channel(&connection).await;
    let mut taken = consume(&taker, &queue, "taker", false).await;
    within(STEP, "channel.close", holder.close(200, "bye".into()))
        .await
        .unwrap();
    let again = next_delivery(&mut taken).await;
    assert_eq!(again.data, b"held");
    assert!(again.redelivered, "requeued by the channel close");
    again.ack(BasicAckOptions::default()).await.unwrap();
    assert_eq!(ready_count(&publisher, &queue).await, 0);
}

// ---------------------------------------------------------------------------------------------
// Routing.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_to_exchange_bindings_route() {
    let target = Target::start().await;
    let connection = target.connect().await;
    let channel = confirming(&connection).await;
    let (source, destination) = (unique("e2e-source"), unique("e2e-destination"));
    declare_exchange(&channel, &source, ExchangeKind::Topic).await;
    declare_exchange(&channel, &destination, ExchangeKind::Direct).await;
    within(
        STEP,
        "exchange.bind",
        channel.exchange_bind(
            destination.as_str().into(),
            source.as_str().into(),
            "orders.*".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("exchange.bind");
    let queue = unique("e2e");
    declare_queue(&channel, &queue, false).await;
    // The destination routes by the original routing key.
    bind(&channel, &queue, &destination, "orders.new").await;

    for key in ["orders.new", "orders.old", "invoices.new", "orders.new.x"] {
        let confirmation = publish_confirmed(
            &channel,
            &source,
            key,
            key.as_bytes(),
            BasicProperties::default(),
        )
        .await;
        assert!(confirmation.is_ack());
    }
    assert_eq!(drain(&channel, &queue).await, ["orders.new"]);

    // Unbound, nothing arrives.
    within(
        STEP,
        "exchange.unbind",
        channel.exchange_unbind(
            destination.as_str().into(),
            source.as_str().into(),
            "orders.*".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("exchange.unbind");
    let confirmation = publish_confirmed(
        &channel,
        &source,
        "orders.new",
        b"late",
        BasicProperties::default(),
    )
    .await;
    assert!(confirmation.is_ack());
    assert_eq!(drain(&channel, &queue).await, Vec::<String>::new());
    delete_exchange(&channel, &source).await;
    delete_exchange(&channel, &destination).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_wildcards_match_whole_words() {
    let target = Target::start().await;
    let connection = target.connect().await;
    let channel = confirming(&connection).await;
    let exchange = unique("topics");
    declare_exchange(&channel, &exchange, ExchangeKind::Topic).await;
    let patterns = ["p.*.c", "p.#", "p.b.c", "#.c", "*"];
    let mut queues = Vec::new();
    for pattern in patterns {
        let queue = unique("topic");
        declare_queue(&channel, &queue, false).await;
        bind(&channel, &queue, &exchange, pattern).await;
        queues.push(queue);
    }
    for key in [
        "p", "p.b", "p.b.c", "p.x.c", "p.b.c.d", "c", "q.b.c", "p..c",
    ] {
        let confirmation = publish_confirmed(
            &channel,
            &exchange,
            key,
            key.as_bytes(),
            BasicProperties::default(),
        )
        .await;
        assert!(confirmation.is_ack());
    }
    let expected: [&[&str]; 5] = [
        // `*` is exactly one word (an empty word counts).
        &["p..c", "p.b.c", "p.x.c"],
        // `#` is zero or more words.
        &["p", "p..c", "p.b", "p.b.c", "p.b.c.d", "p.x.c"],
        &["p.b.c"],
        &["c", "p..c", "p.b.c", "p.x.c", "q.b.c"],
        &["c", "p"],
    ];
    for ((pattern, queue), expected) in patterns.iter().zip(&queues).zip(expected) {
        assert_eq!(drain(&channel, queue).await, expected, "pattern {pattern}");
    }
    delete_exchange(&channel, &exchange).await;
}

// ---------------------------------------------------------------------------------------------
// Connection.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_announces_its_capabilities_and_tuning() {
    let target = Target::start().await;
    let mut client = target.raw().await;
    let start = client.hello().await;
    assert_eq!((start.version_major, start.version_minor), (0, 9));
    let mechanisms = String::from_utf8(start.mechanisms.as_bytes().to_vec()).unwrap();
    assert!(
        mechanisms.split(' ').any(|mechanism| mechanism == "PLAIN"),
        "{mechanisms:?}"
    );
    assert_eq!(start.locales.as_bytes(), b"en_US");
    let capabilities = match start.server_properties.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(table)) => table.clone(),
        other => panic!("capabilities: {other:?}"),
    };
    for capability in [
        "connection.blocked",
        "publisher_confirms",
        "basic.nack",
        "consumer_cancel_notify",
        "exchange_exchange_bindings",
        "authentication_failure_close",
        "per_consumer_qos",
    ] {
        assert_eq!(
            capabilities.inner().get(capability),
            Some(&AMQPValue::Boolean(true)),
            "capability {capability}"
        );
    }
    for key in ["product", "version"] {
        assert!(
            matches!(
                start.server_properties.inner().get(key),
                Some(AMQPValue::LongString(_))
            ),
            "server property {key}"
        );
    }
    // RabbitMQ's defaults (DESIGN.md section 4): 2047 channels, 128 KiB frames, 60 s heartbeat.
    let tune = client.login("guest", "guest").await;
    assert_eq!(
        (tune.channel_max, tune.frame_max, tune.heartbeat),
        (2047, 131_072, 60)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_are_negotiated_and_sent() {
    let target = Target::start().await;
    // lapin asks for 5 s; the server proposes 60 s; the lower wins.
    let connection = amqp::connect_uri(&target.uri("heartbeat=5")).await;
    assert_eq!(connection.configuration().heartbeat(), 5);
    let channel = confirming(&connection).await;
    let queue = unique("beating");
    declare_queue(&channel, &queue, false).await;
    send(&channel, &queue, b"alive").await;

    // A raw client that accepts 1 s gets heartbeat frames (RabbitMQ sends one every half
    // interval), unprompted.
    let mut client = target.raw().await;
    client.hello().await;
    let tune = client.login("guest", "guest").await;
    client.tune_ok(tune.channel_max, tune.frame_max, 1).await;
    client.open("/").await;
    for _ in 0..2 {
        let frame = client.recv_within(Duration::from_secs(3)).await;
        assert_eq!(frame, AMQPFrame::Heartbeat);
    }
}

/// mqgate's own overflow policy `block-publisher` (RabbitMQ refuses the value): a full queue
/// with a consumer takes a confirmed publish but withholds its `basic.ack` until it drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_publisher_withholds_the_confirm_until_the_queue_drains() {
    let target = Target::start().await;
    let Some(gateway) = target.gateway() else {
        eprintln!("skipped against the reference broker: block-publisher is mqgate's own");
        return;
    };
    let held_count =
        || mqgate_core::metrics::Metrics::read(&gateway.broker().metrics().confirms_held);
    let connection = target.connect().await;
    let publisher = confirming(&connection).await;
    let full = unique("block-publisher");
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(1));
    arguments.insert(
        "x-overflow".into(),
        AMQPValue::LongString("block-publisher".into()),
    );
    within(
        STEP,
        "queue.declare",
        publisher.queue_declare(
            full.as_str().into(),
            lapin::options::QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            arguments,
        ),
    )
    .await
    .unwrap();
    let channel = open_channel(&connection).await;
    within(
        STEP,
        "basic.qos",
        channel.basic_qos(1, BasicQosOptions::default()),
    )
    .await
    .unwrap();
    let mut consumer = consume(&channel, &full, "blocked", false).await;
    // "m1" goes to the consumer and stays unacked; "m2" fills the queue (one ready).
    send(&publisher, &full, b"m1").await;
    let first = next_delivery(&mut consumer).await;
    send(&publisher, &full, b"m2").await;
    let held_before = held_count();

    // "m3" is over the limit: the queue takes it and the engine holds its confirm.
    let held = within(
        STEP,
        "basic.publish",
        publisher.basic_publish(
            "".into(),
            full.as_str().into(),
            BasicPublishOptions::default(),
            b"m3",
            BasicProperties::default(),
        ),
    )
    .await
    .unwrap();
    // The passive declare is answered after the server handled m3 (same channel, in order).
    assert_eq!(
        ready_count(&publisher, &full).await,
        2,
        "m3 is in the queue"
    );
    assert_eq!(held_count(), held_before + 1, "its confirm is held");

    // Acking m1 delivers m2; the queue is back within its limit and m3 is confirmed.
    first.ack(BasicAckOptions::default()).await.unwrap();
    let confirmation = within(STEP, "the held confirm", held).await.unwrap();
    assert_eq!(confirmation, Confirmation::Ack(None));
    for body in [&b"m2"[..], &b"m3"[..]] {
        let delivery = next_delivery(&mut consumer).await;
        assert_eq!(delivery.data, body);
        delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
}
