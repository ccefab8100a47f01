//! AMQP 0-9-1 bad input over raw frames (issue 5, "Bad input"): each case gets the right reply
//! code in a `connection.close` (or `channel.close`) whose text names what was wrong, then the
//! close, never a panic or an unbounded allocation; a client connected before the bad one still
//! publishes and consumes afterwards.
//!
//! Run against RabbitMQ 3.10 with `AMQP_REFERENCE_PORT=5672` (support/amqp.rs), these tests pin
//! the behaviour mqgate copies. Where the two deliberately differ, the test asks
//! `Target::is_reference` and the comment there says why; RabbitMQ's observed reply is quoted
//! at each case. The differences, in short:
//! - before tune-ok mqgate accepts frames up to 8192 bytes (the spec's frame-min-size) and
//!   answers a larger one with `connection.close` 501; RabbitMQ 3.10 accepts only 4096 and
//!   drops the socket without a close;
//! - where RabbitMQ drops the socket without a close for a malformed frame (a bad frame end
//!   during the handshake, a string length past its table), mqgate sends `connection.close`
//!   with the spec's code;
//! - RabbitMQ's texts do not always name the channel or the size; mqgate's do;
//! - RabbitMQ checks no channel id against channel_max (only the number of open channels),
//!   checks no body frame against the declared size (only the next frame after it), checks the
//!   message size only once the body has arrived, has no nesting cap on field tables, and
//!   decodes a content header's table only when it needs it (then fails with 541).
//!
//! Every wait is bounded; nothing sleeps.

#[allow(dead_code)]
#[path = "support/amqp.rs"]
mod amqp;
#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway;

use std::time::Duration;

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{basic, channel, connection, queue, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable};
use amqp::{
    declare_queue_method, frame_head, header_frame, method_frame, method_payload, next_delivery,
    open_channel, publish_confirmed, publish_method, raw_frame, raw_frame_ending, start_ok, unique,
    Client, Target, BODY, FRAME_END, HEARTBEAT, METHOD, PROTOCOL_HEADER,
};
use gateway::STEP;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, ConfirmSelectOptions};

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A client of the same broker that must keep working while others are refused: one lapin
/// connection with a publishing channel in confirm mode and a consumer on a queue of its own.
struct Bystander {
    _connection: lapin::Connection,
    publisher: lapin::Channel,
    consumer: lapin::Consumer,
    queue: String,
}

impl Bystander {
    async fn new(target: &Target) -> Self {
        let connection = target.connect().await;
        let publisher = open_channel(&connection).await;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let queue = unique("bystander");
        amqp::declare_queue(&publisher, &queue, false).await;
        let channel = open_channel(&connection).await;
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "bystander".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("basic.consume");
        Self {
            _connection: connection,
            publisher,
            consumer,
            queue,
        }
    }

    /// A message still goes round: confirmed, delivered, acked.
    async fn alive(&mut self) {
        let body = unique("still-here").into_bytes();
        let confirmation =
            publish_confirmed(&self.publisher, "", &self.queue, &body, Default::default()).await;
        assert!(confirmation.is_ack(), "{confirmation:?}");
        let delivery = next_delivery(&mut self.consumer).await;
        assert_eq!(delivery.data, body);
        delivery
            .ack(BasicAckOptions::default())
            .await
            .expect("basic.ack");
    }
}

/// True if `number` appears in `text` as a whole number (not inside a longer one).
fn names(text: &str, number: u64) -> bool {
    text.split(|c: char| !c.is_ascii_digit())
        .any(|word| word == number.to_string())
}

/// Fails the test unless `text` names one of `numbers` (`what` says what they are).
fn assert_names_one_of(text: &str, numbers: &[u64], what: &str) {
    assert!(
        numbers.iter().any(|&number| names(text, number)),
        "{text:?} names none of {numbers:?} ({what})"
    );
}

/// A raw connection after the protocol header, connection.start and start-ok: connection.tune
/// was read, tune-ok not sent.
async fn before_tune_ok(target: &Target) -> Client {
    let mut client = target.raw().await;
    client.hello().await;
    client.login("guest", "guest").await;
    client
}

/// A guest start-ok frame of exactly `size` bytes (padded in its client properties).
fn padded_start_ok(size: usize) -> Vec<u8> {
    let padded = |padding: usize| {
        let mut method = start_ok("guest", "guest");
        if let AMQPClass::Connection(connection::AMQPMethod::StartOk(start_ok)) = &mut method {
            start_ok.client_properties.insert(
                "padding".into(),
                AMQPValue::LongString("p".repeat(padding).into()),
            );
        }
        method_frame(0, method)
    };
    let bytes = padded(size - padded(0).len());
    assert_eq!(bytes.len(), size);
    bytes
}

/// A raw connection past the handshake with channel 1 open.
async fn with_channel(target: &Target) -> Client {
    let mut client = target.guest().await;
    client.open_channel(1).await;
    client
}

/// queue.declare arguments `{"deep": {"n": {"n": ... true}}}` with `depth` nested tables
/// under the arguments table.
fn nested_arguments(depth: usize) -> FieldTable {
    let mut value = AMQPValue::Boolean(true);
    for _ in 0..depth {
        let mut table = FieldTable::default();
        table.insert("n".into(), value);
        value = AMQPValue::FieldTable(table);
    }
    let mut arguments = FieldTable::default();
    arguments.insert("deep".into(), value);
    arguments
}

/// The mqgate cap on field table nesting (`mqgate_amqp::codec::MAX_TABLE_DEPTH`).
const MAX_TABLE_DEPTH: u64 = 32;

// ---------------------------------------------------------------------------------------------
// Before and during the handshake.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_protocol_header_gets_the_supported_one_and_a_close() {
    let target = Target::start().await;
    let mut bystander = Bystander::new(&target).await;
    for header in [
        &b"AMQP\x00\x00\x08\x00"[..],
        b"AMQP\x00\x01\x00\x00",
        b"HTTP/1.1 GET /\r\n\r\n",
    ] {
        let mut client = target.raw().await;
        client.write(header).await;
        // RabbitMQ: `AMQP 0 0 9 1`, then it closes the socket.
        assert_eq!(
            client.bytes_until_closed(STEP).await,
            PROTOCOL_HEADER,
            "the answer to {header:?}"
        );
    }
    bystander.alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_never_completes_is_closed_by_the_handshake_timeout() {
    let target = Target::tuned(|settings| {
        settings.limits.handshake_timeout = Duration::from_millis(500);
    })
    .await;
    if target.is_reference() {
        // RabbitMQ's handshake timeout is 10 s and cannot be tuned from here.
        eprintln!("skipped against the reference broker: the handshake timeout is mqgate's");
        return;
    }
    let mut bystander = Bystander::new(&target).await;
    // Well under the 10 s default: the tuned timeout closed them, whatever was sent before.
    let limit = Duration::from_secs(5);
    let mut silent = target.raw().await;
    assert!(silent.closed_within(limit).await, "nothing sent");
    let mut after_header = target.raw().await;
    after_header.hello().await;
    assert!(after_header.closed_within(limit).await, "no start-ok");
    let mut after_start_ok = before_tune_ok(&target).await;
    assert!(after_start_ok.closed_within(limit).await, "no tune-ok");
    let mut after_tune_ok = before_tune_ok(&target).await;
    after_tune_ok.tune_ok(2047, 131_072, 0).await;
    assert!(after_tune_ok.closed_within(limit).await, "no open");
    // The bystander, connected more than the timeout ago, is not affected.
    bystander.alive().await;
}

// ---------------------------------------------------------------------------------------------
// Frame sizes.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_8192_bytes_before_tune_ok_is_refused() {
    let target = Target::start().await;
    let mut bystander = Bystander::new(&target).await;
    // The header of a 9000-byte method payload, nothing after it: refused from the header,
    // before any payload is buffered.
    let oversized = frame_head(METHOD, 0, 9000);
    let mut before_start_ok = target.raw().await;
    before_start_ok.hello().await;
    let mut before_tune = before_tune_ok(&target).await;
    for client in [&mut before_start_ok, &mut before_tune] {
        client.write(&oversized).await;
        if target.is_reference() {
            // RabbitMQ 3.10 drops the socket without connection.close before tune-ok.
            assert!(client.next_connection_close(STEP).await.is_none());
        } else {
            // Our contract: connection.close 501 naming the size and the 8192 limit.
            let text = client.expect_connection_close(501).await;
            assert_names_one_of(&text, &[9000, 9008], "the frame's size");
            assert_names_one_of(&text, &[8192, 8184], "the limit");
        }
    }

    // A start-ok of exactly 8192 bytes (the whole frame) fits mqgate's limit, one of 8193 does
    // not; RabbitMQ 3.10 drops both (its limit before tune-ok is 4096).
    for (size, fits) in [(8192, true), (8193, false)] {
        let mut client = target.raw().await;
        client.hello().await;
        client.write(&padded_start_ok(size)).await;
        if target.is_reference() {
            assert!(client.next_connection_close(STEP).await.is_none());
        } else if fits {
            let tune = client.recv_method(0).await;
            assert!(
                matches!(tune, AMQPClass::Connection(connection::AMQPMethod::Tune(_))),
                "{tune:?}"
            );
        } else {
            let text = client.expect_connection_close(501).await;
            assert_names_one_of(&text, &[8193, 8185], "the frame's size");
        }
    }
    bystander.alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_negotiated_frame_max_is_refused() {
    let target = Target::start().await;
    let mut bystander = Bystander::new(&target).await;

    // The server's frame_max, announced by a method frame's header alone.
    // RabbitMQ: 501 "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,131073,131064}".
    let mut client = target.guest().await;
    let frame_max = client.frame_max();
    client.write(&frame_head(METHOD, 0, frame_max + 1)).await;
    let text = client.expect_connection_close(501).await;
    let size = u64::from(frame_max) + 1;
    assert_names_one_of(&text, &[size, size + 8], "the frame's size");
    assert_names_one_of(
        &text,
        &[u64::from(frame_max), u64::from(frame_max) - 8],
        "the limit",
    );

    // A body frame announcing 10 MB: refused without waiting for (or buffering) the bytes.
    // RabbitMQ: 501 "... {frame_too_large,10000000,131064}".
    let mut client = with_channel(&target).await;
    client.write(&frame_head(BODY, 1, 10_000_000)).await;
    let text = client.expect_connection_close(501).await;
    assert_names_one_of(&text, &[10_000_000, 10_000_008], "the frame's size");

    // A frame_max the client lowered in tune-ok binds too. RabbitMQ: "{frame_too_large,5000,4088}".
    let mut client = before_tune_ok(&target).await;
    client.tune_ok(2047, 4096, 0).await;
    client.open("/").await;
    client.write(&frame_head(METHOD, 0, 5000)).await;
    let text = client.expect_connection_close(501).await;
    assert_names_one_of(&text, &[5000, 5008], "the frame's size");
    assert_names_one_of(&text, &[4096, 4088], "the limit");

    bystander.alive().await;
}

// ---------------------------------------------------------------------------------------------
// Malformed frames.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_frame_end_octet_is_a_frame_error() {
    let target = Target::start().await;
    let mut bystander = Bystander::new(&target).await;
    let open = method_payload(&AMQPClass::Channel(channel::AMQPMethod::Open(
        channel::Open {},
    )));
    // RabbitMQ: 501 "FRAME_ERROR - type 1, all octets = <<0,20,0,10,0>>:
    // {invalid_frame_end_marker,0}".
    for end in [0x00, FRAME_END - 1, 0xFF] {
        let mut client = target.guest().await;
        client.write(&raw_frame_ending(METHOD, 1, &open, end)).await;
        let text = client.expect_connection_close(501).await;
        assert!(text.to_lowercase().contains("end"), "{text:?}");
    }

    // During the handshake (start-ok with a bad end).
    let mut client = target.raw().await;
    client.hello().await;
    let mut bytes = method_frame(0, start_ok("guest", "guest"));
    *bytes.last_mut().unwrap() = 0;
    client.write(&bytes).await;
    if target.is_reference() {
        // RabbitMQ drops the socket without connection.close before the connection is open;
        // our contract sends the spec's 501 there too.
        assert!(client.next_connection_close(STEP).await.is_none());
    } else {
        let text = client.expect_connection_close(501).await;
        assert!(text.to_lowercase().contains("end"), "{text:?}");
    }
    bystander.alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_frame_type_is_a_frame_error() {
    let target = Target::start().await;
    let mut bystander = Bystander::new(&target).await;
    // RabbitMQ: 501 "FRAME_ERROR - type 9, all octets = <<>>: unknown_frame".
    for (kind, channel, payload) in [
        (4u8, 0u16, &b""[..]),
        (9, 0, b""),
        (0xFF, 0, b""),
        (9, 1, b"abc"),
    ] {
        let mut client = with_channel(&target).await;
        client.write(&raw_frame(kind, channel, payload)).await;
        let text = client.expect_connection_close(501).await;
        assert!(names(&text, u64::from(kind)), "{text:?} names type {kind}");
    }
    bystander.alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_on_a_channel_other_than_0_is_an_unexpected_frame() {
    let target = Target::start().await;
    let mut bystander = Bystander::new(&target).await;
    // On an unopened and on an open channel.
    // RabbitMQ: 505 "UNEXPECTED_FRAME - type 8, all octets = <<>>".
    for open in [false, true] {
        let mut client = target.guest().await;
        if open {
            client.open_channel(5).await;
        }
        client.write(&raw_frame(HEARTBEAT, 5, b"")).await;
        let text = client.expect_connection_close(505).await;
        assert!(text.contains("UNEXPECTED_FRAME"), "{text:?}");
        if !target.is_reference() {
            // RabbitMQ's text names the frame type, not the channel; ours names the channel.
            assert!(names(&text, 5), "{text:?} names channel 5");
        }
    }
    bystander.alive().await;
}

// ---------------------------------------------------------------------------------------------
// Channels.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_on_unopened_channels_are_channel_errors() {
    let target = Target::start().await;
    let mut bystander = Bystander::new(&target).await;

    // Never opened. RabbitMQ: 504 "CHANNEL_ERROR - expected 'channel.open'" (class 50,
    // method 10), a connection exception.
    let mut client = target.guest().await;
    client
        .send_method(
            3,
            declare_queue_method(&unique("never"), FieldTable::default()),
        )
        .await;
    let text = client.expect_connection_close(504).await;
    if !target.is_reference() {
        // RabbitMQ's text does not name the channel; ours does.
        assert!(names(&text, 3), "{text:?} names channel 3");
    }

    // Closed by the client, then used again: the same.
    let mut client = with_channel(&target).await;
    client
        .send_method(
            1,
            AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            })),
        )
        .await;
    let close_ok = client.recv_method(1).await;
    assert!(
        matches!(
            close_ok,
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))
        ),
        "{close_ok:?}"
    );
    client
        .send_method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count: 1,
                global: false,
            })),
        )
        .await;
    client.expect_connection_close(504).await;

    // A second channel.open. RabbitMQ: 504 "CHANNEL_ERROR - second 'channel.open' seen".
    let mut client = with_channel(&target).await;
    client
        .send_method(
            1,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )
        .await;
    let text = client.expect_connection_close(504).await;
    assert!(text.contains("channel.open"), "{text:?}");

    bystander.alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_beyond_channel_max_are_refused() {
    let target = Target::start().await;
    let mut bystander = Bystander::new(&target).await;

    // channel_max 2 in tune-ok: channels 1 and 2 open, channel 3 is one too many.
    // RabbitMQ: 530 "NOT_ALLOWED - number of channels opened (2) has reached the negotiated
    // channel_max (2)".
    let mut client = before_tune_ok(&target).await;
    client.tune_ok(2, 131_072, 0).await;
    client.open("/").await;
    client.open_channel(1).await;
    client.open_channel(2).await;
    client
        .send_method(
            3,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )
        .await;
    let text = client.expect_connection_close(530).await;
    assert!(names(&text, 2), "{text:?} names the limit");

    // A channel id past the server's channel_max, with no other channel open.
    let mut client = target.guest().await;
    let beyond = client.channel_max() + 1;
    client
        .send_method(
            beyond,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )
        .await;
    if target.is_reference() {
        // RabbitMQ 3.10 only counts open channels: it opens channel 2048 (and 65535).
        let open_ok = client.recv_method(beyond).await;
        assert!(
            matches!(open_ok, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))),
            "{open_ok:?}"
        );
    } else {
        // Our contract: usable channel numbers are 1..=channel_max (the spec's words); one
        // beyond gets the code RabbitMQ gives for exceeding channel_max (530 NOT_ALLOWED, as
        // above), naming the channel.
        let text = client.expect_connection_close(530).await;
        assert!(names(&text, u64::from(beyond)), "{text:?} names {beyond}");
    }
    bystander.alive().await;
}

// ---------------------------------------------------------------------------------------------
// Content.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_or_header_out_of_sequence_is_an_unexpected_frame() {
    let target = Target::start().await;
    let mut bystander = Bystander::new(&target).await;
    let queue = unique("nowhere");

    // A body frame on its own. RabbitMQ: 505 "UNEXPECTED_FRAME - expected method frame, got
    // non method frame instead".
    let mut client = with_channel(&target).await;
    client.write(&raw_frame(BODY, 1, b"hello")).await;
    client.expect_connection_close(505).await;

    // basic.publish, then a body without its header. RabbitMQ: 505 "UNEXPECTED_FRAME -
    // expected content header for class 60, got non content header frame instead".
    let mut client = with_channel(&target).await;
    let mut bytes = method_frame(1, publish_method("", &queue, false));
    bytes.extend(raw_frame(BODY, 1, b"hello"));
    client.write(&bytes).await;
    client.expect_connection_close(505).await;

    // A content header without a method. RabbitMQ: 505 "UNEXPECTED_FRAME - expected method
    // frame, got non method frame instead".
    let mut client = with_channel(&target).await;
    client
        .write(&header_frame(1, 5, AMQPProperties::default()))
        .await;
    client.expect_connection_close(505).await;

    // basic.publish, its header, then another method before the body.
    let mut client = with_channel(&target).await;
    let mut bytes = method_frame(1, publish_method("", &queue, false));
    bytes.extend(header_frame(1, 5, AMQPProperties::default()));
    bytes.extend(method_frame(1, publish_method("", &queue, false)));
    client.write(&bytes).await;
    client.expect_connection_close(505).await;

    bystander.alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_larger_than_declared_is_refused() {
    let target = Target::start().await;
    let mut bystander = Bystander::new(&target).await;
    let queue = unique("overflow");
    // One body frame of 5 bytes for 3 declared, and 2 + 3 bytes for 3 declared.
    for chunks in [&[&b"hello"[..]][..], &[&b"he"[..], &b"llo"[..]][..]] {
        let mut client = with_channel(&target).await;
        client.declare_queue(1, &queue, FieldTable::default()).await;
        let mut bytes = method_frame(1, publish_method("", &queue, false));
        bytes.extend(header_frame(1, 3, AMQPProperties::default()));
        for chunk in chunks {
            bytes.extend(raw_frame(BODY, 1, chunk));
        }
        if target.is_reference() {
            // RabbitMQ 3.10 does not check a body frame against the declared size (its count
            // of bytes still expected goes negative); the next frame that is not a body gets
            // 505 "UNEXPECTED_FRAME - expected content body, got non content body frame
            // instead". mqgate refuses the body frame itself, so gets nothing more.
            bytes.extend(method_frame(
                1,
                AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                    prefetch_count: 0,
                    global: false,
                })),
            ));
        }
        client.write(&bytes).await;
        let text = client.expect_connection_close(505).await;
        if !target.is_reference() {
            assert!(names(&text, 3), "{text:?} names the declared size");
        }
    }
    bystander.alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_announcing_more_than_the_max_message_size_is_refused_before_the_body() {
    let target = Target::start().await;
    if target.is_reference() {
        // RabbitMQ 3.10 (max 128 MiB) checks the size once the whole body has arrived, so it
        // would wait for the bytes; its refusal is the one asserted below.
        eprintln!("skipped against the reference broker: it checks the size after the body");
        return;
    }
    let mut bystander = Bystander::new(&target).await;
    let max = 16 * 1024 * 1024;
    for size in [u64::MAX, max + 1] {
        let mut client = with_channel(&target).await;
        let mut bytes = method_frame(1, publish_method("", &unique("huge"), false));
        bytes.extend(header_frame(1, size, AMQPProperties::default()));
        client.write(&bytes).await;
        // RabbitMQ's words: 406 "PRECONDITION_FAILED - message size S is larger than
        // configured max size M", a channel exception; the connection goes on.
        let text = client.expect_channel_close(1, 406).await;
        assert!(names(&text, size), "{text:?} names the size");
        assert!(names(&text, max), "{text:?} names the limit");
        client.open_channel(1).await;
        client.sync(1).await;
    }
    bystander.alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_bodies_parked_on_many_channels_are_bounded() {
    let target = Target::start().await;
    if target.is_reference() {
        eprintln!("skipped against the reference broker: it has no such bound");
        return;
    }
    let mut bystander = Bystander::new(&target).await;
    let mut client = target.guest().await;
    let max = 16 * 1024 * 1024;
    // Four bodies of the maximum size may be in progress at once; the fifth is refused.
    for channel in 1..=5u16 {
        client.open_channel(channel).await;
        let mut bytes = method_frame(channel, publish_method("", &unique("parked"), false));
        bytes.extend(header_frame(channel, max, AMQPProperties::default()));
        bytes.extend(raw_frame(BODY, channel, b"first bytes"));
        client.write(&bytes).await;
    }
    let text = client.expect_connection_close(530).await;
    assert!(names(&text, 4 * max), "{text:?} names the limit");
    bystander.alive().await;
}

// ---------------------------------------------------------------------------------------------
// Field tables.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_tables_nested_deeper_than_the_cap_are_refused() {
    let target = Target::start().await;
    let mut bystander = Bystander::new(&target).await;

    // A little nesting is fine everywhere.
    let mut client = with_channel(&target).await;
    client
        .declare_queue(1, &unique("shallow"), nested_arguments(8))
        .await;

    // 100 levels in queue.declare's arguments.
    let mut client = with_channel(&target).await;
    let name = unique("deep");
    client
        .send_method(1, declare_queue_method(&name, nested_arguments(100)))
        .await;
    if target.is_reference() {
        // RabbitMQ has no nesting cap (it declared the queue with 1000 levels too).
        let reply = client.recv_method(1).await;
        assert!(
            matches!(reply, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))),
            "{reply:?}"
        );
    } else {
        // Our contract: deeper than the cap is a syntax error naming the cap, found before
        // amq-protocol's recursive parser sees the payload.
        let text = client.expect_connection_close(502).await;
        assert!(names(&text, MAX_TABLE_DEPTH), "{text:?} names the cap");
    }

    // 100 levels in a content header's headers.
    let mut client = with_channel(&target).await;
    let mut headers = nested_arguments(100);
    headers.insert("plain".into(), AMQPValue::LongString("x".into()));
    let mut bytes = method_frame(1, publish_method("", &unique("nowhere"), false));
    bytes.extend(header_frame(
        1,
        2,
        AMQPProperties::default().with_headers(headers),
    ));
    bytes.extend(raw_frame(BODY, 1, b"hi"));
    client.write(&bytes).await;
    if target.is_reference() {
        // Accepted (and dropped: nothing is bound); the connection goes on.
        client.sync(1).await;
    } else {
        let text = client.expect_connection_close(502).await;
        assert!(names(&text, MAX_TABLE_DEPTH), "{text:?} names the cap");
    }
    bystander.alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_table_lengths_past_the_frame_are_refused() {
    let target = Target::start().await;
    let mut bystander = Bystander::new(&target).await;

    // queue.declare whose arguments table (the payload's last 4 bytes: an empty table)
    // claims 1000 bytes. RabbitMQ: 501 "FRAME_ERROR - cannot decode <<...>>" (class 50,
    // method 10).
    let mut client = with_channel(&target).await;
    let mut payload = method_payload(&declare_queue_method(
        &unique("past"),
        FieldTable::default(),
    ));
    let at = payload.len() - 4;
    payload[at..].copy_from_slice(&1000u32.to_be_bytes());
    client.write(&raw_frame(METHOD, 1, &payload)).await;
    let text = client.expect_connection_close(501).await;
    if !target.is_reference() {
        // RabbitMQ's text dumps the bytes; ours names the length.
        assert!(names(&text, 1000), "{text:?} names the length");
    }

    // A long string inside the table whose length runs past the table.
    let mut client = with_channel(&target).await;
    let mut arguments = FieldTable::default();
    arguments.insert("k".into(), AMQPValue::LongString("abc".into()));
    let mut payload = method_payload(&declare_queue_method(&unique("past"), arguments));
    // ... 'k' 'S' <4-byte length> "abc": the length sits 7 bytes from the end.
    let at = payload.len() - 7;
    payload[at..at + 4].copy_from_slice(&100_000u32.to_be_bytes());
    client.write(&raw_frame(METHOD, 1, &payload)).await;
    if target.is_reference() {
        // RabbitMQ drops the socket without connection.close; our contract sends 501.
        assert!(client.next_connection_close(STEP).await.is_none());
    } else {
        let text = client.expect_connection_close(501).await;
        assert!(names(&text, 100_000), "{text:?} names the length");
    }

    // A content header whose headers table claims 5000 bytes.
    let mut client = with_channel(&target).await;
    let queue = unique("past-header");
    let mut headers = FieldTable::default();
    headers.insert("k".into(), AMQPValue::LongString("abc".into()));
    let mut header = header_frame(1, 2, AMQPProperties::default().with_headers(headers));
    // Frame header (7), class (2), weight (2), body size (8), flags (2): the table length.
    header[21..25].copy_from_slice(&5000u32.to_be_bytes());
    let mut bytes = method_frame(1, publish_method("", &queue, false));
    bytes.extend(header);
    bytes.extend(raw_frame(BODY, 1, b"hi"));
    if target.is_reference() {
        // RabbitMQ takes the frames, then its channel crashes decoding the properties (it
        // checks user_id and expiration on every publish): connection.close 541
        // "INTERNAL_ERROR", the basic.qos behind the publish never answered. Our contract
        // refuses the header frame itself with 501 naming the length.
        bytes.extend(method_frame(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count: 0,
                global: false,
            })),
        ));
        client.write(&bytes).await;
        let text = client.expect_connection_close(541).await;
        assert!(text.contains("INTERNAL_ERROR"), "{text:?}");
    } else {
        client.write(&bytes).await;
        let text = client.expect_connection_close(501).await;
        assert!(names(&text, 5000), "{text:?} names the length");
    }
    bystander.alive().await;
}

// ---------------------------------------------------------------------------------------------
// Acknowledgements.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_of_unknown_delivery_tags_close_the_channel() {
    let target = Target::start().await;
    let mut bystander = Bystander::new(&target).await;
    let mut client = with_channel(&target).await;
    // RabbitMQ: channel.close 406 "PRECONDITION_FAILED - unknown delivery tag 42" (class 60,
    // method 80); nack (120) and reject (90) alike; the connection goes on.
    let methods = [
        (
            42,
            AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: 42,
                multiple: false,
            })),
        ),
        (
            5,
            AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: 5,
                multiple: true,
            })),
        ),
        (
            7,
            AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
                delivery_tag: 7,
                multiple: false,
                requeue: true,
            })),
        ),
        (
            9,
            AMQPClass::Basic(basic::AMQPMethod::Reject(basic::Reject {
                delivery_tag: 9,
                requeue: true,
            })),
        ),
    ];
    for (tag, method) in methods {
        client.send_method(1, method).await;
        let text = client.expect_channel_close(1, 406).await;
        assert!(text.contains("PRECONDITION_FAILED"), "{text:?}");
        assert!(names(&text, tag), "{text:?} names tag {tag}");
        // The connection goes on: the channel opens again.
        client.open_channel(1).await;
        client.sync(1).await;
    }

    // A tag acked twice.
    let queue = unique("twice");
    client.declare_queue(1, &queue, FieldTable::default()).await;
    client
        .publish(1, "", &queue, AMQPProperties::default(), b"once")
        .await;
    client.consume(1, &queue, "c", false).await;
    let delivery = client.recv_content(1).await;
    assert_eq!(delivery.body, b"once");
    let tag = delivery.delivery_tag();
    client.ack(1, tag).await;
    client.ack(1, tag).await;
    let text = client.expect_channel_close(1, 406).await;
    assert!(names(&text, tag), "{text:?} names tag {tag}");
    client.open_channel(1).await;
    client.sync(1).await;

    bystander.alive().await;
}
