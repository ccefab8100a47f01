//! AMQP 0-9-1 over TLS (5671 in production; port 0 here): certificates generated with rcgen
//! (support/pki.rs), a tokio-rustls client trusting the test CA, raw frames (support/amqp.rs).
//! The handshake, a publish and a delivery with a binary body spanning several frames, an ack
//! and a polite close over TLS; a client not trusting the server fails at the TLS handshake
//! while the plain listener keeps serving.
//!
//! mqgate only: with `AMQP_REFERENCE_PORT` set (the reference broker has no TLS listener of
//! ours) each test says so and returns.

#[allow(dead_code)]
#[path = "support/amqp.rs"]
mod amqp;
#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway;
#[allow(dead_code)]
#[path = "support/pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::sync::Arc;

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{basic, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable};
use amqp::{reference_port, unique, Client};
use gateway::{within, STEP};
use mqgate::protocols::Protocol;
use mqgate::{ListenerSpec, RunningGateway, Transport};
use pki::Pki;
use rumqttc::tokio_rustls::client::TlsStream;
use rumqttc::tokio_rustls::rustls::pki_types::ServerName;
use rumqttc::tokio_rustls::{rustls, TlsConnector};
use rumqttc::TlsConfiguration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// True (after saying so) when the tests run against the reference broker.
fn skipped() -> bool {
    let skip = reference_port().is_some();
    if skip {
        eprintln!("skipped against the reference broker: the TLS listener is mqgate's");
    }
    skip
}

/// A gateway with a TLS and a plain AMQP listener (and the support module's MQTT one);
/// returns it and the TLS and plain AMQP addresses.
async fn start(pki: &Pki) -> (RunningGateway, SocketAddr, SocketAddr) {
    let tls = pki.server_config(false);
    let (running, _mqtt) = gateway::start(|settings| {
        settings.tls = Some(tls);
        for transport in [Transport::Tls, Transport::Plain] {
            settings.listeners.push(ListenerSpec {
                protocol: Protocol::Amqp,
                transport,
                addr: "127.0.0.1:0".parse().unwrap(),
            });
        }
    })
    .await;
    let tls = running.local_addr(Protocol::Amqp, Transport::Tls).unwrap();
    let plain = running
        .local_addr(Protocol::Amqp, Transport::Plain)
        .unwrap();
    (running, tls, plain)
}

/// The rustls client configuration of support/pki.rs: trusts the test CA.
fn client_config(pki: &Pki) -> Arc<rustls::ClientConfig> {
    match pki.transport(None) {
        rumqttc::Transport::Tls(TlsConfiguration::Rustls(config)) => config,
        _ => panic!("support/pki.rs builds a rustls transport"),
    }
}

/// A TLS connection to `addr` as `localhost` (the server certificate's name).
async fn tls_connect(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    within(
        STEP,
        "the TLS handshake",
        TlsConnector::from(config).connect(name, tcp),
    )
    .await
}

/// A raw AMQP client over TLS past the handshake as guest, channel 1 open.
async fn guest_over_tls(pki: &Pki, addr: SocketAddr) -> Client<TlsStream<TcpStream>> {
    let stream = tls_connect(client_config(pki), addr)
        .await
        .expect("the TLS handshake");
    let mut client = Client::over(stream);
    let handshake = client.handshake("guest", "guest", "/").await;
    assert_eq!(handshake.tune.frame_max, 131_072);
    client.open_channel(1).await;
    client
}

#[tokio::test]
async fn a_publish_and_a_delivery_round_trip_over_tls() {
    if skipped() {
        return;
    }
    let pki = Pki::generate("amqp-roundtrip");
    let (_gateway, tls, _plain) = start(&pki).await;
    let queue = unique("tls");

    let mut consumer = guest_over_tls(&pki, tls).await;
    consumer
        .declare_queue(1, &queue, FieldTable::default())
        .await;
    consumer.consume(1, &queue, "tls-consumer", false).await;

    // Every byte value and NULs, over three body frames.
    let body: Vec<u8> = (0..2 * 131_072 + 99).map(|i| (i % 256) as u8).collect();
    let mut headers = FieldTable::default();
    headers.insert("x-over".into(), AMQPValue::LongString("tls".into()));
    let properties = AMQPProperties::default()
        .with_content_type("application/octet-stream".into())
        .with_headers(headers);
    let mut producer = guest_over_tls(&pki, tls).await;
    producer
        .publish(1, "", &queue, properties.clone(), &body)
        .await;

    let delivery = consumer.recv_content(1).await;
    match &delivery.method {
        AMQPClass::Basic(basic::AMQPMethod::Deliver(deliver)) => {
            assert_eq!(deliver.consumer_tag.as_str(), "tls-consumer");
            assert_eq!(deliver.routing_key.as_str(), queue);
            assert!(!deliver.redelivered);
        }
        other => panic!("expected basic.deliver, got {other:?}"),
    }
    assert_eq!(delivery.properties, properties);
    assert!(delivery.body == body, "byte-exact over TLS");
    consumer.ack(1, delivery.delivery_tag()).await;
    consumer.sync(1).await;
    producer.close().await;
    consumer.close().await;
}

#[tokio::test]
async fn a_client_not_trusting_the_server_fails_the_handshake_and_plain_still_works() {
    if skipped() {
        return;
    }
    let pki = Pki::generate("amqp-untrusted");
    let (_gateway, tls, plain) = start(&pki).await;
    let other = Pki::generate("amqp-other-ca");
    // Trusts another CA: the server's certificate does not verify.
    assert!(tls_connect(client_config(&other), tls).await.is_err());
    // Plain TCP to the TLS port: the AMQP protocol header is not a ClientHello.
    let mut raw = TcpStream::connect(tls).await.unwrap();
    raw.write_all(amqp::PROTOCOL_HEADER).await.unwrap();
    let mut reply = Vec::new();
    let read = within(STEP, "the close", raw.read_to_end(&mut reply)).await;
    assert!(!reply.starts_with(b"\x01\x00\x00"), "{read:?} {reply:?}");
    // The plain listener serves as before.
    let mut client = Client::tcp(plain).await;
    client.handshake("guest", "guest", "/").await;
    client.close().await;
}
