//! TLS listeners with certificates generated at test time: handshake and echo, client
//! certificate verification and its common name, and the handshake timeout.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{echo_round_trip, tls_connect, within, EchoHandler, Pki, CLIENT_CN};
use mqgate::listener::GatewayMetrics;
use mqgate::protocols::Protocol;
use mqgate::{Gateway, ListenerSpec, RunningGateway, Settings, Transport};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

async fn start_tls(
    server_config: Arc<rustls::ServerConfig>,
    handshake_timeout: Duration,
) -> (
    RunningGateway,
    tokio::sync::mpsc::UnboundedReceiver<mqgate::ConnectionMeta>,
) {
    let (echo, metas) = EchoHandler::new();
    let mut settings = Settings {
        tls: Some(server_config),
        listeners: vec![ListenerSpec {
            protocol: Protocol::Mqtt,
            transport: Transport::Tls,
            addr: "127.0.0.1:0".parse().unwrap(),
        }],
        ..Settings::default()
    };
    settings.limits.handshake_timeout = handshake_timeout;
    let running = Gateway::builder(settings)
        .handler(Protocol::Mqtt, echo)
        .start()
        .await
        .unwrap();
    (running, metas)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshake_and_echo() {
    let pki = Pki::generate();
    let (running, mut metas) =
        start_tls(pki.server_config(false, false), Duration::from_secs(10)).await;
    let addr = running.local_addr(Protocol::Mqtt, Transport::Tls).unwrap();
    let mut client = within("TLS connect", tls_connect(&pki.connector(false), addr))
        .await
        .unwrap();
    let back = within("echo", echo_round_trip(&mut client, b"hello over tls"))
        .await
        .unwrap();
    assert_eq!(back, b"hello over tls");
    let meta = within("meta", metas.recv()).await.unwrap();
    assert_eq!(meta.protocol, Protocol::Mqtt);
    assert_eq!(meta.local, addr);
    assert_eq!(meta.peer, client.get_ref().0.local_addr().unwrap());
    let tls = meta.tls.expect("a TLS connection has TLS info");
    assert_eq!(tls.client_common_name, None);
    running.shutdown();
    let report = within("shutdown", running.wait()).await;
    assert!(report.cut_off.is_empty(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_client_certificate_refuses_clients_without_one_and_exposes_the_cn() {
    let pki = Pki::generate();
    let (running, mut metas) =
        start_tls(pki.server_config(true, true), Duration::from_secs(10)).await;
    let addr = running.local_addr(Protocol::Mqtt, Transport::Tls).unwrap();

    // Without a certificate: under TLS 1.3 the client's handshake may complete before the
    // server's verdict, which then arrives as an alert on the first read.
    let refused = within("connect without certificate", async {
        match tls_connect(&pki.connector(false), addr).await {
            Err(_) => true,
            Ok(mut stream) => echo_round_trip(&mut stream, b"let me in").await.is_err(),
        }
    })
    .await;
    assert!(refused, "a client without a certificate must be refused");

    // With one: accepted, and the handler sees its common name.
    let mut client = within(
        "connect with certificate",
        tls_connect(&pki.connector(true), addr),
    )
    .await
    .unwrap();
    let back = within("echo", echo_round_trip(&mut client, b"ping"))
        .await
        .unwrap();
    assert_eq!(back, b"ping");
    // The refused client never reached the handler: the first connection it sees is this one.
    let meta = within("meta", metas.recv()).await.unwrap();
    let tls = meta.tls.unwrap();
    assert_eq!(tls.client_common_name.as_deref(), Some(CLIENT_CN));
    assert!(tls.client_certificate.is_some());
    assert!(GatewayMetrics::read(&running.metrics().tls_handshake_failed) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_client_certificate_accepts_clients_without_one() {
    let pki = Pki::generate();
    let (running, mut metas) =
        start_tls(pki.server_config(true, false), Duration::from_secs(10)).await;
    let addr = running.local_addr(Protocol::Mqtt, Transport::Tls).unwrap();
    let mut anonymous = within("connect", tls_connect(&pki.connector(false), addr))
        .await
        .unwrap();
    assert_eq!(
        within("echo", echo_round_trip(&mut anonymous, b"a"))
            .await
            .unwrap(),
        b"a"
    );
    let meta = within("meta", metas.recv()).await.unwrap();
    assert_eq!(meta.tls.unwrap().client_common_name, None);
    let mut known = within("connect", tls_connect(&pki.connector(true), addr))
        .await
        .unwrap();
    assert_eq!(
        within("echo", echo_round_trip(&mut known, b"b"))
            .await
            .unwrap(),
        b"b"
    );
    let meta = within("meta", metas.recv()).await.unwrap();
    assert_eq!(
        meta.tls.unwrap().client_common_name.as_deref(),
        Some(CLIENT_CN)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_does_not_block_others_and_times_out() {
    let pki = Pki::generate();
    let (running, _metas) =
        start_tls(pki.server_config(false, false), Duration::from_secs(3)).await;
    let addr = running.local_addr(Protocol::Mqtt, Transport::Tls).unwrap();

    // Connects and never sends a ClientHello.
    let mut silent = within("silent connect", TcpStream::connect(addr))
        .await
        .unwrap();

    // Another client is served meanwhile.
    let mut client = within("TLS connect", tls_connect(&pki.connector(false), addr))
        .await
        .unwrap();
    assert_eq!(
        within("echo", echo_round_trip(&mut client, b"x"))
            .await
            .unwrap(),
        b"x"
    );

    // The silent one is still waiting (its timeout has not passed) ...
    let mut probe = [0u8; 1];
    assert_eq!(
        silent.try_read(&mut probe).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "the silent client was served or closed before the good client"
    );
    // ... and is closed once the handshake timeout passes.
    let mut buffer = Vec::new();
    // EOF or a reset: either way closed, and nothing was sent.
    let _ = within("silent client closed", silent.read_to_end(&mut buffer)).await;
    assert!(buffer.is_empty());
    assert_eq!(
        GatewayMetrics::read(&running.metrics().tls_handshake_timed_out),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_without_tls_settings_does_not_start() {
    let (echo, _metas) = EchoHandler::new();
    let settings = Settings {
        listeners: vec![ListenerSpec {
            protocol: Protocol::Stomp,
            transport: Transport::Tls,
            addr: "127.0.0.1:0".parse().unwrap(),
        }],
        ..Settings::default()
    };
    let error = match Gateway::builder(settings)
        .handler(Protocol::Stomp, echo)
        .start()
        .await
    {
        Ok(_) => panic!("must not start"),
        Err(error) => error,
    };
    assert!(
        error.to_string().contains("no TLS configuration"),
        "{error}"
    );
}
