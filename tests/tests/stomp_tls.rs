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

use std::net::SocketAddr;
use std::sync::Arc;

use gateway::{within, STEP};
use mqgate::protocols::Protocol;
use mqgate::{ListenerSpec, RunningGateway, Transport};
use pki::{ClientIdentity, Pki};
use rumqttc::tokio_rustls::rustls::pki_types::ServerName;
use rumqttc::tokio_rustls::{client::TlsStream, rustls, TlsConnector};
use rumqttc::TlsConfiguration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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

/// A frame as read from the wire (header values as sent: these tests use none that escape).
#[derive(Debug)]
struct Frame {
    command: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Frame {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A raw STOMP client over any stream.
struct Stomp<S> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stomp<S> {
    fn new(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes a frame; `content-length` set for a non-empty body.
    async fn send(&mut self, command: &str, headers: &[(&str, &str)], body: &[u8]) {
        let mut bytes = format!("{command}\n").into_bytes();
        for (name, value) in headers {
            bytes.extend_from_slice(format!("{name}:{value}\n").as_bytes());
        }
        if !body.is_empty() {
            bytes.extend_from_slice(format!("content-length:{}\n", body.len()).as_bytes());
        }
        bytes.push(b'\n');
        bytes.extend_from_slice(body);
        bytes.push(0);
        self.stream.write_all(&bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// CONNECT (STOMP 1.2) with `login` credentials if given; the reply.
    async fn connect(&mut self, login: Option<(&str, &str)>) -> Frame {
        let mut headers = vec![("accept-version", "1.2"), ("host", "/")];
        if let Some((user, passcode)) = login {
            headers.extend([("login", user), ("passcode", passcode)]);
        }
        self.send("CONNECT", &headers, b"").await;
        self.recv().await
    }

    /// The next frame (heart-beats skipped), within [`STEP`].
    async fn recv(&mut self) -> Frame {
        within(STEP, "a STOMP frame", async {
            loop {
                let skip = self
                    .buf
                    .iter()
                    .take_while(|&&b| b == b'\n' || b == b'\r')
                    .count();
                self.buf.drain(..skip);
                if let Some(frame) = self.parse() {
                    return frame;
                }
                let mut chunk = [0u8; 8192];
                let n = self.stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "connection closed; buffered {:?}", self.buf);
                self.buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
    }

    fn parse(&mut self) -> Option<Frame> {
        let mut lines = Vec::new();
        let mut at = 0;
        let body_start = loop {
            let end = at + self.buf[at..].iter().position(|&b| b == b'\n')?;
            let line = self.buf[at..end]
                .strip_suffix(b"\r")
                .unwrap_or(&self.buf[at..end]);
            if line.is_empty() {
                break end + 1;
            }
            lines.push(String::from_utf8(line.to_vec()).unwrap());
            at = end + 1;
        };
        let command = lines.first()?.clone();
        let headers: Vec<(String, String)> = lines[1..]
            .iter()
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse::<usize>().unwrap());
        let body_end = match length {
            Some(length) => body_start + length,
            None => body_start + self.buf[body_start..].iter().position(|&b| b == 0)?,
        };
        if self.buf.len() <= body_end {
            return None;
        }
        assert_eq!(self.buf[body_end], 0, "the frame ends with NUL");
        let body = self.buf[body_start..body_end].to_vec();
        self.buf.drain(..=body_end);
        Some(Frame {
            command,
            headers,
            body,
        })
    }

    /// Sends a frame with a receipt and waits for it.
    async fn with_receipt(
        &mut self,
        command: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        receipt: &str,
    ) {
        let mut all = headers.to_vec();
        all.push(("receipt", receipt));
        self.send(command, &all, body).await;
        let frame = self.recv().await;
        assert_eq!(frame.command, "RECEIPT", "{frame:?}");
        assert_eq!(frame.header("receipt-id"), Some(receipt));
    }
}

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

    let mut consumer = Stomp::new(tls_connect(Arc::clone(&config), tls).await.unwrap());
    let connected = consumer.connect(Some(("guest", "guest"))).await;
    assert_eq!(connected.command, "CONNECTED", "{connected:?}");
    assert_eq!(connected.header("version"), Some("1.2"));
    assert!(connected.header("session").is_some());
    assert!(connected
        .header("server")
        .is_some_and(|server| server.starts_with("mqgate/")));
    consumer
        .with_receipt(
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

    let mut producer = Stomp::new(tls_connect(config, tls).await.unwrap());
    assert_eq!(
        producer.connect(Some(("guest", "guest"))).await.command,
        "CONNECTED"
    );
    let body = binary_body();
    producer
        .with_receipt(
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
        .with_receipt("ACK", &[("id", &ack)], b"", "acked")
        .await;
    consumer.with_receipt("DISCONNECT", &[], b"", "bye").await;
}

#[tokio::test]
async fn a_verified_client_certificate_logs_in_as_its_common_name() {
    let pki = Pki::generate("stomp-cert");
    let (_gateway, tls, _plain) = start(&pki, true).await;
    // No login header: the certificate's CN `guest` is the user (stomp.certificate_login).
    let identity = pki.client("guest");
    let config = client_config(&pki, Some(&identity));
    let mut client = Stomp::new(tls_connect(config, tls).await.unwrap());
    let connected = client.connect(None).await;
    assert_eq!(connected.command, "CONNECTED", "{connected:?}");
    client
        .with_receipt("SEND", &[("destination", "/topic/cert.login")], b"hi", "r")
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
    let mut client = Stomp::new(TcpStream::connect(plain).await.unwrap());
    assert_eq!(
        client.connect(Some(("guest", "guest"))).await.command,
        "CONNECTED"
    );
}
