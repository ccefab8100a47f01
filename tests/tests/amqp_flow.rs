//! AMQP flow control: `connection.blocked` when the engine's memory watermark blocks publishers,
//! `connection.unblocked` once consumers drain the queue, with raw frames so the test sees every
//! frame the gateway sends. mqgate only: RabbitMQ's alarm cannot be triggered from a test.

#[path = "support/amqp.rs"]
#[allow(dead_code)]
mod amqp;
#[path = "support/gateway.rs"]
#[allow(dead_code)]
mod gateway;

use std::time::Duration;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{basic, channel, connection, queue, AMQPClass};
use amq_protocol::types::FieldTable;
use amqp::{unique, Target};
use gateway::STEP;

/// Reads frames until `connection.blocked` (true) or `connection.unblocked` (false) arrives on
/// channel 0, within `limit`; other frames are skipped.
async fn next_flow(client: &mut amqp::Client, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(
            !left.is_zero(),
            "no connection.blocked/unblocked within {limit:?}"
        );
        match client.recv_within(left).await {
            AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Blocked(_))) => {
                return true
            }
            AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Unblocked(_))) => {
                return false
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn publishers_are_told_blocked_at_the_watermark_and_unblocked_when_drained() {
    if amqp::reference_port().is_some() {
        eprintln!("skipped against a reference broker: its memory alarm cannot be raised here");
        return;
    }
    let target = Target::tuned(|settings| settings.limits.memory_high_watermark = 64 * 1024).await;
    let queue_name = unique("flow");
    let mut publisher = target.guest().await;
    publisher.open_channel(1).await;
    // Not exclusive: a consumer on another connection drains it.
    publisher
        .send_method(
            1,
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: queue_name.as_str().into(),
                passive: false,
                durable: false,
                exclusive: false,
                auto_delete: false,
                nowait: false,
                arguments: FieldTable::default(),
            })),
        )
        .await;
    assert!(matches!(
        publisher.recv_method(1).await,
        AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))
    ));

    // 100 KiB of bodies into a queue nobody reads crosses the 64 KiB watermark.
    let body = vec![7u8; 1024];
    for _ in 0..100 {
        publisher
            .publish(1, "", &queue_name, AMQPProperties::default(), &body)
            .await;
    }
    assert!(
        next_flow(&mut publisher, STEP).await,
        "expected connection.blocked"
    );

    // A consumer on another connection drains the queue; the publisher hears it is unblocked.
    // The consumer connected while publishers were blocked, so it hears both notifications too
    // (RabbitMQ tells every connection that has the capability), between its other frames.
    let mut consumer = target.guest().await;
    let mut flow = Vec::new();
    consumer
        .send_method(
            1,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )
        .await;
    let open_ok = method_skipping_flow(&mut consumer, &mut flow).await;
    assert!(matches!(
        open_ok,
        AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))
    ));
    consumer
        .send_method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: queue_name.as_str().into(),
                consumer_tag: "drain".into(),
                no_local: false,
                no_ack: true,
                exclusive: false,
                nowait: false,
                arguments: FieldTable::default(),
            })),
        )
        .await;
    let consume_ok = method_skipping_flow(&mut consumer, &mut flow).await;
    assert!(matches!(
        consume_ok,
        AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_))
    ));
    assert!(
        !next_flow(&mut publisher, STEP).await,
        "expected connection.unblocked"
    );
    let mut delivered = false;
    while !delivered || flow.len() < 2 {
        match consumer.recv().await {
            AMQPFrame::Method(0, AMQPClass::Connection(method)) => record_flow(&method, &mut flow),
            AMQPFrame::Body(1, received) => {
                assert_eq!(received, body);
                delivered = true;
            }
            _ => {}
        }
    }
    assert_eq!(flow, vec![true, false]);
}

/// Notes a connection.blocked (true) or unblocked (false).
fn record_flow(method: &connection::AMQPMethod, flow: &mut Vec<bool>) {
    match method {
        connection::AMQPMethod::Blocked(_) => flow.push(true),
        connection::AMQPMethod::Unblocked(_) => flow.push(false),
        other => panic!("unexpected {other:?} on channel 0"),
    }
}

/// The next method on channel 1, noting flow notifications on channel 0 on the way.
async fn method_skipping_flow(client: &mut amqp::Client, flow: &mut Vec<bool>) -> AMQPClass {
    loop {
        match client.recv().await {
            AMQPFrame::Method(0, AMQPClass::Connection(method)) => record_flow(&method, flow),
            AMQPFrame::Method(1, method) => return method,
            other => panic!("unexpected {other:?}"),
        }
    }
}
