//! An in-process gateway: pre-declared definitions, the connection limit, the drain at
//! shutdown, the registered adapters, and start errors.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{closed_by_peer, echo_round_trip, within, EchoHandler, StubbornHandler, TempDir};
use mqgate::listener::GatewayMetrics;
use mqgate::protocols::Protocol;
use mqgate::{Gateway, ListenerSpec, Settings, StartError, Transport};
use mqgate_core::message::Message;
use mqgate_core::names::{ExchangeName, QueueName, VhostName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn plain_listener(protocol: Protocol) -> ListenerSpec {
    ListenerSpec {
        protocol,
        transport: Transport::Plain,
        addr: "127.0.0.1:0".parse().unwrap(),
    }
}

const DEFINITIONS: &str = r##"
vhosts:
  - name: /
  - name: staging
exchanges:
  - {name: orders, type: topic}
  - {name: audit, type: fanout, internal: true}
  - {vhost: staging, name: orders, type: direct, durable: false}
queues:
  - name: orders.eu
    arguments:
      x-max-length: 1000
      x-overflow: reject-publish
  - {name: audit.log}
  - {vhost: staging, name: orders.test, auto_delete: true}
bindings:
  - {source: orders, destination: orders.eu, routing_key: "eu.#"}
  - {source: orders, destination: audit, destination_type: exchange, routing_key: "#"}
  - {source: audit, destination: audit.log}
  - {vhost: staging, source: orders, destination: orders.test, routing_key: test}
"##;

fn routed(vhost: &mqgate_core::vhost::Vhost, exchange: &str, key: &str) -> Vec<String> {
    let message = Message::new(ExchangeName::new(exchange).unwrap(), key, "body");
    let mut names: Vec<String> = vhost
        .route(&message)
        .unwrap()
        .iter()
        .map(|queue| queue.name().as_str().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_declared_definitions_exist_after_start() {
    let dir = TempDir::new("definitions");
    let path = dir.write("mqgate.yaml", DEFINITIONS);
    let settings = mqgate::config::load_with_env(&path, HashMap::new()).unwrap();
    let running = Gateway::start(settings).await.unwrap();
    let broker = running.broker();

    let root = broker.vhost(&VhostName::default_vhost()).unwrap();
    for exchange in ["orders", "audit", "amq.topic", "amq.direct"] {
        assert!(
            root.exchange(&ExchangeName::new(exchange).unwrap())
                .is_some(),
            "exchange '{exchange}'"
        );
    }
    for queue in ["orders.eu", "audit.log"] {
        assert!(
            root.queue(&QueueName::new(queue).unwrap()).is_some(),
            "queue '{queue}'"
        );
    }
    // Bindings: topic to queue, and exchange to exchange to queue.
    assert_eq!(routed(&root, "orders", "eu.de"), ["audit.log", "orders.eu"]);
    assert_eq!(routed(&root, "orders", "us.ny"), ["audit.log"]);

    let staging = broker.vhost(&VhostName::new("staging").unwrap()).unwrap();
    assert!(staging
        .queue(&QueueName::new("orders.eu").unwrap())
        .is_none());
    assert_eq!(routed(&staging, "orders", "test"), ["orders.test"]);

    running.shutdown();
    within("shutdown", running.wait()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_is_enforced() {
    let (echo, _metas) = EchoHandler::new();
    let mut settings = Settings {
        listeners: vec![plain_listener(Protocol::Amqp)],
        ..Settings::default()
    };
    settings.limits.max_connections = 2;
    let running = Gateway::builder(settings)
        .handler(Protocol::Amqp, echo)
        .start()
        .await
        .unwrap();
    let addr = running
        .local_addr(Protocol::Amqp, Transport::Plain)
        .unwrap();

    let mut first = within("connect", TcpStream::connect(addr)).await.unwrap();
    assert_eq!(
        within("echo", echo_round_trip(&mut first, b"1"))
            .await
            .unwrap(),
        b"1"
    );
    let mut second = within("connect", TcpStream::connect(addr)).await.unwrap();
    assert_eq!(
        within("echo", echo_round_trip(&mut second, b"2"))
            .await
            .unwrap(),
        b"2"
    );
    assert_eq!(running.open_connections(), 2);

    // The third is accepted and closed at once.
    let mut third = within("connect", TcpStream::connect(addr)).await.unwrap();
    assert!(within("third closed", closed_by_peer(&mut third)).await);
    assert_eq!(
        GatewayMetrics::read(&running.metrics().refused_over_limit),
        1
    );
    // The first two are still served.
    assert_eq!(
        within("echo", echo_round_trip(&mut second, b"3"))
            .await
            .unwrap(),
        b"3"
    );

    // Once one closes, its slot serves a new connection. The slot frees just after the
    // handler ends, so a client racing it may be refused: retry, bounded.
    drop(first);
    let served = within("a slot frees", async {
        loop {
            let mut next = TcpStream::connect(addr).await.unwrap();
            if let Ok(back) = echo_round_trip(&mut next, b"4").await {
                break back;
            }
        }
    })
    .await;
    assert_eq!(served, b"4");
    assert_eq!(GatewayMetrics::read(&running.metrics().accepted), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_cooperative_handlers_and_closes_listeners() {
    let (echo, mut metas) = EchoHandler::new();
    let settings = Settings {
        listeners: vec![plain_listener(Protocol::Stomp)],
        ..Settings::default()
    };
    let running = Gateway::builder(settings)
        .handler(Protocol::Stomp, echo)
        .start()
        .await
        .unwrap();
    let addr = running
        .local_addr(Protocol::Stomp, Transport::Plain)
        .unwrap();
    let mut client = within("connect", TcpStream::connect(addr)).await.unwrap();
    assert_eq!(
        within("echo", echo_round_trip(&mut client, b"x"))
            .await
            .unwrap(),
        b"x"
    );
    within("meta", metas.recv()).await.unwrap();

    running.shutdown();
    let report = within("drain", running.wait()).await;
    // The handler may have finished before the drain counted it.
    assert!(report.open_at_shutdown <= 1, "{report:?}");
    assert!(report.cut_off.is_empty(), "{report:?}");
    // The handler said goodbye (closed), and the port is closed.
    assert!(within("client closed", closed_by_peer(&mut client)).await);
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cuts_off_handlers_at_the_drain_deadline() {
    let (started, mut metas) = tokio::sync::mpsc::unbounded_channel();
    let mut settings = Settings {
        listeners: vec![plain_listener(Protocol::Mqtt)],
        ..Settings::default()
    };
    settings.drain_timeout = Duration::from_millis(200);
    let running = Gateway::builder(settings)
        .handler(Protocol::Mqtt, Arc::new(StubbornHandler { started }))
        .start()
        .await
        .unwrap();
    let addr = running
        .local_addr(Protocol::Mqtt, Transport::Plain)
        .unwrap();
    let mut client = within("connect", TcpStream::connect(addr)).await.unwrap();
    let meta = within("meta", metas.recv()).await.unwrap();
    let metrics = Arc::clone(running.metrics());

    running.shutdown();
    let report = within("drain", running.wait()).await;
    assert_eq!(report.open_at_shutdown, 1);
    assert_eq!(report.cut_off.len(), 1, "{report:?}");
    assert_eq!(report.cut_off[0].id, meta.id);
    assert_eq!(report.cut_off[0].peer, meta.peer);
    assert_eq!(GatewayMetrics::read(&metrics.cut_off_at_shutdown), 1);
    assert!(within("client closed", closed_by_peer(&mut client)).await);
}

/// The AMQP 0-9-1 protocol header a client opens with.
const AMQP_PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// Every protocol is served by its registered adapter (no handler supplied): AMQP answers the
/// protocol header with `connection.start`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_listener_is_served_by_the_registered_adapter() {
    let settings = Settings {
        listeners: vec![plain_listener(Protocol::Amqp)],
        ..Settings::default()
    };
    let running = Gateway::start(settings).await.unwrap();
    let addr = running
        .local_addr(Protocol::Amqp, Transport::Plain)
        .unwrap();
    let mut stream = within("connect", TcpStream::connect(addr)).await.unwrap();
    stream.write_all(AMQP_PROTOCOL_HEADER).await.unwrap();
    // A method frame on channel 0: type, channel, payload size, payload, frame-end.
    let mut header = [0u8; 7];
    within("connection.start", stream.read_exact(&mut header))
        .await
        .unwrap();
    assert_eq!(header[0], 1, "a method frame: {header:?}");
    assert_eq!(header[1..3], [0, 0], "on channel 0: {header:?}");
    let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]) as usize;
    assert!((6..8192).contains(&size), "payload of {size} bytes");
    let mut rest = vec![0u8; size + 1];
    within("connection.start", stream.read_exact(&mut rest))
        .await
        .unwrap();
    // Class 10 (connection), method 10 (start), version 0-9.
    assert_eq!(rest[..6], [0, 10, 0, 10, 0, 9], "connection.start 0-9");
    assert_eq!(rest[size], 0xCE, "the frame-end octet");
    drop(stream);
    running.shutdown();
    within("shutdown", running.wait()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_in_use_stops_the_start_and_releases_other_ports() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    let (echo, _metas) = EchoHandler::new();
    let settings = Settings {
        listeners: vec![
            plain_listener(Protocol::Stomp),
            ListenerSpec {
                addr: taken_addr,
                ..plain_listener(Protocol::Stomp)
            },
        ],
        ..Settings::default()
    };
    let error = match Gateway::builder(settings)
        .handler(Protocol::Stomp, echo)
        .start()
        .await
    {
        Ok(_) => panic!("the port is taken"),
        Err(error) => error,
    };
    assert!(matches!(error, StartError::Bind { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&taken_addr.to_string()),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_ids_come_from_the_engine() {
    let (echo, mut metas) = EchoHandler::new();
    let settings = Settings {
        listeners: vec![plain_listener(Protocol::Stomp)],
        ..Settings::default()
    };
    let running = Gateway::builder(settings)
        .handler(Protocol::Stomp, echo)
        .start()
        .await
        .unwrap();
    let addr = running
        .local_addr(Protocol::Stomp, Transport::Plain)
        .unwrap();
    // An id the engine hands out directly, before any socket...
    let engine_side = running
        .broker()
        .connect(&VhostName::default_vhost(), None)
        .unwrap();
    // ...must never be given to a socket too: one allocator, so exclusive-queue ownership and
    // logs agree on who is who.
    let mut stream = within("connect", TcpStream::connect(addr)).await.unwrap();
    within("echo", echo_round_trip(&mut stream, b"x"))
        .await
        .unwrap();
    let meta = within("meta", metas.recv()).await.unwrap();
    assert_ne!(meta.id, engine_side.id());
    assert!(
        meta.id > engine_side.id(),
        "allocated after it, from the same counter"
    );
}
