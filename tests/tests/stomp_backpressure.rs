//! STOMP backpressure (issue 4: "a subscriber that stops reading is bounded by its prefetch and
//! buffer, and a publisher blocked by the engine has its socket reads paused").
//!
//! - A `client-individual` subscriber that stops reading holds at most its prefetch; the queue
//!   keeps the rest, the producer keeps getting receipts, another consumer keeps receiving.
//! - An `ack:auto` topic subscriber that stops reading: its private queue grows, what left that
//!   queue for it is bounded by the outbound buffer, the session window and the kernel's socket
//!   buffers, and once its writes stall for `limits.write_stall_timeout` it is closed as a slow
//!   consumer; another subscriber keeps receiving.
//! - A producer blocked by the memory high watermark stops getting receipts (its socket is no
//!   longer read) while a subscriber-only connection keeps being read; once that subscriber
//!   drains the queue, the producer resumes and gets every receipt.
//!
//! Every wait is bounded ([`WAIT`]); nothing sleeps to synchronise: the tests poll the engine's
//! state (queue stats, the memory monitor) or wait for frames.

#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway;
#[allow(dead_code)]
#[path = "support/stomp.rs"]
mod stomp;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gateway::{queue_stats, within};
use mqgate::protocols::Protocol;
use mqgate::{ListenerSpec, RunningGateway, Settings, Transport};
use mqgate_core::broker::Broker;
use mqgate_core::metrics::Metrics;
use mqgate_core::queue::QueueStats;
use stomp::{Client, Reader};

/// Every wait is bounded by this.
const WAIT: Duration = Duration::from_secs(30);

/// The body of the large messages.
const BODY: usize = 32 * 1024;

/// Bytes a message may weigh in the engine, or take on the wire, beyond its body: headers,
/// routing key and the engine's fixed per-message overhead.
const PER_MESSAGE: usize = 1024;

/// A gateway with a plain STOMP listener (and the support module's MQTT one), `tune` applied;
/// returns it and the STOMP address.
async fn gateway(tune: impl FnOnce(&mut Settings)) -> (RunningGateway, SocketAddr) {
    let (running, _mqtt) = gateway::start(|settings| {
        settings.listeners.push(ListenerSpec {
            protocol: Protocol::Stomp,
            transport: Transport::Plain,
            addr: "127.0.0.1:0".parse().unwrap(),
        });
        tune(settings);
    })
    .await;
    let addr = running
        .local_addr(Protocol::Stomp, Transport::Plain)
        .unwrap();
    (running, addr)
}

/// A name no other test uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `condition` until it holds, failing with `what` after [`WAIT`].
async fn eventually(what: &str, condition: impl FnMut() -> bool) {
    gateway::eventually(WAIT, what, condition).await;
}

async fn connect(addr: SocketAddr) -> Client {
    Client::connect(addr, None, WAIT).await
}

/// A client whose kernel receive buffer is small, for subscribers that stop reading.
async fn connect_small_buffer(addr: SocketAddr) -> Client {
    Client::connect(addr, Some(64 * 1024), WAIT).await
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn stats(broker: &Broker, queue: &str) -> QueueStats {
    queue_stats(broker, queue).unwrap_or_else(|| panic!("queue {queue} exists"))
}

/// What a reading subscriber task saw.
#[derive(Debug, Default)]
struct Received {
    messages: AtomicU64,
    /// Set when a message with the body [`LAST`] arrived.
    got_last: AtomicBool,
}

/// The body of the last message a test publishes.
const LAST: &[u8] = b"last";

/// Reads MESSAGE frames in the background until the connection ends, counting them; with
/// `ack`, acknowledges each by its `ack` header (1.2).
fn keep_reading(mut reader: Reader, mut ack: Option<stomp::Writer>) -> Arc<Received> {
    let received = Arc::new(Received::default());
    let seen = Arc::clone(&received);
    tokio::spawn(async move {
        while let Some(frame) = reader.next().await {
            if frame.command != "MESSAGE" {
                continue;
            }
            if let Some(writer) = &mut ack {
                let id = frame.header("ack").expect("an ack header").to_owned();
                writer.send("ACK", &[("id", &id)], b"").await;
            }
            if frame.body == LAST {
                seen.got_last.store(true, Ordering::Relaxed);
            }
            seen.messages.fetch_add(1, Ordering::Relaxed);
        }
    });
    received
}

// ---------------------------------------------------------------------------------------------
// 1. A client-individual subscriber that stops reading.

const PREFETCH: u32 = 10;
const FIRST_BATCH: u64 = 200; // 6.25 MiB
const SECOND_BATCH: u64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_client_individual_subscriber_is_held_to_its_prefetch() {
    const OUTBOUND: usize = 128 * 1024;
    let (running, addr) = gateway(|settings| {
        settings.limits.outbound_buffer_bytes = OUTBOUND;
        settings.limits.session_window_bytes = 256 * 1024;
    })
    .await;
    let broker = Arc::clone(running.broker());
    let queue = unique("stalled-q");
    let destination = format!("/queue/{queue}");

    // Subscribes, then never reads again (nor acknowledges).
    let mut stalled = connect_small_buffer(addr).await;
    stalled
        .receipted_within(
            "SUBSCRIBE",
            &[
                ("id", "stalled"),
                ("destination", &destination),
                ("ack", "client-individual"),
                ("prefetch-count", "10"),
            ],
            b"",
            "sub",
            WAIT,
        )
        .await;

    let mut producer = connect(addr).await;
    let body = vec![7u8; BODY];
    let mut peak_unacked = 0;
    for index in 0..FIRST_BATCH {
        // Every SEND gets its RECEIPT: the stalled subscriber does not hold the producer up.
        producer
            .receipted_within(
                "SEND",
                &[("destination", &destination)],
                &body,
                &format!("p{index}"),
                WAIT,
            )
            .await;
        // Memory first, then the queue: nothing consumes meanwhile, so the queue can only
        // have grown since, and the bound computed from it is conservative.
        let used = broker.memory().used();
        let now = stats(&broker, &queue);
        peak_unacked = peak_unacked.max(now.unacked);
        assert!(now.unacked <= PREFETCH, "{now:?}");
        // The queue's content, plus what may be in flight to the stalled subscriber.
        let bound = now.ready_bytes as usize
            + now.ready as usize * PER_MESSAGE
            + PREFETCH as usize * (BODY + PER_MESSAGE)
            + OUTBOUND;
        assert!(
            used <= bound,
            "{used} bytes held over {bound} after {index} SENDs: {now:?}"
        );
    }
    // The stalled subscriber has exactly its prefetch in flight; the queue holds the rest.
    let held = stats(&broker, &queue);
    assert_eq!(held.unacked, PREFETCH, "{held:?}");
    assert_eq!(u64::from(held.ready), FIRST_BATCH - u64::from(PREFETCH));
    assert_eq!(held.ready_bytes, u64::from(held.ready) * BODY as u64);
    assert_eq!(held.consumers, 1);
    assert_eq!(peak_unacked, PREFETCH);

    // A second STOMP consumer on the same queue receives what waits, and what comes next.
    let second = connect(addr).await;
    let (second_reader, mut second_writer) = second.split();
    second_writer
        .send(
            "SUBSCRIBE",
            &[
                ("id", "live"),
                ("destination", &destination),
                ("ack", "client-individual"),
                ("prefetch-count", "10"),
            ],
            b"",
        )
        .await;
    let live = keep_reading(second_reader, Some(second_writer));
    for index in 0..SECOND_BATCH {
        producer
            .receipted_within(
                "SEND",
                &[("destination", &destination)],
                &body,
                &format!("q{index}"),
                WAIT,
            )
            .await;
        assert!(stats(&broker, &queue).unacked <= 2 * PREFETCH);
    }
    producer
        .receipted_within("SEND", &[("destination", &destination)], LAST, "last", WAIT)
        .await;
    let expected = FIRST_BATCH + SECOND_BATCH + 1 - u64::from(PREFETCH);
    eventually(
        "the second consumer received everything but the prefetch",
        || read(&live.messages) == expected,
    )
    .await;
    assert!(live.got_last.load(Ordering::Relaxed));
    // Its ACKs are processed: only the stalled subscriber's prefetch remains, and the engine
    // holds just that.
    eventually("only the stalled prefetch remains", || {
        let now = stats(&broker, &queue);
        now.ready == 0 && now.unacked == PREFETCH
    })
    .await;
    let bound = PREFETCH as usize * (BODY + PER_MESSAGE);
    eventually("engine memory back to the stalled prefetch", || {
        broker.memory().used() <= bound
    })
    .await;
    assert_eq!(Metrics::read(&broker.metrics().flow_blocked), 0);
    drop(stalled);
}

// ---------------------------------------------------------------------------------------------
// 2. An ack:auto topic subscriber that stops reading.

const TOPIC_MESSAGES: u64 = 400; // 12.5 MiB
const AFTER_CLOSE: u64 = 20;

/// What the kernel may buffer between the gateway's writer and a client that stopped reading:
/// the gateway socket's send buffer (autotuned up to `tcp_wmem`'s maximum on Linux) and the
/// client's small receive buffer, with slack.
fn kernel_allowance() -> usize {
    let send_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|text| text.split_whitespace().nth(2)?.parse::<usize>().ok())
        .unwrap_or(4 << 20);
    send_max + (1 << 20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_auto_ack_topic_subscriber_is_bounded_then_closed_as_slow_consumer() {
    const OUTBOUND: usize = 64 * 1024;
    const WINDOW: usize = 256 * 1024;
    let (running, addr) = gateway(|settings| {
        settings.limits.outbound_buffer_bytes = OUTBOUND;
        settings.limits.session_window_bytes = WINDOW;
        settings.limits.write_stall_timeout = Duration::from_secs(3);
    })
    .await;
    let broker = Arc::clone(running.broker());
    let topic = unique("load");
    let destination = format!("/topic/{topic}");
    // The stalled subscription's private queue, named so the test can watch it.
    let stalled_queue = unique("stalled-sub");

    let mut stalled = connect_small_buffer(addr).await;
    stalled
        .receipted_within(
            "SUBSCRIBE",
            &[
                ("id", "stalled"),
                ("destination", &destination),
                ("x-queue-name", &stalled_queue),
            ],
            b"",
            "sub",
            WAIT,
        )
        .await;
    assert_eq!(stats(&broker, &stalled_queue).consumers, 1);

    let mut live = connect(addr).await;
    live.receipted_within(
        "SUBSCRIBE",
        &[("id", "live"), ("destination", &destination)],
        b"",
        "sub",
        WAIT,
    )
    .await;
    let (live_reader, _live_writer) = live.split();
    let live = keep_reading(live_reader, None);

    let mut producer = connect(addr).await;
    let body = vec![3u8; BODY];
    // Messages that may have left the stalled queue for the connection: its outbound buffer,
    // its session window, the kernel's buffers, and one message over each limit.
    let left_bound = (OUTBOUND + WINDOW + kernel_allowance()) / BODY + 4;
    let mut peak_ready = 0u64;
    let mut sent = 0u64;
    let mut sample = |sent: u64| {
        if let Some(now) = queue_stats(&broker, &stalled_queue) {
            let ready = u64::from(now.ready);
            peak_ready = peak_ready.max(ready);
            // Auto-ack: nothing is unacked; whatever is not ready left for the connection.
            assert_eq!(now.unacked, 0);
            let left = sent.saturating_sub(ready);
            assert!(
                left <= left_bound as u64,
                "{left} messages left the queue of a subscriber that reads nothing (bound \
                 {left_bound}): {now:?}"
            );
        }
    };
    for index in 0..TOPIC_MESSAGES {
        producer
            .receipted_within(
                "SEND",
                &[("destination", &destination)],
                &body,
                &format!("p{index}"),
                WAIT,
            )
            .await;
        sent += 1;
        sample(sent);
    }
    // The private queue grew while the stalled connection held only its bounded share (the
    // check in `sample`). The connection may be closed as a slow consumer before the last
    // SEND (`write_stall_timeout` after it stalled), so the peak asked for is a modest one.
    assert!(
        peak_ready >= TOPIC_MESSAGES / 4,
        "the stalled queue peaked at {peak_ready} ready"
    );

    // Its writes make no progress: closed as a slow consumer, its private queue deleted.
    eventually(
        "the stalled subscriber is closed as a slow consumer",
        || queue_stats(&broker, &stalled_queue).is_none(),
    )
    .await;
    // The client sees the end of the stream after what the kernel had buffered for it.
    let frames = stalled.reader.until_closed(WAIT).await;
    assert!(
        (frames as u64) < TOPIC_MESSAGES,
        "read {frames} frames before the close"
    );

    // The other subscriber got everything, and keeps receiving.
    for index in 0..AFTER_CLOSE {
        producer
            .receipted_within(
                "SEND",
                &[("destination", &destination)],
                &body,
                &format!("after{index}"),
                WAIT,
            )
            .await;
    }
    producer
        .receipted_within("SEND", &[("destination", &destination)], LAST, "last", WAIT)
        .await;
    eventually("the live subscriber received every message", || {
        read(&live.messages) == TOPIC_MESSAGES + AFTER_CLOSE + 1
    })
    .await;
    assert!(live.got_last.load(Ordering::Relaxed));
    // The stalled queue's megabytes went with it.
    eventually("engine memory released", || broker.memory().used() == 0).await;
}

// ---------------------------------------------------------------------------------------------
// 3. Publisher flow control at the memory high watermark.

const WATERMARK: usize = 256 * 1024;
const SMALL_BODY: usize = 4 * 1024;
const FLOW_MESSAGES: u64 = 2000; // 8 MiB
/// SENDs a paused connection may still publish after the engine blocked: the frames in its
/// read buffer before the flow event is handled, and the one that pauses it.
const PAUSE_SLACK: u64 = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn producer_is_paused_at_the_watermark_while_a_subscriber_is_read_and_drains() {
    let (running, addr) = gateway(|settings| {
        settings.limits.memory_high_watermark = WATERMARK;
    })
    .await;
    let broker = Arc::clone(running.broker());
    let queue = unique("flow-q");
    let destination = format!("/queue/{queue}");

    // The producer pipelines SENDs with receipts from one task and counts RECEIPTs in another.
    let producer = connect(addr).await;
    let (mut receipts_reader, mut sends) = producer.split();
    let sent = Arc::new(AtomicU64::new(0));
    let receipts = Arc::new(AtomicU64::new(0));
    let sender = {
        let sent = Arc::clone(&sent);
        let destination = destination.clone();
        tokio::spawn(async move {
            let body = vec![1u8; SMALL_BODY];
            for index in 0..FLOW_MESSAGES {
                let receipt = format!("p{index}");
                sends
                    .send(
                        "SEND",
                        &[("destination", &destination), ("receipt", &receipt)],
                        &body,
                    )
                    .await;
                sent.fetch_add(1, Ordering::Relaxed);
            }
            // Keeps the write side open until the test ends.
            std::future::pending::<()>().await;
        })
    };
    let receipt_task = {
        let receipts = Arc::clone(&receipts);
        tokio::spawn(async move {
            while let Some(frame) = receipts_reader.next().await {
                assert_eq!(frame.command, "RECEIPT", "{frame:?}");
                let expected = format!("p{}", read(&receipts));
                assert_eq!(frame.header("receipt-id"), Some(expected.as_str()));
                receipts.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    eventually("the watermark blocks publishers", || {
        broker.memory().is_blocked()
    })
    .await;
    assert!(Metrics::read(&broker.metrics().flow_blocked) >= 1);
    // Paused: every SEND the gateway read is in the queue and receipted, and the producer has
    // written more that nobody reads.
    eventually("the producer is paused with its receipts delivered", || {
        queue_stats(&broker, &queue).is_some_and(|now| u64::from(now.ready) == read(&receipts))
            && read(&sent) > read(&receipts)
    })
    .await;
    let paused_at = read(&receipts);
    assert!(paused_at < FLOW_MESSAGES, "the producer was not paused");
    let used = broker.memory().used();
    assert!(
        used <= WATERMARK + 2 * PAUSE_SLACK as usize * (SMALL_BODY + PER_MESSAGE),
        "{used} bytes held"
    );

    // A subscriber-only connection is still read while the engine blocks publishers: its
    // SUBSCRIBE and ACKs get their receipts, and the ACKs are processed.
    let mut drainer = connect(addr).await;
    drainer
        .receipted_within(
            "SUBSCRIBE",
            &[
                ("id", "drain"),
                ("destination", &destination),
                ("ack", "client-individual"),
                ("prefetch-count", "20"),
            ],
            b"",
            "sub",
            WAIT,
        )
        .await;
    let first = drainer.recv_within(WAIT).await;
    assert_eq!(first.command, "MESSAGE", "{first:?}");
    let acked_before = Metrics::read(&broker.metrics().acked);
    let id = first.header("ack").unwrap().to_owned();
    drainer
        .send("ACK", &[("id", &id), ("receipt", "ack-1")], b"")
        .await;
    // More of the prefetch may arrive before the ACK's RECEIPT: kept to be acknowledged.
    let mut pending = Vec::new();
    loop {
        let frame = drainer.recv_within(WAIT).await;
        match frame.command.as_str() {
            "MESSAGE" => pending.push(frame.header("ack").unwrap().to_owned()),
            "RECEIPT" => {
                assert_eq!(frame.header("receipt-id"), Some("ack-1"));
                break;
            }
            _ => panic!("unexpected {frame:?}"),
        }
    }
    assert_eq!(Metrics::read(&broker.metrics().acked), acked_before + 1);
    // One message off a queue over the watermark: publishers are still blocked, and the
    // producer is still paused.
    assert!(broker.memory().is_blocked());
    let still = read(&receipts);
    assert!(
        still <= paused_at + PAUSE_SLACK && still < FLOW_MESSAGES,
        "paused at {paused_at}, {still} receipts while still blocked"
    );

    // The subscriber drains; memory falls under the low watermark, the producer resumes and
    // gets every receipt.
    for id in &pending {
        drainer.send("ACK", &[("id", id)], b"").await;
    }
    let (drain_reader, drain_writer) = drainer.split();
    let drained = keep_reading(drain_reader, Some(drain_writer));
    eventually("the producer resumes", || read(&receipts) > still).await;
    eventually("every SEND receipted", || read(&receipts) == FLOW_MESSAGES).await;
    eventually("every message drained", || {
        read(&drained.messages) + 1 + pending.len() as u64 == FLOW_MESSAGES
    })
    .await;
    eventually("the queue is empty", || {
        let now = stats(&broker, &queue);
        now.ready == 0 && now.unacked == 0
    })
    .await;
    assert!(!broker.memory().is_blocked());
    sender.abort();
    receipt_task.abort();
    within(WAIT, "the receipt task ends", async {
        let _ = receipt_task.await;
    })
    .await;
}
