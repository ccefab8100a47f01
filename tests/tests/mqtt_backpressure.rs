//! MQTT backpressure: subscribers that stop reading and publishers faster than the engine can
//! hold. The gateway's memory stays bounded (asserted through the engine: queue lengths, the
//! memory monitor, the drop counters), other clients keep working, and a publisher blocked by
//! the memory high watermark resumes once a consumer drains.
//!
//! The stalled subscribers are raw sockets: they connect and subscribe, then never read again
//! (and so never acknowledge anything).

#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway;
#[allow(dead_code)]
#[path = "support/mqtt.rs"]
mod mqtt;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::{queue_stats, users, GUEST};
use mqgate::{RunningGateway, Settings};
use mqgate_core::broker::Broker;
use mqgate_core::metrics::Metrics;
use mqgate_core::names::{QueueName, VhostName};
use mqgate_core::ConsumeRequest;
use mqgate_mqtt::settings::SessionOverflow;
use mqtt::{connect, string, subscribe, Raw};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};

/// Every wait is bounded by this.
const WAIT: Duration = Duration::from_secs(30);

/// A gateway on a free loopback port, user guest (no tags) and anonymous logins as guest, with
/// `tune` applied.
async fn gateway(tune: impl FnOnce(&mut Settings)) -> (RunningGateway, SocketAddr) {
    gateway::start(|settings| {
        settings.users = Arc::new(users(&[GUEST], &[]));
        tune(settings);
    })
    .await
}

/// Polls `condition` until it holds, failing with `what` after [`WAIT`].
async fn eventually(what: &str, condition: impl FnMut() -> bool) {
    gateway::eventually(WAIT, what, condition).await;
}

/// A raw MQTT 3.1.1 client that connects (no keepalive), subscribes at `qos`, and then never
/// reads again.
async fn stalled_subscriber(
    addr: SocketAddr,
    client_id: &str,
    clean_session: bool,
    filter: &str,
    qos: u8,
) -> Raw {
    let mut raw = Raw::open(addr).await;
    let flags = u8::from(clean_session) << 1;
    raw.send(&connect(
        b"MQTT",
        4,
        flags,
        0,
        None,
        &string(client_id.as_bytes()),
    ))
    .await;
    let connack = raw.next_within(WAIT).await;
    assert_eq!(
        connack,
        mqtt::Read::Packet(0x20, vec![0, 0]),
        "CONNACK accepted"
    );
    raw.send(&subscribe(1, filter, qos, false)).await;
    let suback = raw.next_within(WAIT).await;
    assert_eq!(
        suback,
        mqtt::Read::Packet(0x90, vec![0, 1, qos]),
        "SUBACK granted"
    );
    raw
}

fn options(id: &str, addr: SocketAddr) -> MqttOptions {
    let mut options = mqtt::v4::options(id, addr);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(1 << 20, 1 << 20);
    options
}

/// Counts what an event loop receives, in the background: PUBACKs and PUBLISHes.
#[derive(Default)]
struct Counts {
    pubacks: AtomicU64,
    publishes: AtomicU64,
    connected: AtomicU64,
    /// Set when the publish carrying [`LAST`] arrives.
    got_last: std::sync::atomic::AtomicBool,
}

/// The payload of the last message a test publishes. Every session queue is bounded with
/// drop-head, so a subscriber that keeps reading may lose old messages in a burst but always
/// gets the newest: this one.
const LAST: &[u8] = b"last";

fn drive(mut events: EventLoop) -> (Arc<Counts>, tokio::task::JoinHandle<()>) {
    let counts = Arc::new(Counts::default());
    let seen = Arc::clone(&counts);
    let task = tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            match event {
                Event::Incoming(Packet::PubAck(_)) => {
                    seen.pubacks.fetch_add(1, Ordering::Relaxed);
                }
                Event::Incoming(Packet::Publish(publish)) => {
                    seen.publishes.fetch_add(1, Ordering::Relaxed);
                    if publish.payload.as_ref() == LAST {
                        seen.got_last.store(true, Ordering::Relaxed);
                    }
                }
                Event::Incoming(Packet::ConnAck(_)) | Event::Incoming(Packet::SubAck(_)) => {
                    seen.connected.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    });
    (counts, task)
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// A rumqttc subscriber on `filter` at QoS 1, its SUBACK awaited.
async fn live_subscriber(
    addr: SocketAddr,
    id: &str,
    filter: &str,
) -> (AsyncClient, Arc<Counts>, tokio::task::JoinHandle<()>) {
    let (client, events) = AsyncClient::new(options(id, addr), 64);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let (counts, task) = drive(events);
    // CONNACK and SUBACK.
    eventually("live subscriber subscribed", || {
        read(&counts.connected) >= 2
    })
    .await;
    (client, counts, task)
}

const QUEUE_BOUND: u32 = 50;
const BODY: usize = 32 * 1024;
const MESSAGES: u64 = 400; // 12.5 MiB

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_qos1_subscriber_is_held_to_its_queue_bound() {
    let (running, addr) = gateway(|settings| {
        settings.mqtt.session_queue_length = QUEUE_BOUND;
        settings.mqtt.session_overflow = SessionOverflow::DropHead;
    })
    .await;
    let broker = Arc::clone(running.broker());

    // A persistent session (clean session false): its queue is bounded by
    // mqtt.session_queue_length with drop-head.
    let _stalled = stalled_subscriber(addr, "stalled-1", false, "load/#", 1).await;
    let (_live, live_counts, _live_task) = live_subscriber(addr, "live-1", "load/#").await;

    let (publisher, pub_events) = AsyncClient::new(options("pub-1", addr), 64);
    let (pub_counts, _pub_task) = drive(pub_events);
    let body = vec![7u8; BODY];
    // The stalled session's queue, sampled while the publisher runs: never over its bound.
    let mut peak_ready = 0;
    let mut peak_ready_bytes = 0;
    let mut sample = |broker: &Broker| {
        if let Some(stats) = queue_stats(broker, "mqtt-session.stalled-1") {
            peak_ready = peak_ready.max(stats.ready);
            peak_ready_bytes = peak_ready_bytes.max(stats.ready_bytes);
        }
    };
    for index in 0..MESSAGES {
        publisher
            .publish("load/data", QoS::AtLeastOnce, false, body.clone())
            .await
            .unwrap();
        if index % 10 == 0 {
            sample(&broker);
        }
    }
    publisher
        .publish("load/data", QoS::AtLeastOnce, false, LAST.to_vec())
        .await
        .unwrap();
    eventually("every publish acknowledged", || {
        sample(&broker);
        read(&pub_counts.pubacks) == MESSAGES + 1
    })
    .await;
    // The reading subscriber's own queue is bounded too: in a burst it may lose old messages
    // (counted), but it keeps being served and gets the newest.
    eventually("the live subscriber received the last message", || {
        live_counts.got_last.load(Ordering::Relaxed)
    })
    .await;

    let stats = queue_stats(&broker, "mqtt-session.stalled-1").expect("the session queue");
    assert_eq!(stats.ready, QUEUE_BOUND, "{stats:?}");
    // What the stalled client has in flight: at most its window.
    assert!(stats.unacked <= 32, "{stats:?}");
    let dropped = Metrics::read(&broker.metrics().overflow_dropped);
    // Every message to the stalled session is queued, in flight, or dropped and counted (the
    // counter is the engine's, so it also holds what the live session dropped).
    assert!(
        dropped + u64::from(stats.ready) + u64::from(stats.unacked) > MESSAGES,
        "dropped {dropped}, {stats:?}"
    );
    // Memory: the stalled queue's bound and window, not the 12.5 MiB published.
    assert!(peak_ready <= QUEUE_BOUND, "{peak_ready} ready at most");
    assert!(peak_ready_bytes <= u64::from(QUEUE_BOUND) * BODY as u64);
    // Once the live subscriber has caught up, the engine holds the stalled session's share.
    let bound = (QUEUE_BOUND as usize + 32 + 8) * (BODY + 1024);
    eventually("engine memory back to the stalled session's share", || {
        broker.memory().used() <= bound
    })
    .await;
    assert_eq!(Metrics::read(&broker.metrics().flow_blocked), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_qos0_subscriber_gets_drops_counted_not_memory() {
    let (running, addr) = gateway(|settings| {
        settings.mqtt.session_queue_length = QUEUE_BOUND;
        // The drop-head bound; block-publisher would hold the publisher until the stalled
        // client is closed as a slow consumer.
        settings.mqtt.session_overflow = SessionOverflow::DropHead;
        settings.limits.max_message_size = 64 * 1024;
        settings.limits.outbound_buffer_bytes = 256 * 1024;
    })
    .await;
    let broker = Arc::clone(running.broker());
    // A clean session at QoS 0 that stops reading.
    let _stalled = stalled_subscriber(addr, "stalled-0", true, "fast/#", 0).await;
    let (_live, live_counts, _live_task) = live_subscriber(addr, "live-0", "fast/#").await;

    let (publisher, pub_events) = AsyncClient::new(options("pub-0", addr), 64);
    let (pub_counts, _pub_task) = drive(pub_events);
    let body = vec![9u8; BODY];
    let mut peak_memory = 0;
    for _ in 0..MESSAGES {
        publisher
            .publish("fast/data", QoS::AtLeastOnce, false, body.clone())
            .await
            .unwrap();
        peak_memory = peak_memory.max(broker.memory().used());
    }
    publisher
        .publish("fast/data", QoS::AtLeastOnce, false, LAST.to_vec())
        .await
        .unwrap();
    eventually("every publish acknowledged", || {
        peak_memory = peak_memory.max(broker.memory().used());
        read(&pub_counts.pubacks) == MESSAGES + 1
    })
    .await;
    // The reading subscriber's own queue is bounded too: in a burst it may lose old messages
    // (counted), but it keeps being served and gets the newest.
    eventually("the live subscriber received the last message", || {
        live_counts.got_last.load(Ordering::Relaxed)
    })
    .await;
    let metrics = broker.metrics();
    let dropped = Metrics::read(&metrics.overflow_dropped);
    assert!(
        dropped > 0,
        "QoS 0 messages to a stalled client are dropped and counted"
    );
    // Two bounded session queues (the stalled one and, in a burst, the live one) and their
    // in-flight windows: not the 12.5 MiB published.
    let bound = (2 * QUEUE_BOUND as usize + 64) * (BODY + 1024);
    assert!(
        peak_memory <= bound,
        "peak {peak_memory} bytes over {bound}"
    );
}

const WATERMARK: usize = 256 * 1024;
const SMALL_BODY: usize = 4 * 1024;
const FLOW_MESSAGES: u64 = 2000;

/// A gateway with a 256 KiB memory high watermark, an offline persistent session `drainer`
/// on `flow/#` whose queue holds what is published, and a publisher sending 2000 x 4 KiB at
/// QoS 1 from a task. Returns once the publisher is paused: the watermark blocked it and its
/// PUBACKs stopped; the number of PUBACKs it had then.
async fn paused_publisher() -> (
    RunningGateway,
    SocketAddr,
    Arc<Counts>,
    u64,
    tokio::task::JoinHandle<()>,
) {
    let (running, addr) = gateway(|settings| {
        settings.limits.memory_high_watermark = WATERMARK;
    })
    .await;
    let broker = Arc::clone(running.broker());
    let stalled = stalled_subscriber(addr, "drainer", false, "flow/#", 1).await;
    drop(stalled);
    eventually("the offline session's queue has no consumer", || {
        queue_stats(&broker, "mqtt-session.drainer").is_some_and(|stats| stats.consumers == 0)
    })
    .await;

    let mut pub_options = options("pub-flow", addr);
    pub_options.set_inflight(100);
    let (publisher, pub_events) = AsyncClient::new(pub_options, 16);
    let (pub_counts, _pub_task) = drive(pub_events);
    let sender = tokio::spawn(async move {
        let body = vec![1u8; SMALL_BODY];
        for _ in 0..FLOW_MESSAGES {
            if publisher
                .publish("flow/data", QoS::AtLeastOnce, false, body.clone())
                .await
                .is_err()
            {
                break;
            }
        }
        // Keeps the client (and its event loop's requests) alive until the test ends.
        std::future::pending::<()>().await;
    });

    eventually("the watermark blocks publishers", || {
        broker.memory().is_blocked()
    })
    .await;
    assert!(Metrics::read(&broker.metrics().flow_blocked) >= 1);
    // Paused: PUBACKs stop (after those already read and confirmed).
    let mut paused_at = read(&pub_counts.pubacks);
    let deadline = Instant::now() + WAIT;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = read(&pub_counts.pubacks);
        if now == paused_at {
            break;
        }
        paused_at = now;
        assert!(Instant::now() < deadline, "PUBACKs never stopped");
    }
    assert!(paused_at < FLOW_MESSAGES, "the publisher was not paused");
    // Memory overshoots the watermark by at most what was in flight.
    let used = broker.memory().used();
    assert!(
        used <= WATERMARK + 200 * (SMALL_BODY + 1024),
        "{used} bytes held"
    );
    (running, addr, pub_counts, paused_at, sender)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publisher_is_paused_at_the_memory_watermark_and_resumes_when_a_consumer_drains() {
    let (running, _addr, pub_counts, paused_at, sender) = paused_publisher().await;
    let broker = Arc::clone(running.broker());

    // A consumer on the engine (as an AMQP or STOMP client's would be) drains the queue with
    // automatic acknowledgement.
    let connection = broker.connect(&VhostName::default_vhost(), None).unwrap();
    let (mut session, mut events) = connection.open_session();
    session
        .consume(ConsumeRequest::auto(
            QueueName::new("mqtt-session.drainer").unwrap(),
        ))
        .unwrap();
    let drained = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&drained);
    let drain = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if matches!(event, mqgate_core::outbox::Event::Delivery(_)) {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    eventually("the publisher resumes", || {
        read(&pub_counts.pubacks) > paused_at
    })
    .await;
    eventually("every publish acknowledged", || {
        read(&pub_counts.pubacks) == FLOW_MESSAGES
    })
    .await;
    eventually("every message drained", || read(&drained) == FLOW_MESSAGES).await;
    assert!(!broker.memory().is_blocked());
    sender.abort();
    drain.abort();
    drop(session);
    drop(connection);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publisher_resumes_when_an_mqtt_subscriber_drains() {
    let (running, addr, pub_counts, paused_at, sender) = paused_publisher().await;
    let broker = Arc::clone(running.broker());
    // The persistent session's client comes back and drains its queue.
    let mut drainer_options = options("drainer", addr);
    drainer_options.set_clean_session(false);
    let (_drainer, drainer_events) = AsyncClient::new(drainer_options, 64);
    let (drained, _drainer_task) = drive(drainer_events);
    eventually("the publisher resumes", || {
        read(&pub_counts.pubacks) > paused_at
    })
    .await;
    eventually("every publish acknowledged", || {
        read(&pub_counts.pubacks) == FLOW_MESSAGES
    })
    .await;
    assert!(read(&drained.publishes) > 0);
    assert!(!broker.memory().is_blocked());
    sender.abort();
}

/// Unthrottled QoS 1 fan-in into one subscriber whose session queue is far too small: under the
/// default `block-publisher` policy every PUBACKed message is delivered exactly once, because a
/// full queue holds the PUBACKs (and so the publishers) instead of dropping what it acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unthrottled_qos1_fan_in_loses_nothing_under_block_publisher() {
    const PUBLISHERS: u64 = 4;
    const EACH: u64 = 1500;
    let (running, addr) = gateway(|settings| {
        settings.mqtt.session_queue_length = 20;
    })
    .await;
    assert_eq!(
        running_default_overflow(),
        SessionOverflow::BlockPublisher,
        "the default policy is the one under test"
    );
    let broker = Arc::clone(running.broker());

    let (subscriber, mut sub_events) = AsyncClient::new(options("fan-in-sub", addr), 64);
    subscriber
        .subscribe("fanin/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let received = Arc::new(std::sync::Mutex::new(Vec::<(u64, u64)>::new()));
    let subscribed = Arc::new(AtomicU64::new(0));
    let (sink, acked) = (Arc::clone(&received), Arc::clone(&subscribed));
    let _sub_task = tokio::spawn(async move {
        while let Ok(event) = sub_events.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                Event::Incoming(Packet::Publish(publish)) => {
                    let text = String::from_utf8_lossy(&publish.payload).into_owned();
                    if let Some((from, seq)) = text.split_once(':') {
                        if let (Ok(from), Ok(seq)) = (from.parse(), seq.parse()) {
                            if let Ok(mut got) = sink.lock() {
                                got.push((from, seq));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    });
    eventually("subscribed", || read(&subscribed) == 1).await;

    let mut publishers = Vec::new();
    for from in 0..PUBLISHERS {
        let (client, events) = AsyncClient::new(options(&format!("fan-in-pub-{from}"), addr), 64);
        let (counts, task) = drive(events);
        for seq in 0..EACH {
            client
                .publish(
                    format!("fanin/{from}"),
                    QoS::AtLeastOnce,
                    false,
                    format!("{from}:{seq}"),
                )
                .await
                .unwrap();
        }
        publishers.push((client, counts, task));
    }
    eventually("every publish acknowledged", || {
        publishers
            .iter()
            .all(|(_, counts, _)| read(&counts.pubacks) == EACH)
    })
    .await;
    eventually("every message delivered", || {
        received.lock().map_or(0, |got| got.len()) as u64 >= PUBLISHERS * EACH
    })
    .await;

    let mut got = received.lock().map(|got| got.clone()).unwrap_or_default();
    assert_eq!(got.len() as u64, PUBLISHERS * EACH, "no duplicates");
    // Each publisher's messages arrive in its order.
    for from in 0..PUBLISHERS {
        let seqs: Vec<u64> = got.iter().filter(|m| m.0 == from).map(|m| m.1).collect();
        assert_eq!(seqs, (0..EACH).collect::<Vec<_>>(), "publisher {from}");
    }
    got.sort_unstable();
    got.dedup();
    assert_eq!(got.len() as u64, PUBLISHERS * EACH);
    let metrics = broker.metrics();
    assert!(
        Metrics::read(&metrics.confirms_held) > 0,
        "the queue overflowed, so the test exercised the hold"
    );
    assert_eq!(Metrics::read(&metrics.overflow_dropped), 0);
    assert_eq!(Metrics::read(&metrics.overflow_rejected), 0);
}

fn running_default_overflow() -> SessionOverflow {
    mqgate_mqtt::settings::MqttSettings::default().session_overflow
}
