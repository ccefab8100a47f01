//! STOMP over TLS (61614 in production; port 0 here): certificates generated with rcgen
//! (support/pki.rs), a tokio-rustls client trusting the test CA, raw STOMP 1.2 frames.
//! CONNECT/CONNECTED with a login, SEND/MESSAGE round trip with a binary body, login by client
//! certificate common name (`stomp.certificate_login`), and a client that does not trust the
//! server refused at the handshake while the plain listener keeps working.

#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway;
#[allow(dead_code)]
#[path = "support/pki.rs"]
mod pki;
#[allow(dead_code)]
#[path = "support/stomp.rs"]
mod stomp;

use std::net::SocketAddr;
use std::sync::Arc;

use gateway::{within, STEP};
use mqgate::protocols::Protocol;
use mqgate::{ListenerSpec, RunningGateway, Transport};
use pki::{ClientIdentity, Pki};
use rumqttc::tokio_rustls::rustls::pki_types::ServerName;
use rumqttc::tokio_rustls::{client::TlsStream, rustls, TlsConnector};
use rumqttc::TlsConfiguration;
use stomp::{Client, Style};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A gateway with a plain and a TLS STOMP listener (and the support module's MQTT one);
/// `client_certificates`: the TLS listener verifies and requires them. Returns the TLS and plain
/// STOMP addresses.
async fn start(pki: &Pki, client_certificates: bool) -> (RunningGateway, SocketAddr, SocketAddr) {
    let tls = pki.server_config(client_certificates);
    let (running, _mqtt) = gateway::start(|settings| {
        settings.tls = Some(tls);
        for transport in [Transport::Tls, Transport::Plain] {
            settings.listeners.push(ListenerSpec {
                protocol: Protocol::Stomp,
                transport,
                addr: "127.0.0.1:0".parse().unwrap(),
            });
        }
    })
    .await;
    let tls = running.local_addr(Protocol::Stomp, Transport::Tls).unwrap();
    let plain = running
        .local_addr(Protocol::Stomp, Transport::Plain)
        .unwrap();
    (running, tls, plain)
}

/// The rustls client configuration of support/pki.rs: trusts the test CA, presents `identity`.
fn client_config(pki: &Pki, identity: Option<&ClientIdentity>) -> Arc<rustls::ClientConfig> {
    match pki.transport(identity) {
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

/// Header values as given and as sent (these tests use none that escape), `content-length`
/// for a non-empty body.
const STYLE: Style = Style::SIZED;

/// NUL bytes and every byte value: only a content-length read gets it right.
fn binary_body() -> Vec<u8> {
    let mut body = vec![0u8, 0, b'x'];
    body.extend(0..=255u8);
    body.push(0);
    body
}

#[tokio::test]
async fn connect_and_a_send_message_round_trip_over_tls() {
    let pki = Pki::generate("stomp-roundtrip");
    let (_gateway, tls, _plain) = start(&pki, false).await;
    let config = client_config(&pki, None);

    let mut consumer = Client::over(tls_connect(Arc::clone(&config), tls).await.unwrap(), STYLE);
    let connected = consumer.hello(&[]).await;
    assert_eq!(connected.command, "CONNECTED", "{connected:?}");
    assert_eq!(connected.header("version"), Some("1.2"));
    assert!(connected.header("session").is_some());
    assert!(connected
        .header("server")
        .is_some_and(|server| server.starts_with("mqgate/")));
    consumer
        .receipted(
            "SUBSCRIBE",
            &[
                ("id", "s"),
                ("destination", "/queue/tls-q"),
                ("ack", "client-individual"),
            ],
            b"",
            "sub",
        )
        .await;

    let mut producer = Client::over(tls_connect(config, tls).await.unwrap(), STYLE);
    assert_eq!(producer.hello(&[]).await.command, "CONNECTED");
    let body = binary_body();
    producer
        .receipted(
            "SEND",
            &[
                ("destination", "/queue/tls-q"),
                ("content-type", "application/octet-stream"),
                ("x-over", "tls"),
            ],
            &body,
            "sent",
        )
        .await;

    let message = consumer.recv().await;
    assert_eq!(message.command, "MESSAGE", "{message:?}");
    assert_eq!(message.header("destination"), Some("/queue/tls-q"));
    assert_eq!(message.header("subscription"), Some("s"));
    assert_eq!(
        message.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(message.header("x-over"), Some("tls"));
    let length = body.len().to_string();
    assert_eq!(message.header("content-length"), Some(length.as_str()));
    assert_eq!(message.body, body, "byte-exact over TLS");
    let ack = message.header("ack").unwrap().to_owned();
    consumer
        .receipted("ACK", &[("id", &ack)], b"", "acked")
        .await;
    consumer.receipted("DISCONNECT", &[], b"", "bye").await;
}

#[tokio::test]
async fn a_verified_client_certificate_logs_in_as_its_common_name() {
    let pki = Pki::generate("stomp-cert");
    let (_gateway, tls, _plain) = start(&pki, true).await;
    // No login header: the certificate's CN `guest` is the user (stomp.certificate_login).
    let identity = pki.client("guest");
    let config = client_config(&pki, Some(&identity));
    let mut client = Client::over(tls_connect(config, tls).await.unwrap(), STYLE);
    client
        .send("CONNECT", &[("accept-version", "1.2"), ("host", "/")], b"")
        .await;
    let connected = client.recv().await;
    assert_eq!(connected.command, "CONNECTED", "{connected:?}");
    client
        .receipted("SEND", &[("destination", "/topic/cert.login")], b"hi", "r")
        .await;
}

#[tokio::test]
async fn a_client_not_trusting_the_server_fails_the_handshake_and_plain_still_works() {
    let pki = Pki::generate("stomp-untrusted");
    let (_gateway, tls, plain) = start(&pki, false).await;
    let other = Pki::generate("stomp-other-ca");
    // Trusts another CA: the server's certificate does not verify.
    assert!(tls_connect(client_config(&other, None), tls).await.is_err());
    // Plain TCP to the TLS port: the STOMP CONNECT is not a ClientHello; no CONNECTED.
    let mut raw = TcpStream::connect(tls).await.unwrap();
    raw.write_all(b"CONNECT\naccept-version:1.2\n\n\0")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let read = within(STEP, "the close", raw.read_to_end(&mut reply)).await;
    assert!(
        !String::from_utf8_lossy(&reply).contains("CONNECTED"),
        "{read:?} {reply:?}"
    );
    // The plain listener serves as before.
    let mut client = Client::open(plain, STYLE).await;
    assert_eq!(client.hello(&[]).await.command, "CONNECTED");
}
